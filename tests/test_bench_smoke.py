"""Smoke test of the benchmark harness (``benchmarks/``): every workload runs and reports.

Tiny sizes, no emulator, in-process W10; on SQLite in memory and on PostgreSQL when one is
reachable. Reports go to a temporary directory, never to ``benchmarks/results/``. A
datastore_lite feature that does not exist yet may show as ``n/a (feature missing: …)``;
anything else without a number fails.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.__main__ import parse_args
from benchmarks.config import ALL_WORKLOADS, Config
from benchmarks.data import DataSet, batched, write_index_yaml
from benchmarks.report import Row, write_reports
from benchmarks.runner import RunResult, run
from benchmarks.stores import StoreSpec, open_store
from tests._postgres import DEFAULT_URL, _reachable

PG_URL = os.environ.get("DATASTORE_LITE_TEST_POSTGRES_URL") or DEFAULT_URL
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
FEATURE_MISSING = "n/a (feature missing"
# n/a by design: a process cannot open another process's in-memory SQLite database
BY_DESIGN = {("W8.procs", "sqlite-memory")}


def _backends() -> tuple[str, ...]:
    if _reachable(PG_URL):
        return ("sqlite-memory", "postgresql")
    if IN_CI:
        pytest.fail(f"PostgreSQL is required in CI but {PG_URL} is unreachable")
    return ("sqlite-memory",)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunResult, list[Row], Path]]:
    tmp = tmp_path_factory.mktemp("bench")
    config = Config.tiny(
        backends=_backends(),
        output_dir=str(tmp / "results"),
        tmp_dir=str(tmp),
        pg_admin_url=PG_URL,
    )
    result = run(config)
    rows, _written = write_reports(result, config.output_dir)
    yield result, rows, tmp / "results"


def test_every_workload_reports_a_number(smoke: tuple[RunResult, list[Row], Path]) -> None:
    result, rows, _ = smoke
    assert {row.metric.workload for row in rows} == set(ALL_WORKLOADS)
    problems = []
    for row in rows:
        for impl in ("lite", "raw"):
            if impl not in row.metric.impls:
                continue
            cell = getattr(row, impl)
            where = f"{row.metric.id} {row.backend} {impl}"
            if cell is None:
                problems.append(f"{where}: no result")
            elif cell.value is None:
                allowed = (row.metric.id, row.backend) in BY_DESIGN or (
                    impl == "lite" and cell.note.startswith(FEATURE_MISSING)
                )
                if not allowed:
                    problems.append(f"{where}: {cell.note} {cell.extra.get('traceback', '')}")
    assert not problems, "\n".join(problems)


def test_contention_counter_is_exact(smoke: tuple[RunResult, list[Row], Path]) -> None:
    _, rows, _ = smoke
    for row in rows:
        if row.metric.workload != "W8" or (row.metric.id, row.backend) in BY_DESIGN:
            continue
        for cell in (row.lite, row.raw):
            assert cell is not None and cell.ok is True, (row.metric.id, row.backend, cell)


def test_reports_are_written(smoke: tuple[RunResult, list[Row], Path]) -> None:
    result, rows, out = smoke
    data = json.loads((out / "latest.json").read_text(encoding="utf-8"))
    for fact in ("cores", "python", "sqlite", "postgresql", "date"):
        assert data["machine"][fact], fact
    assert len(data["rows"]) == len(rows)
    assert {r["status"] for r in data["rows"]} <= {"PASS", "FAIL", "info", "n/a", "ERROR"}
    markdown = (out / "latest.md").read_text(encoding="utf-8")
    assert "| metric | backend |" in markdown and "## Machine" in markdown


def test_raw_rows_are_the_library_rows(tmp_path: Path) -> None:
    """The raw baseline writes byte-identical entity, index and group rows."""
    data = DataSet(photos=60, per_user=20, seed=7)
    index_yaml = write_index_yaml(str(tmp_path))
    paths = {"lite": tmp_path / "lite.db", "raw": tmp_path / "raw.db"}
    specs = [
        StoreSpec("lite", "sqlite", f"sqlite:///{paths['lite']}", index_yaml),
        StoreSpec("raw", "sqlite", str(paths["raw"]), index_yaml),
    ]
    for spec in specs:
        store = open_store(spec)
        store.put_users(list(data.user_names()))
        for records in batched(data.photo_records(), 25):
            store.put_prepared(store.prepare_photos(records))
        store.put_prepared(store.prepare_photos(list(data.photo_records(5, 8))))  # updates
        store.put_counters(["a"])
        store.increment(store.ref(("Counter", "a")))
        store.close()

    def dump(path: Path) -> list[set[tuple[object, ...]]]:
        conn = sqlite3.connect(path)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(dl_entities)")}
        multi = ", multi" if "multi" in columns else ""
        try:
            return [
                set(
                    conn.execute(
                        f"SELECT partition, key, kind, group_key, version, body{multi} "
                        "FROM dl_entities"
                    )
                ),
                set(
                    conn.execute(
                        "SELECT i.definition, x.partition, x.value, x.key FROM dl_index_entries x "
                        "JOIN dl_indexes i ON i.id = x.index_id"
                    )
                ),
                set(conn.execute("SELECT partition, group_key, version, applied FROM dl_groups")),
            ]
        finally:
            conn.close()

    lite, raw = dump(paths["lite"]), dump(paths["raw"])
    assert [len(t) for t in lite] == [len(t) for t in raw]
    assert lite == raw


@pytest.mark.parametrize("impl", ["lite", "raw"])
def test_maintenance_checkpoints_a_sqlite_file(tmp_path: Path, impl: str) -> None:
    """Both SQLite stores leave an empty write-ahead log after ``maintain()`` and after
    ``flush()`` (the end of a load), data intact."""
    data = DataSet(photos=200, per_user=20, seed=7)
    path = tmp_path / f"{impl}.db"
    location = f"sqlite:///{path}" if impl == "lite" else str(path)
    store = open_store(StoreSpec(impl, "sqlite", location, write_index_yaml(str(tmp_path))))
    try:
        store.put_users(list(data.user_names()))
        store.put_prepared(store.prepare_photos(list(data.photo_records())))
        wal = Path(f"{path}-wal")
        assert wal.exists() and wal.stat().st_size > 0  # the load is in the log
        store.maintain()
        assert wal.stat().st_size == 0
        store.put_users(["late"])
        assert wal.stat().st_size > 0
        store.flush()
        assert wal.stat().st_size == 0
        photo = store.get(store.ref(data.photo_path(123)))
        assert photo is not None
    finally:
        store.close()


@pytest.mark.parametrize("impl", ["lite", "raw"])
def test_maintenance_vacuums_and_flush_checkpoints_postgresql(tmp_path: Path, impl: str) -> None:
    """On PostgreSQL ``maintain()`` is autovacuum's work (VACUUM and ANALYZE: the index-only
    scans of W4/W5 need the visibility map) and ``flush()`` a CHECKPOINT and a page-cache
    warm-up with ``pg_prewarm``, for both stores."""
    import psycopg

    from benchmarks.stores import Locations

    if not _reachable(PG_URL):
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but {PG_URL} is unreachable")
        pytest.skip("PostgreSQL is not reachable")
    locations = Locations(PG_URL, str(tmp_path))
    try:
        location = locations.new("postgresql", impl)
        spec = StoreSpec(impl, "postgresql", location, write_index_yaml(str(tmp_path)))
        store = open_store(spec)
        libpq = location.replace("postgresql+psycopg://", "postgresql://", 1)
        data = DataSet(photos=200, per_user=20, seed=7)
        stats = (
            "SELECT relname, vacuum_count, analyze_count FROM pg_stat_user_tables "
            "WHERE schemaname = current_schema() "
            "AND relname IN ('dl_entities', 'dl_index_entries', 'dl_groups') ORDER BY relname"
        )
        try:
            store.put_users(list(data.user_names()))
            store.put_prepared(store.prepare_photos(list(data.photo_records())))
            store.maintain()
            with psycopg.connect(libpq, autocommit=True) as conn:
                counts = conn.execute(stats).fetchall()
                # every page of the fresh rows is now all-visible (an index-only scan
                # needs no heap fetch); before the vacuum none was
                visible = conn.execute(
                    "SELECT relallvisible, relpages FROM pg_class "
                    "WHERE oid = 'dl_index_entries'::regclass"
                ).fetchone()
                before = conn.execute("SELECT checkpoints_req FROM pg_stat_bgwriter").fetchone()
            assert [name for name, _, _ in counts] == [
                "dl_entities",
                "dl_groups",
                "dl_index_entries",
            ]
            assert all(v >= 1 and a >= 1 for _, v, a in counts), counts
            assert visible is not None and visible[1] > 0 and visible[0] == visible[1]
            store.flush()
            with psycopg.connect(libpq, autocommit=True) as conn:
                after = conn.execute("SELECT checkpoints_req FROM pg_stat_bgwriter").fetchone()
                # ... and read the store into the page cache (the machine pages out idle data)
                prewarm = conn.execute(
                    "SELECT count(*) FROM pg_extension WHERE extname = 'pg_prewarm'"
                ).fetchone()
            assert prewarm == (1,)
            assert before is not None and after is not None and after[0] > before[0]
            assert store.get(store.ref(data.photo_path(123))) is not None
        finally:
            store.close()
    finally:
        locations.cleanup()


def test_w10_latency_is_the_median_round() -> None:
    """A slow round (the machine busy elsewhere) moves the W10 cell no more than any
    other round; every round's figure is kept."""
    from benchmarks.scaling import _latency
    from benchmarks.workloads import Context

    config = Config.tiny()
    ctx = Context(config, DataSet(photos=100, per_user=20, seed=1), "lite", "sqlite-memory")
    calls = [0]

    def op(item: int) -> None:
        calls[0] += 1
        # round 3 of 5 (items 45..64, after 5 untimed warm-ups) is 50x slower
        time.sleep(0.01 if 45 <= item < 65 else 0.0002)

    items = list(range(105))
    m = _latency(ctx, items, op, lambda fraction: None, rounds=5)
    assert calls[0] == 105
    assert m.ops == 100
    rounds = m.extra["rounds_ms"]
    assert len(rounds) == 5
    assert max(rounds) == rounds[2] and rounds[2] > 5.0
    assert m.value is not None and m.value < 2.0  # the median, not the mean (~2.2 ms)
    assert sorted(rounds)[2] == pytest.approx(m.value, abs=1e-3)


def test_command_line() -> None:
    config = parse_args(
        [
            "--quick",
            "--backends",
            "sqlite,postgresql",
            "--workloads",
            "w4,W1",
            "--sizes",
            "10k,1M",
            "--no-emulator",
        ]
    )
    assert config.mode == "quick"
    assert config.backends == ("sqlite", "postgresql")
    assert config.workloads == ("W1", "W4")
    assert config.w10_sizes == (10_000, 1_000_000)
    assert config.emulator is False
    with pytest.raises(SystemExit):
        parse_args(["--backends", "oracle"])


def test_w11_charges_the_hrd_puts_with_applying_their_deferred_writes(tmp_path: Path) -> None:
    """The deferred writes the puts leave behind are applied on the puts' clock, so the
    queries start with nothing pending (the applier no longer decides which loop pays)."""
    from benchmarks.workloads import Context, _w11_phase

    config = Config.tiny()
    ctx = Context(config, DataSet(photos=100, per_user=20, seed=1), "lite", "sqlite-memory")
    spec = StoreSpec("lite", "sqlite-memory", "sqlite://", write_index_yaml(str(tmp_path)), "hrd")
    store = open_store(spec)
    seen: dict[str, int] = {}

    class Spy:
        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

        def settle(self) -> None:
            seen.setdefault("settles", 0)
            seen["settles"] += 1
            seen["pending_before_last_settle"] = len(store.client.consistency.pending())
            time.sleep(0.2 if seen["settles"] == 2 else 0.0)  # the settle after the puts
            store.settle()

        def tag_query(self, tag: str, limit: int = 20) -> int:
            seen.setdefault("pending_at_first_query", len(store.client.consistency.pending()))
            return store.tag_query(tag, limit)

    store.client.consistency.freeze()  # nothing applied behind the test's back
    try:
        put_cost, _query_cost, ops = _w11_phase(Spy(), ctx, "hrd")  # type: ignore[arg-type]
    finally:
        store.close()
    assert seen["settles"] == 2  # after the load (untimed) and after the puts (timed)
    assert seen["pending_before_last_settle"] > 0  # the puts were deferred ...
    assert seen["pending_at_first_query"] == 0  # ... and applied before the queries
    assert put_cost * ops >= 0.2  # the timed settle is in the puts' time
