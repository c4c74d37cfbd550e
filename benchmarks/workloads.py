"""Workloads W1-W11 of BENCHMARKS.md, written once against :class:`~benchmarks.stores.Store`.

Each workload is a list of steps; a step measures one metric on one store and returns a
:class:`Measurement`. Only the operation under test is timed: building entities (the
application's work) and picking random keys happen before the clock starts, while the raw
baseline's key and row encoding (the library's work) is inside it. A measured loop stops
early when its time budget runs out, so the slow emulator can share a run with the rest;
rates are ops/s over the ops actually done.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .config import Config
from .data import VOCABULARY, DataSet, batched, counter_name
from .stores import Store, StoreSpec, open_store

__all__ = [
    "METRICS",
    "STEPS",
    "WORKLOAD_TITLES",
    "Context",
    "Measurement",
    "Metric",
    "describe_error",
    "load_dataset",
    "mp_context",
    "w10_metrics",
]

T = TypeVar("T")

WORKLOAD_TITLES = {
    "W1": "bulk load, put_multi of 500",
    "W2": "single put, own entity group",
    "W3": "get by key",
    "W4": "ancestor query, date desc, limit 20",
    "W5": "tags = T, date desc, limit 20",
    "W6": "page through all photos, 100 per page",
    "W7": "read-modify-write transaction, own group",
    "W8": "contention on one counter",
    "W9": "count() over ~10% of photos",
    "W10": "scaling: W4/W5 latency by data size",
    "W11": "cost of consistency: default hrd vs strong",
}


@dataclass(frozen=True)
class Metric:
    """One reported number and its targets (BENCHMARKS.md, "Targets").

    ``raw_target`` and ``emulator_target`` bound the *speed* ratio lite ÷ baseline
    (for latencies: baseline latency ÷ lite latency); the emulator bar applies to the
    like-for-like row (sqlite-memory). ``limit`` bounds lite's own value (``value <= limit``).
    """

    id: str
    workload: str
    title: str
    unit: str
    higher_is_better: bool = True
    raw_target: float | None = 0.5
    emulator_target: float | None = None
    limit: float | None = None
    impls: tuple[str, ...] = ("lite", "raw", "emulator")


@dataclass
class Measurement:
    """What one step measured on one store (``value`` None: not measured, see ``note``)."""

    value: float | None = None
    ops: int = 0
    seconds: float = 0.0
    note: str = ""
    ok: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What a step may use besides its store."""

    config: Config
    dataset: DataSet
    impl: str
    backend: str
    spec: StoreSpec | None = None
    tick: Callable[[float], None] = lambda fraction: None
    new_store: Callable[[str], Store] | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def budget(self) -> float:
        c = self.config
        return c.emulator_budget if self.impl == "emulator" else c.budget


def _timed(
    ctx: Context,
    items: Sequence[T],
    op: Callable[[T], Any],
    warmup: int = 0,
    unit_ops: int = 1,
    budget: float | None = None,
) -> Measurement:
    """Run ``op`` over ``items`` (the first ``warmup`` untimed) within the time budget."""
    for item in items[:warmup]:
        op(item)
    todo = items[warmup:]
    total = len(todo)
    deadline = time.perf_counter() + (ctx.budget if budget is None else budget)
    done = 0
    start = time.perf_counter()
    for item in todo:
        op(item)
        done += 1
        if done & 7 == 0:
            ctx.tick(done / total)
            if time.perf_counter() > deadline:
                break
    seconds = time.perf_counter() - start
    return Measurement(done * unit_ops / seconds if seconds else None, done * unit_ops, seconds)


def describe_error(exc: BaseException) -> str:
    """The cell text of a failed step: ``n/a (feature missing: …)`` when datastore_lite
    does not implement something yet (the run goes on), else ``error: …``."""
    text = f"{type(exc).__name__}: {exc}"
    if type(exc).__name__ == "MethodNotImplemented":  # google.api_core: HTTP 501
        return f"n/a (the emulator does not implement it: {exc})"
    if isinstance(exc, NotImplementedError):
        return f"n/a (feature missing: {text})"
    if isinstance(exc, ImportError) and (exc.name or "").startswith("datastore_lite"):
        return f"n/a (feature missing: {text})"
    if isinstance(exc, AttributeError):
        frames = traceback.extract_tb(exc.__traceback__)
        owner = type(getattr(exc, "obj", None)).__module__
        if owner.startswith("datastore_lite") or (
            frames and "datastore_lite" in frames[-1].filename
        ):
            return f"n/a (feature missing: {text})"
    return f"error: {text}"


_PRELOAD = [
    "benchmarks.scaling",
    "benchmarks.raw_sqlite",
    "benchmarks.raw_postgres",
    "datastore_lite",
]


def mp_context(method: str) -> Any:
    """A multiprocessing context; a forkserver preloads the libraries once, so each child
    starts in milliseconds from a clean process (no threads, connections or gRPC state of
    this one)."""
    mp = multiprocessing.get_context(method)
    if method == "forkserver":
        mp.set_forkserver_preload(_PRELOAD)
    return mp


def _warmup(n: int, ctx: Context | None = None) -> int:
    """Untimed operations first (statement caches, prepared plans, JIT-less warm caches)."""
    cap = 3 if ctx is not None and ctx.impl == "emulator" else 20
    return min(cap, max(1, n // 20))


# -- W1: the data set (also the set-up of W2-W9) ---------------------------------------------


def load_dataset(
    store: Store, dataset: DataSet, tick: Callable[[float], None], start: int = 0
) -> Measurement:
    """Put the users (untimed) and then photos ``start..`` in put_multi calls of 500 (timed)."""
    per_user = dataset.per_user
    first_user = -(-start // per_user)
    for names in batched(dataset.user_names(first_user), 500):
        store.put_users(names)
    seconds = 0.0
    done = 0
    total = dataset.photos - start
    # untimed statistics refresh at each 25% of growth (stores.analyze explains why)
    next_maintenance = max(1000, int(start * 1.25))
    for records in batched(dataset.photo_records(start), 500):
        prepared = store.prepare_photos(records)
        t0 = time.perf_counter()
        store.put_prepared(prepared)
        seconds += time.perf_counter() - t0
        done += len(records)
        if start + done >= next_maintenance:
            store.maintain()
            next_maintenance = int((start + done) * 1.25)
        tick(done / total)
    store.maintain()
    # the next step is timed: nothing of the load may still be on its way to disk, and
    # the store is read into the page cache (stores.py: the machine pages out idle data)
    store.flush()
    return Measurement(done / seconds if seconds else None, done, seconds)


def w1(store: Store, ctx: Context) -> Measurement:
    m = load_dataset(store, ctx.dataset, ctx.tick)
    m.note = f"{ctx.dataset.photos:,} photos of {ctx.dataset.users:,} users"
    return m


def w2(store: Store, ctx: Context) -> Measurement:
    """Every put is done, budget or not: lite and raw must hold the same data for W9."""
    n = ctx.config.w2_puts
    records = [ctx.dataset.extra_photo("w2-", i) for i in range(n)]
    prepared = [store.prepare_photos([r]) for r in records]
    return _timed(ctx, prepared, store.put_prepared, _warmup(n, ctx), budget=float("inf"))


def w3_get(store: Store, ctx: Context) -> Measurement:
    rng = random.Random(ctx.dataset.seed + 3)
    photos = ctx.dataset.photos
    refs = [
        store.ref(ctx.dataset.photo_path(rng.randrange(photos))) for _ in range(ctx.config.gets)
    ]
    missing = 0

    def get(ref: Any) -> None:
        nonlocal missing
        if store.get(ref) is None:
            missing += 1

    m = _timed(ctx, refs, get, warmup=_warmup(len(refs), ctx))
    if missing:
        m.note = f"{missing} keys not found"
        m.ok = False
    return m


def w3_multi(store: Store, ctx: Context) -> Measurement:
    rng = random.Random(ctx.dataset.seed + 33)
    photos = ctx.dataset.photos
    batches = [
        [store.ref(ctx.dataset.photo_path(i)) for i in rng.sample(range(photos), 100)]
        for _ in range(ctx.config.multi_gets)
    ]
    found = 0

    def get_multi(refs: list[Any]) -> None:
        nonlocal found
        found += store.get_multi(refs)

    m = _timed(ctx, batches, get_multi, warmup=1, unit_ops=100)
    m.extra["calls"] = m.ops // 100
    return m


def w4(store: Store, ctx: Context) -> Measurement:
    rng = random.Random(ctx.dataset.seed + 4)
    users = ctx.dataset.users
    refs = [
        store.ref(("User", ctx.dataset.user_name(rng.randrange(users))))
        for _ in range(ctx.config.queries)
    ]
    results: list[int] = []
    m = _timed(
        ctx, refs, lambda ref: results.append(store.ancestor_query(ref)), _warmup(len(refs), ctx)
    )
    expected = min(20, ctx.dataset.per_user)
    short = sum(1 for r in results if r != expected)
    if short:
        m.note = f"{short} queries returned != {expected} photos"
        m.ok = False
    return m


def w5(store: Store, ctx: Context) -> Measurement:
    rng = random.Random(ctx.dataset.seed + 5)
    tags = [rng.choice(VOCABULARY) for _ in range(ctx.config.queries)]
    results: list[int] = []
    m = _timed(ctx, tags, lambda tag: results.append(store.tag_query(tag)), _warmup(len(tags), ctx))
    if results:
        m.extra["mean_results"] = round(sum(results) / len(results), 2)
    return m


def w6(store: Store, ctx: Context) -> Measurement:
    """Pages of 100 in key order with cursors, from the start, ``w6_passes`` times."""
    deadline = time.perf_counter() + ctx.budget
    expected_pages = ctx.dataset.photos / 100 + 1
    entities = pages = 0
    per_pass: list[int] = []
    start = time.perf_counter()
    for _ in range(ctx.config.w6_passes):
        cursor: Any = None
        seen = 0
        while True:
            n, cursor = store.page(cursor, 100)
            seen += n
            pages += 1
            if pages & 7 == 0:
                ctx.tick(min(1.0, pages / (expected_pages * ctx.config.w6_passes)))
            if cursor is None or n == 0:
                break
            if time.perf_counter() > deadline:
                break
        entities += seen
        per_pass.append(seen)
        if time.perf_counter() > deadline:
            break
    seconds = time.perf_counter() - start
    m = Measurement(entities / seconds, entities, seconds)
    m.extra.update(pages=pages, per_pass=per_pass)
    return m


def w7(store: Store, ctx: Context) -> Measurement:
    n = ctx.config.txns
    warm = _warmup(n, ctx)
    names = [counter_name(i) for i in range(n + warm)]
    for chunk in batched(names, 500):
        store.put_counters(chunk)
    refs = [store.ref(("Counter", name)) for name in names]
    m = _timed(ctx, refs, store.increment, warmup=warm)
    done = m.ops + warm
    check = [store.read_counter(refs[i]) for i in (0, done - 1)]
    if check != [1, 1]:
        m.note = f"counters read back {check}, expected [1, 1]"
        m.ok = False
    return m


# -- W8: contention ----------------------------------------------------------------------------

_CONTENDED = ("Counter", "contended")


def _ensure_counter(store: Store, ref: Any) -> int:
    value = store.read_counter(ref)
    if value == 0:
        store.put_counters([_CONTENDED[1]], 0)
    return value


def w8_threads(store: Store, ctx: Context) -> Measurement:
    c = ctx.config
    threads, each = c.w8_threads, c.w8_increments
    if ctx.impl == "emulator":
        each = min(each, c.emulator_w8_increments)
    ref = store.ref(_CONTENDED)
    before = _ensure_counter(store, ref)
    barrier = threading.Barrier(threads + 1)
    retries: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    done = [0]

    def worker() -> None:
        mine = store.clone()
        try:
            barrier.wait()
            for _ in range(each):
                r = mine.increment_retrying(ref)
                with lock:
                    retries.append(r)
                    done[0] += 1
        except Exception as exc:  # reported, and the count check fails
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if mine is not store:
                mine.close()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    while any(t.is_alive() for t in pool):
        for t in pool:
            t.join(0.1)
        ctx.tick(done[0] / (threads * each))
    seconds = time.perf_counter() - start
    return _w8_result(store, ref, before, threads * each, seconds, sum(retries), errors)


def _w8_result(
    store: Store,
    ref: Any,
    before: int,
    expected: int,
    seconds: float,
    retries: int,
    errors: list[str],
) -> Measurement:
    after = store.read_counter(ref)
    delta = after - before
    m = Measurement(expected / seconds if seconds else None, expected, seconds)
    m.ok = delta == expected and not errors
    m.extra.update(final=delta, expected=expected, retries=retries)
    m.note = f"final {delta}/{expected}, {retries} retries"
    if errors:
        m.note += f"; {len(errors)} workers failed: {errors[0]}"
    return m


def _w8_process(
    spec: StoreSpec, counter: tuple[str, str], each: int, barrier: Any, results: Any
) -> None:
    """One W8 process: open the store again, wait for the others, increment ``each`` times."""
    try:
        store = open_store(spec)
        ref = store.ref(counter)
        barrier.wait()
        start = time.time()
        retries = sum(store.increment_retrying(ref) for _ in range(each))
        results.put(("ok", start, time.time(), retries))
        store.close()
    except BaseException as exc:
        results.put(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc(), 0))


def w8_processes(store: Store, ctx: Context) -> Measurement:
    c = ctx.config
    if ctx.backend == "sqlite-memory":
        return Measurement(note="n/a (an in-memory SQLite database lives in one process)")
    if ctx.spec is None:
        return Measurement(note="n/a (store cannot be reopened in another process)")
    procs, each = c.w8_processes, c.w8_increments
    if ctx.impl == "emulator":
        each = min(each, c.emulator_w8_increments)
    ref = store.ref(_CONTENDED)
    before = _ensure_counter(store, ref)
    mp = mp_context(c.mp_start)
    barrier = mp.Barrier(procs)
    results = mp.Queue()
    spec = ctx.spec.reopen()
    workers = [
        mp.Process(target=_w8_process, args=(spec, _CONTENDED, each, barrier, results), daemon=True)
        for _ in range(procs)
    ]
    for p in workers:
        p.start()
    outcomes: list[tuple[str, Any, Any, int]] = []
    deadline = time.monotonic() + max(120.0, ctx.budget * 10)
    while len(outcomes) < procs and time.monotonic() < deadline:
        try:
            outcomes.append(results.get(timeout=0.2))
        except Exception:
            if not any(p.is_alive() for p in workers) and results.empty():
                break
        ctx.tick(len(outcomes) / procs)
    for p in workers:
        p.join(5)
        if p.is_alive():
            p.terminate()
    errors = [o[1] for o in outcomes if o[0] != "ok"]
    if len(outcomes) < procs:
        errors.append(f"{procs - len(outcomes)} processes did not report")
    good = [o for o in outcomes if o[0] == "ok"]
    seconds = (max(o[2] for o in good) - min(o[1] for o in good)) if good else 0.0
    retries = sum(o[3] for o in good)
    return _w8_result(store, ref, before, procs * each, seconds, retries, errors)


def w9(store: Store, ctx: Context) -> Measurement:
    counts: list[int] = []
    items = list(range(ctx.config.counts))
    m = _timed(ctx, items, lambda _: counts.append(store.count_likes_below(100)), warmup=1)
    if counts:
        m.extra["count"] = counts[-1]
        m.note = f"count = {counts[-1]:,}"
    return m


# -- W11: cost of consistency ----------------------------------------------------------------


def _w11_phase(store: Store, ctx: Context, policy: str) -> tuple[float, float, int]:
    """Seconds per put and per tag query on a fresh store under ``policy``."""
    c = ctx.config
    data = DataSet(c.w11_photos, ctx.dataset.per_user, ctx.dataset.seed + 11)
    load_dataset(store, data, lambda f: None)
    # The load's own pending writes are applied untimed: otherwise the background applier
    # would spend the measured put loop on the load's backlog, which "strong" paid for
    # during the (untimed) load. The measured phase still pays for the writes it makes.
    store.settle()
    # ... and, as the load's end was, vacuumed and flushed (PostgreSQL) or checkpointed
    # (SQLite): "strong" applied everything before load_dataset's maintenance, "hrd" only
    # now, and measuring hrd on unvacuumed tables and a full write-ahead log charged it
    # 1.6-1.9x for the harness's order of steps (a full run at 4e029ea).
    store.maintain()
    store.flush()
    records = [data.extra_photo(f"w11{policy}-", i) for i in range(c.w11_ops)]
    puts = _timed(ctx, [store.prepare_photos([r]) for r in records], store.put_prepared, 5)
    # A put under "hrd" leaves work behind: its deferred write, applied later by the
    # background applier or by the next global queries. That work is the put's, so it is
    # timed with the puts: whatever the applier has not done by the end of the loop is done
    # now, on the clock (for "strong" this finds nothing). Left to the queries, it landed
    # in whichever loop the applier happened to be running during: W11.W5 1.0-1.6 and
    # W11.W2 0.6-1.9 between runs of the same code.
    t0 = time.perf_counter()
    store.settle()
    put_seconds = puts.seconds + (time.perf_counter() - t0)
    rng = random.Random(data.seed)
    tags = [rng.choice(VOCABULARY) for _ in range(c.w11_ops)]
    queries = _timed(ctx, tags, store.tag_query)
    return put_seconds / max(1, puts.ops), queries.seconds / max(1, queries.ops), puts.ops


def _w11(store: Store, ctx: Context, which: int) -> Measurement:
    if ctx.new_store is None:
        return Measurement(note="n/a (needs fresh stores)")
    costs = ctx.cache.get("W11")
    if costs is None:  # one pair of stores serves both metrics
        costs = {}
        for policy in ("strong", "hrd"):
            fresh = ctx.new_store(policy)
            try:
                costs[policy] = _w11_phase(fresh, ctx, policy)
            finally:
                fresh.close()
        ctx.cache["W11"] = costs
    strong, default = costs["strong"][which], costs["hrd"][which]
    m = Measurement(default / strong, costs["hrd"][2], 0.0)
    m.extra.update(strong_us=round(strong * 1e6, 1), default_us=round(default * 1e6, 1))
    m.note = f"strong {strong * 1e6:,.0f} µs/op, default {default * 1e6:,.0f} µs/op"
    return m


def w11_put(store: Store, ctx: Context) -> Measurement:
    return _w11(store, ctx, 0)


def w11_query(store: Store, ctx: Context) -> Measurement:
    return _w11(store, ctx, 1)


# -- the catalogue ---------------------------------------------------------------------------

Step = Callable[[Store, Context], Measurement]

_LITE = ("lite",)
METRICS: dict[str, Metric] = {
    m.id: m
    for m in (
        Metric("W1", "W1", WORKLOAD_TITLES["W1"], "entities/s", emulator_target=3),
        Metric("W2", "W2", WORKLOAD_TITLES["W2"], "puts/s", emulator_target=3),
        Metric("W3.get", "W3", "get, random key", "gets/s", emulator_target=50),
        Metric("W3.multi", "W3", "get_multi of 100 keys", "keys/s", emulator_target=50),
        Metric("W4", "W4", WORKLOAD_TITLES["W4"], "queries/s", emulator_target=30),
        Metric("W5", "W5", WORKLOAD_TITLES["W5"], "queries/s", emulator_target=30),
        Metric("W6", "W6", WORKLOAD_TITLES["W6"], "entities/s", emulator_target=30),
        Metric("W7", "W7", WORKLOAD_TITLES["W7"], "txns/s", emulator_target=10),
        Metric("W8.threads", "W8", "8 threads, run_in_transaction", "txns/s", raw_target=None),
        Metric("W8.procs", "W8", "4 processes, run_in_transaction", "txns/s", raw_target=None),
        Metric("W9", "W9", WORKLOAD_TITLES["W9"], "queries/s"),
        Metric(
            "W11.W2", "W11", "W2 put: default ÷ strong time/op", "×", False, None, None, 1.5, _LITE
        ),
        Metric(
            "W11.W5",
            "W11",
            "W5 query: default ÷ strong time/op",
            "×",
            False,
            None,
            None,
            1.5,
            _LITE,
        ),
    )
}

STEPS: dict[str, list[tuple[str, Step]]] = {
    "W1": [("W1", w1)],
    "W2": [("W2", w2)],
    "W3": [("W3.get", w3_get), ("W3.multi", w3_multi)],
    "W4": [("W4", w4)],
    "W5": [("W5", w5)],
    "W6": [("W6", w6)],
    "W7": [("W7", w7)],
    "W8": [("W8.threads", w8_threads), ("W8.procs", w8_processes)],
    "W9": [("W9", w9)],
    "W11": [("W11.W2", w11_put), ("W11.W5", w11_query)],
}


def size_label(n: int) -> str:
    """10000 -> "10k", 1000000 -> "1M"."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def w10_metrics(sizes: Iterable[int]) -> list[Metric]:
    """W10's metrics for the run's sizes: latency per size, growth, and peak RSS."""
    sizes = list(sizes)
    out = []
    for query in ("W4", "W5"):
        for n in sizes:
            out.append(
                Metric(
                    f"W10.{query}@{size_label(n)}",
                    "W10",
                    f"{query} latency, {n:,} photos loaded",
                    "ms/query",
                    higher_is_better=False,
                    impls=("lite", "raw"),
                )
            )
        out.append(
            Metric(
                f"W10.{query}.growth",
                "W10",
                f"{query} latency at {size_label(sizes[-1])} ÷ at {size_label(sizes[0])}",
                "×",
                higher_is_better=False,
                raw_target=None,
                limit=1.5,
                impls=("lite", "raw"),
            )
        )
    out.append(
        Metric(
            "W10.rss",
            "W10",
            f"peak RSS loading {sizes[-1]:,} photos (streamed)",
            "MB",
            higher_is_better=False,
            raw_target=None,
            limit=300.0,
            impls=("lite", "raw"),
        )
    )
    return out
