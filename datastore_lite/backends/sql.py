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
import os
import re
import secrets
import threading
import weakref
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, ClassVar, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from .. import exceptions
from . import _schema as S
from ._errors import is_driver_error, translate, translating

__all__ = ["Row", "SQLBackend", "Txn"]

Row = tuple[Any, ...]
_POSTCOMPILE = "__[POSTCOMPILE_{}]"


def _expand(params: dict[str, Any], name: str, values: Sequence[Any]) -> None:
    """Bind an expanding IN list compiled for ``len(values)`` items (name_1, name_2, ...)."""
    for i, value in enumerate(values, 1):
        params[f"{name}_{i}"] = value


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


class _Compiled:
    """A compiled statement: SQL text, plus defaults for bind values SQLAlchemy invented."""

    __slots__ = ("sql", "defaults")

    def __init__(self, sql: str, defaults: dict[str, Any]) -> None:
        self.sql = sql
        self.defaults = defaults


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
        self._lookup_one: str | None = None
        self._written = 0
        self._analyze_at = 1000
        self._positional: dict[str, tuple[str, tuple[str, ...]]] = {}
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
        local = self._local
        txn: Txn | None = getattr(local, "txn", None)
        holder: _ThreadConnection | None = getattr(local, "holder", None)
        if txn is None or holder is None or holder.conn is None or self._pid != os.getpid():
            conn = self._connection()
            txn = local.txn = Txn(self, conn.cursor())
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
            cur.execute(sql, {"pid": pid, "k": key})
            row = cur.fetchone()
        except Exception as exc:
            if is_driver_error(exc):
                raise translate(exc) from exc
            raise
        finally:
            if locked:
                self._lock.release()
        return None if row is None else (row[0], row[1])

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


class _Scope:
    """A read or write scope: a plain class, not a generator, because it is on every call."""

    __slots__ = ("backend", "write", "txn", "locked", "begin")

    def __init__(
        self, backend: SQLBackend, write: bool, begin: str | None = None, finish: str = "COMMIT"
    ) -> None:
        self.backend = backend
        self.write = write
        self.locked = False
        self.begin = begin

    def __enter__(self) -> Txn:
        backend = self.backend
        try:
            if backend.shared_connection:
                backend._lock.acquire()
                self.locked = True
            txn = self.txn = backend._txn()
            if self.write:
                txn.cur.execute(self.begin or backend.write_begin)
            return txn
        except BaseException as exc:
            self._release()
            if is_driver_error(exc):
                raise translate(exc) from exc
            raise

    def _release(self) -> None:
        if self.locked:
            self.locked = False
            self.backend._lock.release()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        try:
            if self.write:
                cur = self.txn.cur
                if exc is None:
                    try:
                        cur.execute("COMMIT")
                    except Exception as commit_exc:
                        try:
                            cur.execute("ROLLBACK")
                        except Exception:  # pragma: no cover - connection may be gone
                            pass
                        if is_driver_error(commit_exc):
                            raise translate(commit_exc) from commit_exc
                        raise
                else:
                    try:
                        cur.execute("ROLLBACK")
                    except Exception:  # pragma: no cover - the connection may be gone
                        pass
        finally:
            self._release()
        if exc is not None and is_driver_error(exc):
            raise translate(exc) from exc
        return False


class Txn:
    """Statements inside one read or write scope of a :class:`SQLBackend`."""

    __slots__ = ("b", "cur")

    def __init__(self, backend: SQLBackend, cursor: Any) -> None:
        self.b = backend
        self.cur = cursor

    # -- primitives --------------------------------------------------------------------------

    def run(self, stmt: _Compiled, params: dict[str, Any]) -> Any:
        if stmt.defaults:
            params = {**stmt.defaults, **params}
        return self.cur.execute(stmt.sql, params)

    def runmany(self, stmt: _Compiled, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        if stmt.defaults:
            rows = [{**stmt.defaults, **r} for r in rows]
        self.cur.executemany(stmt.sql, rows)

    def runrows(
        self, stmt: _Compiled, fields: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """``executemany`` with positional rows (``fields`` names their columns).

        Bulk writes send tuples, not dicts: the statement is rewritten once to the
        driver's positional placeholders.
        """
        if not rows:
            return
        sql, order = self.b.positional(stmt)
        if order != fields:
            index = [fields.index(name) if name in fields else -1 for name in order]
            defaults = stmt.defaults
            rows = [
                tuple(row[i] if i >= 0 else defaults[name] for i, name in zip(index, order))
                for row in rows
            ]
        self.cur.executemany(sql, rows)

    def fetchone(self, stmt: _Compiled, params: dict[str, Any]) -> Row | None:
        self.run(stmt, params)
        row = self.cur.fetchone()
        return tuple(row) if row is not None else None

    def fetchall(self, stmt: _Compiled, params: dict[str, Any]) -> list[Row]:
        self.run(stmt, params)
        return self.cur.fetchall()  # type: ignore[no-any-return]

    # -- meta --------------------------------------------------------------------------------

    def index_generation(self, lock: bool = False) -> int:
        """The index generation; ``lock`` holds a share lock on it until commit.

        Writers read it locked (PostgreSQL), so a new index's generation bump waits for
        in-flight commits and every later commit sees the new index (DESIGN.md §10).
        """
        m = S.meta
        lock = lock and self.b.locks_rows

        def build() -> Any:
            stmt = sa.select(m.c.value).where(m.c.name == "index_generation")
            return stmt.with_for_update(read=True) if lock else stmt

        row = self.fetchone(self.b.compiled(f"meta_generation_{lock}", build), {})
        return int(row[0]) if row else 0

    def meta_values(self) -> dict[str, str]:
        """The small mutable settings: index generation and whether writes were deferred."""
        m = S.meta
        stmt = self.b.compiled(
            "meta_values",
            lambda: sa.select(m.c.name, m.c.value).where(
                sa.or_(m.c.name == "index_generation", m.c.name == "pending_seen")
            ),
        )
        return {str(name): str(value) for name, value in self.fetchall(stmt, {})}

    def mark_pending_seen(self) -> None:
        m = S.meta
        stmt = self.b.compiled(
            "meta_pending_seen",
            lambda: (
                m.update().where(m.c.name == "pending_seen", m.c.value != "1").values(value="1")
            ),
        )
        self.run(stmt, {})

    def bump_index_generation(self) -> None:
        m = S.meta
        # value is text; read-modify-write inside this write transaction
        generation = self.index_generation() + 1
        stmt = self.b.compiled(
            "meta_generation_set",
            lambda: (
                m.update().where(m.c.name == "index_generation").values(value=sa.bindparam("value"))
            ),
        )
        self.run(stmt, {"value": str(generation)})

    # -- lookups -----------------------------------------------------------------------------

    def lookup(self, pid: int, group_keys: Sequence[bytes], keys: Sequence[bytes]) -> list[Row]:
        """Groups with their versions, each joined to the requested entities in it.

        Rows: (group_key, group_version, applied, key | None, entity_version, body).
        One statement, so group versions and bodies come from the same snapshot.
        """
        g, e = S.groups, S.entities
        ng, nk = len(group_keys), len(keys)

        def build() -> Any:
            join = sa.and_(
                e.c.partition == g.c.partition,
                e.c.group_key == g.c.group_key,
                e.c.key.in_(sa.bindparam("k", expanding=True)),
            )
            return (
                sa.select(g.c.group_key, g.c.version, g.c.applied, e.c.key, e.c.version, e.c.body)
                .select_from(g.outerjoin(e, join))
                .where(
                    g.c.partition == sa.bindparam("pid"),
                    g.c.group_key.in_(sa.bindparam("g", expanding=True)),
                )
            )

        if ng == 1 and nk == 1:
            # the hot path (client.get): one cached statement, no parameter naming loop
            sql = self.b._lookup_one
            if sql is None:
                sql = self.b._lookup_one = self.b.compiled("lookup", build, g=1, k=1).sql
            self.cur.execute(sql, {"pid": pid, "g_1": group_keys[0], "k_1": keys[0]})
            return self.cur.fetchall()  # type: ignore[no-any-return]
        stmt = self.b.compiled("lookup", build, g=ng, k=nk)
        params: dict[str, Any] = {"pid": pid}
        _expand(params, "g", group_keys)
        _expand(params, "k", keys)
        return self.fetchall(stmt, params)

    def get_one(self, pid: int, key: bytes) -> tuple[int, bytes] | None:
        """(version, body) of one entity, or None: the plainest lookup."""
        sql = self.b._get_one
        if sql is None:
            e = S.entities
            sql = self.b._get_one = self.b.compiled(
                "get_one",
                lambda: sa.select(e.c.version, e.c.body).where(
                    e.c.partition == sa.bindparam("pid"), e.c.key == sa.bindparam("k")
                ),
            ).sql
        self.cur.execute(sql, {"pid": pid, "k": key})
        row = self.cur.fetchone()
        return None if row is None else (row[0], row[1])

    def read_entities(self, pid: int, keys: Sequence[bytes]) -> dict[bytes, tuple[int, bytes]]:
        """Current (version, body) of the entities among ``keys`` that exist."""
        if not keys:
            return {}
        e = S.entities
        stmt = self.b.compiled(
            "read_entities",
            lambda: sa.select(e.c.key, e.c.version, e.c.body).where(
                e.c.partition == sa.bindparam("pid"),
                e.c.key.in_(sa.bindparam("k", expanding=True)),
            ),
            k=len(keys),
        )
        params: dict[str, Any] = {"pid": pid}
        _expand(params, "k", keys)
        return {bytes(r[0]): (r[1], bytes(r[2])) for r in self.fetchall(stmt, params)}

    def group_states(self, pid: int, group_keys: Sequence[bytes]) -> dict[bytes, tuple[int, int]]:
        """(version, applied) of existing groups among ``group_keys``."""
        g = S.groups
        stmt = self.b.compiled(
            "group_states",
            lambda: sa.select(g.c.group_key, g.c.version, g.c.applied).where(
                g.c.partition == sa.bindparam("pid"),
                g.c.group_key.in_(sa.bindparam("g", expanding=True)),
            ),
            g=len(group_keys),
        )
        params: dict[str, Any] = {"pid": pid}
        _expand(params, "g", group_keys)
        return {bytes(r[0]): (r[1], r[2]) for r in self.fetchall(stmt, params)}

    # -- writes ------------------------------------------------------------------------------

    def lock_groups(
        self, pid: int, group_keys: Sequence[bytes], bump: Collection[bytes] = ()
    ) -> dict[bytes, tuple[int, int, float | None, float | None]]:
        """Lock (creating when absent) the groups, in the given order; return their state.

        Returns ``{group_key: (version, applied, tokens, tokens_at)}`` as they were before
        this statement. Groups in ``bump`` also get version and applied raised by one in
        the same statement (a plain strong write needs no second one). Callers pass the
        groups sorted, so every writer locks in one fixed order and none can deadlock.
        One upsert statement: ``ON CONFLICT DO UPDATE`` takes the row lock on PostgreSQL.
        """
        g = S.groups
        n = len(group_keys)

        def build() -> Any:
            ins = self.b.insert_factory(g).values(
                [
                    {
                        "partition": sa.bindparam("pid"),
                        "group_key": sa.bindparam(f"gk_{i}"),
                        "version": sa.bindparam(f"b_{i}"),
                        "applied": sa.bindparam(f"b_{i}"),
                    }
                    for i in range(n)
                ]
            )
            return ins.on_conflict_do_update(
                index_elements=[g.c.partition, g.c.group_key],
                set_={
                    "version": ins.excluded.version + g.c.version,
                    "applied": ins.excluded.applied + g.c.applied,
                },
            ).returning(g.c.group_key, g.c.version, g.c.applied, g.c.tokens, g.c.tokens_at)

        stmt = self.b.compiled("lock_groups", build, n=n)
        params: dict[str, Any] = {"pid": pid}
        for i, gk in enumerate(group_keys):
            params[f"gk_{i}"] = gk
            params[f"b_{i}"] = 1 if gk in bump else 0
        rows = self.fetchall(stmt, params)
        out = {}
        for r in rows:
            key = bytes(r[0])
            step = 1 if key in bump else 0
            out[key] = (r[1] - step, r[2] - step, r[3], r[4])
        return out

    def update_groups(
        self, pid: int, rows: Sequence[tuple[bytes, int, int, float | None, float | None]]
    ) -> None:
        """Set (version, applied, tokens, tokens_at) of locked groups."""
        g = S.groups
        stmt = self.b.compiled(
            "update_groups",
            lambda: (
                g.update()
                .where(g.c.partition == sa.bindparam("pid"), g.c.group_key == sa.bindparam("gk"))
                .values(
                    version=sa.bindparam("v"),
                    applied=sa.bindparam("a"),
                    tokens=sa.bindparam("t"),
                    tokens_at=sa.bindparam("ta"),
                )
            ),
        )
        self.runmany(
            stmt,
            [{"pid": pid, "gk": gk, "v": v, "a": a, "t": t, "ta": ta} for gk, v, a, t, ta in rows],
        )

    def upsert_entities(
        self, pid: int, rows: Sequence[tuple[bytes, str, bytes, int, bytes, int]]
    ) -> None:
        """Write entities: rows of (key, kind, group_key, version, body, multi)."""
        e = S.entities

        def build() -> Any:
            ins = self.b.insert_factory(e).values(
                partition=sa.bindparam("pid"),
                key=sa.bindparam("key"),
                kind=sa.bindparam("kind"),
                group_key=sa.bindparam("gk"),
                version=sa.bindparam("v"),
                body=sa.bindparam("body"),
                multi=sa.bindparam("multi"),
            )
            return ins.on_conflict_do_update(
                index_elements=[e.c.partition, e.c.key],
                set_={
                    "kind": ins.excluded.kind,
                    "group_key": ins.excluded.group_key,
                    "version": ins.excluded.version,
                    "body": ins.excluded.body,
                    "multi": ins.excluded.multi,
                },
            )

        stmt = self.b.compiled("upsert_entities", build)
        self.runrows(
            stmt,
            ("pid", "key", "kind", "gk", "v", "body", "multi"),
            [(pid, k, kind.encode("utf-8"), gk, v, body, m) for k, kind, gk, v, body, m in rows],
        )

    def delete_entities(self, pid: int, keys: Sequence[bytes]) -> None:
        e = S.entities
        stmt = self.b.compiled(
            "delete_entity",
            lambda: e.delete().where(
                e.c.partition == sa.bindparam("pid"), e.c.key == sa.bindparam("key")
            ),
        )
        self.runrows(stmt, ("pid", "key"), [(pid, k) for k in keys])

    def insert_index_entries(
        self, pid: int, rows: Sequence[tuple[int, bytes, bytes]], ignore_existing: bool = False
    ) -> None:
        """Add index entries: rows of (index_id, value, key)."""
        x = S.index_entries

        def build() -> Any:
            ins = self.b.insert_factory(x).values(
                index_id=sa.bindparam("iid"),
                partition=sa.bindparam("pid"),
                value=sa.bindparam("v"),
                key=sa.bindparam("k"),
            )
            return ins.on_conflict_do_nothing() if ignore_existing else ins

        stmt = self.b.compiled(f"insert_entries_{ignore_existing}", build)
        self.runrows(stmt, ("iid", "pid", "v", "k"), [(i, pid, v, k) for i, v, k in rows])

    def delete_index_entries(self, pid: int, rows: Sequence[tuple[int, bytes, bytes]]) -> None:
        """Remove index entries: rows of (index_id, value, key)."""
        x = S.index_entries
        stmt = self.b.compiled(
            "delete_entries",
            lambda: x.delete().where(
                x.c.index_id == sa.bindparam("iid"),
                x.c.partition == sa.bindparam("pid"),
                x.c.value == sa.bindparam("v"),
                x.c.key == sa.bindparam("k"),
            ),
        )
        self.runrows(stmt, ("iid", "pid", "v", "k"), [(i, pid, v, k) for i, v, k in rows])

    def bump_counter(self, counter: str, at_least: int) -> None:
        """Raise ``counter`` to ``at_least`` if it is lower (reserving ids)."""
        c = S.counters
        stmt = self.b.compiled(
            "counter_bump",
            lambda: (
                c.update()
                .where(c.c.name == sa.bindparam("name"), c.c.value < sa.bindparam("at_least"))
                .values(value=sa.bindparam("at_least"))
            ),
        )
        self.run(stmt, {"name": counter, "at_least": at_least})

    # -- inspection (tests, CLI) -------------------------------------------------------------

    def index_entries(self, pid: int, index_id: int) -> list[tuple[bytes, bytes]]:
        """All (value, key) entries of one index in one partition, in index order."""
        x = S.index_entries
        stmt = self.b.compiled(
            "entries_of",
            lambda: (
                sa.select(x.c.value, x.c.key)
                .where(x.c.index_id == sa.bindparam("iid"), x.c.partition == sa.bindparam("pid"))
                .order_by(x.c.value, x.c.key)
            ),
        )
        return [(bytes(v), bytes(k)) for v, k in self.fetchall(stmt, {"iid": index_id, "pid": pid})]

    # -- pending writes (eventual consistency) -----------------------------------------------

    def insert_pending(self, pid: int, group: bytes, version: int, due: float, blob: bytes) -> None:
        p = S.pending
        stmt = self.b.compiled(
            "pending_add",
            lambda: p.insert().values(
                partition=sa.bindparam("pid"),
                group_key=sa.bindparam("gk"),
                version=sa.bindparam("v"),
                due=sa.bindparam("due"),
                mutations=sa.bindparam("blob"),
            ),
        )
        self.run(stmt, {"pid": pid, "gk": group, "v": version, "due": due, "blob": blob})

    def pending_of_group(self, pid: int, group: bytes) -> list[tuple[int, bytes]]:
        """A group's pending writes in commit order: (version, mutations blob)."""
        p = S.pending
        stmt = self.b.compiled(
            "pending_group",
            lambda: (
                sa.select(p.c.version, p.c.mutations)
                .where(p.c.partition == sa.bindparam("pid"), p.c.group_key == sa.bindparam("gk"))
                .order_by(p.c.version)
            ),
        )
        return [(v, bytes(b)) for v, b in self.fetchall(stmt, {"pid": pid, "gk": group})]

    def pending_of_partition(self, pid: int) -> list[tuple[bytes, int, bytes]]:
        """Every pending write of a partition: (group, version, blob), in group/commit order."""
        p = S.pending
        stmt = self.b.compiled(
            "pending_partition",
            lambda: (
                sa.select(p.c.group_key, p.c.version, p.c.mutations)
                .where(p.c.partition == sa.bindparam("pid"))
                .order_by(p.c.group_key, p.c.version)
            ),
        )
        return [(bytes(g), v, bytes(b)) for g, v, b in self.fetchall(stmt, {"pid": pid})]

    def delete_pending_rows(self, pid: int, rows: Sequence[tuple[bytes, int]]) -> None:
        """Remove applied pending writes: rows of (group, version)."""
        p = S.pending
        stmt = self.b.compiled(
            "pending_del",
            lambda: p.delete().where(
                p.c.partition == sa.bindparam("pid"),
                p.c.group_key == sa.bindparam("gk"),
                p.c.version == sa.bindparam("v"),
            ),
        )
        self.runrows(stmt, ("pid", "gk", "v"), [(pid, g, v) for g, v in rows])

    def delete_pending(self, pid: int, group: bytes, version: int) -> None:
        p = S.pending
        stmt = self.b.compiled(
            "pending_del",
            lambda: p.delete().where(
                p.c.partition == sa.bindparam("pid"),
                p.c.group_key == sa.bindparam("gk"),
                p.c.version == sa.bindparam("v"),
            ),
        )
        self.run(stmt, {"pid": pid, "gk": group, "v": version})

    def due_pending(self, now: float) -> list[tuple[int, bytes, int, float]]:
        """Pending writes due by ``now``: (partition, group, version, due), in group order."""
        p = S.pending
        stmt = self.b.compiled(
            "pending_due",
            lambda: (
                sa.select(p.c.partition, p.c.group_key, p.c.version, p.c.due)
                .where(p.c.due <= sa.bindparam("now"))
                .order_by(p.c.partition, p.c.group_key, p.c.version)
            ),
        )
        now_value = now if now != float("inf") else 1e300
        return [(a, bytes(b), c, d) for a, b, c, d in self.fetchall(stmt, {"now": now_value})]

    def all_pending(self) -> list[tuple[int, bytes, int, float, bytes]]:
        p = S.pending
        stmt = self.b.compiled(
            "pending_all",
            lambda: sa.select(
                p.c.partition, p.c.group_key, p.c.version, p.c.due, p.c.mutations
            ).order_by(p.c.partition, p.c.group_key, p.c.version),
        )
        return [(a, bytes(b), c, d, bytes(e)) for a, b, c, d, e in self.fetchall(stmt, {})]

    # -- scans used by index builds and tools ------------------------------------------------

    def entities_of_kind(
        self, pid: int, kind: str, after: bytes | None, limit: int
    ) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` (key, body) of one kind in key order, after ``after``."""
        e = S.entities

        lock = self.b.locks_rows

        def build(resume: bool) -> Callable[[], Any]:
            def make() -> Any:
                conds = [e.c.partition == sa.bindparam("pid"), e.c.kind == sa.bindparam("kind")]
                if resume:
                    conds.append(e.c.key > sa.bindparam("after"))
                stmt = (
                    sa.select(e.c.key, e.c.body)
                    .where(*conds)
                    .order_by(e.c.key)
                    .limit(sa.bindparam("lim"))
                )
                # index builds: a concurrent writer of these rows waits for the chunk
                return stmt.with_for_update(read=True) if lock else stmt

            return make

        resume = after is not None
        stmt = self.b.compiled(f"kind_scan_{resume}", build(resume))
        params: dict[str, Any] = {"pid": pid, "kind": kind.encode("utf-8"), "lim": limit}
        if resume:
            params["after"] = after
        return [(bytes(k), bytes(b)) for k, b in self.fetchall(stmt, params)]

    def entities_after(
        self, pid: int, after: bytes | None, limit: int
    ) -> list[tuple[bytes, str, bytes]]:
        """Up to ``limit`` (key, kind, body) of a partition in key order, after ``after``."""
        e = S.entities

        def build(resume: bool) -> Callable[[], Any]:
            def make() -> Any:
                conds = [e.c.partition == sa.bindparam("pid")]
                if resume:
                    conds.append(e.c.key > sa.bindparam("after"))
                return (
                    sa.select(e.c.key, e.c.kind, e.c.body)
                    .where(*conds)
                    .order_by(e.c.key)
                    .limit(sa.bindparam("lim"))
                )

            return make

        resume = after is not None
        stmt = self.b.compiled(f"all_scan_{resume}", build(resume))
        params: dict[str, Any] = {"pid": pid, "lim": limit}
        if resume:
            params["after"] = after
        return [
            (bytes(k), bytes(kind).decode("utf-8"), bytes(b))
            for k, kind, b in self.fetchall(stmt, params)
        ]

    def value_ranks(self, pid: int, index_id: int, ranks: Sequence[int]) -> list[int]:
        """Which leading rank bytes (value classes) occur in one index: one probe each."""
        x = S.index_entries
        stmt = self.b.compiled(
            "rank_probe",
            lambda: (
                sa.select(x.c.key)
                .where(
                    x.c.index_id == sa.bindparam("iid"),
                    x.c.partition == sa.bindparam("pid"),
                    x.c.value >= sa.bindparam("lo"),
                    x.c.value < sa.bindparam("hi"),
                )
                .limit(1)
            ),
        )
        found = []
        for rank in ranks:
            params = {"iid": index_id, "pid": pid, "lo": bytes([rank]), "hi": bytes([rank + 1])}
            if self.fetchone(stmt, params) is not None:
                found.append(rank)
        return found

    def count_index_entries(self, index_id: int) -> int:
        x = S.index_entries
        stmt = self.b.compiled(
            "count_entries",
            lambda: (
                sa.select(sa.func.count()).select_from(x).where(x.c.index_id == sa.bindparam("iid"))
            ),
        )
        row = self.fetchone(stmt, {"iid": index_id})
        return int(row[0]) if row else 0

    def kinds(self, pid: int) -> list[str]:
        """The distinct kinds stored in a partition."""
        e = S.entities
        stmt = self.b.compiled(
            "kinds_of",
            lambda: (
                sa.select(e.c.kind)
                .where(e.c.partition == sa.bindparam("pid"))
                .distinct()
                .order_by(e.c.kind)
            ),
        )
        return [bytes(r[0]).decode("utf-8") for r in self.fetchall(stmt, {"pid": pid})]

    def count_entities(self, pid: int, kind: str) -> int:
        e = S.entities
        stmt = self.b.compiled(
            "count_kind",
            lambda: (
                sa.select(sa.func.count())
                .select_from(e)
                .where(e.c.partition == sa.bindparam("pid"), e.c.kind == sa.bindparam("kind"))
            ),
        )
        row = self.fetchone(stmt, {"pid": pid, "kind": kind.encode("utf-8")})
        return int(row[0]) if row else 0

    # -- query scans -------------------------------------------------------------------------

    def scan(
        self,
        spec: ScanSpec,
        after: tuple[bytes | None, bytes] | None = None,
        seek: bytes | None = None,
        limit: int = 100,
    ) -> list[tuple[bytes | None, bytes, bytes | None, int]]:
        """One bounded range scan: rows (index value | None, key, body | None, multi).

        Index scans run over ``dl_index_entries`` joined to ``dl_entities`` (plus one
        self-join per equality probe of a merge join); entity scans over ``dl_entities``.
        Rows come in scan order: (value, key) ascending, or value descending then key
        ascending for a descending built-in scan. ``after`` resumes strictly after a
        (value, key) position; ``seek`` is an inclusive lower bound on the value.
        """
        variant = (0 if after is None else (1 if after[0] is not None else 2), seek is not None)
        compiled = spec._sql.get(variant)
        if compiled is None:
            spec.after, spec.seek = after, seek
            compiled = spec._sql[variant] = self.b.compiled(
                "scan", lambda: _build_scan(spec), shape=spec.shape()
            )
        sql = compiled.sql
        params = {**compiled.defaults, **spec._params} if compiled.defaults else dict(spec._params)
        params["lim"] = limit
        if after is not None:
            params["ak"] = after[1]
            if after[0] is not None:
                params["av"] = after[0]
        if seek is not None:
            params["seek"] = seek
        self.cur.execute(sql, params)
        # drivers return bytes for BLOB/bytea; rows go out as they come
        return self.cur.fetchall()  # type: ignore[no-any-return]

    def count(self, spec: ScanSpec, up_to: int | None, distinct: bool = True) -> int:
        """How many keys a scan would return (stopping at ``up_to``).

        ``distinct`` counts an entity once even if it has several entries in the range
        (multi-valued properties); without it the entries are counted directly.
        """

        def build() -> Any:
            inner = _build_scan(spec, count=True, distinct=distinct)
            if up_to is not None:
                inner = inner.limit(sa.bindparam("upto"))
            elif not distinct:
                return sa.select(sa.func.count()).select_from(inner.subquery())
            sub = inner.subquery()
            return sa.select(sa.func.count()).select_from(sub)

        stmt = self.b.compiled("count", build, shape=(spec.shape(), up_to is None, distinct))
        params: dict[str, Any] = {"pid": spec.pid}
        if up_to is not None:
            params["upto"] = up_to
        if spec.kind is not None:
            params["kind"] = spec.kind.encode("utf-8")
        if spec.index_id is not None:
            params["iid"] = spec.index_id
        for name in ("value_eq", "value_lo", "value_hi", "key_lo", "key_hi"):
            value = getattr(spec, name)
            if value is not None:
                params[name] = value
        for i, (iid, value) in enumerate(spec.joins):
            params[f"j{i}i"] = iid
            params[f"j{i}v"] = value
        row = self.fetchone(stmt, params)
        return int(row[0]) if row else 0


class ScanSpec:
    """One range scan, in storage terms (bytes and ints)."""

    __slots__ = (
        "pid",
        "table",
        "kind",
        "index_id",
        "value_eq",
        "value_lo",
        "value_lo_incl",
        "value_hi",
        "value_hi_incl",
        "key_lo",
        "key_lo_incl",
        "key_hi",
        "key_hi_incl",
        "descending",
        "after",
        "seek",
        "joins",
        "body",
        "limit",
        "_params",
        "_sql",
    )

    def __init__(
        self,
        pid: int,
        table: str,
        *,
        kind: str | None = None,
        index_id: int | None = None,
        value_eq: bytes | None = None,
        value_lo: bytes | None = None,
        value_lo_incl: bool = True,
        value_hi: bytes | None = None,
        value_hi_incl: bool = True,
        key_lo: bytes | None = None,
        key_lo_incl: bool = True,
        key_hi: bytes | None = None,
        key_hi_incl: bool = True,
        descending: bool = False,
        after: tuple[bytes | None, bytes] | None = None,
        seek: bytes | None = None,
        joins: tuple[tuple[int, bytes], ...] = (),
        body: bool = True,
        limit: int = 100,
    ) -> None:
        self.pid = pid
        self.table = table
        self.kind = kind
        self.index_id = index_id
        self.value_eq = value_eq
        self.value_lo = value_lo
        self.value_lo_incl = value_lo_incl
        self.value_hi = value_hi
        self.value_hi_incl = value_hi_incl
        self.key_lo = key_lo
        self.key_lo_incl = key_lo_incl
        self.key_hi = key_hi
        self.key_hi_incl = key_hi_incl
        self.descending = descending
        self.after = after
        self.seek = seek
        self.joins = joins
        self.body = body
        self.limit = limit
        # bound values that do not change between the chunks of one scan
        params: dict[str, Any] = {"pid": pid}
        if kind is not None:
            params["kind"] = kind.encode("utf-8")
        if index_id is not None:
            params["iid"] = index_id
        for name, value in (
            ("value_eq", value_eq),
            ("value_lo", value_lo),
            ("value_hi", value_hi),
            ("key_lo", key_lo),
            ("key_hi", key_hi),
        ):
            if value is not None:
                params[name] = value
        for i, (iid, value) in enumerate(joins):
            params[f"j{i}i"] = iid
            params[f"j{i}v"] = value
        self._params = params
        self._sql: dict[tuple[int, bool], _Compiled] = {}

    def shape(self) -> tuple[Any, ...]:
        """Everything that changes the SQL text (not the bound values)."""
        return (
            self.table,
            self.kind is not None,
            self.value_eq is not None,
            self.value_lo is not None and (self.value_lo_incl or 2),
            self.value_hi is not None and (self.value_hi_incl or 2),
            self.key_lo is not None and (self.key_lo_incl or 2),
            self.key_hi is not None and (self.key_hi_incl or 2),
            self.descending,
            self.after is not None and (self.after[0] is not None or 2),
            self.seek is not None,
            len(self.joins),
            self.body,
        )


def _bound(column: Any, name: str, lower: bool, inclusive: bool) -> Any:
    param: Any = sa.bindparam(name)
    if lower:
        return column >= param if inclusive else column > param
    return column <= param if inclusive else column < param


def _build_scan(spec: ScanSpec, count: bool = False, distinct: bool = True) -> Any:
    e = S.entities
    if spec.table == "entities":
        conds = [e.c.partition == sa.bindparam("pid")]
        if spec.kind is not None:
            conds.append(e.c.kind == sa.bindparam("kind"))
        key_col: Any = e.c.key
        value_col: Any = sa.null()
        source: Any = e
    else:
        x = S.index_entries.alias("x")
        # counting needs only the index: every entry belongs to a stored entity
        source = (
            x if count else x.join(e, sa.and_(e.c.partition == x.c.partition, e.c.key == x.c.key))
        )
        for i in range(len(spec.joins)):
            j = S.index_entries.alias(f"j{i}")
            source = source.join(
                j,
                sa.and_(
                    j.c.index_id == sa.bindparam(f"j{i}i"),
                    j.c.partition == x.c.partition,
                    j.c.value == sa.bindparam(f"j{i}v"),
                    j.c.key == x.c.key,
                ),
            )
        conds = [x.c.index_id == sa.bindparam("iid"), x.c.partition == sa.bindparam("pid")]
        key_col = x.c.key
        value_col = x.c.value
        if spec.value_eq is not None:
            conds.append(value_col == sa.bindparam("value_eq"))
        if spec.value_lo is not None:
            conds.append(_bound(value_col, "value_lo", True, spec.value_lo_incl))
        if spec.value_hi is not None:
            conds.append(_bound(value_col, "value_hi", False, spec.value_hi_incl))
    if spec.key_lo is not None:
        conds.append(_bound(key_col, "key_lo", True, spec.key_lo_incl))
    if spec.key_hi is not None:
        conds.append(_bound(key_col, "key_hi", False, spec.key_hi_incl))
    if not count:
        if spec.seek is not None and spec.table != "entities":
            conds.append(
                value_col <= sa.bindparam("seek")
                if spec.descending
                else value_col >= sa.bindparam("seek")
            )
        if spec.after is not None:
            if spec.after[0] is None or spec.table == "entities" or spec.value_eq is not None:
                conds.append(key_col > sa.bindparam("ak"))
            elif spec.descending:
                av: Any = sa.bindparam("av")
                conds.append(value_col <= av)
                conds.append(sa.or_(value_col < av, key_col > sa.bindparam("ak")))
            else:
                conds.append(
                    sa.tuple_(value_col, key_col)
                    > sa.tuple_(sa.bindparam("av"), sa.bindparam("ak"))
                )
    if count:
        stmt = sa.select(key_col).select_from(source).where(*conds)
        return stmt.distinct() if distinct else stmt
    body_col = e.c.body if spec.body else sa.null()
    stmt = sa.select(value_col, key_col, body_col, e.c.multi).select_from(source).where(*conds)
    if spec.table == "entities":
        stmt = stmt.order_by(key_col)
    elif spec.descending:
        stmt = stmt.order_by(value_col.desc(), key_col)
    else:
        stmt = stmt.order_by(value_col, key_col)
    return stmt.limit(sa.bindparam("lim"))
