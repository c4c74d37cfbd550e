"""The datastore_lite benchmark suite (BENCHMARKS.md): ``python -m benchmarks [--quick]``.

Runs workloads W1-W11 on datastore_lite (SQLite file, SQLite in memory, PostgreSQL) beside
two baselines in the same run: hand-written SQL on the same tables (``raw``) and Google's
Datastore emulator through the official client. See ``benchmarks/README.md``.
"""

from __future__ import annotations

from .config import Config
from .runner import RunResult, run

__all__ = ["Config", "RunResult", "run"]
