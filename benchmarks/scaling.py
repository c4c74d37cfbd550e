"""W10: W4/W5 latency as the data set grows (10k, 100k, 1M photos), and the loader's memory.

Each store is loaded in steps (streamed in put_multi calls of 500, never the whole data
set in memory) and, after each step, W4 and W5 are timed per query (the median of
``w10_rounds`` rounds). By default this runs in a child process per store, so the peak
RSS it reports (``ru_maxrss`` after the last load) is the loader's own and not the
parent's, which holds other data sets.
"""

from __future__ import annotations

import random
import resource
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from .config import Config
from .data import VOCABULARY, DataSet
from .stores import StoreSpec, open_store
from .workloads import (
    Context,
    Measurement,
    _timed,
    describe_error,
    load_dataset,
    mp_context,
    size_label,
)

__all__ = ["ChildError", "run_w10", "run_w10_isolated"]

Report = Callable[[float, str], None]


def _rss_mb() -> float:
    """Peak resident memory of this process, in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status``. Not ``ru_maxrss``, which Linux carries
    across fork and exec, so a fresh child would report its parent's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # kilobytes on Linux, bytes on macOS
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _latency(
    ctx: Context,
    items: list[Any],
    op: Callable[[Any], Any],
    tick: Callable[[float], None],
    rounds: int,
) -> Measurement:
    """Milliseconds per query: the median of ``rounds`` equal rounds over ``items``.

    The median rather than the total: a round that shares the machine with something else
    (the OS writing back a load, a checkpoint, another tenant) moves the total of one
    cell by up to 2x between identical runs; the per-round figures are kept in ``extra``.
    """
    warmup = min(20, max(1, len(items) // 20))
    for item in items[:warmup]:
        op(item)
    todo = items[warmup:]
    rounds = max(1, min(rounds, len(todo)))
    size = len(todo) // rounds
    per_round: list[float] = []
    ops, seconds = 0, 0.0
    for number in range(rounds):
        chunk = todo[number * size : (number + 1) * size]

        def round_tick(fraction: float, number: int = number) -> None:
            tick((number + fraction) / rounds)

        ctx.tick = round_tick
        m = _timed(ctx, chunk, op, budget=ctx.budget / rounds)
        if not m.ops:
            continue
        per_round.append(m.seconds / m.ops * 1000.0)
        ops += m.ops
        seconds += m.seconds
    if not per_round:
        return Measurement(None, 0, 0.0)
    return Measurement(
        statistics.median(per_round),
        ops,
        seconds,
        extra={"rounds_ms": [round(v, 4) for v in per_round]},
    )


def run_w10(spec: StoreSpec, config: Config, report: Report) -> dict[str, Measurement]:
    """Load ``spec``'s store to each size in turn; latency of W4 and W5 at each size."""
    sizes = sorted(config.w10_sizes)
    out: dict[str, Measurement] = {}
    store = open_store(spec)
    try:
        base_rss = _rss_mb()
        loaded = 0
        steps = len(sizes) * 3
        for number, size in enumerate(sizes):
            label = size_label(size)
            data = DataSet(size, config.per_user, config.seed + 10)

            def tick(fraction: float, step: int = number * 3, what: str = f"load {label}") -> None:
                report((step + fraction) / steps, what)

            load = load_dataset(store, data, tick, start=loaded)
            loaded = size
            if size == sizes[-1]:
                out["W10.rss"] = Measurement(
                    _rss_mb(), size, load.seconds, extra={"rss_before_load_mb": round(base_rss, 1)}
                )
            ctx = Context(config, data, spec.impl, spec.backend)
            rng = random.Random(config.seed + size)
            users = [
                store.ref(("User", data.user_name(rng.randrange(data.users))))
                for _ in range(config.w10_queries)
            ]
            tags = [rng.choice(VOCABULARY) for _ in range(config.w10_queries)]
            for offset, (query, items, op) in enumerate(
                (("W4", users, store.ancestor_query), ("W5", tags, store.tag_query)), start=1
            ):
                metric = f"W10.{query}@{label}"

                def qtick(
                    fraction: float,
                    step: int = number * 3 + offset,
                    what: str = f"{query} @ {label}",
                ) -> None:
                    report((step + fraction) / steps, what)

                try:
                    out[metric] = _latency(ctx, items, op, qtick, config.w10_rounds)
                except Exception as exc:
                    out[metric] = Measurement(note=describe_error(exc))
            out[f"W10.load@{label}"] = load
    finally:
        store.close()
    return out


class ChildError(Exception):
    """The W10 child failed; ``note`` is the cell text (``error: …`` or ``n/a (…)``)."""

    def __init__(self, note: str, detail: str = "") -> None:
        super().__init__(note)
        self.note = note
        self.detail = detail


def _child(spec: StoreSpec, config: Config, conn: Any) -> None:
    try:
        last = [0.0]

        def report(fraction: float, what: str) -> None:
            now = time.monotonic()
            if now - last[0] > 0.2:
                last[0] = now
                conn.send(("tick", fraction, what))

        result = run_w10(spec, config, report)
        conn.send(("result", result, ""))
    except BaseException as exc:
        conn.send(("error", describe_error(exc), traceback.format_exc()))
    finally:
        conn.close()


def run_w10_isolated(spec: StoreSpec, config: Config, report: Report) -> dict[str, Measurement]:
    """:func:`run_w10` in a fresh child process (nothing of this process inherited)."""
    mp = mp_context(config.mp_start)
    parent, child = mp.Pipe(duplex=False)
    process = mp.Process(target=_child, args=(spec, config, child), daemon=True)
    process.start()
    child.close()
    try:
        while True:
            if parent.poll(0.2):
                try:
                    kind, payload, detail = parent.recv()
                except EOFError:
                    raise ChildError(f"error: W10 child exited ({process.exitcode})") from None
                if kind == "tick":
                    report(payload, detail)
                elif kind == "result":
                    return dict(payload)
                else:
                    raise ChildError(payload, detail)
            elif not process.is_alive():
                raise ChildError(f"error: W10 child exited with code {process.exitcode}")
    finally:
        process.join(10)
        if process.is_alive():
            process.terminate()
