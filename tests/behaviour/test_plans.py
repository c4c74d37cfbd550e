"""Every main query shape is a range scan of an index (DESIGN.md §10; issue #3 item 6).

The SQL each query runs is captured and EXPLAINed: SQLite's ``EXPLAIN QUERY PLAN`` must
show ``SEARCH`` (a bounded lookup) on datastore_lite's tables, never a ``SCAN`` of them;
PostgreSQL's ``EXPLAIN`` (with sequential scans disabled, so a missing index shows up as a
forced ``Seq Scan``) must show index scans with an ``Index Cond``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from datastore_lite import Client, Entity
from datastore_lite.backends.sql import SQLBackend, Txn
from datastore_lite.query import PropertyFilter

INDEX_YAML = """indexes:
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
"""


class Recorder:
    """Wraps a DB-API cursor and keeps every (sql, params) it executes."""

    def __init__(self, cursor: Any, log: list[tuple[str, Any]]) -> None:
        self._cursor = cursor
        self._log = log

    def execute(self, sql: str, params: Any = None) -> Any:
        self._log.append((sql, params))
        return (
            self._cursor.execute(sql, params) if params is not None else self._cursor.execute(sql)
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


@pytest.fixture
def photos(tmp_path: Any, make_client: Callable[..., Client]) -> Client:
    path = tmp_path / "index.yaml"
    path.write_text(INDEX_YAML)
    client = make_client(index_yaml=str(path))
    entities = []
    for u in range(12):
        client.put(Entity(client.key("User", f"u{u}")))
        for i in range(25):
            photo = Entity(client.key("User", f"u{u}", "Photo"), exclude_from_indexes=("image",))
            photo.update(
                user=f"u{u}",
                date=dt.datetime(2026, 1, 1) + dt.timedelta(hours=u * 100 + i),
                likes=i,
                tags=[f"t{i % 7}", f"t{(i + u) % 5}"],
                image=b"x" * 64,
            )
            entities.append(photo)
    for start in range(0, len(entities), 100):
        client.put_multi(entities[start : start + 100])
    return client


@pytest.fixture
def captured(photos: Client, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Any]]]:
    log: list[tuple[str, Any]] = []
    backend: SQLBackend = photos._datastore_api.backend
    original = SQLBackend._txn

    def recording_txn(self: SQLBackend) -> Txn:
        txn = original(self)
        if not isinstance(txn.cur, Recorder):
            txn.cur = Recorder(txn.cur, log)
        return txn

    monkeypatch.setattr(SQLBackend, "_txn", recording_txn)
    yield log
    txn = original(backend)
    if isinstance(txn.cur, Recorder):
        txn.cur = txn.cur._cursor


def _scan_statements(log: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [
        (sql, params)
        for sql, params in log
        if sql.lstrip().upper().startswith("SELECT") and "dl_" in sql and "dl_meta" not in sql
    ]


def _explain(backend: SQLBackend, sql: str, params: Any) -> list[str]:
    with backend.read() as r:
        cur = r.cur._cursor if isinstance(r.cur, Recorder) else r.cur
        if backend.name == "sqlite":
            cur.execute("EXPLAIN QUERY PLAN " + sql, params)
            return [str(row[3]) for row in cur.fetchall()]
        cur.execute("SET enable_seqscan = off")
        try:
            cur.execute("EXPLAIN " + sql, params)
            return [str(row[0]) for row in cur.fetchall()]
        finally:
            cur.execute("SET enable_seqscan = on")


def _assert_range_scans(client: Client, log: list[tuple[str, Any]]) -> None:
    backend: SQLBackend = client._datastore_api.backend
    statements = _scan_statements(log)
    assert statements, "the query ran no SELECT on datastore_lite's tables"
    for sql, params in statements:
        plan = _explain(backend, sql, params)
        text = "\n".join(plan)
        if backend.name == "sqlite":
            # "SCAN anon_1" walks the already-bounded subquery of a COUNT, not a table;
            # "SCAN CONSTANT ROW" is the FROM-less SELECT CASE ... of a count
            full_scans = [
                line
                for line in plan
                if line.startswith("SCAN") and "anon_" not in line and "CONSTANT ROW" not in line
            ]
            assert not full_scans, f"full scan in plan:\n{text}\nfor\n{sql}"
            assert any(line.startswith("SEARCH") for line in plan), text
        else:
            assert "Seq Scan" not in text, f"sequential scan in plan:\n{text}\nfor\n{sql}"
            assert "Index Cond" in text, f"no bounded index scan in plan:\n{text}\nfor\n{sql}"


def _run(query: Any, **fetch: Any) -> list[Entity]:
    return list(query.fetch(**fetch))


SHAPES: dict[str, Callable[[Client], Any]] = {
    "kind scan": lambda c: c.query(kind="Photo"),
    "kindless ancestor": lambda c: c.query(ancestor=c.key("User", "u3")),
    "kind + ancestor": lambda c: c.query(kind="Photo", ancestor=c.key("User", "u3")),
    "key range": lambda c: c.query(kind="User", filters=[("__key__", ">", c.key("User", "u5"))]),
    "equality (built-in)": lambda c: c.query(kind="Photo", filters=[("user", "=", "u4")]),
    "range (built-in)": lambda c: c.query(kind="Photo", filters=[("likes", ">", 20)]),
    "descending sort (built-in)": lambda c: c.query(kind="Photo", order=["-likes"]),
    "merge join of equalities": lambda c: c.query(
        kind="Photo", filters=[("user", "=", "u4"), ("likes", "=", 3)]
    ),
    "ancestor + equality": lambda c: c.query(
        kind="Photo", ancestor=c.key("User", "u4"), filters=[("likes", "=", 3)]
    ),
    "composite: equality + sort": lambda c: c.query(
        kind="Photo", filters=[("tags", "=", "t3")], order=["-date"]
    ),
    "composite: ancestor + sort": lambda c: c.query(
        kind="Photo", ancestor=c.key("User", "u7"), order=["-date"]
    ),
    "IN (several scans)": lambda c: c.query(kind="Photo", filters=[("likes", "IN", [1, 5, 9])]),
    "!= (two ranges)": lambda c: c.query(kind="Photo", filters=[("likes", "!=", 5)]),
    "OR": lambda c: c.query(kind="Photo").add_filter(
        filter=__import__("datastore_lite.query", fromlist=["Or"]).Or(
            [PropertyFilter("user", "=", "u1"), PropertyFilter("likes", "=", 2)]
        )
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_query_shape_is_a_range_scan(
    shape: str, photos: Client, captured: list[tuple[str, Any]]
) -> None:
    query = SHAPES[shape](photos)
    first = query.fetch(limit=5)
    rows = list(first)
    assert rows, f"{shape}: the data set should match"
    # resuming from a cursor is a range scan too (row-value / key comparison, no rescans)
    list(SHAPES[shape](photos).fetch(limit=5, start_cursor=first.next_page_token))
    _assert_range_scans(photos, captured)


def test_keys_only_and_projection_are_range_scans(
    photos: Client, captured: list[tuple[str, Any]]
) -> None:
    keys = photos.query(kind="Photo", filters=[("likes", ">=", 10)])
    keys.keys_only()
    assert _run(keys, limit=10)
    projected = photos.query(kind="Photo", projection=["likes"], order=["likes"])
    assert _run(projected, limit=10)
    _assert_range_scans(photos, captured)


def test_count_aggregation_is_a_range_scan(photos: Client, captured: list[tuple[str, Any]]) -> None:
    query = photos.query(kind="Photo", filters=[("user", "=", "u2")])
    results = list(photos.aggregation_query(query).count(alias="n").fetch())
    assert results[0][0].value == 25
    _assert_range_scans(photos, captured)


def test_offset_reads_its_rows_but_stays_in_range(
    photos: Client, captured: list[tuple[str, Any]]
) -> None:
    query = photos.query(kind="Photo", filters=[("user", "=", "u9")])
    got = _run(query, offset=10, limit=5)
    assert len(got) == 5
    _assert_range_scans(photos, captured)


def test_plan_cache_keeps_recent_plans_and_evicts_the_least_recently_used(
    photos: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plans hold their filter values (one per tag): an LRU keeps the hot ones. (Ancestor
    queries share one plan per shape: test_plan_rebind.py.)"""
    import datastore_lite._api as api_module
    import datastore_lite._planner as planner_module

    monkeypatch.setattr(api_module, "PLAN_CACHE_SIZE", 3)
    planned: list[Any] = []
    real_plan_query = planner_module.plan_query

    def counting_plan_query(spec: Any, *args: Any, **kwargs: Any) -> Any:
        planned.append(spec.filter)
        return real_plan_query(spec, *args, **kwargs)

    monkeypatch.setattr(api_module, "plan_query", counting_plan_query)

    def tagged(tag: str) -> list[Entity]:
        query = photos.query(kind="Photo", order=["-date"])
        query.add_filter(filter=PropertyFilter("tags", "=", tag))
        return list(query.fetch(limit=5))

    expected = {t: [e.key for e in tagged(t)] for t in ("t0", "t1", "t2")}
    assert len(planned) == 3
    assert [e.key for e in tagged("t0")] == expected["t0"]  # hit: t0 becomes most recent
    assert len(planned) == 3
    tagged("t3")  # full: evicts t1, the least recently used
    assert len(planned) == 4
    assert [e.key for e in tagged("t0")] == expected["t0"]
    assert [e.key for e in tagged("t2")] == expected["t2"]
    assert len(planned) == 4
    assert [e.key for e in tagged("t1")] == expected["t1"]  # evicted: planned again
    assert len(planned) == 5


def test_index_choice_is_remembered_per_query_shape_not_per_value(
    photos: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new user's first stream query reuses the index decision of another user's."""
    registry = photos._datastore_api.registry
    registry.memo.clear()
    chosen: list[str] = []  # the decisions taken afresh (not recalled)
    real_remember = registry.remember

    def counting_remember(key: Any, value: Any) -> None:
        chosen.append(key[0])
        real_remember(key, value)

    monkeypatch.setattr(registry, "remember", counting_remember)

    def stream(user: str) -> list[Any]:
        query = photos.query(kind="Photo", ancestor=photos.key("User", user), order=["-date"])
        return [e.key for e in query.fetch(limit=5)]

    def tagged(tag: str) -> list[Any]:
        query = photos.query(kind="Photo", order=["-date"])
        query.add_filter(filter=PropertyFilter("tags", "=", tag))
        return [e.key for e in query.fetch(limit=5)]

    first = stream("u0")
    assert sorted(chosen) == ["match", "sdk"]
    for u in range(1, 12):
        got = stream(f"u{u}")
        assert len(got) == 5 and all(k.parent == photos.key("User", f"u{u}") for k in got)
    assert sorted(chosen) == ["match", "sdk"]  # the other 11 users planned from the memo
    tagged("t0")
    assert len(chosen) == 4  # a new shape decides afresh
    assert tagged("t3") and len(chosen) == 4
    # new index definitions (another process, `indexes build`, ...) drop every decision
    registry.reload(registry.generation)
    assert registry.memo == {}
    photos._datastore_api._plans.clear()  # (same generation: the plan cache would answer)
    assert stream("u0") == first
    assert len(chosen) == 6
