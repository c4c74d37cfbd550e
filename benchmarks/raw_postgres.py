"""The raw baseline on PostgreSQL: psycopg 3, prepared statements with generic plans."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy.dialects import postgresql as pg_dialect

from .raw_common import RawStore, _schema_ddl

__all__ = ["RawPostgresStore"]


class RawPostgresStore(RawStore):
    """Hand-written SQL on one PostgreSQL database (``dsn`` is a libpq URL)."""

    begin_sql = "BEGIN"
    # the library reads the index generation FOR SHARE in every write (DESIGN.md §10)
    generation_lock = " FOR SHARE"

    def __init__(self, dsn: str, project: str = "bench", create: bool = True) -> None:
        self.dsn = dsn
        conn: Any = psycopg.connect(dsn, autocommit=True)
        # BENCHMARKS.md: psycopg's automatic prepared statements with generic plans
        conn.execute("SET plan_cache_mode = force_generic_plan")
        # the library's session setting too (its postgresql backend says why): without it
        # both sides took a parallel plan with a ~7 ms worker start-up per query at 1M
        conn.execute("SET max_parallel_workers_per_gather = 0")
        super().__init__(conn, project)
        if create:
            dialect = pg_dialect.dialect()  # type: ignore[no-untyped-call,unused-ignore]
            self._create_schema(_schema_ddl(dialect))
            # BENCHMARKS.md: keep ~2 KB bodies inline (no TOAST)
            self.execute("ALTER TABLE dl_entities ALTER COLUMN body SET STORAGE MAIN")
            self.execute("SELECT setval('dl_indexes_id_seq', 100)")
            self.execute("SELECT setval('dl_partitions_id_seq', 100)")

    def q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        # results in binary format, as the library's PostgreSQL backend asks for them
        # (its cursor_options): bytea is not hex-encoded on the way
        return self.conn.execute(sql, params, binary=True)

    def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(sql, rows)

    def maintain(self) -> None:
        """``VACUUM (ANALYZE)``, as the library's store is (stores.vacuum)."""
        from .stores import vacuum

        vacuum(self.dsn)

    def flush(self) -> None:
        """``CHECKPOINT`` and page-cache warm-up, as for the library (stores.flush_pg)."""
        from .stores import flush_pg

        flush_pg(self.dsn)

    def clone(self) -> RawStore:
        return RawPostgresStore(self.dsn, self.project, create=False)
