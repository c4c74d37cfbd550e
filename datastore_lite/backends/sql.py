"""SQLBackend: the one shared SQLAlchemy Core implementation of the row store.

Statements are built with SQLAlchemy Core, compiled once per dialect and cached as SQL
text, then run on the driver connection (stdlib ``sqlite3`` or psycopg 3). That keeps the
SQL portable and written once while avoiding per-call ORM/Core overhead on hot paths
(BENCHMARKS.md: per-entity Python work decides read speed). Dialects differ only by the
capability attributes at the top of the class (STYLE.md rule 4).

The row store speaks bytes, ints and strings: partitions, byte keys, bodies, index entries
and group versions. It knows nothing of ``Entity`` or ``Key`` (DESIGN.md §2).
"""

from __future__ import annotations

import json
import operator
import os
import re
import secrets
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from .. import exceptions
from . import _schema as S
from ._errors import is_driver_error, translate, translating
from ._scan import ScanSpec
from ._statements import Row, _Compiled
from ._txn import Txn, _Scope

#: A statement with positional placeholders and how to arrange a row for it (row_plan).
RowPlan = tuple[str, Callable[[tuple[Any, ...]], tuple[Any, ...]] | None]

__all__ = ["Row", "ScanSpec", "SQLBackend", "Txn"]

_POSTCOMPILE = "__[POSTCOMPILE_{}]"


class _ThreadConnection:
    """One thread's pooled connection; returned to the pool when the thread ends.

    ``threading.local`` drops a finished thread's data, which drops this holder: its
    finaliser gives the connection back (never in a forked child, whose inherited
    connections belong to the parent).
    """

    __slots__ = ("proxy", "conn", "pid", "__weakref__")

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy
        self.conn: Any = proxy.driver_connection
        self.pid = os.getpid()

    def release(self) -> None:
        proxy, self.proxy, self.conn = self.proxy, None, None
        if proxy is None or os.getpid() != self.pid:
            return
        try:
            proxy.close()
        except Exception:  # pragma: no cover - best effort (interpreter shutdown, lost server)
            pass

    def __del__(self) -> None:
        self.release()


class SQLBackend:
    """A row store on one SQL database.

    Subclasses set the capabilities below and override :meth:`_configure_connection`.
    """

    #: short name shown in messages and benchmark tables
    name: ClassVar[str] = "sql"
    #: statement that opens a write transaction (SQLite: take the write lock up front)
    write_begin: ClassVar[str] = "BEGIN"
    #: group rows must be locked explicitly (PostgreSQL); SQLite's write lock covers all
    locks_rows: ClassVar[bool] = False
    #: one connection shared by every thread (SQLite in memory)
    shared_connection: ClassVar[bool] = False
    #: statements refreshing the planner's statistics after the tables grew
    analyze_sql: ClassVar[tuple[str, ...]] = ()
    #: statement opening a consistent read-only snapshot
    snapshot_begin: ClassVar[str] = "BEGIN"
    #: statement serialising schema creation between processes, or None
    ddl_lock_sql: ClassVar[str | None] = None
    #: SQLAlchemy's dialect-specific ``insert`` (for ON CONFLICT clauses)
    insert_factory: ClassVar[Callable[..., Any]] = sa.insert
    #: keyword arguments of the driver's ``cursor()`` for the statement runner
    cursor_options: ClassVar[dict[str, Any]] = {}
    #: what hot statements bind byte strings as (None: ``bytes`` as they are)
    bind_blob: ClassVar[type | None] = None

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = sa.create_engine(url, **engine_kwargs)
        self.dialect: Dialect = self.engine.dialect
        self._compiled: dict[tuple[str, Any, tuple[tuple[str, int], ...]], _Compiled] = {}
        self._local = threading.local()
        self._all_connections: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._partition_ids: dict[tuple[str, str, str], int] = {}
        # The committed index generation, known without asking only when no other process
        # or backend can change it: a shared in-memory connection is this object's alone.
        # Set after the commit that read or bumped it (Txn.index_generation).
        self.known_generation: int | None = None
        # (partition, kind) -> multi bits known to be committed in dl_kind_multi; they only
        # ever grow, so a commit needs to record only bits not in here
        self.kind_multi_known: dict[tuple[int, bytes], int] = {}
        self._lookup_one: str | None = None
        self._written = 0
        self._analyze_at = 1000
        self._positional: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._row_plans: dict[tuple[str, tuple[str, ...]], RowPlan] = {}
        # row plans of the hottest statements by a plain name (no cache-key tuple to build)
        self.hot_plans: dict[str, RowPlan] = {}
        self._get_one: str | None = None
        self._closed = False
        self.secret: bytes = b""
        try:
            with translating():
                self._ensure_schema()
        except exceptions.DatastoreLiteError as exc:
            self.engine.dispose()
            if isinstance(exc, exceptions.FailedPrecondition):
                raise
            safe_url = self.engine.url.render_as_string(hide_password=True)
            raise exceptions.ServiceUnavailable(
                f"cannot open the datastore_lite database at {safe_url}: {exc.message}"
            ) from exc

    # -- connections -----------------------------------------------------------------------

    def _configure_connection(self, dbapi_conn: Any) -> None:
        """Per-connection set-up (pragmas, autocommit). Overridden by dialects."""

    def _connection(self) -> Any:
        if self._closed:
            raise exceptions.InternalServerError("the datastore_lite client has been closed")
        if os.getpid() != self._pid:
            self._after_fork()
        holder: _ThreadConnection | None = getattr(self._local, "holder", None)
        if holder is None or holder.conn is None:
            holder = _ThreadConnection(self.engine.raw_connection())
            self._configure_connection(holder.conn)
            self._local.holder = holder
            with self._lock:
                self._all_connections.add(holder)
        return holder.conn

    def release_thread_connection(self) -> None:
        """Give this thread's connection back to the pool (a thread that is done with it).

        A thread's connection is also returned when the thread ends; web servers that
        start a thread per request (``flask run``) may call this at request teardown.
        """
        if self.shared_connection:
            return
        local = self._local
        holder: _ThreadConnection | None = getattr(local, "holder", None)
        local.holder = None
        local.txn = None
        if holder is not None:
            holder.release()

    def _after_fork(self) -> None:
        # A forked child must not touch the parent's sockets or SQLite handles: forget
        # them (without closing) and start its own pool.
        self._pid = os.getpid()
        self._local = threading.local()
        self._all_connections = weakref.WeakSet()
        self._lock = threading.RLock()
        self.engine.dispose(close=False)

    def close(self) -> None:
        """Close every connection this backend opened."""
        with self._lock:
            holders = list(self._all_connections)
            self._all_connections = weakref.WeakSet()
        for holder in holders:
            holder.release()
        self._local = threading.local()
        self.engine.dispose()
        self._closed = True

    def _txn(self) -> Txn:
        """This thread's statement runner (one cursor on this thread's connection)."""
        # local.txn and local.holder are set and cleared together (_connection,
        # release_thread_connection; close and a fork replace _local), so one test serves
        txn: Txn | None = getattr(self._local, "txn", None)
        if txn is None or self._pid != os.getpid():
            conn = self._connection()  # after a fork: a new _local
            txn = self._local.txn = Txn(self, conn.cursor(**self.cursor_options))
        return txn

    def read(self) -> _Scope:
        """Run statements that only read (each statement is its own consistent snapshot).

        Used as ``with backend.read() as txn:``. Driver errors leave as datastore_lite
        exceptions.
        """
        return _Scope(self, write=False)

    def get_one(self, pid: int, key: bytes) -> tuple[int, bytes] | None:
        """(version, body) of one entity, or None: the hot path of ``client.get``.

        Same as ``with self.read() as r: r.get_one(...)`` without the scope object.
        """
        sql = self._get_one
        if sql is None:
            with self.read() as r:
                return r.get_one(pid, key)
        locked = self.shared_connection
        if locked:
            self._lock.acquire()
        try:
            cur = self._txn().cur
            blob = self.bind_blob
            # Txn.get_one made it positional
            cur.execute(sql, (pid, key if blob is None else blob(key)))
            row: tuple[int, bytes] | None = cur.fetchone()  # both drivers return tuples
        except Exception as exc:
            if is_driver_error(exc):
                raise translate(exc) from exc
            raise
        finally:
            if locked:
                self._lock.release()
        return row

    def note_writes(self, rows: int) -> None:
        """Count rows this process wrote; refresh planner statistics as the data grows.

        Without statistics (autovacuum off, or a freshly loaded table) PostgreSQL may plan
        an IN-list lookup as a scan: BENCHMARKS measured 586 ms instead of 0.65 ms at
        15,700 entities. Statistics are refreshed each time the count doubles.
        """
        self._written += rows
        if self._written < self._analyze_at or not self.analyze_sql:
            return
        self._analyze_at = self._written * 2
        try:
            with self.read() as r:
                for sql in self.analyze_sql:
                    r.cur.execute(sql)
        except exceptions.DatastoreLiteError:  # pragma: no cover - statistics are best effort
            pass

    def write(self) -> _Scope:
        """One database transaction: committed on success, rolled back on any error."""
        return _Scope(self, write=True)

    def snapshot(self) -> _Scope:
        """A read-only database transaction: every statement inside sees one snapshot.

        Datastore transactions read through it, so the group versions they check and the
        data they return come from the same moment.
        """
        return _Scope(self, write=True, begin=self.snapshot_begin, finish="COMMIT")

    # -- statement compilation ---------------------------------------------------------------

    def positional(self, stmt: _Compiled) -> tuple[str, tuple[str, ...]]:
        """The statement with positional placeholders, and the parameter names in order."""
        hit = self._positional.get(stmt.sql)
        if hit is None:
            if self.dialect.paramstyle == "named":
                pattern, mark = re.compile(r"(?<![:\w]):(\w+)"), "?"
            else:
                pattern, mark = re.compile(r"%\((\w+)\)s"), "%s"
            order = tuple(pattern.findall(stmt.sql))
            hit = self._positional[stmt.sql] = (pattern.sub(mark, stmt.sql), order)
        return hit

    def row_plan(self, stmt: _Compiled, fields: tuple[str, ...]) -> RowPlan:
        """How rows of ``fields`` become the statement's positional parameters.

        Returns ``(sql, arrange)``: ``arrange`` is None when the rows are already in
        placeholder order, else a function from a row to a parameter tuple (filling the
        statement's defaults for names the row lacks). Worked out once per statement and
        field order: the commit of one entity runs three of these.
        """
        hit = self._row_plans.get((stmt.sql, fields))
        if hit is None:
            sql, order = self.positional(stmt)
            arrange: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None
            if order != fields:
                if all(name in fields for name in order) and len(order) > 1:
                    arrange = operator.itemgetter(*(fields.index(name) for name in order))
                else:
                    index = [fields.index(name) if name in fields else -1 for name in order]
                    defaults = stmt.defaults

                    def arrange(row: tuple[Any, ...]) -> tuple[Any, ...]:
                        return tuple(
                            row[i] if i >= 0 else defaults[name] for i, name in zip(index, order)
                        )

            hit = self._row_plans[(stmt.sql, fields)] = (sql, arrange)
        return hit

    def placeholder(self, name: str) -> str:
        """The driver's named-parameter syntax for ``name``."""
        if self.dialect.paramstyle == "named":
            return ":" + name
        return f"%({name})s"

    def compiled(
        self, name: str, build: Callable[[], Any], *, shape: Any = None, **sizes: int
    ) -> _Compiled:
        """Compile ``build()`` once per (name, sizes).

        ``sizes`` gives the length of each expanding bind parameter (``bindparam(p,
        expanding=True)``), rendered as ``p_1 .. p_n``; other sizes only key the cache (for
        statements whose shape depends on a count, such as multi-row VALUES).
        """
        cache_key = (name, shape, tuple(sizes.items()))
        hit = self._compiled.get(cache_key)
        if hit is not None:
            return hit
        compiled = build().compile(dialect=self.dialect)
        sql = str(compiled)
        for param, n in sizes.items():
            marks = ", ".join(self.placeholder(f"{param}_{i}") for i in range(1, n + 1))
            sql = sql.replace(_POSTCOMPILE.format(param), marks)
        defaults = {
            compiled.bind_names[bp]: bp.value
            for bp in compiled.binds.values()
            if not bp.required and not bp.expanding and bp.value is not None
        }
        result = self._compiled[cache_key] = _Compiled(sql, defaults)
        return result

    # -- schema ------------------------------------------------------------------------------

    def _ensure_schema(self) -> None:
        """Create the tables on first use; refuse a database from a newer version."""
        with self.engine.begin() as conn:
            if self.ddl_lock_sql:
                conn.exec_driver_sql(self.ddl_lock_sql)
            S.metadata.create_all(conn, checkfirst=True)
            self._after_create(conn)
            meta = S.meta
            rows = dict(conn.execute(sa.select(meta.c.name, meta.c.value)).all())
            version = int(rows.get("schema_version", "0"))
            if version > S.SCHEMA_VERSION:
                raise exceptions.FailedPrecondition(
                    f"this database was written by a newer datastore_lite (schema version "
                    f"{version}); this version understands schema version {S.SCHEMA_VERSION}. "
                    "Upgrade datastore_lite to open it."
                )
            if rows and version < S.SCHEMA_VERSION:
                # no in-place migration before 1.0: the storage layout changed incompatibly
                raise exceptions.FailedPrecondition(
                    f"this database was written by an older datastore_lite (schema version "
                    f"{version}); this version uses schema version {S.SCHEMA_VERSION} and "
                    "cannot read it. Export it with the older version (datastore-lite export) "
                    "and import the file into a new database."
                )
            defaults = {
                "schema_version": str(S.SCHEMA_VERSION),
                "secret": secrets.token_hex(32),
                "index_generation": "0",
                # "1" once any client deferred a write (eventual consistency): from then on
                # strong clients must look for pending writes too
                "pending_seen": "0",
            }
            for key, value in defaults.items():
                if key not in rows:
                    conn.execute(meta.insert().values(name=key, value=value))
                    rows[key] = value
            counters = S.counters
            have = set(conn.execute(sa.select(counters.c.name)).scalars())
            for counter in ("scattered", "sequential"):
                if counter not in have:
                    conn.execute(counters.insert().values(name=counter, value=0))
        self.secret = bytes.fromhex(rows["secret"])

    def _after_create(self, conn: sa.Connection) -> None:
        """Dialect-specific DDL after the tables exist (e.g. PostgreSQL storage settings)."""

    # -- partitions --------------------------------------------------------------------------

    def partition_id(self, project: str, database: str, namespace: str, create: bool = True) -> int:
        """The small integer naming (project, database, namespace); -1 if absent and not created."""
        part = (project, database, namespace)
        pid = self._partition_ids.get(part)
        if pid is not None:
            return pid
        t = S.partitions
        find = self.compiled(
            "partition_find",
            lambda: sa.select(t.c.id).where(
                t.c.project == sa.bindparam("project"),
                t.c.database == sa.bindparam("database"),
                t.c.namespace == sa.bindparam("namespace"),
            ),
        )
        params = {"project": project, "database": database, "namespace": namespace}
        with self.read() as txn:
            row = txn.fetchone(find, params)
        if row is None:
            if not create:
                return -1
            add = self.compiled(
                "partition_add",
                lambda: (
                    self.insert_factory(t)
                    .values(
                        project=sa.bindparam("project"),
                        database=sa.bindparam("database"),
                        namespace=sa.bindparam("namespace"),
                    )
                    .on_conflict_do_nothing()
                ),
            )
            with self.write() as txn:
                txn.run(add, params)
                row = txn.fetchone(find, params)
        assert row is not None
        self._partition_ids[part] = row[0]
        return int(row[0])

    def partitions(self) -> list[tuple[int, str, str, str]]:
        """Every partition: (id, project, database, namespace)."""
        t = S.partitions
        stmt = self.compiled(
            "partitions_all", lambda: sa.select(t.c.id, t.c.project, t.c.database, t.c.namespace)
        )
        with self.read() as txn:
            return [(r[0], r[1], r[2], r[3]) for r in txn.fetchall(stmt, {})]

    # -- index registry ----------------------------------------------------------------------

    def load_indexes(self) -> list[tuple[int, str, str, bool, list[list[str]], bool, str]]:
        """All index definitions: (id, definition, kind, ancestor, properties, builtin, state)."""
        t = S.indexes
        stmt = self.compiled(
            "indexes_all",
            lambda: sa.select(
                t.c.id,
                t.c.definition,
                t.c.kind,
                t.c.ancestor,
                t.c.properties,
                t.c.builtin,
                t.c.state,
            ),
        )
        with self.read() as txn:
            rows = txn.fetchall(stmt, {})
        return [
            (
                r[0],
                r[1],
                bytes(r[2]).decode("utf-8"),
                bool(r[3]),
                json.loads(r[4]),
                bool(r[5]),
                r[6],
            )
            for r in rows
        ]

    def register_indexes(
        self, definitions: Iterable[tuple[str, str, bool, list[list[str]], bool, str]]
    ) -> None:
        """Insert index definitions (definition, kind, ancestor, properties, builtin, state).

        Existing definitions are left alone. A new non-built-in definition bumps the index
        generation, so every writer reloads the registry before its next commit.
        """
        t = S.indexes
        add = self.compiled(
            "index_add",
            lambda: (
                self.insert_factory(t)
                .values(
                    definition=sa.bindparam("definition"),
                    kind=sa.bindparam("kind"),
                    ancestor=sa.bindparam("ancestor"),
                    properties=sa.bindparam("properties"),
                    builtin=sa.bindparam("builtin"),
                    state=sa.bindparam("state"),
                )
                .on_conflict_do_nothing()
            ),
        )
        rows = [
            {
                "definition": d,
                "kind": kind.encode("utf-8"),
                "ancestor": ancestor,
                "properties": json.dumps(props),
                "builtin": builtin,
                "state": state,
            }
            for d, kind, ancestor, props, builtin, state in definitions
        ]
        if not rows:
            return
        with self.write() as txn:
            txn.runmany(add, rows)
            if not all(r["builtin"] for r in rows):
                txn.bump_index_generation()

    def set_index_state(self, index_id: int, state: str) -> None:
        t = S.indexes
        stmt = self.compiled(
            "index_state",
            lambda: (
                t.update().where(t.c.id == sa.bindparam("iid")).values(state=sa.bindparam("state"))
            ),
        )
        with self.write() as txn:
            txn.run(stmt, {"iid": index_id, "state": state})
            txn.bump_index_generation()

    def drop_index(self, index_id: int) -> None:
        """Remove an index definition and all of its entries."""
        e, t = S.index_entries, S.indexes
        del_entries = self.compiled(
            "index_drop_entries",
            lambda: e.delete().where(e.c.index_id == sa.bindparam("iid")),
        )
        del_def = self.compiled(
            "index_drop_def", lambda: t.delete().where(t.c.id == sa.bindparam("iid"))
        )
        with self.write() as txn:
            txn.run(del_entries, {"iid": index_id})
            txn.run(del_def, {"iid": index_id})
            txn.bump_index_generation()

    # -- id counters -------------------------------------------------------------------------

    def allocate(self, counter: str, count: int) -> int:
        """Advance ``counter`` by ``count`` in its own short transaction; return the new value.

        The ids handed out are ``new - count + 1 .. new``. Kept out of commit transactions so
        the counter row is never locked for longer than one statement.
        """
        c = S.counters
        stmt = self.compiled(
            "counter_alloc",
            lambda: (
                c.update()
                .where(c.c.name == sa.bindparam("name"))
                .values(value=c.c.value + sa.bindparam("count"))
                .returning(c.c.value)
            ),
        )
        with self.write() as txn:
            row = txn.fetchone(stmt, {"name": counter, "count": count})
        assert row is not None
        return int(row[0])

    def counter_value(self, counter: str) -> int:
        c = S.counters
        stmt = self.compiled(
            "counter_get",
            lambda: sa.select(c.c.value).where(c.c.name == sa.bindparam("name")),
        )
        with self.read() as txn:
            row = txn.fetchone(stmt, {"name": counter})
        return int(row[0]) if row else 0
