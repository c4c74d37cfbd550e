"""Read and write scopes (:class:`_Scope`) and the row store's statements in one
transaction (:class:`Txn`): lookups, writes, pending writes, scans."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from . import _schema as S
from ._errors import is_driver_error, translate
from ._scan import ScanSpec, build_scan
from ._statements import IN_CHUNK, Row, _Compiled, _expand, chunk_sizes, padded

if TYPE_CHECKING:
    from .sql import SQLBackend

__all__ = ["Txn"]


_UPSERT_FIELDS = ("pid", "key", "kind", "gk", "v", "body", "multi")


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
            txn.on_commit = None  # the Txn is reused: callbacks belong to one scope
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
                        callbacks = self.txn.on_commit
                        if callbacks:
                            for callback in callbacks:
                                callback()
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

    __slots__ = ("b", "cur", "on_commit")

    def __init__(self, backend: SQLBackend, cursor: Any) -> None:
        self.b = backend
        self.cur = cursor
        # run after this scope commits (caches that must not learn uncommitted state)
        self.on_commit: list[Callable[[], None]] | None = None

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
        sql, arrange = self.b.row_plan(stmt, fields)
        if arrange is not None:
            rows = [arrange(row) for row in rows]
        if len(rows) == 1:  # the common single-entity commit: execute skips the batching
            self.cur.execute(sql, rows[0])
        else:
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

        b = self.b
        if b.shared_connection and b.known_generation is not None:
            # nobody else can move it (see SQLBackend.known_generation)
            return b.known_generation
        row = self.fetchone(self.b.compiled(f"meta_generation_{lock}", build), {})
        generation = int(row[0]) if row else 0
        if b.shared_connection:
            self._after_commit(lambda: setattr(b, "known_generation", generation))
        return generation

    def _after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this write scope commits (never after a rollback)."""
        if self.on_commit is None:
            self.on_commit = []
        self.on_commit.append(callback)

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
        b = self.b
        b.known_generation = None  # unknown until this scope commits (or rolls back)
        generation = self.index_generation() + 1
        stmt = self.b.compiled(
            "meta_generation_set",
            lambda: (
                m.update().where(m.c.name == "index_generation").values(value=sa.bindparam("value"))
            ),
        )
        self.run(stmt, {"value": str(generation)})
        if b.shared_connection:
            # runs after the read's callback above: the committed value wins
            self._after_commit(lambda: setattr(b, "known_generation", generation))

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
            group_key, key = group_keys[0], keys[0]
            blob = self.b.bind_blob
            if blob is not None:
                group_key, key = blob(group_key), blob(key)
            self.cur.execute(sql, {"pid": pid, "g_1": group_key, "k_1": key})
            return self.cur.fetchall()  # type: ignore[no-any-return]
        # one statement (one snapshot): get_multi's lookups hold at most 1,000 keys
        group_keys, keys = padded(group_keys), padded(keys)
        stmt = self.b.compiled("lookup", build, g=len(group_keys), k=len(keys))
        params: dict[str, Any] = {"pid": pid}
        _expand(params, "g", group_keys, self.b.bind_blob)
        _expand(params, "k", keys, self.b.bind_blob)
        return self.fetchall(stmt, params)

    def get_one(self, pid: int, key: bytes) -> tuple[int, bytes] | None:
        """(version, body) of one entity, or None: the plainest lookup."""
        sql = self.b._get_one
        if sql is None:
            e = S.entities
            stmt = self.b.compiled(
                "get_one",
                lambda: sa.select(e.c.version, e.c.body).where(
                    e.c.partition == sa.bindparam("pid"), e.c.key == sa.bindparam("k")
                ),
            )
            # positional (pid, key): no parameter dict for the hottest read
            sql, order = self.b.positional(stmt)
            assert order == ("pid", "k"), order
            self.b._get_one = sql
        blob = self.b.bind_blob
        self.cur.execute(sql, (pid, key if blob is None else blob(key)))
        row = self.cur.fetchone()
        return None if row is None else (row[0], row[1])

    def read_entities(self, pid: int, keys: Sequence[bytes]) -> dict[bytes, tuple[int, bytes]]:
        """Current (version, body) of the entities among ``keys`` that exist."""
        e = S.entities
        rows = self._select_in("read_entities", pid, e.c.key, keys, e.c.version, e.c.body)
        return {bytes(r[0]): (r[1], bytes(r[2])) for r in rows}

    def group_states(self, pid: int, group_keys: Sequence[bytes]) -> dict[bytes, tuple[int, int]]:
        """(version, applied) of existing groups among ``group_keys``."""
        g = S.groups
        rows = self._select_in(
            "group_states", pid, g.c.group_key, group_keys, g.c.version, g.c.applied
        )
        return {bytes(r[0]): (r[1], r[2]) for r in rows}

    def _select_in(
        self,
        name: str,
        pid: int,
        column: Any,
        values: Sequence[bytes],
        *more: Any,
    ) -> list[Row]:
        """``SELECT column, *more FROM column's table WHERE partition = :pid AND column IN
        (values)``, in pieces of at most ``IN_CHUNK`` values, each padded to one of a few
        compiled lengths (``_statements.in_list_size``)."""

        def build() -> Any:
            return sa.select(column, *more).where(
                column.table.c.partition == sa.bindparam("pid"),
                column.in_(sa.bindparam("v", expanding=True)),
            )

        rows: list[Row] = []
        for start in range(0, len(values), IN_CHUNK):
            chunk = padded(values[start : start + IN_CHUNK])
            stmt = self.b.compiled(name, build, v=len(chunk))
            params: dict[str, Any] = {"pid": pid}
            _expand(params, "v", chunk, self.b.bind_blob)
            rows.extend(self.fetchall(stmt, params))
        return rows

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

        def build(size: int) -> Any:
            ins = self.b.insert_factory(g).values(
                [
                    {
                        "partition": sa.bindparam("pid"),
                        "group_key": sa.bindparam(f"gk_{i}"),
                        "version": sa.bindparam(f"b_{i}"),
                        "applied": sa.bindparam(f"b_{i}"),
                    }
                    for i in range(size)
                ]
            )
            return ins.on_conflict_do_update(
                index_elements=[g.c.partition, g.c.group_key],
                set_={
                    "version": ins.excluded.version + g.c.version,
                    "applied": ins.excluded.applied + g.c.applied,
                },
            ).returning(g.c.group_key, g.c.version, g.c.applied, g.c.tokens, g.c.tokens_at)

        if n == 1:
            # the hot path (a commit to one group): positional, no parameter naming loop
            plan = self.b.hot_plans.get("lock_group")
            if plan is None:
                stmt = self.b.compiled("lock_groups", functools.partial(build, 1), n=1)
                plan = self.b.hot_plans["lock_group"] = self.b.row_plan(
                    stmt, ("pid", "gk_0", "b_0")
                )
            sql, arrange = plan
            group = group_keys[0]
            step = 1 if group in bump else 0
            blob = self.b.bind_blob
            row = (pid, group if blob is None else blob(group), step)
            self.cur.execute(sql, row if arrange is None else arrange(row))
            out = {}
            for r in self.cur.fetchall():
                out[bytes(r[0])] = (r[1] - step, r[2] - step, r[3], r[4])
            return out
        # in pieces of a few compiled sizes (_statements.chunk_sizes), in the callers' order
        rows: list[Row] = []
        start = 0
        for size in chunk_sizes(n):
            stmt = self.b.compiled("lock_groups", functools.partial(build, size), n=size)
            params: dict[str, Any] = {"pid": pid}
            for i, gk in enumerate(group_keys[start : start + size]):
                params[f"gk_{i}"] = gk
                params[f"b_{i}"] = 1 if gk in bump else 0
            rows.extend(self.fetchall(stmt, params))
            start += size
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

        if len(rows) == 1:
            # the hot path (a commit of one entity): a plan by name, one execute
            plan = self.b.hot_plans.get("upsert_entity")
            if plan is None:
                plan = self.b.hot_plans["upsert_entity"] = self.b.row_plan(
                    self.b.compiled("upsert_entities", build), _UPSERT_FIELDS
                )
            ((k, kind, gk, v, body, m),) = rows
            kind_bytes = kind.encode("utf-8")
            blob = self.b.bind_blob
            if blob is None:
                params = (pid, k, kind_bytes, gk, v, body, m)
            else:
                params = (pid, blob(k), blob(kind_bytes), blob(gk), v, blob(body), m)
            self.cur.execute(plan[0], params if plan[1] is None else plan[1](params))
            if m:  # a list value: the kind's multi-valued bits, as below
                self._note_kind_multi(pid, {kind_bytes: m})
            return
        stmt = self.b.compiled("upsert_entities", build)
        blob = self.b.bind_blob
        if blob is None:
            encoded = [
                (pid, k, kind.encode("utf-8"), gk, v, body, m) for k, kind, gk, v, body, m in rows
            ]
        else:
            encoded = [
                (pid, blob(k), blob(kind.encode("utf-8")), blob(gk), v, blob(body), m)
                for k, kind, gk, v, body, m in rows
            ]
        self.runrows(stmt, _UPSERT_FIELDS, encoded)
        masks: dict[str, int] = {}
        for _k, kind, _gk, _v, _body, m in rows:
            if m:
                masks[kind] = masks.get(kind, 0) | m
        if masks:
            self._note_kind_multi(pid, {kind.encode("utf-8"): m for kind, m in masks.items()})

    def _note_kind_multi(self, pid: int, masks: dict[bytes, int]) -> None:
        """OR new multi-valued bits into dl_kind_multi (skipping bits known committed)."""
        known = self.b.kind_multi_known
        new = [(k, m) for k, m in masks.items() if m & ~known.get((pid, k), 0)]
        if not new:
            return
        t = S.kind_multi

        def build() -> Any:
            ins = self.b.insert_factory(t).values(
                partition=sa.bindparam("pid"),
                kind=sa.bindparam("kind"),
                multi=sa.bindparam("multi"),
            )
            return ins.on_conflict_do_update(
                index_elements=[t.c.partition, t.c.kind],
                set_={"multi": t.c.multi.op("|")(ins.excluded.multi)},
            )

        stmt = self.b.compiled("note_kind_multi", build)
        self.runmany(stmt, [{"pid": pid, "kind": k, "multi": m} for k, m in new])

        def learn() -> None:
            for k, m in new:
                known[(pid, k)] = known.get((pid, k), 0) | m

        self._after_commit(learn)

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
        if len(rows) > 1:
            # in primary-key order: each insert lands beside the last in the (clustered)
            # index b-tree, which makes a bulk load of many entities faster
            rows = sorted(rows)
        self.runrows(stmt, ("iid", "pid", "v", "k"), self._entry_params(pid, rows))

    def _bind_blobs(self, params: dict[str, Any]) -> None:
        """Rebind the byte strings of a statement's parameters as the backend binds them
        fastest (``bind_blob``: SQLite's bytes go through its adapter lookup, ~0.7 µs each;
        a scan has two to five: kind, value bounds, key bounds, resume position)."""
        blob = self.b.bind_blob
        if blob is not None:
            for name, value in params.items():
                if type(value) is bytes:
                    params[name] = blob(value)

    def _entry_params(
        self, pid: int, rows: Sequence[tuple[int, bytes, bytes]]
    ) -> list[tuple[int, int, Any, Any]]:
        """(index_id, pid, value, key) parameters of index-entry rows, byte strings bound
        as the backend binds them fastest (``bind_blob``)."""
        blob = self.b.bind_blob
        if blob is None:
            return [(i, pid, v, k) for i, v, k in rows]
        return [(i, pid, blob(v), blob(k)) for i, v, k in rows]

    def move_index_entries(self, pid: int, rows: Sequence[tuple[int, bytes, bytes, bytes]]) -> None:
        """Change the value of index entries: rows of (index_id, old value, new value, key)."""
        x = S.index_entries
        plan = self.b.hot_plans.get("move_entries")
        if plan is None:
            stmt = self.b.compiled(
                "move_entries",
                lambda: (
                    x.update()
                    .where(
                        x.c.index_id == sa.bindparam("iid"),
                        x.c.partition == sa.bindparam("pid"),
                        x.c.value == sa.bindparam("old"),
                        x.c.key == sa.bindparam("k"),
                    )
                    .values(value=sa.bindparam("new"))
                ),
            )
            plan = self.b.hot_plans["move_entries"] = self.b.row_plan(
                stmt, ("iid", "pid", "old", "new", "k")
            )
        (sql, arrange) = plan
        blob = self.b.bind_blob
        if blob is None:
            params = [(i, pid, o, n, k) for i, o, n, k in rows]
        else:
            params = [(i, pid, blob(o), blob(n), blob(k)) for i, o, n, k in rows]
        if arrange is not None:
            params = [arrange(row) for row in params]
        if len(params) == 1:
            self.cur.execute(sql, params[0])
        else:
            self.cur.executemany(sql, params)

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
        self.runrows(stmt, ("iid", "pid", "v", "k"), self._entry_params(pid, rows))

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

    def first_pending_due(self) -> float | None:
        """The earliest due time of any pending write (None if there is none)."""
        p = S.pending
        stmt = self.b.compiled(
            "pending_first_due", lambda: sa.select(sa.func.min(p.c.due)).select_from(p)
        )
        row = self.fetchone(stmt, {})
        return None if row is None or row[0] is None else float(row[0])

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
                "scan", lambda: build_scan(spec), shape=spec.shape()
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
        self._bind_blobs(params)
        self.cur.execute(sql, params)
        # drivers return bytes for BLOB/bytea; rows go out as they come
        return self.cur.fetchall()  # type: ignore[no-any-return]

    def count(
        self, spec: ScanSpec, up_to: int | None, multi_bits: int = -1, kind: str | None = None
    ) -> int:
        """How many keys a scan would return (stopping at ``up_to``).

        An entity has several entries in the range only over a property in ``multi_bits``
        that holds several values in it (``-1``: any). One statement: when the kind has
        never had such a value (dl_kind_multi) the entries are counted directly, else each
        entity once (COUNT(DISTINCT key)); CASE evaluates only the branch it takes.
        ``kind`` is the scanned kind (required for the direct count).
        """

        def counted(distinct: bool) -> Any:
            inner = build_scan(spec, count=True, distinct=distinct)
            if up_to is not None:
                inner = inner.limit(sa.bindparam("upto"))
            return sa.select(sa.func.count()).select_from(inner.subquery()).scalar_subquery()

        def build() -> Any:
            if not multi_bits:
                return sa.select(counted(False))
            if kind is None or multi_bits == -1:
                return sa.select(counted(True))
            t = S.kind_multi
            mask = (
                sa.select(t.c.multi)
                .where(t.c.partition == sa.bindparam("pid"), t.c.kind == sa.bindparam("mkind"))
                .scalar_subquery()
            )
            repeats = sa.func.coalesce(mask, 0).op("&")(sa.bindparam("bits")) != 0
            return sa.select(sa.case((repeats, counted(True)), else_=counted(False)))

        direct = multi_bits == 0
        case = not direct and multi_bits != -1 and kind is not None
        stmt = self.b.compiled("count", build, shape=(spec.shape(), up_to is None, direct, case))
        params: dict[str, Any] = {"pid": spec.pid}
        if case:
            assert kind is not None
            params["bits"] = multi_bits
            params["mkind"] = kind.encode("utf-8")
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
        self._bind_blobs(params)
        row = self.fetchone(stmt, params)
        return int(row[0]) if row else 0
