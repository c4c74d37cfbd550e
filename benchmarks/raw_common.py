"""The raw-SQL baseline shared by SQLite and PostgreSQL: the floor of the design in Python.

The same logical work as datastore_lite, written by hand: the same tables (DDL compiled
from ``datastore_lite.backends._schema``), byte-identical rows (keys, msgpack bodies and
index entries come from the library's pure encoders ``_ordering``/``_codec``), the same
statement per step and nothing else:

* a write: ``BEGIN``; read the index generation (DESIGN.md §10); lock-and-bump the entity
  groups in one upsert (``RETURNING`` the new versions); read the old bodies; upsert the
  entities; delete/insert the index-row difference; ``COMMIT``.
* a get: one statement, the group row (version, applied) joined to the entity, as a strong
  read of this design needs.
* a query: one statement, an index range scan joined to ``dl_entities`` (BENCHMARKS.md);
  a page: a keyset range on ``dl_entities (partition, kind, key)``.
* a transaction: the read above, then the write with an optimistic version check (the
  group's new version must be the one read plus one, else roll back: contention).

Sub-classes supply the connection, the DDL and the dialect's few differences.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import sqlalchemy as sa

from datastore_lite._codec import decode_body, encode_body
from datastore_lite._ordering import (
    decode_path,
    encode_path,
    encode_path_value,
    encode_value,
    invert,
    prefix_end,
)
from datastore_lite._registry import builtin_definition
from datastore_lite.backends import _schema
from datastore_lite.indexes import parse_index_yaml

from .data import EXCLUDED, INDEX_YAML, PhotoRecord

__all__ = ["Aborted", "IndexRow", "RawStore", "photo_rows"]

IndexRow = tuple[int, bytes, bytes]
EntityRow = tuple[bytes, Any, bytes, bytes, int]  # key, kind, group, body, multi
_NULL = encode_value(None)
_PATH_END = b"\x00\x00"

# The library's storage format is still evolving: follow its schema rather than copy it.
_HAS_MULTI = "multi" in _schema.entities.c


def _kind_value(column: sa.Column[Any]) -> Callable[[str], Any]:
    """How a kind is stored in ``column``: UTF-8 bytes in a binary column, else text."""
    if isinstance(column.type, sa.LargeBinary):
        return lambda kind: kind.encode("utf-8")
    return lambda kind: kind


_entity_kind = _kind_value(_schema.entities.c.kind)
_index_kind = _kind_value(_schema.indexes.c.kind)
KIND_PHOTO, KIND_USER, KIND_COUNTER = (_entity_kind(k) for k in ("Photo", "User", "Counter"))
try:  # the bit of a multi-valued property in dl_entities.multi (else a 0/1 flag)
    from datastore_lite.indexes import property_bit

    MULTI_TAGS = property_bit("tags")
except ImportError:  # pragma: no cover - older library
    MULTI_TAGS = 1

# index ids of the raw store, registered in dl_indexes under the library's definitions
ANCESTOR_DATE, TAGS_DATE = 1, 2
BUILTIN = {
    ("Counter", "n"): 3,
    ("Photo", "caption"): 4,
    ("Photo", "date"): 5,
    ("Photo", "likes"): 6,
    ("Photo", "tags"): 7,
    ("Photo", "user"): 8,
    ("User", "name"): 9,
}
IX_CAPTION = BUILTIN[("Photo", "caption")]
IX_DATE = BUILTIN[("Photo", "date")]
IX_LIKES = BUILTIN[("Photo", "likes")]
IX_TAGS = BUILTIN[("Photo", "tags")]
IX_USER = BUILTIN[("Photo", "user")]
IX_NAME = BUILTIN[("User", "name")]
IX_N = BUILTIN[("Counter", "n")]


class Aborted(Exception):
    """The optimistic version check failed: another transaction wrote the group."""


def key_and_group(path: tuple[Any, ...]) -> tuple[bytes, bytes]:
    """A key's encoding and its entity group's (the root's): a prefix of it, encoded once."""
    group = encode_path(path[:2])
    return (group + encode_path(path[2:]) if len(path) > 2 else group), group


def photo_rows(rec: PhotoRecord) -> tuple[EntityRow, list[IndexRow]]:
    """The entity row and the ~10 index rows of one photo, as datastore_lite writes them."""
    key, group = key_and_group(("User", rec.user, "Photo", rec.id))
    body = encode_body(rec.properties(), EXCLUDED)
    date = encode_value(rec.date)
    dinv = invert(date)
    # legacy profile: an empty list indexes as one null (SEMANTICS.md §2.2)
    tags = [encode_value(t) for t in rec.tags] or [_NULL]
    rows = [
        (IX_USER, encode_value(rec.user), key),
        (IX_CAPTION, encode_value(rec.caption), key),
        (IX_DATE, date, key),
        (IX_LIKES, encode_value(rec.likes), key),
        # Photo (ancestor: yes, date desc): one entry per ancestor, itself included
        (ANCESTOR_DATE, group + _PATH_END + dinv, key),
        (ANCESTOR_DATE, key + _PATH_END + dinv, key),
    ]
    for tag in tags:
        rows.append((IX_TAGS, tag, key))
        rows.append((TAGS_DATE, tag + dinv, key))  # Photo (tags, date desc)
    return (key, KIND_PHOTO, group, body, MULTI_TAGS if len(tags) > 1 else 0), rows


def user_rows(name: str) -> tuple[EntityRow, list[IndexRow]]:
    key = encode_path(("User", name))
    body = encode_body({"name": name}, frozenset())
    return (key, KIND_USER, key, body, 0), [(IX_NAME, encode_value(name), key)]


def counter_rows(name: str, n: int) -> tuple[EntityRow, list[IndexRow]]:
    key = encode_path(("Counter", name))
    body = encode_body({"n": n}, frozenset())
    return (key, KIND_COUNTER, key, body, 0), [(IX_N, encode_value(n), key)]


def _schema_ddl(dialect: sa.engine.Dialect) -> list[str]:
    """CREATE TABLE / CREATE INDEX statements of the library's tables, for ``dialect``."""
    out = []
    for table in _schema.metadata.sorted_tables:
        out.append(str(sa.schema.CreateTable(table).compile(dialect=dialect)).strip())
        for index in table.indexes:
            out.append(str(sa.schema.CreateIndex(index).compile(dialect=dialect)).strip())
    return out


def _index_definitions() -> list[tuple[int, str, Any, bool, str, bool]]:
    """(id, definition, kind, ancestor, properties JSON, builtin) rows for dl_indexes."""
    import json

    rows = []
    composite = parse_index_yaml(INDEX_YAML)
    for index_id, index in zip((ANCESTOR_DATE, TAGS_DATE), composite):
        props = json.dumps([[p.name, p.direction] for p in index.properties])
        kind = _index_kind(index.kind)
        rows.append((index_id, index.definition, kind, index.ancestor, props, False))
    for (kind_name, prop), index_id in BUILTIN.items():
        props = json.dumps([[prop, "asc"]])
        kind = _index_kind(kind_name)
        rows.append((index_id, builtin_definition(kind_name, prop), kind, False, props, True))
    return rows


class RawStore:
    """Hand-written SQL over one DB-API connection; sub-classes set the dialect parts."""

    name = "raw"
    #: statement opening a write transaction
    begin_sql = "BEGIN"
    #: suffix of the index-generation read inside a write (PostgreSQL: a share lock)
    generation_lock = ""
    #: one connection for every thread (SQLite in memory): statements take ``lock``
    shared = False

    def __init__(self, conn: Any, project: str = "bench") -> None:
        self.conn = conn
        self.project = project
        self.lock: threading.Lock | None = threading.Lock() if self.shared else None
        self.pid = 1
        # what byte strings are bound as (RawSQLiteStore: bytearray, as the library does;
        # bytes() of a bytes object is that object)
        self.blob: Callable[[bytes], Any] = bytes
        self._sql_cache: dict[tuple[str, int, int], str] = {}
        self._entity_cols = '(partition, "key", kind, group_key, version, body{})'.format(
            ", multi" if _HAS_MULTI else ""
        )
        marks = ", ".join(["?"] * (7 if _HAS_MULTI else 6))
        multi_set = ", multi = excluded.multi" if _HAS_MULTI else ""
        self.sql_upsert_entity = self.q(
            f"INSERT INTO dl_entities {self._entity_cols} VALUES ({marks}) "
            'ON CONFLICT (partition, "key") DO UPDATE SET kind = excluded.kind, '
            "group_key = excluded.group_key, version = excluded.version, "
            f"body = excluded.body{multi_set}"
        )
        self.sql_generation = self.q(
            f"SELECT value FROM dl_meta WHERE name = 'index_generation'{self.generation_lock}"
        )
        self.sql_insert_index = self.q(
            'INSERT INTO dl_index_entries (index_id, partition, value, "key") VALUES (?, ?, ?, ?)'
        )
        self.sql_delete_index = self.q(
            "DELETE FROM dl_index_entries WHERE index_id = ? AND partition = ? "
            'AND value = ? AND "key" = ?'
        )
        # a strong read outside a transaction: with every write applied at commit
        # ("strong", as these runs use) no group can lag, so the primary key is enough
        self.sql_get = self.q('SELECT body FROM dl_entities WHERE partition = ? AND "key" = ?')
        # a transaction's read: the group's version too (optimistic concurrency)
        self.sql_get_versioned = self.q(
            "SELECT g.version, g.applied, e.body FROM dl_groups g LEFT JOIN dl_entities e "
            'ON e.partition = g.partition AND e.group_key = g.group_key AND e."key" = ? '
            "WHERE g.partition = ? AND g.group_key = ?"
        )
        self.sql_range = self.q(
            'SELECT e."key", e.body FROM dl_index_entries x JOIN dl_entities e '
            'ON e.partition = x.partition AND e."key" = x."key" '
            "WHERE x.index_id = ? AND x.partition = ? AND x.value >= ? AND x.value < ? "
            'ORDER BY x.value, x."key" LIMIT ?'
        )
        self.sql_page = self.q(
            'SELECT "key", body FROM dl_entities WHERE partition = ? AND kind = ? '
            'AND "key" > ? ORDER BY "key" LIMIT ?'
        )
        self.sql_count = self.q(
            "SELECT count(*) FROM dl_index_entries WHERE index_id = ? AND partition = ? "
            "AND value >= ? AND value < ?"
        )

    # -- dialect hooks -----------------------------------------------------------------------

    def q(self, sql: str) -> str:
        """Translate ``?`` placeholders to the driver's style."""
        return sql

    def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def clone(self) -> RawStore:
        """A store on the same database for another thread (itself when shared)."""
        raise NotImplementedError

    def maintain(self) -> None:
        """Untimed upkeep during loads (PostgreSQL: VACUUM (ANALYZE), see stores.vacuum)."""

    def flush(self) -> None:
        """Untimed, before a timed step: write back the load, warm the cache (stores.flush_pg)."""

    def settle(self) -> None:
        """Nothing is pending in hand-written SQL: every write is visible at once."""

    def close(self) -> None:
        self.conn.close()

    # -- plumbing ----------------------------------------------------------------------------

    def _guard(self) -> Any:
        return self.lock if self.lock is not None else nullcontext()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, params)

    @contextmanager
    def write(self) -> Iterator[None]:
        """One database transaction, with the index generation read as the library does."""
        with self._guard():
            self.execute(self.begin_sql)
            try:
                self.execute(self.sql_generation).fetchone()
                yield
            except BaseException:
                self.execute("ROLLBACK")
                raise
            self.execute("COMMIT")

    def _groups_sql(self, n: int) -> str:
        sql = self._sql_cache.get(("groups", n, 0))
        if sql is None:
            values = ", ".join(["(?, ?, 1, 1)"] * n)
            sql = self._sql_cache[("groups", n, 0)] = self.q(
                f"INSERT INTO dl_groups (partition, group_key, version, applied) VALUES {values} "
                "ON CONFLICT (partition, group_key) DO UPDATE SET "
                "version = dl_groups.version + 1, applied = dl_groups.version + 1 "
                "RETURNING group_key, version"
            )
        return sql

    # -- schema ------------------------------------------------------------------------------

    def _create_schema(self, ddl: list[str]) -> None:
        for statement in ddl:
            self.execute(statement)
        self.execute(
            self.q("INSERT INTO dl_meta (name, value) VALUES (?, ?), (?, ?), (?, ?)"),
            (
                "schema_version",
                str(_schema.SCHEMA_VERSION),
                "secret",
                "00" * 32,
                "index_generation",
                "1",
            ),
        )
        self.execute(
            self.q("INSERT INTO dl_counters (name, value) VALUES (?, 0), (?, 0)"),
            ("scattered", "sequential"),
        )
        self.execute(
            self.q(
                'INSERT INTO dl_partitions (id, project, "database", namespace) '
                "VALUES (?, ?, '', '')"
            ),
            (self.pid, self.project),
        )
        self.executemany(
            self.q(
                "INSERT INTO dl_indexes (id, definition, kind, ancestor, properties, builtin, "
                "state) VALUES (?, ?, ?, ?, ?, ?, 'serving')"
            ),
            _index_definitions(),
        )

    # -- writes ------------------------------------------------------------------------------

    def _write_entities(self, items: Sequence[tuple[EntityRow, list[IndexRow]]]) -> None:
        """Upsert entities (any number of groups) with their index rows: one commit."""
        pid = self.pid
        blob = self.blob
        groups = sorted({row[2] for row, _ in items})  # lock in one fixed order
        group_params: list[Any] = []
        for group in groups:
            group_params += (pid, blob(group))
        keys = [row[0] for row, _ in items]
        with self.write():
            versions = {
                bytes(g): v
                for g, v in self.execute(self._groups_sql(len(groups)), group_params).fetchall()
            }
            old = self.execute(self._old_sql(len(keys)), [pid, *(blob(k) for k in keys)]).fetchall()
            add: list[tuple[int, int, bytes, bytes]] = []
            remove: list[tuple[int, int, bytes, bytes]] = []
            entity_params: list[tuple[Any, ...]] = []
            old_rows = self._old_index_rows(old) if old else {}
            for (key, kind, group, body, multi), index_rows in items:
                new = {(i, v, k) for i, v, k in index_rows}
                before = old_rows.get(key, set())
                add.extend((i, pid, blob(v), blob(k)) for i, v, k in new - before)
                remove.extend((i, pid, blob(v), blob(k)) for i, v, k in before - new)
                version = versions[group]
                row = (pid, blob(key), blob(kind), blob(group), version, blob(body))
                entity_params.append(row + (multi,) if _HAS_MULTI else row)
            if remove:
                self.executemany(self.sql_delete_index, remove)
            self.executemany(self.sql_upsert_entity, entity_params)
            if add:
                self.executemany(self.sql_insert_index, add)

    def _old_index_rows(self, old: list[tuple[Any, Any]]) -> dict[bytes, set[IndexRow]]:
        """Index rows of existing entities, recomputed from their bodies (updates only)."""
        out: dict[bytes, set[IndexRow]] = {}
        for raw_key, raw_body in old:
            key = bytes(raw_key)
            path = decode_path(key)
            props, _exclude = decode_body(bytes(raw_body))
            if path[-2] == "Photo":
                fields = {k: v for k, v in props.items() if k != "user"}
                rows = photo_rows(PhotoRecord(path[1], path[3], **fields))[1]
            elif path[-2] == "Counter":
                rows = counter_rows(path[-1], props["n"])[1]
            else:
                rows = user_rows(path[-1])[1]
            out[key] = set(rows)
        return out

    def put_users(self, names: Sequence[str]) -> None:
        self._write_entities([user_rows(n) for n in names])

    def ref(self, path: tuple[Any, ...]) -> tuple[Any, ...]:
        """Keys stay paths: encoding them is the library's work, so it is timed."""
        return path

    def prepare_photos(self, records: Sequence[PhotoRecord]) -> Sequence[PhotoRecord]:
        return records

    def put_prepared(self, records: Sequence[PhotoRecord]) -> None:
        """W1 (a batch of 500) and W2 (one): rows built here, inside the timed part."""
        self._write_entities([photo_rows(r) for r in records])

    def put_counters(self, names: Sequence[str], n: int = 0) -> None:
        self._write_entities([counter_rows(name, n) for name in names])

    # -- reads -------------------------------------------------------------------------------

    def get(self, path: tuple[Any, ...]) -> dict[str, Any] | None:
        """W3: one primary-key lookup (strong, outside a transaction: see sql_get)."""
        with self._guard():
            row = self.execute(self.sql_get, (self.pid, self.blob(encode_path(path)))).fetchone()
        return None if row is None else decode_body(bytes(row[0]))[0]

    def get_multi(self, paths: Sequence[tuple[Any, ...]]) -> int:
        """W3: one ``key IN (...)`` lookup; results in request order, as the API returns."""
        keys = [encode_path(p) for p in paths]
        with self._guard():
            blob = self.blob
            rows = self.execute(
                self._old_sql(len(keys)), [self.pid, *(blob(k) for k in keys)]
            ).fetchall()
        bodies = {bytes(k): bytes(b) for k, b in rows}
        found = 0
        for key in keys:
            body = bodies.get(key)
            if body is not None:
                decode_body(body)
                found += 1
        return found

    def _range(self, index_id: int, low: bytes, high: bytes | None, limit: int) -> int:
        assert high is not None
        with self._guard():
            params = (index_id, self.pid, self.blob(low), self.blob(high), limit)
            rows = self.execute(self.sql_range, params).fetchall()
        for key, body in rows:
            decode_path(bytes(key))
            decode_body(bytes(body))
        return len(rows)

    def ancestor_query(self, user: tuple[Any, ...], limit: int = 20) -> int:
        """W4: a user's photos by date desc: a prefix scan of the ancestor index."""
        lead = encode_path_value(user)
        return self._range(ANCESTOR_DATE, lead, prefix_end(lead), limit)

    def tag_query(self, tag: str, limit: int = 20) -> int:
        """W5: ``tags = tag`` by date desc: a prefix scan of the (tags, date desc) index."""
        prefix = encode_value(tag)
        return self._range(TAGS_DATE, prefix, prefix_end(prefix), limit)

    def page(self, cursor: bytes | None, size: int = 100) -> tuple[int, bytes | None]:
        """W6: one keyset page of Photos; returns (entities, cursor or None at the end)."""
        with self._guard():
            params = (self.pid, self.blob(KIND_PHOTO), self.blob(cursor or b""), size)
            rows = self.execute(self.sql_page, params).fetchall()
        for key, body in rows:
            decode_path(bytes(key))
            decode_body(bytes(body))
        if len(rows) < size:
            return len(rows), None
        return len(rows), bytes(rows[-1][0])

    def count_likes_below(self, bound: int) -> int:
        """W9: ``count()`` of ``likes < bound``: a count over the built-in index range."""
        with self._guard():
            row = self.execute(
                self.sql_count,
                (IX_LIKES, self.pid, self.blob(b"\x20"), self.blob(encode_value(bound))),
            ).fetchone()
        return int(row[0])

    def read_counter(self, counter: tuple[Any, ...]) -> int:
        props = self.get(counter)
        return int(props["n"]) if props else 0

    def _old_sql(self, n: int) -> str:
        sql = self._sql_cache.get(("old", n, 0))
        if sql is None:
            marks = ", ".join(["?"] * n)
            sql = self._sql_cache[("old", n, 0)] = self.q(
                f'SELECT "key", body FROM dl_entities WHERE partition = ? AND "key" IN ({marks})'
            )
        return sql

    # -- transactions ------------------------------------------------------------------------

    def increment(self, counter: tuple[Any, ...]) -> None:
        """W7: one optimistic read-modify-write transaction; raises Aborted on contention."""
        name = counter[1]
        blob = self.blob
        key = encode_path(counter)
        bkey = blob(key)
        pid = self.pid
        with self._guard():
            row = self.execute(self.sql_get_versioned, (bkey, pid, bkey)).fetchone()
        seen = row[0] if row is not None else 0
        n = 0
        if row is not None and row[2] is not None:
            n = decode_body(bytes(row[2]))[0]["n"]
        (entity, new_rows) = counter_rows(name, n + 1)
        old_rows = counter_rows(name, n)[1] if row is not None and row[2] is not None else []
        with self.write():
            (version,) = self.execute(self._groups_sql(1), (pid, bkey)).fetchone()[1:]
            if version != seen + 1:
                raise Aborted()
            # the version check proves the body read above is still current
            params: tuple[Any, ...] = (
                pid,
                bkey,
                blob(KIND_COUNTER),
                bkey,
                version,
                blob(entity[3]),
            )
            self.execute(self.sql_upsert_entity, params + ((0,) if _HAS_MULTI else ()))
            for index_id, value, _k in old_rows:  # a counter entry is keyed by the counter
                self.execute(self.sql_delete_index, (index_id, pid, blob(value), bkey))
            for index_id, value, _k in new_rows:
                self.execute(self.sql_insert_index, (index_id, pid, blob(value), bkey))

    def increment_retrying(
        self, counter: tuple[Any, ...], sleep: Callable[[float], None] = time.sleep
    ) -> int:
        """W8: increment until it commits, with run_in_transaction's backoff; returns retries."""
        retries = 0
        delay = 0.1
        while True:
            try:
                self.increment(counter)
                return retries
            except Aborted:
                retries += 1
                sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)
