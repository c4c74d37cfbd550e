"""Eventual consistency, simulated the way the App Engine SDK did it (DESIGN.md §7).

Strong reads (lookup by key, ancestor queries, transactional reads) see every committed
write. A global query sees each entity group as of a prefix of its commit history, and the
prefix only grows. Mechanism (SEMANTICS.md §5.2), kept in the database so every process
agrees:

* a commit either applies its writes at once or records them in ``dl_pending`` with a due
  time (``dl_groups.applied`` stays behind ``version``);
* a strong read or a write of a group first *rolls it forward*: applies all its pending
  writes, in order;
* before each global query, pending writes that are due are applied, per group and in
  order, stopping at the first that is not (the SDK's "grooming").

Because at most the latest commit of a group can be pending (each write rolls its group
forward first), a global query sees either the group's latest state or the one before it.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from . import _commit

if TYPE_CHECKING:
    from ._api import LocalDatastoreAPI
    from .backends.sql import Txn

__all__ = ["ConsistencyController", "Eventual", "HRD_BUCKETS", "Policy", "Strong", "parse_policy"]

log = logging.getLogger("datastore_lite")
_APPLY_INTERVAL = 0.05  # seconds between background applications of due writes
# On the real clock, how long a global query may trust this client's knowledge that no
# pending write is due (writes deferred by other clients are found at the next check)
_RECHECK = 0.05

# SEMANTICS.md §5.2, TimeBasedHRConsistencyPolicy: (cumulative probability, delay in s)
HRD_BUCKETS = ((0.98, 0.1), (0.99, 0.3), (0.995, 2.0), (1.0, 240.0))


@dataclass(frozen=True)
class Strong:
    """Every write is visible to every query at once (no pending writes, no overhead)."""

    def __repr__(self) -> str:
        return "'strong'"


@dataclass(frozen=True)
class Eventual:
    """Global queries may miss recent writes.

    Exactly one of:

    Args:
        probability: Each pending write becomes visible with this chance at each global
            query (the Datastore emulator's ``--consistency``; 0.0 = only a strong read of
            its group makes it visible).
        lag: Seconds after which a write becomes visible, or ``"hrd"`` for the App Engine
            SDK's High-Replication distribution (98% within 100 ms, 99% 300 ms, 99.5% 2 s,
            all within 240 s).

    Example:
        >>> Eventual(probability=0.0)
        Eventual(probability=0.0)
    """

    probability: float | None = None
    lag: float | str | None = None

    def __post_init__(self) -> None:
        if (self.probability is None) == (self.lag is None):
            raise ValueError("Eventual needs exactly one of probability= or lag=")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"Eventual probability must be in [0, 1], not {self.probability!r}")
        if isinstance(self.lag, str):
            if self.lag != "hrd":
                raise ValueError(f"Eventual lag must be seconds or 'hrd', not {self.lag!r}")
        elif self.lag is not None and not self.lag >= 0:
            raise ValueError(f"Eventual lag must be >= 0 seconds, not {self.lag!r}")

    def __repr__(self) -> str:
        if self.probability is not None:
            return f"Eventual(probability={self.probability!r})"
        return f"Eventual(lag={self.lag!r})"


Policy = Strong | Eventual


def parse_policy(value: str | Policy) -> Policy:
    """Accept a policy object or its text form.

    Text forms (for ``DATASTORE_LITE_CONSISTENCY``): ``strong``, ``hrd``, ``lag=0.5``,
    ``probability=0.9``.

    Raises:
        ValueError: Anything else, with the allowed forms.
    """
    if isinstance(value, (Strong, Eventual)):
        return value
    text = str(value).strip().lower()
    if text == "strong":
        return Strong()
    if text in ("hrd", "lag=hrd", "eventual"):
        return Eventual(lag="hrd")
    try:
        if text.startswith("lag="):
            return Eventual(lag=float(text[4:]))
        if text.startswith("probability="):
            return Eventual(probability=float(text[12:]))
    except ValueError:
        pass
    raise ValueError(
        f"consistency must be 'strong', 'hrd', 'lag=<seconds>' or 'probability=<p>' "
        f"(or a Strong/Eventual object), not {value!r}"
    )


@dataclass
class GroupRead:
    """What one lookup statement returned for a set of groups and keys."""

    group_versions: dict[bytes, int]
    bodies: dict[bytes, tuple[int, bytes]]


class ConsistencyController:
    """Applies one :data:`Policy` for a :class:`LocalDatastoreAPI`."""

    def __init__(self, api: LocalDatastoreAPI, policy: Policy, seed: int) -> None:
        self.api = api
        self.policy = policy
        self.rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.frozen = False
        # the Strong policy never defers, so plain reads need not look for pending writes,
        # unless another client on the database deferred some (note_pending_seen)
        self.strong_reads = isinstance(policy, Strong)
        self._marked_pending = False
        self._applier: threading.Thread | None = None
        self._applier_pid = 0
        self._stop = threading.Event()
        # groom()'s check "is any pending write due?" is a statement (a round trip on
        # PostgreSQL) before every global query. With a time-based lag on the real clock it
        # is skipped while nothing can be due: the earliest due time of the database's
        # pending writes, as of the last check and lowered by this client's own deferred
        # writes since, is still ahead, and the last check is under _RECHECK old.
        self._next_due = -math.inf
        self._checked_at = -math.inf
        self._deferred = 0  # this client's deferred writes so far (a check notices new ones)

    # -- background application ---------------------------------------------------------------

    def _wants_applier(self) -> bool:
        """Time-based policies on the real clock apply due writes in the background, so a
        write becomes visible when its lag is over even if no global query runs (and the
        queries that do run find little left to apply). Simulated clocks and
        probability policies stay query-driven and deterministic."""
        policy = self.policy
        return (
            isinstance(policy, Eventual) and policy.lag is not None and self.api.clock is time.time
        )

    def ensure_applier(self) -> None:
        """Start (or, after a fork, restart) the background applier thread if wanted."""
        if not self._wants_applier() or self._stop.is_set():
            return
        thread = self._applier
        if thread is not None and thread.is_alive() and self._applier_pid == os.getpid():
            return
        self._applier_pid = os.getpid()
        self._applier = threading.Thread(
            target=self._apply_loop, name="datastore_lite-applier", daemon=True
        )
        self._applier.start()

    def _apply_loop(self) -> None:
        while not self._stop.wait(_APPLY_INTERVAL):
            if self.frozen:
                continue
            try:
                self.groom()
            except Exception:  # pragma: no cover - retried at the next tick or query
                log.debug("background application of pending writes failed", exc_info=True)
            finally:
                self.api.backend.release_thread_connection()

    def stop(self) -> None:
        """Stop the background applier (at client close)."""
        self._stop.set()
        thread = self._applier
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=2.0)

    def note_pending_seen(self) -> None:
        """Some client deferred writes on this database: a strong client must apply them."""
        self.strong_reads = False

    @property
    def is_strong(self) -> bool:
        return isinstance(self.policy, Strong)

    # -- commit side -------------------------------------------------------------------------

    def defer_groups(self, groups: Sequence[bytes], now: float) -> dict[bytes, float]:
        """Groups whose new writes go to ``dl_pending``, with their due times."""
        policy = self.policy
        if isinstance(policy, Strong):
            return {}
        if policy.probability is not None:
            if policy.probability >= 1.0:
                return {}
            return dict.fromkeys(groups, now)
        if policy.lag == "hrd":
            with self._rng_lock:
                return {g: now + self._hrd_delay() for g in groups}
        assert isinstance(policy.lag, (int, float))
        if policy.lag == 0:
            return {}
        return {g: now + float(policy.lag) for g in groups}

    def _hrd_delay(self) -> float:
        draw = self.rng.random()
        for probability, delay in HRD_BUCKETS:
            if draw <= probability:
                return delay
        return HRD_BUCKETS[-1][1]  # pragma: no cover

    def record_pending(
        self,
        w: Txn,
        pid: int,
        group: bytes,
        version: int,
        mutations: Sequence[tuple[bytes, str, bytes | None]],
        due: float,
    ) -> None:
        """Store a group's committed-but-invisible writes."""
        blob = msgpack.packb([list(m) for m in mutations], use_bin_type=True)
        w.insert_pending(pid, group, version, due, blob)
        self._deferred += 1
        self._next_due = min(self._next_due, due)
        self.ensure_applier()
        if not self._marked_pending:
            w.mark_pending_seen()
            self._marked_pending = True

    # -- applying ----------------------------------------------------------------------------

    def roll_forward_locked(self, w: Txn, pid: int, group: bytes, upto: int | None = None) -> int:
        """Apply a group's pending writes (all, or those with version <= ``upto``), in order.

        The caller holds the group's lock. Returns the last version applied (0 if none).
        """
        last = 0
        for version, blob in w.pending_of_group(pid, group):
            if upto is not None and version > upto:
                break
            mutations = msgpack.unpackb(blob, raw=False)
            keys = [bytes(m[0]) for m in mutations]
            old = w.read_entities(pid, keys)
            rows = [
                (bytes(key), kind, group, version, None if body is None else bytes(body), None)
                for key, kind, body in mutations
            ]
            _commit.apply_writes(self.api, w, pid, rows, old)
            w.delete_pending(pid, group, version)
            last = version
        return last

    def roll_forward(
        self, pid: int, groups: Sequence[bytes], upto: dict[bytes, int] | None = None
    ) -> None:
        """Apply pending writes of ``groups`` in one write transaction, set-based.

        All the chosen pending writes of all the groups are applied together: one read of
        the pending rows, one of the current bodies, then bulk index and entity writes
        (the first global query after many deferred writes applies them all at once).
        """
        with self.api.backend.write() as w:
            generation = w.index_generation(lock=True)
            if generation != self.api.registry.generation:
                self.api.registry.reload(generation)
            states = w.lock_groups(pid, sorted(groups))
            lagging = {g for g, (version, applied, _t, _ta) in states.items() if applied < version}
            if not lagging:
                return
            chosen: list[tuple[bytes, int, bytes]] = []
            last: dict[bytes, int] = {}
            for group, version, blob in w.pending_of_partition(pid):
                if group not in lagging:
                    continue
                limit = upto.get(group) if upto else None
                if limit is not None and version > limit:
                    continue
                chosen.append((group, version, blob))
                last[group] = version
            final: dict[bytes, tuple[str, bytes, int, bytes | None]] = {}
            for group, version, blob in chosen:  # in (group, version) order: later wins
                for key, kind, body in msgpack.unpackb(blob, raw=False):
                    final[bytes(key)] = (
                        kind,
                        group,
                        version,
                        None if body is None else bytes(body),
                    )
            old = w.read_entities(pid, sorted(final))
            rows = [
                (key, kind, group, version, body, None)
                for key, (kind, group, version, body) in final.items()
            ]
            _commit.apply_writes(self.api, w, pid, rows, old)
            w.delete_pending_rows(pid, [(group, version) for group, version, _ in chosen])
            w.update_groups(
                pid,
                [
                    (group, states[group][0], version, states[group][2], states[group][3])
                    for group, version in last.items()
                ],
            )

    def read_groups(
        self, pid: int, groups: Sequence[bytes], keys: Sequence[bytes], strong: bool
    ) -> GroupRead:
        """One lookup of ``keys``; for a strong read, roll lagging groups forward first."""
        for _attempt in range(3):
            with self.api.backend.read() as r:
                rows = r.lookup(pid, groups, keys)
            versions: dict[bytes, int] = {}
            lagging: list[bytes] = []
            bodies: dict[bytes, tuple[int, bytes]] = {}
            for group_key, version, applied, key, entity_version, body in rows:
                gk = bytes(group_key)
                if gk not in versions:
                    versions[gk] = version
                    if applied < version:
                        lagging.append(gk)
                if key is not None:
                    bodies[bytes(key)] = (entity_version, bytes(body))
            if not lagging:
                return GroupRead(versions, bodies)
            if strong:
                self.roll_forward(pid, lagging)
                continue
            self.groom(pid=pid, groups=lagging)
            with self.api.backend.read() as r:
                rows = r.lookup(pid, groups, keys)
            bodies = {bytes(k): (v, bytes(b)) for _g, _v, _a, k, v, b in rows if k is not None}
            return GroupRead(versions, bodies)
        return GroupRead(versions, bodies)  # pragma: no cover - repeated concurrent writers

    def catch_up(self, pid: int, groups: Sequence[bytes]) -> None:
        """Roll forward any of ``groups`` with pending writes (before a transactional read)."""
        with self.api.backend.read() as r:
            states = r.group_states(pid, groups)
        lagging = [g for g, (version, applied) in states.items() if applied < version]
        if lagging:
            self.roll_forward(pid, lagging)

    def read_one(
        self, pid: int, group: bytes, key: bytes, strong: bool
    ) -> tuple[int, bytes] | None:
        """(version, body) of one entity, or None; the single-key form of ``read_groups``."""
        if self.strong_reads:
            # "strong": nothing is ever pending, so no group check (zero overhead, §7)
            with self.api.backend.read() as r:
                return r.get_one(pid, key)
        with self.api.backend.read() as r:
            rows = r.lookup(pid, (group,), (key,))
        if rows:
            _g, version, applied, found, entity_version, body = rows[0]
            if applied >= version:  # nothing pending: the common case
                return None if found is None else (entity_version, body)
        else:
            return None
        read = self.read_groups(pid, [group], [key], strong)
        return read.bodies.get(key)

    def groom(self, pid: int | None = None, groups: Sequence[bytes] | None = None) -> None:
        """Apply the pending writes that are due (before a global query or an eventual read)."""
        if isinstance(self.policy, Strong):
            if not self.strong_reads:
                # a strong client on a database where others defer writes: everything
                # committed must be visible to its global queries
                self.apply_all()
            return
        if self.frozen:
            return
        now = self.api.clock()
        if self._wants_applier():
            # time-based lag on the real clock: skip the check while nothing can be due
            if now < self._next_due and time.monotonic() - self._checked_at < _RECHECK:
                return
            deferred = self._deferred
            checked_at = time.monotonic()
            with self.api.backend.read() as r:
                first_due = r.first_pending_due()
                rows = r.due_pending(now) if first_due is not None and first_due <= now else []
            self._checked_at = checked_at
            if self._deferred == deferred:  # else a write of another thread may be due first
                self._next_due = math.inf if first_due is None else first_due
        else:
            # probability policies roll their dice at every query; simulated clocks are
            # exact: check every time
            with self.api.backend.read() as r:
                rows = r.due_pending(now)
        if not rows:
            return
        wanted = set(groups) if groups is not None else None
        chosen: dict[tuple[int, bytes], int] = {}
        blocked: set[tuple[int, bytes]] = set()
        probability = self.policy.probability
        for row_pid, group, version, due in rows:
            ident = (row_pid, bytes(group))
            if pid is not None and row_pid != pid:
                continue
            if wanted is not None and ident[1] not in wanted:
                continue
            if ident in blocked:
                continue
            if probability is not None:
                with self._rng_lock:
                    ok = self.rng.random() < probability
            else:
                ok = due <= now
            if ok:
                chosen[ident] = version
            else:
                blocked.add(ident)  # SEMANTICS.md §5.2: stop at the first not applied
        by_pid: dict[int, dict[bytes, int]] = {}
        for (row_pid, group), version in chosen.items():
            by_pid.setdefault(row_pid, {})[group] = version
        for row_pid, upto in by_pid.items():
            self.roll_forward(row_pid, list(upto), upto)

    def apply_all(self) -> int:
        """Apply every pending write in the database; returns how many groups moved."""
        with self.api.backend.read() as r:
            rows = r.due_pending(math.inf)
        groups: dict[int, set[bytes]] = {}
        for row_pid, group, _version, _due in rows:
            groups.setdefault(row_pid, set()).add(bytes(group))
        for row_pid, gs in groups.items():
            self.roll_forward(row_pid, sorted(gs))
        return sum(len(gs) for gs in groups.values())

    def pending_rows(self) -> list[tuple[int, bytes, int, float, list[Any]]]:
        """Every pending write: (partition id, group, version, due, [(key, kind, body)])."""
        with self.api.backend.read() as r:
            rows = r.all_pending()
        return [
            (pid, bytes(group), version, due, msgpack.unpackb(blob, raw=False))
            for pid, group, version, due, blob in rows
        ]
