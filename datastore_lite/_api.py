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

from . import _commit, _limits, exceptions
from ._commit import Mutation, MutationResult
from ._consistency import ConsistencyController, Policy
from ._ids import reserve_threshold, scattered_id
from ._ordering import encode_path
from ._profiles import Profile
from ._registry import IndexRegistry
from ._throttle import GroupWriteLimit, Throttle
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
        self.throttle = Throttle(write_limit, sleep) if write_limit is not None else None
        self._txns: dict[bytes, TxnState] = {}
        self._txn_lock = threading.Lock()

    # -- partitions --------------------------------------------------------------------------

    def pid_of(self, ref: KeyRef, create: bool = False) -> int:
        return self.backend.partition_id(ref.project, ref.database, ref.namespace, create)

    # -- transactions ------------------------------------------------------------------------

    def begin_transaction(self, read_only: bool = False) -> bytes:
        """Start a transaction; returns its opaque id."""
        txn_id = secrets.token_bytes(12)
        with self._txn_lock:
            self._txns[txn_id] = TxnState(txn_id, read_only, self.clock())
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

    def _note_groups(self, state: TxnState, groups: Sequence[tuple[int, bytes]]) -> None:
        """Enforce the legacy limit of 25 entity groups per transaction (SEMANTICS.md §6.1)."""
        limit = self.profile.max_groups_per_transaction
        if limit is None:
            return
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
        _limits.check_lookup_count(len(keys))
        for ref in keys:
            _limits.check_key(ref, write=False)
        state = self._txn(transaction) if transaction is not None else None
        result = LookupResult()
        by_pid: dict[int, list[tuple[int, KeyRef, bytes, bytes]]] = {}
        for position, ref in enumerate(keys):
            pid = self.pid_of(ref)
            if pid < 0:
                result.missing.append(ref)
                continue
            key = encode_path(ref.path)
            group = key if len(ref.path) == 2 else encode_path(ref.path[:2])
            by_pid.setdefault(pid, []).append((position, ref, key, group))
        if state is not None:
            self._note_groups(state, [(pid, g) for pid, items in by_pid.items() for *_, g in items])
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
                    state.groups.setdefault((pid, group), group_versions.get(group, 0))
            for position, ref, key, _group in items:
                hit = bodies.get(key)
                if hit is None:
                    result.missing.append(ref)
                else:
                    found[position] = (ref, hit[1], hit[0])
        result.found = [found[i] for i in sorted(found)]
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
                groups = []
                for m in mutations:
                    pid = self.pid_of(m.key, create=True)
                    groups.append((pid, encode_path(m.key.path[:2])))
                self._note_groups(state, groups)
            return self._commit_with_retry(mutations, state)
        finally:
            if transaction is not None:
                self._finish(transaction)

    def _commit_with_retry(
        self, mutations: Sequence[Mutation], state: TxnState | None
    ) -> list[MutationResult]:
        from ._throttle import RetryAfter

        while True:
            try:
                return _commit.commit(self, mutations, state)
            except RetryAfter as wait:
                # "delay" write limit: wait outside any lock, then try again
                self.sleep(wait.seconds)

    # -- ids ---------------------------------------------------------------------------------

    def allocate_ids(self, keys: Sequence[KeyRef]) -> list[KeyRef]:
        """Complete partial keys with scattered ids (one per key, in request order)."""
        for ref in keys:
            if not ref.is_partial:
                raise exceptions.InvalidArgument("AllocateIds keys must be incomplete.")
            _limits.check_key(ref, write=False, allow_partial=True)
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
        self.backend.close()
