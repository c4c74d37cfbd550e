"""The bulk write path (BENCHMARKS.md W1): byte strings bound as the driver binds fastest,
index rows built as a list (no set) and inserted in primary-key order.

CPython's sqlite3 offers every ``bytes`` parameter to its adapter registry first (on 3.11
a failed attribute lookup that raises and clears an AttributeError); a ``bytearray`` is
bound at once. The SQLite backend binds byte strings as bytearrays in its hot statements;
what is stored and read back must be the same BLOBs and ``bytes`` values. Every test that
stores data runs on SQLite (memory and file) and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from datastore_lite import Client, Entity
from datastore_lite._commit import entry_rows
from datastore_lite.backends._schema import entities, index_entries
from datastore_lite.backends._statements import _expand
from datastore_lite.helpers import GeoPoint
from datastore_lite.indexes import Index, IndexProperty, composite_values, index_values

MakeClient = Callable[..., Client]

INDEX_YAML = """\
indexes:
- kind: Photo
  ancestor: yes
  properties:
  - name: date
    direction: desc
- kind: Photo
  properties:
  - name: tags
  - name: date
    direction: desc
- kind: Photo
  properties:
  - name: tags
  - name: n
"""


def _photo(client: Client, user: str, ident: int, tags: list[Any]) -> Entity:
    entity = Entity(client.key("User", user, "Photo", ident), exclude_from_indexes=("image",))
    entity.update(
        {
            "date": dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=ident),
            "n": ident % 7,
            "tags": tags,
            "image": bytes([ident % 256]) * 64,
            "raw": b"\x00\x01blob",
        }
    )
    return entity


def test_bulk_put_stores_blobs_and_reads_back_bytes(make_client: MakeClient, tmp_path: Any) -> None:
    path = tmp_path / "index.yaml"
    path.write_text(INDEX_YAML)
    client = make_client(index_yaml=str(path))
    photos = [_photo(client, f"u{i % 3}", i + 1, ["a", "b", "a"][: i % 4]) for i in range(40)]
    client.put_multi(photos)
    backend = client._datastore_api.backend
    with backend.engine.connect() as conn:
        kinds = {
            type(v)
            for row in conn.execute(sa.select(entities.c.key, entities.c.body, entities.c.kind))
            for v in row
        }
        entry_kinds = {
            type(v)
            for row in conn.execute(sa.select(index_entries.c.value, index_entries.c.key))
            for v in row
        }
        if backend.name == "sqlite":  # stored as BLOBs, never as text
            blob_types = conn.execute(
                sa.text(
                    "SELECT DISTINCT typeof(value), typeof(key) FROM dl_index_entries "
                    "UNION SELECT DISTINCT typeof(key), typeof(body) FROM dl_entities"
                )
            ).all()
            assert set(blob_types) == {("blob", "blob")}
    assert kinds <= {bytes, memoryview} and entry_kinds <= {bytes, memoryview}
    got = client.get_multi([p.key for p in photos])
    assert sorted(g.key.id for g in got) == list(range(1, 41))
    for entity in got:
        assert type(entity["raw"]) is bytes and entity["raw"] == b"\x00\x01blob"
        assert entity["image"] == bytes([entity.key.id % 256]) * 64
    # the index entries written from bytearray parameters are found by every index
    user = client.key("User", "u1")
    ancestor = list(client.query(kind="Photo", ancestor=user, order=["-date"]).fetch())
    assert [e.key.id for e in ancestor] == sorted(
        (p.key.id for p in photos if p.key.parent == user), reverse=True
    )
    query = client.query(kind="Photo", order=["-date"])
    query.add_filter("tags", "=", "b")
    assert [e.key.id for e in query.fetch()] == sorted(
        (p.key.id for p in photos if "b" in p["tags"]), reverse=True
    )
    query = client.query(kind="Photo", order=["n"])
    query.add_filter("tags", "=", "a")
    query.add_filter("n", ">", 2)
    assert sorted(e.key.id for e in query.fetch()) == sorted(
        p.key.id for p in photos if "a" in p["tags"] and p["n"] > 2
    )
    # an update of a few of them moves their entries (move and delete statements)
    for p in photos[:5]:
        p["tags"] = ["z"]
        p["n"] = 100
    client.put_multi(photos[:5])
    query = client.query(kind="Photo")
    query.add_filter("tags", "=", "z")
    assert sorted(e.key.id for e in query.fetch()) == [1, 2, 3, 4, 5]
    query = client.query(kind="Photo")
    query.add_filter("tags", "=", "a")
    assert all(e.key.id > 5 for e in query.fetch())
    client.delete_multi([p.key for p in photos[:5]])
    assert client.get_multi([p.key for p in photos[:5]]) == []


def test_single_puts_gets_and_transactions_bind_blobs_too(make_client: MakeClient) -> None:
    """The one-entity hot paths (W2 put, W3 get, W7 transaction) take the same binding."""
    client = make_client()
    key = client.key("Counter", "c")
    entity = Entity(key)
    entity.update({"n": 0, "b": b"\xff\x00"})
    client.put(entity)
    for _ in range(3):
        with client.transaction():
            current = client.get(key)
            assert current is not None
            current["n"] += 1
            client.put(current)
    got = client.get(key)
    assert got is not None and got["n"] == 3 and type(got["b"]) is bytes
    assert got["b"] == b"\xff\x00"
    query = client.query(kind="Counter")
    query.add_filter("n", "=", 3)
    assert [e.key for e in query.fetch()] == [key]


class _RecordingCursor:
    """Stands in for a statement runner's cursor; keeps every parameter set it executes."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.params: list[Any] = []

    def execute(self, sql: Any, params: Any = ()) -> Any:
        self.params.append(params)
        return self.real.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_scans_and_counts_bind_blobs(make_client: MakeClient, tmp_path: Any) -> None:
    """Query scans (kind, value and key bounds, a resumed page) and counts bind byte strings
    as the backend binds them fastest, and find the same entities."""
    path = tmp_path / "index.yaml"
    path.write_text(INDEX_YAML)
    client = make_client(index_yaml=str(path))
    client.put_multi([_photo(client, "u", i, ["a", "b"] if i % 2 else ["b"]) for i in range(1, 31)])
    backend = client._datastore_api.backend
    txn = backend._txn()
    recorder = _RecordingCursor(txn.cur)
    txn.cur = recorder
    try:
        query = client.query(kind="Photo", order=["-date"])
        query.add_filter("tags", "=", "a")
        first = query.fetch(limit=5)
        page = [e.key.id for e in next(first.pages)]
        rest = [e.key.id for e in query.fetch(limit=5, start_cursor=first.next_page_token)]
        ancestor = client.query(kind="Photo", ancestor=client.key("User", "u"))
        ancestor.key_filter(client.key("User", "u", "Photo", 10), ">")
        after_ten = [e.key.id for e in ancestor.fetch()]
        raw = client.query(kind="Photo")
        raw.add_filter("raw", "=", b"\x00\x01blob")
        count = client.aggregation_query(raw).count().fetch()
        counted = [r.value for batch in count for r in batch]
    finally:
        txn.cur = recorder.real
    assert page == [29, 27, 25, 23, 21] and rest == [19, 17, 15, 13, 11]
    assert after_ten == list(range(11, 31)) and counted == [30]
    bound = [v for p in recorder.params if isinstance(p, dict) for v in p.values()]
    blob = backend.bind_blob
    assert any(type(v) is (bytes if blob is None else blob) for v in bound)
    if blob is not None:  # SQLite: no bytes left for the adapter lookup
        assert not [v for v in bound if type(v) is bytes]


def test_expand_binds_each_value_with_the_backends_blob_type() -> None:
    params: dict[str, Any] = {}
    _expand(params, "k", [b"a", b"b"], bytearray)
    assert params == {"k_1": bytearray(b"a"), "k_2": bytearray(b"b")}
    assert all(type(v) is bytearray for v in params.values())
    plain: dict[str, Any] = {}
    _expand(plain, "k", [b"a"])
    assert type(plain["k_1"]) is bytes


# -- index rows without a set ------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=6),
    st.binary(max_size=6),
    # a timestamp and an int of the same microseconds share an index encoding (§2.1)
    st.integers(min_value=0, max_value=10**12).map(
        lambda us: dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
    ),
    st.builds(GeoPoint, st.floats(-90, 90), st.floats(-180, 180)),
)
_values = st.one_of(_scalars, st.lists(_scalars, max_size=5))


class _Registry:
    def __init__(self, kind: str, names: list[str], composites: list[Any]) -> None:
        self.builtin_by_kind = {kind: {name: i + 1 for i, name in enumerate(names)}}
        self._composites = composites

    def writable(self, kind: str) -> list[Any]:
        return self._composites

    def reload(self) -> None:  # pragma: no cover - every name is registered
        raise AssertionError("no reload expected")


class _Entry:
    def __init__(self, ident: int, index: Index) -> None:
        self.id = ident
        self.index = index


class _Api:
    def __init__(self, registry: _Registry) -> None:
        self.registry = registry


@settings(max_examples=150, deadline=None)
@given(
    props=st.fixed_dictionaries({"a": _values, "b": _values, "c": _values}),
    path=st.sampled_from(
        [("Photo", 1), ("User", "u", "Photo", 2), ("A", "x", "B", 3, "Photo", "p")]
    ),
)
def test_entry_rows_are_distinct_and_the_union_of_every_index(
    props: dict[str, Any], path: tuple[Any, ...]
) -> None:
    """Rows are a list now: distinct because values are de-duplicated per property and
    encodings are self-delimiting; the same rows as index by index (the old set)."""
    from datastore_lite._convert import to_value

    stored = {name: to_value(value) for name, value in props.items()}
    values = index_values(stored, (), True)
    indexes = [
        Index("Photo", True, (IndexProperty("a", "desc"),)),
        Index("Photo", False, (IndexProperty("a"), IndexProperty("b", "desc"))),
        Index("Photo", True, (IndexProperty("b"), IndexProperty("c"), IndexProperty("a"))),
        Index("Photo", False, (IndexProperty("c"), IndexProperty("__key__", "desc"))),
    ]
    entries = [_Entry(100 + i, index) for i, index in enumerate(indexes)]
    api: Any = _Api(_Registry("Photo", sorted(values), entries))
    key = b"the-key"
    rows = entry_rows(api, "Photo", key, values, path)
    assert len(rows) == len(set(rows))
    expected = {(i + 1, v, key) for i, name in enumerate(sorted(values)) for v in values[name]}
    for entry in entries:
        expected |= {(entry.id, v, key) for v in composite_values(entry.index, values, path)}
    assert set(rows) == expected
