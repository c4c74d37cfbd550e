"""Sizes of a run: the full contract (BENCHMARKS.md), ``--quick`` and the smoke test's."""

from __future__ import annotations

import multiprocessing
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["ALL_WORKLOADS", "Config"]

ALL_WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10", "W11")


@dataclass(frozen=True)
class Config:
    """Everything a run needs to know; the defaults are the full BENCHMARKS.md sizes."""

    mode: str = "full"
    photos: int = 100_000  # W1 (and the data set of W2-W9)
    # The emulator loads at ~170 entities/s: it gets the first photos of the same data set
    # (its per-operation cost does not depend on the data size; README.md).
    emulator_photos: int = 20_000
    per_user: int = 100  # P photos per user
    w2_puts: int = 2_000
    gets: int = 20_000  # W3 single gets
    multi_gets: int = 200  # W3 get_multi calls of 100 keys
    queries: int = 5_000  # W4 and W5 each
    w6_passes: int = 1
    txns: int = 2_000  # W7
    w8_threads: int = 8
    w8_processes: int = 4
    w8_increments: int = 100  # per thread / process
    emulator_w8_increments: int = 100
    counts: int = 200  # W9 count() queries
    w10_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    w10_queries: int = 2_500  # per query type and size
    w10_rounds: int = 5  # W10 reports the median round's ms/query
    w11_photos: int = 10_000
    w11_ops: int = 2_000
    budget: float = 120.0  # seconds per measured loop (lite, raw)
    emulator_budget: float = 60.0  # seconds per measured loop on the emulator
    seed: int = 20261122
    consistency: str = "strong"  # lite's consistency in W1-W10 (W11 compares both)
    backends: tuple[str, ...] = ("sqlite-memory", "sqlite", "postgresql")
    workloads: tuple[str, ...] = ALL_WORKLOADS
    emulator: bool = True
    isolate: bool = True  # W10 in a child process per store (clean peak RSS)
    # W8's processes and W10's children: nothing inherited from this process
    mp_start: str = (
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    )
    chart: bool = True
    pg_admin_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    tmp_dir: str | None = None
    output_dir: str = field(default="benchmarks/results")

    @classmethod
    def full(cls, **overrides: Any) -> Config:
        return replace(cls(), **overrides)

    @classmethod
    def quick(cls, **overrides: Any) -> Config:
        """Finishes in under two minutes on a 2-core machine (ratios only indicative)."""
        quick = cls(
            mode="quick",
            photos=2_000,
            emulator_photos=600,
            per_user=20,
            w2_puts=100,
            gets=3_000,
            multi_gets=30,
            queries=600,
            w6_passes=3,
            txns=300,
            w8_increments=6,
            emulator_w8_increments=3,
            counts=40,
            w10_sizes=(500, 2_000),
            w10_queries=200,
            w11_photos=200,
            w11_ops=60,
            budget=1.0,
            emulator_budget=1.0,
        )
        return replace(quick, **overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> Config:
        """The smoke test's: every code path, a handful of operations each."""
        tiny = cls(
            mode="tiny",
            photos=200,
            emulator_photos=200,
            per_user=20,
            w2_puts=20,
            gets=40,
            multi_gets=3,
            queries=20,
            w6_passes=1,
            txns=20,
            w8_threads=3,
            w8_processes=2,
            w8_increments=3,
            emulator_w8_increments=3,
            counts=3,
            w10_sizes=(100, 200),
            w10_queries=10,
            w11_photos=100,
            w11_ops=10,
            budget=5.0,
            emulator_budget=5.0,
            emulator=False,
            isolate=False,
            mp_start="forkserver"
            if "forkserver" in multiprocessing.get_all_start_methods()
            else "spawn",
            chart=False,
        )
        return replace(tiny, **overrides)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("pg_admin_url")
        return data
