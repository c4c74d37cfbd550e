"""PostgreSQL through psycopg 3: row locks on entity groups, generic cached plans."""

from __future__ import annotations

from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect

from .sql import SQLBackend

__all__ = ["PostgreSQLBackend"]

# Any constant works; it only has to be the same in every process.
_DDL_LOCK = 0x64617461_6C697465  # "datalite"


class PostgreSQLBackend(SQLBackend):
    """A PostgreSQL database shared by any number of processes."""

    name: ClassVar[str] = "postgresql"
    write_begin: ClassVar[str] = "BEGIN"
    snapshot_begin: ClassVar[str] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    analyze_sql: ClassVar[tuple[str, ...]] = (
        "ANALYZE dl_entities",
        "ANALYZE dl_index_entries",
        "ANALYZE dl_groups",
    )
    locks_rows: ClassVar[bool] = True
    # Results in PostgreSQL's binary format: in text format every bytea (keys, index
    # values, ~2 KB entity bodies) travels hex-encoded, twice its size, and is encoded by
    # the server and decoded by the client. BENCHMARKS.md W4 at 100k photos (20 bodies per
    # query): 0.79-1.17 ms per query in text format, 0.50-0.54 ms in binary.
    cursor_options: ClassVar[dict[str, Any]] = {"binary": True}
    # CREATE TABLE IF NOT EXISTS races between processes; serialise first use.
    ddl_lock_sql: ClassVar[str | None] = f"SELECT pg_advisory_xact_lock({_DDL_LOCK})"
    insert_factory = staticmethod(pg_dialect.insert)

    def __init__(self, url: str) -> None:
        # a connection per thread that uses the client: never make a thread wait for one
        super().__init__(url, pool_pre_ping=True, pool_size=5, max_overflow=-1)

    def _after_create(self, conn: sa.Connection) -> None:
        # BENCHMARKS.md: keep ~2 KB bodies inline (no TOAST) - 1.8x faster queries.
        conn.exec_driver_sql("ALTER TABLE dl_entities ALTER COLUMN body SET STORAGE MAIN")

    def _configure_connection(self, dbapi_conn: Any) -> None:
        dbapi_conn.autocommit = True
        # BENCHMARKS.md: generic plans for the prepared statements psycopg makes of
        # repeated queries were 2.1x faster than re-planning each time.
        dbapi_conn.execute("SET plan_cache_mode = force_generic_plan")
        # A generic plan knows neither the LIMIT (a bound parameter) nor how wide the
        # scanned range is; from ~1M index entries up PostgreSQL then chose a parallel
        # Gather Merge for a 20-row page, and starting its worker cost ~6-8 ms per query
        # (EXPLAIN ANALYZE: 11.4 ms against 0.7 ms without; docs/backends.md). A
        # Datastore query reads a short, index-ordered range, where a worker never pays.
        dbapi_conn.execute("SET max_parallel_workers_per_gather = 0")
