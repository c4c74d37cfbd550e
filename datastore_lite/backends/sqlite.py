"""SQLite: the embedded default. WAL, a busy timeout and ``BEGIN IMMEDIATE`` for writes."""

from __future__ import annotations

from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.pool import StaticPool

from .sql import SQLBackend

__all__ = ["SQLiteBackend"]

# BENCHMARKS.md: 8 KiB pages and a large page cache cut query time by ~40%.
_PAGE_SIZE = 8192
_CACHE_KIB = 65536


class SQLiteBackend(SQLBackend):
    """A SQLite file (or ``sqlite://`` in memory) shared safely by threads and processes."""

    name: ClassVar[str] = "sqlite"
    # Take the write lock at BEGIN: a deferred transaction that upgrades to a writer fails
    # at once with SQLITE_BUSY under WAL instead of waiting for the busy timeout.
    write_begin: ClassVar[str] = "BEGIN IMMEDIATE"
    # Processes opening a new file at once (gunicorn workers) must not race to create
    # the tables: take the write lock before the existence checks.
    ddl_lock_sql: ClassVar[str | None] = "BEGIN IMMEDIATE"
    # SQLite's own, cheap form: analyzes only what the planner would benefit from
    analyze_sql: ClassVar[tuple[str, ...]] = ("PRAGMA optimize",)
    insert_factory = staticmethod(sqlite_dialect.insert)
    # CPython's sqlite3 binds a bytearray at once, but first offers a bytes parameter to
    # the adapter registry, whose failed ``__adapt__`` lookup raises and clears an
    # AttributeError (Python 3.11: ~0.7 us a value, more than the copy costs). Bulk
    # writes bind ~26 byte strings per entity (BENCHMARKS.md W1), a get one (W3).
    bind_blob = bytearray

    def __init__(self, url: str, busy_timeout: float = 30.0) -> None:
        self.busy_timeout = busy_timeout
        parsed = sa.engine.make_url(url)
        self.in_memory = parsed.database in (None, "", ":memory:")
        kwargs: dict[str, Any] = {"paramstyle": "named"}
        if self.in_memory:
            # One connection for every thread: each sqlite3 ":memory:" connection would
            # otherwise be a separate, empty database.
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            self.shared_connection = True  # type: ignore[misc]
        else:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout}
            kwargs.update(pool_size=5, max_overflow=-1)
        # Configure every connection, including the one SQLAlchemy opens for the DDL.
        super().__init__(url, **kwargs)

    def _ensure_schema(self) -> None:
        sa.event.listen(self.engine, "connect", self._on_connect)
        super()._ensure_schema()

    def _on_connect(self, dbapi_conn: Any, _record: Any) -> None:
        # autocommit at the driver level: datastore_lite issues BEGIN/COMMIT itself
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        cur.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
        if not self.in_memory:
            cur.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL: a commit survives a process crash (SIGKILL); only an OS crash or
        # power loss may lose the last commits, never corrupt the file.
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        cur.execute("PRAGMA temp_store = MEMORY")
        cur.close()

    def _configure_connection(self, dbapi_conn: Any) -> None:
        dbapi_conn.isolation_level = None
