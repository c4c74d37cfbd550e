"""LocalDatastoreAPI: the engine behind the seam of the eight Datastore RPC verbs.

``lookup, run_query, run_aggregation_query, begin_transaction, commit, rollback,
allocate_ids, reserve_ids`` — the verbs the official client sends over the wire
(DESIGN.md §2). Public objects call these with engine values (``KeyRef``, ``EntityValue``,
query specs) and never see SQL; this module talks to a backend and never builds SQL.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _commit, _limits, _metadata, exceptions
from ._aggregate import aggregate
from ._commit import Mutation, MutationResult
from ._consistency import ConsistencyController, Policy
from ._cursor import decode_cursor
from ._executor import execute
from ._ids import reserve_threshold, scattered_id
from ._index_sync import autogenerate_index
from ._ordering import decode_path, encode_key_group, encode_path, encode_plain_key_group
from ._planner import Plan, need_index_error, plan_query, rebind_ancestor, typed_values
from ._profiles import Profile
from ._queryspec import QuerySpec, ResultBatch
from ._registry import IndexRegistry
from ._throttle import GroupWriteLimit, RetryAfter, Throttle
from ._values import KeyRef
from .backends.sql import SQLBackend

__all__ = ["LocalDatastoreAPI", "LookupResult", "TxnState"]

_TXN_INVALID = "The referenced transaction has expired or is no longer valid."


@dataclass
class LookupResult:
    """Lookup response: found (key, body, version) triples, missing and deferred keys."""

    found: list[tuple[KeyRef, bytes, int]] = field(default_factory=list)
    missing: list[KeyRef] = field(default_factory=list)
    deferred: list[KeyRef] = field(default_factory=list)


@dataclass
class TxnState:
    """Server-side bookkeeping of one Datastore transaction."""

    id: bytes
    read_only: bool
    started: float
    # (partition id, group key) -> group version at the transaction's first read of it
    groups: dict[tuple[int, bytes], int] = field(default_factory=dict)
    written_groups: set[tuple[int, bytes]] = field(default_factory=set)
    # (partition id, key) -> (entity version, body) or None, as the transaction read them:
    # the commit reuses them (their groups are checked unchanged) instead of reading again
    bodies: dict[tuple[int, bytes], tuple[int, bytes] | None] = field(default_factory=dict)
    # (ref, partition id, key, group key) of the last one-key read: a read-modify-write
    # commits the key it read, so the commit need not encode it again
    last_read: tuple[KeyRef, int, bytes, bytes] | None = None


#: Plans kept per client: a cached ancestor-query plan measured ~2.4 KB (tracemalloc), so
#: the cache stays near 10 MB; planning a query again costs ~100 µs.
PLAN_CACHE_SIZE = 4096


def _read_key_group(
    project: str, database: str, namespace: str, path: tuple[Any, ...]
) -> tuple[bytes, bytes]:
    """The stored key and group key of a key valid for a read; the hot paths of gets.

    The plain key (default database and namespace, short names, non-zero ids) is checked
    while it is encoded; any other is validated in full first (SEMANTICS.md §1.2).

    Raises:
        ValueError: An id outside int64 (the official client's protobuf error comes first).
        InvalidArgument: Any other invalid key, naming what is wrong.
    """
    encoded = None if namespace or database or not project else encode_plain_key_group(path)
    if encoded is None:
        _limits.check_ids(path)
        _limits.check_key(KeyRef(project, database, namespace, path), write=False)
        encoded = encode_key_group(path)
    return encoded


class LocalDatastoreAPI:
    """The in-process Datastore service over one backend."""

    def __init__(
        self,
        backend: SQLBackend,
        *,
        profile: Profile,
        policy: Policy,
        write_limit: GroupWriteLimit | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.backend = backend
        self.profile = profile
        self.clock = clock
        self.sleep = sleep
        self.seed = seed if seed is not None else int.from_bytes(os.urandom(4), "big")
        self.registry = IndexRegistry(backend)
        self.registry.reload()
        self.consistency = ConsistencyController(self, policy, self.seed)
        self._refresh_registry()
        self.throttle = Throttle(write_limit, sleep) if write_limit is not None else None
        self._txns: dict[bytes, TxnState] = {}
        self._sweep_at = 32  # sweep abandoned transactions when more are open
        self._swept = clock()  # or when the last sweep is older than a transaction may live
        self._plans: dict[Any, Plan] = {}
        self._seen_ancestors: set[Any] = set()  # ancestor queries rebound once (see _plan)
        self._registry_checked = time.monotonic()
        self.index_yaml: str | None = None
        self._txn_lock = threading.Lock()

    # -- partitions --------------------------------------------------------------------------

    def pid_of(self, ref: KeyRef, create: bool = False) -> int:
        return self.backend.partition_id(ref.project, ref.database, ref.namespace, create)

    # -- transactions ------------------------------------------------------------------------

    def begin_transaction(self, read_only: bool = False) -> bytes:
        """Start a transaction; returns its opaque id."""
        txn_id = secrets.token_bytes(12)
        now = self.clock()
        with self._txn_lock:
            limit = self.profile.transaction_time_limit or 86400.0
            open_now = len(self._txns)
            if open_now > 32 and (open_now > self._sweep_at or now - self._swept > limit):
                # transactions begun and abandoned (never committed or rolled back) expire
                # with the profile's time limit; forget them so a long-running process
                # does not grow. The next sweep waits until twice as many are open or a
                # time limit has passed, so many open, unexpired transactions do not make
                # every begin scan them all.
                for stale in [t for t, s in self._txns.items() if now - s.started > limit]:
                    del self._txns[stale]
                self._sweep_at = max(32, 2 * len(self._txns))
                self._swept = now
            self._txns[txn_id] = TxnState(txn_id, read_only, now)
        return txn_id

    def _txn(self, txn_id: bytes) -> TxnState:
        state = self._txns.get(txn_id)
        if state is None:
            raise exceptions.InvalidArgument(_TXN_INVALID)
        limit = self.profile.transaction_time_limit
        if limit is not None and self.clock() - state.started > limit:
            self._finish(txn_id)
            raise exceptions.InvalidArgument(
                f"{_TXN_INVALID} The transaction expired: it was open longer than "
                f"{limit:g} s (the {self.profile.name} profile's limit)."
            )
        return state

    def _finish(self, txn_id: bytes) -> None:
        with self._txn_lock:
            self._txns.pop(txn_id, None)

    def rollback(self, txn_id: bytes) -> None:
        """Forget a transaction; nothing it queued is written."""
        self._txn(txn_id)
        self._finish(txn_id)

    def _snapshot(self, state: TxnState, pid: int, group: bytes, version: int) -> None:
        """Record a group's version at the transaction's first read of it.

        SEMANTICS.md §6.1: a transaction's reads are one consistent snapshot. No history is
        kept, so a group that moved since the first read cannot be read at that snapshot:
        fail now with the contention error (the SDK fails such reads early too).
        """
        seen = state.groups.setdefault((pid, group), version)
        if seen != version:
            raise exceptions.Aborted(exceptions.CONTENTION_MESSAGE)

    def _note_groups(self, state: TxnState, groups: Sequence[tuple[int, bytes]]) -> None:
        """Enforce the legacy limit of 25 entity groups per transaction (SEMANTICS.md §6.1)."""
        limit = self.profile.max_groups_per_transaction
        if limit is None or len(state.groups) + len(state.written_groups) + len(groups) <= limit:
            return  # (that few cannot exceed the limit, overlapping or not)
        touched = set(state.groups) | state.written_groups | set(groups)
        if len(touched) > limit:
            raise exceptions.InvalidArgument(
                "operating on too many entity groups in a single transaction."
            )

    # -- lookup ------------------------------------------------------------------------------

    def lookup(
        self, keys: Sequence[KeyRef], transaction: bytes | None = None, eventual: bool = False
    ) -> LookupResult:
        """Read entities by key. Strong reads roll their groups forward first (§7)."""
        if len(keys) == 1 and transaction is None:
            return self._lookup_one(keys[0], eventual)
        _limits.check_lookup_count(len(keys))
        for ref in keys:
            _limits.check_key(ref, write=False)
        self.tick()
        state = self._txn(transaction) if transaction is not None else None
        result = LookupResult()
        by_pid: dict[int, list[tuple[int, KeyRef, bytes, bytes]]] = {}
        for position, ref in enumerate(keys):
            # in a transaction even a read of an empty partition must be tracked (its
            # group's version 0 is the snapshot a concurrent first write must conflict with)
            pid = self.pid_of(ref, create=state is not None)
            if pid < 0:
                result.missing.append(ref)
                continue
            key, group = encode_key_group(ref.path)
            by_pid.setdefault(pid, []).append((position, ref, key, group))
        if state is not None:
            self._note_groups(state, [(pid, g) for pid, items in by_pid.items() for *_, g in items])
            return self._lookup_in_transaction(state, by_pid, result)
        found: dict[int, tuple[KeyRef, bytes, int]] = {}
        for pid, items in by_pid.items():
            rows = self.consistency.read_groups(
                pid,
                sorted({g for *_, g in items}),
                sorted({k for _, _, k, _ in items}),
                strong=not eventual,
            )
            group_versions = rows.group_versions
            bodies = rows.bodies
            if state is not None:
                for _, _, _, group in items:
                    self._snapshot(state, pid, group, group_versions.get(group, 0))
            for position, ref, key, _group in items:
                hit = bodies.get(key)
                if hit is None:
                    result.missing.append(ref)
                else:
                    found[position] = (ref, hit[1], hit[0])
        result.found = [found[i] for i in sorted(found)]
        return result

    def _lookup_in_transaction(
        self,
        state: TxnState,
        by_pid: dict[int, list[tuple[int, KeyRef, bytes, bytes]]],
        result: LookupResult,
    ) -> LookupResult:
        """Transactional lookup: one consistent snapshot with the transaction's earlier reads.

        SEMANTICS.md §6.1: all reads of a transaction reflect one snapshot. Pending writes are
        rolled forward first (a transactional read is strong); then, in one database
        snapshot, groups read before must be unchanged (else Aborted, as the SDK fails such
        reads early) and the new reads are taken.
        """
        if not self.consistency.strong_reads:
            for pid, items in by_pid.items():
                self.consistency.catch_up(pid, sorted({g for *_, g in items}))
        found: dict[int, tuple[KeyRef, bytes, int]] = {}
        now = {(pid, g) for pid, its in by_pid.items() for *_, g in its}
        prior = any(group not in now for group in state.groups)
        # one lookup statement is one snapshot already; earlier reads need a shared one
        scope = self.backend.snapshot() if prior or len(by_pid) > 1 else self.backend.read()
        with scope as r:
            if prior:
                self._check_prior_reads(r, state, now)
            for pid, items in by_pid.items():
                rows = r.lookup(
                    pid, sorted({g for *_, g in items}), sorted({k for _, _, k, _ in items})
                )
                versions: dict[bytes, int] = {}
                bodies: dict[bytes, tuple[int, bytes]] = {}
                for group_key, version, applied, key, entity_version, body in rows:
                    if applied < version:  # written again since the catch-up: contention
                        raise exceptions.Aborted(exceptions.CONTENTION_MESSAGE)
                    versions[bytes(group_key)] = version
                    if key is not None:
                        bodies[bytes(key)] = (entity_version, bytes(body))
                for position, ref, key, group in items:
                    self._snapshot(state, pid, group, versions.get(group, 0))
                    hit = bodies.get(key)
                    state.bodies[(pid, key)] = hit
                    if hit is None:
                        result.missing.append(ref)
                    else:
                        found[position] = (ref, hit[1], hit[0])
        result.found = [found[i] for i in sorted(found)]
        return result

    def get_in_transaction(self, ref: KeyRef, transaction: bytes) -> bytes | None:
        """The body of one entity read in a transaction, or None: ``lookup`` of one key, lean.

        The path of ``client.get`` inside ``with client.transaction()``: the same checks and
        snapshot rules as :meth:`lookup` (SEMANTICS.md §6.1), without its request objects.
        A transaction that already read another group needs the shared snapshot of
        :meth:`_lookup_in_transaction`, so it takes that path.
        """
        key, group = _read_key_group(ref.project, ref.database, ref.namespace, ref.path)
        self.tick()
        state = self._txn(transaction)
        # even a read of an empty partition is tracked (see lookup)
        pid = self.pid_of(ref, create=True)
        seen = state.groups
        if seen and (len(seen) > 1 or (pid, group) not in seen):
            result = self.lookup([ref], transaction)
            return result.found[0][1] if result.found else None
        self._note_groups(state, ((pid, group),))
        if not self.consistency.strong_reads:
            self.consistency.catch_up(pid, [group])
        with self.backend.read() as r:
            rows = r.lookup(pid, (group,), (key,))
        version = 0
        hit = None
        for _group, group_version, applied, found_key, entity_version, body in rows:
            if applied < group_version:  # written again since the catch-up: contention
                raise exceptions.Aborted(exceptions.CONTENTION_MESSAGE)
            version = group_version
            if found_key is not None:
                hit = (entity_version, bytes(body))
        self._snapshot(state, pid, group, version)
        state.bodies[(pid, key)] = hit
        state.last_read = (ref, pid, key, group)
        return None if hit is None else hit[1]

    def _check_prior_reads(self, r: Any, state: TxnState, now: set[tuple[int, bytes]]) -> None:
        """Groups the transaction read before must not have moved (SEMANTICS.md §6.1)."""
        prior: dict[int, list[bytes]] = {}
        for (pid, group), _version in state.groups.items():
            if (pid, group) not in now:
                prior.setdefault(pid, []).append(group)
        for pid, groups in prior.items():
            current = r.group_states(pid, groups)
            for group in groups:
                if current.get(group, (0, 0))[0] != state.groups[(pid, group)]:
                    raise exceptions.Aborted(exceptions.CONTENTION_MESSAGE)

    def get_body(
        self, project: str, database: str, namespace: str, path: tuple[Any, ...], eventual: bool
    ) -> bytes | None:
        """The stored body of one entity, or None: ``lookup`` of one key, lean.

        The path of ``client.get``: no request objects, one statement. Validates the key
        (ids out of int64 range: ValueError, as the official client's protobuf does).
        """
        key, group = _read_key_group(project, database, namespace, path)
        self.tick()
        pid = self.backend.partition_id(project, database, namespace, False)
        if pid < 0:
            return None
        consistency = self.consistency
        if consistency.strong_reads:
            hit = self.backend.get_one(pid, key)
        else:
            hit = consistency.read_one(pid, group, key, strong=not eventual)
        return None if hit is None else hit[1]

    def get_bodies(self, keys: Sequence[KeyRef], eventual: bool = False) -> list[bytes | None]:
        """Stored bodies of ``keys`` (None where missing), outside any transaction.

        The lean form of ``lookup`` behind ``client.get_multi``: one statement per
        partition, results aligned with the request.
        """
        _limits.check_lookup_count(len(keys))
        self.tick()
        by_pid: dict[int, list[tuple[int, bytes, bytes]]] = {}
        out: list[bytes | None] = [None] * len(keys)
        partition_id = self.backend.partition_id
        for position, ref in enumerate(keys):
            project, database, namespace = ref.project, ref.database, ref.namespace
            key, group = _read_key_group(project, database, namespace, ref.path)
            pid = partition_id(project, database, namespace, False)
            if pid >= 0:
                by_pid.setdefault(pid, []).append((position, key, group))
        for pid, items in by_pid.items():
            keys_b = sorted({k for _, k, _ in items})
            if self.consistency.strong_reads:
                with self.backend.read() as r:
                    found = r.read_entities(pid, keys_b)
            else:
                found = self.consistency.read_groups(
                    pid, sorted({g for *_, g in items}), keys_b, strong=not eventual
                ).bodies
            for position, key, _group in items:
                hit = found.get(key)
                if hit is not None:
                    out[position] = hit[1]
        return out

    def _lookup_one(self, ref: KeyRef, eventual: bool) -> LookupResult:
        """``lookup`` of one key outside a transaction: the path of ``client.get``."""
        _limits.check_key(ref, write=False)
        self.tick()
        result = LookupResult()
        pid = self.backend.partition_id(ref.project, ref.database, ref.namespace, False)
        if pid < 0:
            result.missing.append(ref)
            return result
        key, group = encode_key_group(ref.path)
        hit = self.consistency.read_one(pid, group, key, strong=not eventual)
        if hit is None:
            result.missing.append(ref)
        else:
            result.found.append((ref, hit[1], hit[0]))
        return result

    # -- commit ------------------------------------------------------------------------------

    def commit(
        self, mutations: Sequence[Mutation], transaction: bytes | None = None
    ) -> list[MutationResult]:
        """Apply mutations atomically; in a transaction, fail with Aborted on contention."""
        state = self._txn(transaction) if transaction is not None else None
        try:
            if state is not None:
                if state.read_only and mutations:
                    raise exceptions.InvalidArgument(
                        "Cannot modify entities in a read-only transaction."
                    )
                limit = self.profile.max_groups_per_transaction
                if limit is not None and (
                    len(state.groups) + len(state.written_groups) + len(mutations) > limit
                ):
                    # (fewer groups than that cannot exceed the limit: nothing to count)
                    self._note_mutation_groups(state, mutations)
            if state is not None and not mutations:
                # nothing to write: the reads were one consistent snapshot (reads of a
                # group that moved fail early), so there is nothing to re-check
                return []
            return self._commit_with_retry(mutations, state)
        finally:
            if transaction is not None:
                self._finish(transaction)

    def _note_mutation_groups(self, state: TxnState, mutations: Sequence[Mutation]) -> None:
        """The 25-group limit (SEMANTICS.md §6.1) over the groups read and written."""
        groups = []
        for number, m in enumerate(mutations):
            pid = self.pid_of(m.key, create=True)
            if len(m.key.path) < 2:
                # a partial root key starts a new group of its own
                groups.append((pid, b"\xff new group %d" % number))
            else:
                groups.append((pid, encode_path(m.key.path[:2])))
        self._note_groups(state, groups)

    def _commit_with_retry(
        self, mutations: Sequence[Mutation], state: TxnState | None
    ) -> list[MutationResult]:
        waited = 0.0
        while True:
            try:
                return _commit.commit(self, mutations, state)
            except RetryAfter as wait:
                # "delay" write limit: wait outside any lock, then try again - but never
                # past the limit's max_delay (DESIGN.md §9: "waits within the deadline")
                assert self.throttle is not None
                max_delay = self.throttle.limit.max_delay
                if waited + wait.seconds > max_delay:
                    raise exceptions.DeadlineExceeded(
                        f"the entity group write limit would delay this commit "
                        f"{waited + wait.seconds:.3g} s in all, more than its "
                        f"max_delay of {max_delay:g} s; nothing was written."
                    ) from None
                self.sleep(wait.seconds)
                waited += wait.seconds

    # -- queries -----------------------------------------------------------------------------

    def _plan(self, spec: QuerySpec, pid: int, in_transaction: bool) -> Plan:
        """Plan a query (cached per shape); apply index.yaml's AUTOGENERATED mode."""
        self.tick()
        cache_key: Any = None
        try:
            # filter values compare with ==, so 1, 1.0 and True (and 0.0, -0.0) would share
            # a plan: the key also holds their exact types (and float signs)
            cache_key = (
                spec,
                typed_values(spec.filter),
                pid,
                self.registry.generation,
                in_transaction,
            )
            hash(cache_key)
        except TypeError:
            cache_key = None
        shape_key: Any = None
        if cache_key is not None:
            cached = self._plans.pop(cache_key, None)
            if cached is not None:
                self._plans[cache_key] = cached  # most recently used last (LRU order)
                return cached
            if spec.ancestor is not None:
                # the same query under another ancestor: its plan, rebound (no planning)
                shape_key = (
                    "any ancestor",
                    spec.project,
                    spec.database,
                    spec.namespace,
                    spec.kind,
                    spec.filter,
                    spec.projection,
                    spec.orders,
                    spec.distinct_on,
                    *cache_key[1:],
                )
                template = self._plans.pop(shape_key, None)
                if template is not None:
                    self._plans[shape_key] = template
                    plan = rebind_ancestor(template, spec)
                    # Admit an ancestor to the cache when it comes back: a stream of many
                    # users' first queries would otherwise evict a cached plan at every
                    # query (W10 at 1M photos: 6 us a query of eviction and garbage for
                    # plans never used again), while a user who returns gets a hit.
                    seen = self._seen_ancestors
                    if cache_key in seen:
                        self._remember(cache_key, plan)
                    else:
                        if len(seen) >= PLAN_CACHE_SIZE:
                            seen.clear()
                        seen.add(cache_key)
                    return plan
        try:
            plan = plan_query(spec, pid, self.profile, self.registry, in_transaction)
        except exceptions.FailedPrecondition:
            # the index may have finished building in another process
            if not self._refresh_registry():
                raise
            plan = plan_query(spec, pid, self.profile, self.registry, in_transaction)
        if plan.recommended is not None and self._refresh_registry():
            # another process (e.g. `datastore-lite indexes build`) may have added it
            plan = plan_query(spec, pid, self.profile, self.registry, in_transaction)
        if plan.recommended is not None:
            if self.index_yaml is not None and autogenerate_index(self, plan.recommended):
                plan = plan_query(spec, pid, self.profile, self.registry, in_transaction)
            if plan.recommended is not None:
                raise need_index_error(plan.recommended)
        if cache_key is not None:
            self._remember(cache_key, plan)
            if shape_key is not None:
                self._remember(shape_key, plan)
        return plan

    def _remember(self, cache_key: Any, plan: Plan) -> None:
        # Plans hold their filter and ancestor values, so an app querying many users'
        # streams has a plan per user: evict the least recently used, never the lot.
        while len(self._plans) >= PLAN_CACHE_SIZE:
            try:
                del self._plans[next(iter(self._plans))]
            except (KeyError, RuntimeError, StopIteration):  # another thread got there
                break
        self._plans[cache_key] = plan

    def tick(self) -> None:
        """At most once a second, notice what other processes changed in the database:
        indexes built or vacuumed, and writes deferred by eventually consistent clients."""
        now = time.monotonic()
        if now - self._registry_checked > 1.0:
            self._registry_checked = now
            self._refresh_registry()

    def _refresh_registry(self) -> bool:
        """Reload the index registry if another process changed it; True if it did.

        Also notices when some client deferred a write, so a strong client starts looking
        for pending writes (DESIGN.md §7: every process sees the same state).
        """
        with self.backend.read() as r:
            values = r.meta_values()
        if values.get("pending_seen") == "1":
            self.consistency.note_pending_seen()
        generation = int(values.get("index_generation", "0"))
        if generation == self.registry.generation:
            return False
        self.registry.reload(generation)
        return True

    def _prepare_read(
        self, spec: QuerySpec, transaction: bytes | None, eventual: bool, continuation: bool = False
    ) -> tuple[Plan, int]:
        state = self._txn(transaction) if transaction is not None else None
        _limits.check_partition(spec.project, spec.database, spec.namespace, write=False)
        pid = self.backend.partition_id(
            spec.project, spec.database, spec.namespace, create=state is not None
        )
        plan = self._plan(spec, pid, state is not None)
        if pid < 0:
            return plan, pid
        if spec.ancestor is not None:
            # SEMANTICS.md §5.1: ancestor queries are strongly consistent: roll the group
            # forward first (unless eventual=True) and, in a transaction, snapshot it.
            path = spec.ancestor.path
            group = encode_path(path[:2])
            if state is not None or not self.consistency.strong_reads:
                with self.backend.read() as r:
                    states = r.group_states(pid, [group])
                version, applied = states.get(group, (0, 0))
                if applied < version and not eventual:
                    self.consistency.roll_forward(pid, [group])
                if state is not None:
                    self._note_groups(state, [(pid, group)])
        elif state is not None:
            # DESIGN.md §7: everything inside a transaction is strong, a global query
            # (firestore profile) included: every committed write is visible to it
            if not self.consistency.strong_reads:
                self.consistency.apply_all()
        elif not continuation:
            # DESIGN.md §7: a global query sees one prefix of each group's writes, so the
            # later batches of one fetch() apply nothing new
            self.consistency.groom()
        return plan, pid

    def run_query(
        self,
        spec: QuerySpec,
        *,
        limit: int | None = None,
        offset: int = 0,
        start_cursor: bytes | None = None,
        end_cursor: bytes | None = None,
        transaction: bytes | None = None,
        eventual: bool = False,
        continuation: bool = False,
    ) -> ResultBatch:
        """Run one batch of a query (the v1 RunQuery verb); ``continuation``: a later batch
        of the same fetch, which must not apply pending writes again."""
        if limit is not None and limit < 0:
            raise exceptions.InvalidArgument("limit must be >= 0")
        if offset < 0:
            raise exceptions.InvalidArgument("offset must be >= 0")
        plan, pid = self._prepare_read(spec, transaction, eventual, continuation)
        if pid < 0:
            if start_cursor:
                decode_cursor(self.backend.secret, plan.fingerprint, start_cursor)
            return ResultBatch()
        if _metadata.is_metadata_kind(spec.kind):
            return _metadata.run(self, plan, limit, offset, start_cursor, end_cursor)
        if transaction is None:
            return execute(
                self,
                plan,
                limit=limit,
                offset=offset,
                start_cursor=start_cursor,
                end_cursor=end_cursor,
            )
        state = self._txn(transaction)
        with self.backend.snapshot() as r:
            groups = self._snapshot_query_groups(r, state, spec, pid)
            batch = execute(
                self,
                plan,
                limit=limit,
                offset=offset,
                start_cursor=start_cursor,
                end_cursor=end_cursor,
            )
            if spec.ancestor is None:
                # a global query in a transaction (firestore profile): every group it
                # returns joins the transaction's snapshot, so writing one back conflicts
                # with a concurrent write (no lost update)
                result_groups = sorted(
                    {
                        encode_key_group(
                            decode_path(item.key) if isinstance(item.key, bytes) else item.key.path
                        )[1]
                        for item in batch.results
                    }
                    - groups
                )
                if result_groups:
                    self._note_groups(state, [(pid, g) for g in result_groups])
                    versions = r.group_states(pid, result_groups)
                    for group in result_groups:
                        self._snapshot(state, pid, group, versions.get(group, (0, 0))[0])
        return batch

    def _snapshot_query_groups(
        self, r: Any, state: TxnState, spec: QuerySpec, pid: int
    ) -> set[bytes]:
        """In a transaction's snapshot: check earlier reads, record the ancestor's group."""
        now: set[tuple[int, bytes]] = set()
        if spec.ancestor is not None:
            now.add((pid, encode_path(spec.ancestor.path[:2])))
        self._check_prior_reads(r, state, now)
        for _pid, group in now:
            version = r.group_states(pid, [group]).get(group, (0, 0))[0]
            self._snapshot(state, pid, group, version)
        return {g for _p, g in now}

    def run_aggregation_query(
        self,
        spec: QuerySpec,
        aggregations: Sequence[tuple[str, str, str | None]],
        *,
        limit: int | None = None,
        transaction: bytes | None = None,
        eventual: bool = False,
    ) -> dict[str, Any]:
        """COUNT / SUM / AVG over a query (SEMANTICS.md §4.7); returns {alias: value}."""
        if not aggregations:
            raise exceptions.InvalidArgument("An aggregation query needs at least one aggregation.")
        if len(aggregations) > 5:
            raise exceptions.InvalidArgument(
                "An aggregation query may have at most 5 aggregations."
            )
        plan, pid = self._prepare_read(spec, transaction, eventual)
        if transaction is None or pid < 0:
            return aggregate(self, plan, pid, aggregations, limit)
        state = self._txn(transaction)
        with self.backend.snapshot() as r:
            self._snapshot_query_groups(r, state, spec, pid)
            return aggregate(self, plan, pid, aggregations, limit)

    # -- ids ---------------------------------------------------------------------------------

    def allocate_ids(self, keys: Sequence[KeyRef]) -> list[KeyRef]:
        """Complete partial keys with scattered ids (one per key, in request order)."""
        for ref in keys:
            if not ref.is_partial:
                raise exceptions.InvalidArgument("AllocateIds keys must be incomplete.")
            # emulator: AllocateIds is validated like a write (reserved kinds refused)
            _limits.check_key(ref, write=True, allow_partial=True)
        if not keys:
            return []
        last = self.backend.allocate("scattered", len(keys))
        first = last - len(keys) + 1
        return [
            KeyRef(r.project, r.database, r.namespace, r.path + (scattered_id(first + i),))
            for i, r in enumerate(keys)
        ]

    def reserve_ids(self, keys: Sequence[KeyRef]) -> None:
        """Mark complete keys' ids as used, so allocation never hands them out."""
        floor = 0
        for ref in keys:
            _limits.check_key(ref, write=False)
            for ident in ref.path[1::2]:
                floor = max(floor, reserve_threshold(ident))
        if floor:
            with self.backend.write() as w:
                w.bump_counter("scattered", floor)

    def close(self) -> None:
        self.consistency.stop()
        self.backend.close()
