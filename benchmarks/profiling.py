"""Where the time of one operation goes: ``python -m benchmarks.profiling W3 sqlite``.

Builds a store with a small photo data set (untimed), times N operations of a workload
without a profiler (the honest µs/op), then profiles them: cProfile for µs per operation
per function and call counts (statements per operation show as ``execute`` calls), and,
with ``--tree``, pyinstrument's call tree (install it with ``pip install pyinstrument``).
Workloads: W2 (single put), W3 (get), W3m (get_multi of 100), W4, W5, W7
(read-modify-write transaction), W9 (count of ``likes < 100``).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import itertools
import pstats
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from .config import Config
from .data import VOCABULARY, DataSet, batched, counter_name, write_index_yaml
from .stores import Locations, Store, StoreSpec, open_store

__all__ = ["main", "operations"]

_batches = itertools.count(1)  # fresh keys for every call of operations()


def operations(store: Store, data: DataSet, workload: str, n: int) -> list[Callable[[], Any]]:
    """``n`` prepared calls of one workload on ``store`` (entities and keys built here)."""
    rng = random.Random(data.seed + 99)
    batch = next(_batches)
    if workload == "W2":  # new photos, each under a new user: its own entity group
        records = [data.extra_photo(f"prof{batch}-", i) for i in range(n)]
        prepared = [store.prepare_photos([r]) for r in records]
        return [functools.partial(store.put_prepared, p) for p in prepared]
    if workload == "W3":
        refs = [store.ref(data.photo_path(rng.randrange(data.photos))) for _ in range(n)]
        return [functools.partial(store.get, r) for r in refs]
    if workload == "W3m":  # get_multi of 100 keys
        batches = [
            [store.ref(data.photo_path(i)) for i in rng.sample(range(data.photos), 100)]
            for _ in range(n)
        ]
        return [functools.partial(store.get_multi, b) for b in batches]
    if workload == "W9":
        return [functools.partial(store.count_likes_below, 100) for _ in range(n)]
    if workload == "W4":
        users = [store.ref(("User", data.user_name(rng.randrange(data.users)))) for _ in range(n)]
        return [functools.partial(store.ancestor_query, u) for u in users]
    if workload == "W5":
        tags = [rng.choice(VOCABULARY) for _ in range(n)]
        return [functools.partial(store.tag_query, t) for t in tags]
    if workload == "W7":
        names = [counter_name(1_000_000 * batch + i) for i in range(n)]
        for chunk in batched(names, 500):
            store.put_counters(chunk)
        refs = [store.ref(("Counter", name)) for name in names]
        return [functools.partial(store.increment, r) for r in refs]
    raise ValueError(f"no profile recipe for {workload}")


def _run(ops: Sequence[Callable[[], Any]]) -> float:
    start = time.perf_counter()
    for op in ops:
        op()
    return time.perf_counter() - start


def _report(profile: cProfile.Profile, n: int, top: int) -> str:
    """Top functions by own time, in µs per operation, with calls per operation."""
    stats = pstats.Stats(profile)
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{filename.split('site-packages/')[-1].split('/work/main/')[-1]}:{line}({name})"
        rows.append((tottime, cumtime, ncalls, where))
    out = io.StringIO()
    out.write(f"{'own µs/op':>10} {'cum µs/op':>10} {'calls/op':>9}  function\n")
    for tottime, cumtime, ncalls, where in sorted(rows, reverse=True)[:top]:
        out.write(
            f"{tottime / n * 1e6:10.1f} {cumtime / n * 1e6:10.1f} {ncalls / n:9.2f}  {where}\n"
        )
    out.write("\nby cumulative time:\n")
    for tottime, cumtime, ncalls, where in sorted(rows, key=lambda r: -r[1])[:top]:
        out.write(
            f"{tottime / n * 1e6:10.1f} {cumtime / n * 1e6:10.1f} {ncalls / n:9.2f}  {where}\n"
        )
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling")
    parser.add_argument("workload", choices=["W2", "W3", "W3m", "W4", "W5", "W7", "W9"])
    parser.add_argument("backend", choices=["sqlite-memory", "sqlite", "postgresql"])
    parser.add_argument("--impl", default="lite", choices=["lite", "raw"])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--photos", type=int, default=5000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--tree", action="store_true", help="pyinstrument call tree too")
    parser.add_argument("--consistency", default="strong")
    parser.add_argument("--pg-url", default=Config.pg_admin_url)
    args = parser.parse_args(argv)

    locations = Locations(args.pg_url)
    try:
        data = DataSet(args.photos, 20)
        spec = StoreSpec(
            args.impl,
            args.backend,
            locations.new(args.backend, args.impl),
            write_index_yaml(locations.directory),
            args.consistency,
        )
        store: Store = open_store(spec)
        for names in batched(data.user_names(), 500):  # 500 mutations per commit (§7.1)
            store.put_users(names)
        for records in batched(data.photo_records(), 500):
            store.put_prepared(store.prepare_photos(records))
        store.maintain()
        _run(operations(store, data, args.workload, min(200, args.ops)))  # warm up
        plain = _run(operations(store, data, args.workload, args.ops)) / args.ops
        print(
            f"{args.workload} {args.backend} {args.impl}: {plain * 1e6:,.1f} µs/op "
            f"({1 / plain:,.0f} ops/s) without a profiler, {args.ops} ops"
        )
        ops = operations(store, data, args.workload, args.ops)
        profile = cProfile.Profile()
        profile.enable()
        _run(ops)
        profile.disable()
        print(_report(profile, args.ops, args.top))
        if args.tree:
            try:
                from pyinstrument import Profiler
            except ImportError:
                print("pyinstrument is not installed", file=sys.stderr)
            else:
                ops = operations(store, data, args.workload, args.ops)
                profiler = Profiler(interval=0.0002)
                profiler.start()
                _run(ops)
                profiler.stop()
                print(profiler.output_text(unicode=True, color=False, show_all=False))
        store.close()
    finally:
        locations.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
