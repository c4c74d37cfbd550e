"""The three implementations a workload runs on, behind one small interface.

* ``lite``: datastore_lite through its public API only (``Client``, ``Entity``, queries,
  transactions);
* ``emulator``: Google's Datastore emulator through the official ``google-cloud-datastore``
  client (the same calls: datastore_lite copies that API);
* ``raw``: hand-written SQL (:mod:`benchmarks.raw_sqlite`, :mod:`benchmarks.raw_postgres`).

A :class:`StoreSpec` names a store so another process can open it again (W8's processes,
W10's isolated loads). :class:`Locations` makes and removes the databases of a run.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .data import EXCLUDED, PhotoRecord

__all__ = [
    "BACKENDS",
    "ApiStore",
    "Locations",
    "Store",
    "StoreSpec",
    "open_store",
]

BACKENDS = ("sqlite-memory", "sqlite", "postgresql")
Path = tuple[Any, ...]


class Store(Protocol):
    """What a workload needs from an implementation."""

    name: str

    def ref(self, path: Path) -> Any: ...
    def prepare_photos(self, records: Sequence[PhotoRecord]) -> Any: ...
    def put_prepared(self, prepared: Any) -> None: ...
    def put_users(self, names: Sequence[str]) -> None: ...
    def put_counters(self, names: Sequence[str], n: int = 0) -> None: ...
    def get(self, ref: Any) -> Any: ...
    def get_multi(self, refs: Sequence[Any]) -> int: ...
    def ancestor_query(self, user: Any, limit: int = 20) -> int: ...
    def tag_query(self, tag: str, limit: int = 20) -> int: ...
    def page(self, cursor: Any, size: int = 100) -> tuple[int, Any]: ...
    def count_likes_below(self, bound: int) -> int: ...
    def increment(self, counter: Any) -> None: ...
    def increment_retrying(self, counter: Any) -> int: ...
    def read_counter(self, counter: Any) -> int: ...
    def clone(self) -> Store: ...
    def maintain(self) -> None: ...
    def flush(self) -> None: ...
    def settle(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class StoreSpec:
    """Enough to open a store again, in this process or another (picklable).

    Args:
        impl: ``lite``, ``raw`` or ``emulator``.
        backend: ``sqlite-memory``, ``sqlite``, ``postgresql`` or ``emulator``.
        location: lite: the database URL; raw: a SQLite path or a libpq URL; emulator:
            ``host:port``.
        index_yaml: The run's ``index.yaml`` (lite).
        consistency: lite's ``consistency=``.
        create: raw: create the tables (False when opening an existing store again).
    """

    impl: str
    backend: str
    location: str
    index_yaml: str = ""
    consistency: str = "strong"
    project: str = "bench"
    create: bool = True

    def reopen(self) -> StoreSpec:
        return replace(self, create=False)


class ApiStore:
    """A google-cloud-datastore style client: datastore_lite's or the official one."""

    def __init__(
        self,
        name: str,
        client: Any,
        entity_cls: type[Any],
        aborted: tuple[type[BaseException], ...],
        property_filter: Callable[..., Any],
        *,
        lite: bool,
        maintain: Callable[[], None] | None = None,
        flush: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.client = client
        self.entity_cls = entity_cls
        self.aborted = aborted
        # The keyword filter form: tuples in ``filters=`` draw the official client's
        # positional-arguments UserWarning (SEMANTICS.md §8), printed from every W10 child.
        self.property_filter = property_filter
        self.lite = lite
        self._maintain = maintain
        self._flush = flush

    def ref(self, path: Path) -> Any:
        return self.client.key(*path)

    def _photo(self, rec: PhotoRecord) -> Any:
        entity = self.entity_cls(
            self.client.key("User", rec.user, "Photo", rec.id),
            exclude_from_indexes=tuple(EXCLUDED),  # the official client wants a tuple
        )
        entity.update(rec.properties())
        return entity

    def prepare_photos(self, records: Sequence[PhotoRecord]) -> list[Any]:
        """Entities built outside the timed part (that is the application's work)."""
        return [self._photo(r) for r in records]

    def put_prepared(self, prepared: list[Any]) -> None:
        if len(prepared) == 1:
            self.client.put(prepared[0])
        else:
            self.client.put_multi(prepared)

    def put_users(self, names: Sequence[str]) -> None:
        entities = []
        for name in names:
            entity = self.entity_cls(self.client.key("User", name))
            entity["name"] = name
            entities.append(entity)
        self.client.put_multi(entities)

    def put_counters(self, names: Sequence[str], n: int = 0) -> None:
        entities = []
        for name in names:
            entity = self.entity_cls(self.client.key("Counter", name))
            entity["n"] = n
            entities.append(entity)
        self.client.put_multi(entities)

    def get(self, ref: Any) -> Any:
        return self.client.get(ref)

    def get_multi(self, refs: Sequence[Any]) -> int:
        return len(self.client.get_multi(refs))

    def ancestor_query(self, user: Any, limit: int = 20) -> int:
        query = self.client.query(kind="Photo", ancestor=user, order=["-date"])
        return sum(1 for _ in query.fetch(limit=limit))

    def tag_query(self, tag: str, limit: int = 20) -> int:
        query = self.client.query(kind="Photo", order=["-date"])
        query.add_filter(filter=self.property_filter("tags", "=", tag))
        return sum(1 for _ in query.fetch(limit=limit))

    def page(self, cursor: Any, size: int = 100) -> tuple[int, Any]:
        iterator = self.client.query(kind="Photo").fetch(limit=size, start_cursor=cursor)
        page = next(iterator.pages)
        n = sum(1 for _ in page)
        token = iterator.next_page_token
        return n, (token if n == size else None)

    def count_likes_below(self, bound: int) -> int:
        query = self.client.query(kind="Photo")
        query.add_filter(filter=self.property_filter("likes", "<", bound))
        aggregation = self.client.aggregation_query(query).count(alias="total")
        for batch in aggregation.fetch():
            for result in batch:
                return int(result.value)
        return 0

    def _rmw(self, counter: Any) -> None:
        entity = self.client.get(counter)
        if entity is None:
            entity = self.entity_cls(counter)
            entity["n"] = 0
        entity["n"] += 1
        self.client.put(entity)

    def increment(self, counter: Any) -> None:
        """W7: one read-modify-write transaction (no retry)."""
        with self.client.transaction():
            self._rmw(counter)

    def increment_retrying(self, counter: Any) -> int:
        """W8: increment until committed; returns the number of retries."""
        if self.lite:
            attempts = 0

            def attempt() -> None:
                nonlocal attempts
                attempts += 1
                self._rmw(counter)

            self.client.run_in_transaction(attempt, retries=100_000)
            return attempts - 1
        # the official client has no run_in_transaction: the same loop and backoff
        retries = 0
        delay = 0.1
        while True:
            try:
                self.increment(counter)
                return retries
            except self.aborted:
                retries += 1
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)

    def read_counter(self, counter: Any) -> int:
        entity = self.client.get(counter)
        return int(entity["n"]) if entity is not None else 0

    def clone(self) -> ApiStore:
        return self  # a client is shared by threads (its batch stack is per thread)

    def maintain(self) -> None:
        """What the database's autovacuum would do during a load (see :func:`vacuum`)."""
        if self._maintain is not None:
            self._maintain()

    def flush(self) -> None:
        """Before a timed step: write what a load left dirty to disk and read the store into
        the page cache (see :func:`flush_pg`, :func:`flush_sqlite`)."""
        if self._flush is not None:
            self._flush()

    def settle(self) -> None:
        """Make every pending write visible now (lite's eventual consistency; untimed)."""
        if self.lite:
            self.client.consistency.apply_all()

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            close()


def _open_lite(spec: StoreSpec) -> ApiStore:
    from datastore_lite import Client, Entity
    from datastore_lite.exceptions import Aborted
    from datastore_lite.query import PropertyFilter

    client = Client(
        project=spec.project,
        url=spec.location,
        index_yaml=spec.index_yaml or None,
        consistency=spec.consistency,
        seed=1,
    )
    maintain = flush = None
    if spec.backend == "postgresql":
        libpq_url = spec.location.replace("postgresql+psycopg://", "postgresql://", 1)

        def maintain() -> None:
            vacuum(libpq_url)

        def flush() -> None:
            flush_pg(libpq_url)

    elif spec.backend == "sqlite":
        path = spec.location.split("sqlite:///", 1)[1]

        def maintain() -> None:
            checkpoint(path)

        def flush() -> None:
            flush_sqlite(path)

    return ApiStore(
        "lite",
        client,
        Entity,
        (Aborted,),
        PropertyFilter,
        lite=True,
        maintain=maintain,
        flush=flush,
    )


# autovacuum's work on a production server: statistics, and for insert-only tables
# (PostgreSQL >= 13, autovacuum_vacuum_insert_threshold) the visibility map and hint bits
MAINTAIN_SQL = "VACUUM (ANALYZE) dl_entities, dl_index_entries, dl_groups, dl_pending"


def vacuum(libpq_url: str) -> None:
    """``VACUUM (ANALYZE)`` a store's tables, as autovacuum would during a load (untimed).

    The benchmark server runs with ``autovacuum = off``, and even with it on, a fresh
    table is analyzed only after autovacuum's next nap (60 s). Without statistics the
    planner serves ``key IN (500 keys)`` with a partition scan and a filter: 586 ms per
    batch at 15,700 entities instead of 0.65 ms, so loads turn quadratic for datastore_lite
    and the raw baseline alike. The harness therefore vacuums and analyzes at each 25% of
    growth, as autovacuum's thresholds (10% + 50 rows to analyze; since PostgreSQL 13, 20%
    + 1,000 inserted rows to vacuum) would on a production server. The vacuum matters to
    queries: without a visibility map an index-only scan of ``dl_index_entries`` visits
    the table for every entry (W4 at 100k: 21 heap fetches and 103 buffers per query, 0
    and 88 after it), and the first reader of each fresh row dirties its page with hint
    bits, which the buffer manager must write back to evict it once the data outgrows
    ``shared_buffers``.
    """
    import psycopg

    with psycopg.connect(libpq_url, autocommit=True) as conn:
        conn.execute(MAINTAIN_SQL)


# The operating system of the benchmark machines pages out what nobody touched for a
# minute (DAMON's proactive reclaim: kdamond, action "pageout", min age 12 x 5 s). A load
# of 900k photos takes minutes, so by its end most of the store is no longer in memory and
# a query for a random user reads from disk: measured on a 1M-photo SQLite file, the W4
# statement alone took 3.76 ms per query with the file idle for over a minute (768 MB read
# from disk in 2,500 queries) and 0.22 ms right after the file was read once (4 MB read).
# A server does not drop its page cache after a minute, so each store is read into the
# page cache after its load (untimed), lite and raw alike.


def flush_pg(libpq_url: str) -> None:
    """``CHECKPOINT``, then read the store's tables and indexes into the OS page cache.

    A load of 900k photos leaves gigabytes of dirty buffers and WAL; the checkpoint that
    writes them (``max_wal_size``, ``checkpoint_timeout``) would otherwise run beside the
    timed queries on a 2-core machine. ``CHECKPOINT`` needs superuser or ``pg_checkpoint``
    and ``pg_prewarm`` an extension; without them those parts are skipped (the harness's
    default server account is a superuser). See the note above on the page cache.
    """
    import psycopg

    with psycopg.connect(libpq_url, autocommit=True) as conn:
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            pass
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm SCHEMA public")
        except psycopg.Error:
            return
        conn.execute(
            "SELECT public.pg_prewarm(c.oid, 'read') FROM pg_class c "
            "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'i')"
        )


def flush_sqlite(path: str) -> None:
    """Checkpoint the write-ahead log, ``sync``, and read the file into the page cache.

    The operating system writes a load's pages back in the background for tens of seconds
    after it; queries timed meanwhile compete with that write-back (measured: the same
    W10 step varied about 2x between identical runs, on either side). See the note above
    on the page cache.
    """
    checkpoint(path)
    os.sync()
    buffer = bytearray(1 << 20)
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(buffer):
            pass


def checkpoint(path: str) -> None:
    """Copy a SQLite file's write-ahead log into the database and empty it (untimed).

    Queries run right after a bulk load cost more or less depending on where SQLite's
    automatic checkpoint left the log (measured: the same 10k W10 step 0.17 to 0.42 ms per
    query, on either side, between identical runs); both the library's store and the raw
    baseline are checkpointed at each maintenance point, as PostgreSQL's are analyzed.
    """
    conn = sqlite3.connect(path, timeout=30.0)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()


def _open_emulator(spec: StoreSpec) -> ApiStore:
    from google.api_core.exceptions import Aborted, Conflict
    from google.cloud import datastore
    from google.cloud.datastore.query import PropertyFilter

    previous = os.environ.get("DATASTORE_EMULATOR_HOST")
    os.environ["DATASTORE_EMULATOR_HOST"] = spec.location
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = datastore.Client(project=spec.project)  # type: ignore[no-untyped-call,unused-ignore]
    finally:
        if previous is None:
            os.environ.pop("DATASTORE_EMULATOR_HOST", None)
        else:
            os.environ["DATASTORE_EMULATOR_HOST"] = previous
    return ApiStore(
        "emulator",
        client,
        datastore.Entity,
        (Aborted, Conflict),
        PropertyFilter,
        lite=False,
    )


def open_store(spec: StoreSpec) -> Any:
    """Open (creating, for a new raw store) the store ``spec`` names."""
    if spec.impl == "lite":
        return _open_lite(spec)
    if spec.impl == "emulator":
        return _open_emulator(spec)
    if spec.backend == "postgresql":
        from .raw_postgres import RawPostgresStore

        return RawPostgresStore(spec.location, spec.project, create=spec.create)
    from .raw_sqlite import RawSQLiteStore

    return RawSQLiteStore.open(spec.location, spec.project, create=spec.create)


class Locations:
    """Fresh stores for a run: SQLite files in a temporary directory; on PostgreSQL one
    database ``dl_bench_<pid>_<random>`` with a schema per store. :meth:`cleanup` removes
    them all (dropping a database costs a checkpoint, ~1.4 s, so there is only one).
    """

    def __init__(self, pg_admin_url: str, tmp_root: str | None = None) -> None:
        self.pg_admin_url = pg_admin_url
        self.directory = tempfile.mkdtemp(prefix="dl-bench-", dir=tmp_root)
        self._pg_database: str | None = None
        self._counter = 0

    def _pg_url(self) -> str:
        import psycopg

        base, _, _ = self.pg_admin_url.partition("?")
        base = base.rpartition("/")[0]
        if self._pg_database is None:
            name = f"dl_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            with psycopg.connect(self.pg_admin_url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            self._pg_database = name
        return f"{base}/{self._pg_database}"

    def new(self, backend: str, impl: str) -> str:
        """A location for a new, empty store (``impl`` is ``lite`` or ``raw``)."""
        self._counter += 1
        n = self._counter
        if backend == "sqlite-memory":
            return "sqlite://" if impl == "lite" else ":memory:"
        if backend == "sqlite":
            path = os.path.join(self.directory, f"{impl}-{n}.db")
            return f"sqlite:///{path}" if impl == "lite" else path
        if backend == "postgresql":
            import psycopg

            url = self._pg_url()
            schema = f"{impl}_{n}"
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            return f"{url}?options=-csearch_path%3D{schema}"
        raise ValueError(f"unknown backend {backend!r}")

    def cleanup(self) -> None:
        if self._pg_database is not None:
            import psycopg

            try:
                with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self._pg_database}" WITH (FORCE)')
            except Exception:
                pass
            self._pg_database = None
        shutil.rmtree(self.directory, ignore_errors=True)
