"""The raw baseline on SQLite: stdlib ``sqlite3``, the library's pragmas and tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import sqlite as sqlite_dialect

from .raw_common import RawStore, _schema_ddl

__all__ = ["RawSQLiteStore", "SharedRawSQLiteStore"]

# The same settings as datastore_lite.backends.sqlite (BENCHMARKS.md: 8 KiB pages and a
# large page cache; WAL with synchronous=NORMAL).
_PRAGMAS = (
    "PRAGMA busy_timeout = 30000",
    "PRAGMA page_size = 8192",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA cache_size = -65536",
    "PRAGMA temp_store = MEMORY",
)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30.0, cached_statements=512
    )
    for pragma in _PRAGMAS:
        if path == ":memory:" and "journal_mode" in pragma:
            continue
        conn.execute(pragma)
    return conn


class RawSQLiteStore(RawStore):
    """Hand-written SQL on a SQLite file (``path``) or in memory (``":memory:"``)."""

    begin_sql = "BEGIN IMMEDIATE"

    def __init__(self, path: str, project: str = "bench", create: bool = True) -> None:
        self.path = path
        super().__init__(_connect(path), project)
        # the library's SQLite binding (backends/sqlite.py, bind_blob): CPython's sqlite3
        # binds a bytearray at once but offers bytes to its adapter registry first
        self.blob = bytearray
        if create:
            self._create_schema(_schema_ddl(sqlite_dialect.dialect()))

    @classmethod
    def open(cls, path: str, project: str = "bench", create: bool = True) -> RawSQLiteStore:
        if path == ":memory:":
            return SharedRawSQLiteStore(path, project, create)
        return cls(path, project, create)

    def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        self.conn.executemany(sql, rows)

    def maintain(self) -> None:
        """Checkpoint the write-ahead log, as the library's store is (stores.checkpoint)."""
        if self.path != ":memory:":
            from .stores import checkpoint

            checkpoint(self.path)

    def flush(self) -> None:
        """Checkpoint, ``sync``, page-cache warm-up, as for the library (stores.flush_sqlite)."""
        if self.path != ":memory:":
            from .stores import flush_sqlite

            flush_sqlite(self.path)

    def clone(self) -> RawStore:
        return RawSQLiteStore(self.path, self.project, create=False)


class SharedRawSQLiteStore(RawSQLiteStore):
    """In memory: one connection is the database, so every thread shares it (and a lock)."""

    shared = True

    def clone(self) -> RawStore:
        return self
