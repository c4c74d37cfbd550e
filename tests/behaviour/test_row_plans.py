"""Row plans: how a tuple of named fields becomes a statement's positional parameters.

``SQLBackend.row_plan`` is worked out once per statement and field order and then used
by every bulk or single-row write; a wrong arrangement would write values into the wrong
columns, so each kind of plan is checked against the placeholder order on every backend,
and then by writing and reading rows through it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from datastore_lite import Client
from datastore_lite.backends import _schema as S
from datastore_lite.backends.sql import SQLBackend


def _backend(client: Client) -> SQLBackend:
    return client._datastore_api.backend


def _expected(
    order: tuple[str, ...], fields: tuple[str, ...], row: tuple[Any, ...], defaults: dict[str, Any]
) -> tuple[Any, ...]:
    return tuple(row[fields.index(n)] if n in fields else defaults[n] for n in order)


def _not_built() -> Any:
    raise AssertionError("the statement should already be compiled")


def test_a_reordering_plan_puts_each_value_at_its_placeholder(client: Client) -> None:
    """The index move ``UPDATE`` sets ``value`` first and filters on it later: its
    placeholders are in another order than its fields."""
    backend = _backend(client)
    with backend.write() as w:
        w.move_index_entries(1, [])  # compiles the library's statement
    stmt = backend.compiled("move_entries", _not_built)
    fields = ("iid", "pid", "old", "new", "k")
    sql, arrange = backend.row_plan(stmt, fields)
    _, order = backend.positional(stmt)
    assert sorted(order) == sorted(fields)
    row = (7, 1, b"old", b"new", b"key")
    arranged = row if arrange is None else arrange(row)
    assert arranged == _expected(order, fields, row, {})
    assert backend.row_plan(stmt, fields) is backend.row_plan(stmt, fields)  # worked out once
    assert sql.count("?" if "?" in sql else "%s") == len(order)


def test_a_plan_in_placeholder_order_passes_rows_through(client: Client) -> None:
    backend = _backend(client)
    _, order = backend.positional(backend.compiled("test_same", _meta_insert))
    sql, arrange = backend.row_plan(backend.compiled("test_same", _meta_insert), order)
    assert arrange is None
    assert sql


def _meta_insert() -> Any:
    m = S.meta
    return m.insert().values(name=sa.bindparam("n"), value=sa.bindparam("v"))


def test_a_plan_fills_the_values_sqlalchemy_invented(client: Client) -> None:
    """A literal in the statement becomes a bind value the rows do not carry."""
    backend = _backend(client)
    m = S.meta
    stmt = backend.compiled(
        "test_defaults",
        lambda: m.insert().values(name=sa.bindparam("n"), value=sa.literal("fixed")),
    )
    assert stmt.defaults  # the literal is a bind value with a default
    fields = ("n",)
    sql, arrange = backend.row_plan(stmt, fields)
    _, order = backend.positional(stmt)
    assert arrange is not None
    row = ("row_plan_test",)
    assert arrange(row) == _expected(order, fields, row, stmt.defaults)
    # and the statement writes what the plan arranged
    with backend.write() as w:
        w.runrows(stmt, fields, [("row_plan_a",), ("row_plan_b",)])
    with backend.read() as r:
        rows = r.cur.execute(
            "SELECT name, value FROM dl_meta WHERE name LIKE 'row_plan_%' ORDER BY name"
        ).fetchall()
    assert [tuple(row) for row in rows] == [("row_plan_a", "fixed"), ("row_plan_b", "fixed")]


def test_rows_written_through_a_reordering_plan_land_in_their_columns(client: Client) -> None:
    """An index entry moved by ``move_index_entries`` (placeholders in another order than
    its fields) takes the new value and keeps its index, partition and key."""
    backend = _backend(client)
    with backend.write() as w:
        w.insert_index_entries(1, [(900, b"\x01old", b"k1"), (900, b"\x01old", b"k2")])
    with backend.write() as w:
        w.move_index_entries(1, [(900, b"\x01old", b"\x01new", b"k1")])
    with backend.read() as r:
        rows = r.cur.execute(
            "SELECT index_id, partition, value, key FROM dl_index_entries "
            "WHERE index_id = 900 ORDER BY key"
        ).fetchall()
    assert [(a, b, bytes(c), bytes(d)) for a, b, c, d in rows] == [
        (900, 1, b"\x01new", b"k1"),
        (900, 1, b"\x01old", b"k2"),
    ]
    with backend.write() as w:
        w.move_index_entries(
            1, [(900, b"\x01new", b"\x01a", b"k1"), (900, b"\x01old", b"\x01b", b"k2")]
        )
    with backend.read() as r:
        rows = r.cur.execute(
            "SELECT value FROM dl_index_entries WHERE index_id = 900 ORDER BY key"
        ).fetchall()
    assert [bytes(v) for (v,) in rows] == [b"\x01a", b"\x01b"]
