"""GQL through Google's Datastore emulator and through datastore_lite, compared (SEMANTICS.md §4.8).

The official Python client has no GQL method, so the official side sends a
``RunQueryRequest.gql_query`` through ``client._datastore_api.run_query`` (with
``allow_literals=True``; the proto default is false) and decodes the one result batch with
``helpers.entity_from_protobuf``. The lite side runs ``client.gql(...).fetch()``.

The emulator runs legacy rules, so only what it supports is compared: no ``OR``, ``!=``,
``NOT IN``, multi-value ``IN`` or aggregations (datastore_lite runs those; see
tests/behaviour/test_gql_queries.py). Error texts differ on purpose (datastore_lite names
the line, column and what was expected), so errors are compared by class: both raise
``InvalidArgument``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from datastore_lite import Client
from datastore_lite.exceptions import InvalidArgument
from tests.differential.harness import Side, plain, side_of

pytestmark = pytest.mark.emulator

UTC = dt.UTC


class CursorAfterThree:
    """Bound to each side's own cursor after ``SELECT __key__ FROM C ORDER BY n LIMIT 3``."""


AFTER_THREE = CursorAfterThree()


# -- running GQL on each side ---------------------------------------------------------------------


def _official_value(value: Any) -> dict[str, Any]:
    """A Python value as a v1 ``Value`` (dict form) for a GQL binding."""
    if value is None:
        return {"null_value": 0}
    if isinstance(value, bool):
        return {"boolean_value": value}
    if isinstance(value, int):
        return {"integer_value": value}
    if isinstance(value, float):
        return {"double_value": value}
    if isinstance(value, str):
        return {"string_value": value}
    if isinstance(value, bytes):
        return {"blob_value": value}
    if isinstance(value, dt.datetime):
        return {"timestamp_value": value}
    if isinstance(value, list):
        return {"array_value": {"values": [_official_value(v) for v in value]}}
    if hasattr(value, "to_protobuf"):  # an official Key
        return {"key_value": value.to_protobuf()}
    raise TypeError(value)


def _run_official(
    client: Any, text: str, positional: tuple[Any, ...], named: dict[str, Any]
) -> Any:
    from google.cloud.datastore import helpers

    def parameter(value: Any) -> dict[str, Any]:
        if isinstance(value, bytes) and value.startswith(b"cursor:"):
            return {"cursor": value[len(b"cursor:") :]}
        return {"value": _official_value(value)}

    gql_query: dict[str, Any] = {"query_string": text, "allow_literals": True}
    if named:
        gql_query["named_bindings"] = {k: parameter(v) for k, v in named.items()}
    if positional:
        gql_query["positional_bindings"] = [parameter(v) for v in positional]
    response = client._datastore_api.run_query(
        request={"project_id": client.project, "gql_query": gql_query}
    )
    batch = response.batch
    assert batch.more_results != 1, "the data set is meant to fit in one batch"  # NOT_FINISHED
    decode = helpers.entity_from_protobuf
    return [decode(r.entity._pb) for r in batch.entity_results]  # type: ignore[no-untyped-call]


def _cursor_after_three(side: Side) -> bytes:
    text = "SELECT __key__ FROM C ORDER BY n LIMIT 3"
    if side.name == "lite":
        iterator = side.client.gql(text).fetch()
        list(iterator)
        token: bytes = iterator.next_page_token
        return token
    response = side.client._datastore_api.run_query(
        request={
            "project_id": side.client.project,
            "gql_query": {"query_string": text, "allow_literals": True},
        }
    )
    return b"cursor:" + bytes(response.batch.end_cursor)


def run_gql(side: Side, text: str, *positional: Any, **named: Any) -> Any:
    """The entities ``text`` returns on ``side`` (bindings built with the side's classes)."""

    def resolve(value: Any) -> Any:
        if value is AFTER_THREE:
            return _cursor_after_three(side)
        if callable(value):
            return value(side)
        return value

    args = tuple(resolve(v) for v in positional)
    kwargs = {k: resolve(v) for k, v in named.items()}
    if side.name == "lite":
        return list(side.client.gql(text, *args, **kwargs).fetch())
    return _run_official(side.client, text, args, kwargs)


def comparable(entities: list[Any]) -> list[Any]:
    """Keys and properties in order; the official client's projection meanings are dropped."""
    return [(plain(e.key), {name: plain(v) for name, v in e.items()}) for e in entities]


def _seed(side: Side) -> None:
    entities = []
    for i in range(1, 11):
        entities.append(
            side.entity(side.key("C", i), n=i, g=i % 3, s=f"s{i}", tags=["a", f"t{i % 2}"], f=i / 2)
        )
    entities.append(side.entity(side.key("C", 1, "D", "x"), n=100))
    entities.append(side.entity(side.key("C", 11), n=None))
    for i, text in enumerate(["s'3", 's"3', "s\n3", "s\\3", "s\t3", "s\r3", "s\b3", "s\x003"]):
        entities.append(side.entity(side.key("E", i + 1), s=text))
    entities.append(
        side.entity(
            side.key("E", 20),
            b=b"\xfb\xff",
            t=dt.datetime(2020, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
            k=side.key("C", 3),
        )
    )
    entities.append(side.entity(side.key("odd`kind", "a"), **{"my prop": 1, "order": 2}))
    side.client.put_multi(entities)


@pytest.fixture
def gql_sides(official: Any, lite: Client) -> tuple[Side, Side]:
    sides = side_of(official), side_of(lite)
    for side in sides:
        _seed(side)
    return sides


# -- same results ----------------------------------------------------------------------------------

CASES: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    # the §4.8 examples
    ("SELECT * FROM C WHERE n > 7", (), {}),
    ("SELECT __key__ FROM C ORDER BY n DESC LIMIT 2 OFFSET 1", (), {}),
    ("SELECT * FROM C WHERE __key__ = KEY(C, 3)", (), {}),
    ("SELECT * FROM C WHERE n = @x", (), {"x": 4}),
    ("SELECT DISTINCT g FROM C", (), {}),
    # keywords, names, value-first, bindings
    ("select __key__ from C where 7 <= n order by n desc", (), {}),
    ("SELECT * FROM C WHERE n > @1 AND n < @2", (2, 6), {}),
    ("SELECT * FROM C WHERE @1 = n", (5,), {}),
    ("SELECT * FROM `odd``kind` WHERE `my prop` = 1 AND `order` = 2", (), {}),
    ("SELECT * FROM C WHERE n < @m ORDER BY n DESC", (), {"m": 4}),
    # operators
    ("SELECT * FROM C WHERE tags CONTAINS 't1'", (), {}),
    ("SELECT * FROM C WHERE n IS NULL", (), {}),
    ("SELECT * FROM C WHERE NULL = n", (), {}),
    ("SELECT * FROM C WHERE n IN 5", (), {}),
    ("SELECT * WHERE __key__ HAS ANCESTOR KEY(C, 1)", (), {}),
    ("SELECT * FROM D WHERE KEY(C, 1) HAS DESCENDANT __key__", (), {}),
    ("SELECT * FROM C WHERE __key__ HAS ANCESTOR @k", (), {"k": lambda s: s.key("C", 2)}),
    ("SELECT __key__ WHERE __key__ > KEY(C, 10)", (), {}),
    ("SELECT * FROM C WHERE __key__ = KEY(PROJECT('diff-proj'), NAMESPACE(''), C, 3)", (), {}),
    ("SELECT * FROM C WHERE f = 15e-1", (), {}),
    ("SELECT * FROM C WHERE f = .5", (), {}),
    ("SELECT * FROM C WHERE n = +1", (), {}),
    ("SELECT * FROM C WHERE n = -1", (), {}),
    # projections
    ("SELECT DISTINCT ON (g) * FROM C", (), {}),
    ("SELECT n FROM C WHERE n >= 5", (), {}),
    ("SELECT __key__", (), {}),
    ("SELECT * FROM C LIMIT 0", (), {}),
    ("SELECT * FROM C ORDER BY n LIMIT 3 OFFSET 20", (), {}),
    # literals
    ("SELECT * FROM E WHERE s = 's''3'", (), {}),
    ('SELECT * FROM E WHERE s = "s\\"3"', (), {}),
    ("SELECT * FROM E WHERE s = 's\\n3'", (), {}),
    ("SELECT * FROM E WHERE s = 's\\\\3'", (), {}),
    ("SELECT * FROM E WHERE s = 's\\t3'", (), {}),
    ("SELECT * FROM E WHERE s = 's\\r3'", (), {}),
    ("SELECT * FROM E WHERE s = 's\\b3'", (), {}),
    ("SELECT * FROM E WHERE s = 's\\03'", (), {}),
    ("SELECT * FROM E WHERE b = BLOB('-_8')", (), {}),
    ("SELECT * FROM E WHERE t = DATETIME('2020-01-01T00:00:00.5Z')", (), {}),
    ("SELECT * FROM E WHERE t = DATETIME('2019-12-31T23:00:00.500000-01:00')", (), {}),
    ("SELECT * FROM E WHERE t = @t", (), {"t": dt.datetime(2020, 1, 1, 0, 0, 0, 500000, UTC)}),
    ("SELECT * FROM E WHERE k = KEY(C, 3)", (), {}),
    ("SELECT * FROM E WHERE b = @b", (), {"b": b"\xfb\xff"}),
    # cursors
    ("SELECT __key__ FROM C ORDER BY n OFFSET @c", (), {"c": AFTER_THREE}),
    ("SELECT __key__ FROM C ORDER BY n OFFSET @c + 2", (), {"c": AFTER_THREE}),
    ("SELECT __key__ FROM C ORDER BY n OFFSET @c + @d", (), {"c": AFTER_THREE, "d": 1}),
    ("SELECT __key__ FROM C ORDER BY n LIMIT 2 OFFSET @c + 1", (), {"c": AFTER_THREE}),
    ("SELECT __key__ FROM C ORDER BY n LIMIT FIRST(@c, 2)", (), {"c": AFTER_THREE}),
]


@pytest.mark.parametrize(("text", "positional", "named"), CASES)
def test_same_results(
    gql_sides: tuple[Side, Side], text: str, positional: tuple[Any, ...], named: dict[str, Any]
) -> None:
    official, lite = gql_sides
    expected = comparable(run_gql(official, text, *positional, **named))
    assert comparable(run_gql(lite, text, *positional, **named)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "SELECT __key__ FROM C ORDER BY n LIMIT @c",
        "SELECT __key__ FROM C ORDER BY n LIMIT @c OFFSET 1",
    ],
)
def test_same_results_with_an_end_cursor(gql_sides: tuple[Side, Side], text: str) -> None:
    official, lite = gql_sides
    expected = comparable(run_gql(official, text, c=AFTER_THREE))
    assert comparable(run_gql(lite, text, c=AFTER_THREE)) == expected


def test_keys_only_key_equality(gql_sides: tuple[Side, Side]) -> None:
    official, lite = gql_sides
    text = "SELECT __key__ FROM C WHERE __key__ = KEY(C, 3)"
    assert comparable(run_gql(lite, text)) == comparable(run_gql(official, text))


# -- both reject ----------------------------------------------------------------------------------

ERRORS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("SELECT * FROM C ORDER BY LIMIT 5", (), {}),
    ("SELECT * FROM C OFFSET 1 LIMIT 2", (), {}),
    ("SELECT * FROM C WHERE n > 7 extra", (), {}),
    ("SELECT DISTINCT * FROM C", (), {}),
    ("SELECT * FROM Order", (), {}),
    ("SELECT * FROM C WHERE n = 0x1", (), {}),
    ("SELECT * FROM C WHERE n = 9223372036854775808", (), {}),
    ("SELECT * FROM C WHERE s = 's\\q'", (), {}),
    ("SELECT * FROM C WHERE s = 's", (), {}),
    ("SELECT * FROM C WHERE n IS NOT NULL", (), {}),
    ("SELECT * FROM C WHERE n = 1 -- comment", (), {}),
    ("SELECT * FROM C WHERE n HAS ANCESTOR KEY(C, 1)", (), {}),
    ("SELECT * FROM C WHERE __key__ HAS DESCENDANT KEY(C, 1)", (), {}),
    ("SELECT * FROM C WHERE 't0' CONTAINS tags", (), {}),
    ("SELECT * FROM C WHERE __key__ HAS ANCESTOR 5", (), {}),
    (
        "SELECT * FROM C WHERE __key__ HAS ANCESTOR KEY(C, 1) AND __key__ HAS ANCESTOR KEY(C, 1)",
        (),
        {},
    ),
    ("SELECT * FROM C WHERE __key__ = KEY('C', 1)", (), {}),
    ("SELECT * FROM C WHERE __key__ = KEY(C)", (), {}),
    ("SELECT * FROM C WHERE __key__ = KEY(C, 0)", (), {}),
    ("SELECT * FROM C WHERE __key__ = KEY(C, '')", (), {}),
    ("SELECT * FROM C WHERE __key__ = KEY(PROJECT('p'), PROJECT('p'), C, 1)", (), {}),
    ("SELECT * FROM C WHERE __key__ = KEY(NAMESPACE('x'), C, 1)", (), {}),
    ("SELECT * FROM C WHERE n = ARRAY(1, 2)", (), {}),
    ("SELECT * FROM C WHERE n IN ARRAY(1, ARRAY(2))", (), {}),
    ("SELECT * FROM C WHERE n = FOO(1)", (), {}),
    ("SELECT * FROM C WHERE n = BLOB('-_8=')", (), {}),
    ("SELECT * FROM C WHERE n = BLOB('+/8')", (), {}),
    ("SELECT * FROM C WHERE n = DATETIME('2020-01-01T00:00:00+00:00')", (), {}),
    ("SELECT * FROM C WHERE n = DATETIME('2020-01-01')", (), {}),
    ("SELECT * FROM C WHERE n = DATETIME('2020-02-30T00:00:00Z')", (), {}),
    ("SELECT * FROM C LIMIT -1", (), {}),
    ("SELECT * FROM C LIMIT 1.5", (), {}),
    ("SELECT * FROM C OFFSET 2 + 3", (), {}),
    ("SELECT * FROM C LIMIT FIRST(5, 6)", (), {}),
    ("SELECT * FROM C LIMIT @n", (), {"n": "x"}),
    ("SELECT * FROM C LIMIT @n", (), {"n": -2}),
    ("SELECT * FROM C WHERE n = @x", (), {}),
    ("SELECT * FROM C WHERE n = @2", (1, 2), {}),
    ("SELECT * FROM C WHERE n = @1", (1, 2), {}),
    ("SELECT * FROM C WHERE n = @0", (1,), {}),
    ("SELECT * FROM C WHERE n = @__x__", (), {"__x__": 1}),
    ("SELECT * FROM C GROUP BY g", (), {}),
]


@pytest.mark.parametrize(("text", "positional", "named"), ERRORS)
def test_both_reject(
    gql_sides: tuple[Side, Side], text: str, positional: tuple[Any, ...], named: dict[str, Any]
) -> None:
    import google.api_core.exceptions as api_core

    official, lite = gql_sides
    with pytest.raises(api_core.InvalidArgument):
        run_gql(official, text, *positional, **named)
    with pytest.raises(InvalidArgument):
        run_gql(lite, text, *positional, **named)
