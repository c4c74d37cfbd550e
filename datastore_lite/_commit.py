"""The write pipeline (DESIGN.md §6): one path for put, delete, batch and transaction.

1. validate every mutation before any I/O;
2. complete partial keys (scattered ids, SEMANTICS.md §1.4);
3. encode bodies and index values in Python, before taking any lock;
4. one database transaction: lock the touched groups in a fixed order, re-check the
   versions a Datastore transaction read, apply the write limit, then either apply the
   writes (entities + index rows, old rows computed from the old bodies) or record them as
   pending (eventual consistency, §7), and bump the group versions;
5. return the mutation results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _limits, exceptions
from ._codec import decode_body, encode_body
from ._ids import reserve_threshold, scattered_id
from ._ordering import ancestor_leads, decode_path, encode_key_group
from ._values import EntityValue, KeyRef
from .indexes import IndexValues, composite_values, index_values, multi_mask

if TYPE_CHECKING:
    from ._api import LocalDatastoreAPI, TxnState
    from .backends.sql import Txn

__all__ = ["Mutation", "MutationResult", "commit"]

IndexRow = tuple[int, bytes, bytes]


@dataclass(slots=True)
class Mutation:
    """One v1 mutation: ``insert``, ``update``, ``upsert`` or ``delete``."""

    op: str
    key: KeyRef
    entity: EntityValue | None = None


@dataclass(slots=True)
class MutationResult:
    """The (completed) key of a mutation and the version it wrote."""

    key: KeyRef
    version: int


@dataclass(slots=True)
class _Prepared:
    op: str
    ref: KeyRef
    key: bytes
    group: bytes
    kind: str
    pid: int
    body: bytes | None = None
    values: IndexValues | None = None


@dataclass
class _PartitionWork:
    pid: int
    items: list[_Prepared] = field(default_factory=list)
    write_groups: set[bytes] = field(default_factory=set)
    read_groups: dict[bytes, int] = field(default_factory=dict)
    known: dict[bytes, tuple[int, bytes] | None] = field(default_factory=dict)


def validate(mutations: Sequence[Mutation], transactional: bool) -> None:
    """Step 1: everything that can be checked without the database."""
    _limits.check_mutation_count(len(mutations))
    seen: set[tuple[str, str, str, tuple[Any, ...]]] = set()
    for m in mutations:
        if m.op not in ("insert", "update", "upsert", "delete"):
            raise exceptions.InvalidArgument(f"unknown mutation operation {m.op!r}")
        _limits.check_key(m.key, write=True, allow_partial=m.op in ("insert", "upsert"))
        if m.op != "delete":
            if m.entity is None:
                raise exceptions.InvalidArgument(f"{m.op} mutation without an entity")
            _limits.check_properties(m.entity)
        if not transactional and not m.key.is_partial:
            ident = (m.key.project, m.key.database, m.key.namespace, m.key.path)
            if ident in seen:
                raise exceptions.InvalidArgument(
                    "A non-transactional commit may not contain multiple mutations "
                    "affecting the same entity."
                )
            seen.add(ident)


def commit(
    api: LocalDatastoreAPI, mutations: Sequence[Mutation], txn: TxnState | None
) -> list[MutationResult]:
    """Run the pipeline; all of the commit is written or none of it."""
    validate(mutations, txn is not None)
    refs = _complete_keys(api, mutations)
    if len(mutations) == 1 and api.throttle is None and api.consistency.is_strong:
        single = _commit_one(api, mutations[0], refs[0], txn)
        if single is not None:
            return [single]
    work, prepared = _prepare(api, mutations, refs, txn)
    names: dict[str, set[str]] = {}  # indexed property names by kind
    for p in prepared:
        if p.values:
            names.setdefault(p.kind, set()).update(p.values)
    api.registry.ensure_builtin((kind, name) for kind, known in names.items() for name in known)
    versions: dict[tuple[int, bytes], int] = {}
    with api.backend.write() as w:
        generation = w.index_generation(lock=True)
        if generation != api.registry.generation:
            api.registry.reload(generation)
        scattered_floor = max(
            (reserve_threshold(p.ref.path[-1]) for p in prepared if p.op != "delete"), default=0
        )
        if scattered_floor:
            w.bump_counter("scattered", scattered_floor)
        for pid in sorted(work):
            versions.update(_write_partition(api, w, work[pid]))
    api.backend.note_writes(len(prepared))
    return [MutationResult(ref, versions[(p.pid, p.group)]) for p, ref in zip(prepared, refs)]


def _commit_one(
    api: LocalDatastoreAPI, m: Mutation, ref: KeyRef, txn: TxnState | None
) -> MutationResult | None:
    """Steps 3-4 for the commonest commit: one mutation, strong, no write limit.

    The single put and the read-modify-write transaction (BENCHMARKS W2, W7) without the
    per-partition bookkeeping of :func:`_write_partition`: one group locked and bumped in
    one statement, the old body taken from the transaction's read when it has one. The
    same rules apply (DESIGN.md §8, SEMANTICS.md §6.2). Returns None, having done
    nothing, for a transaction that read groups besides the one written: their versions
    need the general path's check.
    """
    last = txn.last_read if txn is not None else None
    if last is not None and last[0] == ref:
        (_ref, pid, key, group) = last  # the key the transaction just read, encoded
    else:
        pid = api.pid_of(ref, create=True)
        key, group = encode_key_group(ref.path)
    seen_version: int | None = None
    was_read = False  # whether the transaction read this entity (hit: what it read)
    hit: tuple[int, bytes] | None = None
    if txn is not None:
        read = txn.groups
        if read:
            if len(read) > 1 or (pid, group) not in read:
                return None
            seen_version = read[(pid, group)]
        if (pid, key) in txn.bodies:
            was_read = True
            hit = txn.bodies[(pid, key)]
    kind = ref.path[-2]
    body = values = None
    entity = m.entity
    if entity is not None and m.op != "delete":
        body = encode_body(entity.properties, entity.exclude)
        _limits.check_entity_size(len(body) + len(key))
        values = index_values(entity.properties, entity.exclude, api.profile.empty_list_is_null)
        builtin = api.registry.builtin
        for name in values:
            if (kind, name) not in builtin:
                api.registry.ensure_builtin([(kind, name) for name in values])
                break
    scattered_floor = reserve_threshold(ref.path[-1]) if body is not None else 0
    with api.backend.write() as w:
        generation = w.index_generation(lock=True)
        if generation != api.registry.generation:
            api.registry.reload(generation)
        if scattered_floor:
            w.bump_counter("scattered", scattered_floor)
        # strong and unthrottled: the locking statement bumps the version too
        version, applied, tokens, tokens_at = w.lock_groups(pid, (group,), (group,))[group]
        if seen_version is not None and version != seen_version:
            # DESIGN.md §8: the group moved since the transaction read it
            raise exceptions.Aborted(exceptions.CONTENTION_MESSAGE)
        lagging = applied < version
        if lagging:
            # SEMANTICS.md §5.1: a write to a group first applies its pending writes (left
            # by an eventually consistent client sharing the database)
            api.consistency.roll_forward_locked(w, pid, group)
        if was_read and not lagging:
            # the transaction read this body and its group is unchanged: it is current
            old = {} if hit is None else {key: hit}
        else:
            old = w.read_entities(pid, (key,))
        present = key in old
        if m.op == "insert" and present:
            raise exceptions.AlreadyExists("entity already exists")
        if m.op == "update" and not present:
            raise exceptions.NotFound("no entity to update")
        version += 1
        apply_writes(api, w, pid, ((key, kind, group, version, body, values),), old)
        if lagging:
            w.update_groups(pid, [(group, version, version, tokens, tokens_at)])
    api.backend.note_writes(1)
    return MutationResult(ref, version)


def _complete_keys(api: LocalDatastoreAPI, mutations: Sequence[Mutation]) -> list[KeyRef]:
    """Step 2: give partial keys scattered ids, in request order."""
    if len(mutations) == 1 and len(mutations[0].key.path) % 2 == 0:
        return [mutations[0].key]  # one complete key (the commonest commit)
    partial = sum(1 for m in mutations if m.key.is_partial)
    if not partial:
        return [m.key for m in mutations]
    last = api.backend.allocate("scattered", partial)
    counter = last - partial + 1
    out = []
    for m in mutations:
        ref = m.key
        if ref.is_partial:
            ref = KeyRef(
                ref.project, ref.database, ref.namespace, ref.path + (scattered_id(counter),)
            )
            counter += 1
        out.append(ref)
    return out


def _prepare(
    api: LocalDatastoreAPI,
    mutations: Sequence[Mutation],
    refs: Sequence[KeyRef],
    txn: TxnState | None,
) -> tuple[dict[int, _PartitionWork], list[_Prepared]]:
    """Step 3: encode keys, bodies and index values outside any lock."""
    work: dict[int, _PartitionWork] = {}
    prepared: list[_Prepared] = []
    empty_null = api.profile.empty_list_is_null
    last_partition: tuple[str, str, str] | None = None
    pid = -1
    part = _PartitionWork(pid)
    for m, ref in zip(mutations, refs):
        partition = (ref.project, ref.database, ref.namespace)
        if partition != last_partition:  # a commit's keys mostly share one partition
            pid = api.pid_of(ref, create=True)
            last_partition = partition
            if pid not in work:
                work[pid] = _PartitionWork(pid)
            part = work[pid]
        key, group = encode_key_group(ref.path)
        item = _Prepared(m.op, ref, key, group, ref.path[-2], pid)
        if m.entity is not None and m.op != "delete":
            entity = m.entity
            item.body = encode_body(entity.properties, entity.exclude)
            _limits.check_entity_size(len(item.body) + len(key))
            item.values = index_values(entity.properties, entity.exclude, empty_null)
        part.items.append(item)
        part.write_groups.add(group)
        prepared.append(item)
    if txn is not None:
        for (pid, group), version in txn.groups.items():
            read_part = work.get(pid)
            if read_part is None:
                read_part = work[pid] = _PartitionWork(pid)
            read_part.read_groups[group] = version
        for (pid, key), hit in txn.bodies.items():
            if pid in work:
                work[pid].known[key] = hit
    return work, prepared


def _write_partition(
    api: LocalDatastoreAPI, w: Txn, part: _PartitionWork
) -> dict[tuple[int, bytes], int]:
    """Step 4 for one partition, inside the commit's database transaction."""
    pid = part.pid
    all_groups = sorted(part.write_groups | part.read_groups.keys())
    throttle = api.throttle
    # a strong, unthrottled write bumps its groups' versions in the locking statement
    bumped = part.write_groups if throttle is None and api.consistency.is_strong else set()
    states = w.lock_groups(pid, all_groups, bumped)
    # DESIGN.md §8: any group the transaction read (or writes) that moved since its
    # snapshot fails the whole commit, before anything is written.
    for group, seen_version in part.read_groups.items():
        if states[group][0] != seen_version:
            raise exceptions.Aborted(exceptions.CONTENTION_MESSAGE)
    now = api.clock()
    write_groups = sorted(part.write_groups)
    lagging: set[bytes] = set()
    for group in write_groups:
        version, applied, tokens, tokens_at = states[group]
        if throttle is not None:
            tokens, tokens_at = throttle.take(tokens, tokens_at, now)
            states[group] = (version, applied, tokens, tokens_at)
        if applied < version:
            # SEMANTICS.md §5.1: a write to a group first applies its pending writes
            api.consistency.roll_forward_locked(w, pid, group)
            lagging.add(group)

    # bodies the transaction read are current: their groups were just checked unchanged
    keys = {p.key for p in part.items}
    unknown = sorted(k for k in keys if k not in part.known)
    old = w.read_entities(pid, unknown) if unknown else {}
    for key in keys - set(unknown):
        hit = part.known[key]
        if hit is not None:
            old[key] = hit
    final = _resolve(part.items, old)
    deferred = api.consistency.defer_groups(write_groups, now)
    new_state: dict[bytes, tuple[int, int, float | None, float | None]] = {}
    for group in write_groups:
        version, _applied, tokens, tokens_at = states[group]
        # after the roll-forward above the group's applied version equals its version
        new_state[group] = (
            version + 1,
            version if group in deferred else version + 1,
            tokens,
            tokens_at,
        )
    to_apply = []
    paths: dict[bytes, tuple[Any, ...]] = {}
    pending: dict[bytes, list[tuple[bytes, str, bytes | None]]] = {}
    for key, (item, body) in final.items():
        if item.group in deferred:
            pending.setdefault(item.group, []).append((key, item.kind, body))
        else:
            to_apply.append(
                (key, item.kind, item.group, new_state[item.group][0], body, item.values)
            )
            paths[key] = item.ref.path
    for group, muts in pending.items():
        api.consistency.record_pending(w, pid, group, new_state[group][0], muts, deferred[group])
    apply_writes(api, w, pid, to_apply, old, paths)
    if bumped:
        # versions were bumped while locking; only groups rolled forward still need their
        # applied version set
        w.update_groups(pid, [(g, *new_state[g]) for g in write_groups if g in lagging])
    else:
        w.update_groups(pid, [(g, *new_state[g]) for g in write_groups])
    return {(pid, group): state[0] for group, state in new_state.items()}


def _resolve(
    items: Sequence[_Prepared], old: dict[bytes, tuple[int, bytes]]
) -> dict[bytes, tuple[_Prepared, bytes | None]]:
    """Apply the mutations of one partition in order; the final body per key (None = deleted).

    SEMANTICS.md §6.2: insert of an existing entity -> AlreadyExists; update of a missing
    one -> NotFound; within a transaction, mutations of one entity apply in order.
    """
    exists = dict.fromkeys(old, True)
    final: dict[bytes, tuple[_Prepared, bytes | None]] = {}
    for item in items:
        present = exists.get(item.key, False)
        if item.op == "insert" and present:
            raise exceptions.AlreadyExists("entity already exists")
        if item.op == "update" and not present:
            raise exceptions.NotFound("no entity to update")
        if item.op == "delete":
            exists[item.key] = False
            final[item.key] = (item, None)
        else:
            exists[item.key] = True
            final[item.key] = (item, item.body)
    return final


WriteRow = tuple[bytes, str, bytes, int, "bytes | None", "IndexValues | None"]


def apply_writes(
    api: LocalDatastoreAPI,
    w: Txn,
    pid: int,
    rows: Sequence[tuple[bytes, str, bytes, int, bytes | None, IndexValues | None]],
    old: dict[bytes, tuple[int, bytes]],
    paths: Mapping[bytes, tuple[Any, ...]] | None = None,
) -> None:
    """Make writes visible: entity rows plus the index-row difference against old bodies.

    ``rows`` are (key, kind, group, version, body or None for delete, index values).
    ``old`` maps keys to their current (version, body) in the applied state. ``paths``
    may give keys' flat paths (saves decoding them for composite index entries).
    """
    empty_null = api.profile.empty_list_is_null
    remove: list[IndexRow] = []
    add: list[IndexRow] = []
    upserts: list[tuple[bytes, str, bytes, int, bytes, int]] = []
    deletes: list[bytes] = []
    for key, kind, group, version, body, values in rows:
        before = old.get(key)
        path = paths.get(key) if paths is not None else None
        if body is None:
            if before is not None:
                props, exclude = decode_body(before[1])
                remove.extend(
                    entry_rows(api, kind, key, index_values(props, exclude, empty_null), path)
                )
                deletes.append(key)
            continue
        if values is None:
            props, exclude = decode_body(body)
            values = index_values(props, exclude, empty_null)
        new_rows = entry_rows(api, kind, key, values, path)
        if before is None:  # a new entity: every entry is new
            add += new_rows
        else:
            props, exclude = decode_body(before[1])
            old_rows = set(
                entry_rows(api, kind, key, index_values(props, exclude, empty_null), path)
            )
            new_set = set(new_rows)
            remove.extend(old_rows - new_set)
            add.extend(new_set - old_rows)
        multi = multi_mask(values)
        upserts.append((key, kind, group, version, body, multi))
    moves: list[tuple[int, bytes, bytes, bytes]] = []
    if remove and add:
        moves, remove, add = _pair_moves(remove, add)
    if remove:
        w.delete_index_entries(pid, remove)
    if deletes:
        w.delete_entities(pid, deletes)
    if upserts:
        w.upsert_entities(pid, upserts)
    if moves:
        w.move_index_entries(pid, moves)
    if add:
        w.insert_index_entries(pid, add)


def _pair_moves(
    remove: list[IndexRow], add: list[IndexRow]
) -> tuple[list[tuple[int, bytes, bytes, bytes]], list[IndexRow], list[IndexRow]]:
    """Pair each removed entry with an added one of the same index and entity.

    Returns ``(moves, remove, add)``: moves are (index_id, old value, new value, key), one
    UPDATE each instead of a DELETE and an INSERT - a changed single-valued property is
    then one statement (a read-modify-write of a counter: 5 statements instead of 6).
    No move can collide with an entry: an added entry is never among the entity's
    current ones (``new - old``), and the removed and added sets are disjoint. A removed
    entry that is not there (a composite index still building, whose backfill has not
    reached this entity) makes its move a no-op where DELETE + INSERT would have added the
    new entry; the backfill then adds it from the current body (``_index_sync``), so both
    end the same.
    """
    if len(remove) == 1 and len(add) == 1:  # the commonest case: one property changed
        (iid, old, key), (new_iid, new, new_key) = remove[0], add[0]
        if iid == new_iid and key == new_key:
            return [(iid, old, new, key)], [], []
        return [], remove, add
    spare: dict[tuple[int, bytes], list[bytes]] = {}
    for iid, value, key in add:
        spare.setdefault((iid, key), []).append(value)
    moves = []
    kept = []
    for iid, value, key in remove:
        values = spare.get((iid, key))
        if values:
            moves.append((iid, value, values.pop(), key))
        else:
            kept.append((iid, value, key))
    rest = [(iid, value, key) for (iid, key), values in spare.items() for value in values]
    return moves, kept, rest


def entry_rows(
    api: LocalDatastoreAPI,
    kind: str,
    key: bytes,
    values: IndexValues,
    path: tuple[Any, ...] | None = None,
) -> list[IndexRow]:
    """Every index entry of one entity: built-in single-property rows and composite rows.

    The rows are distinct without a set: values are de-duplicated per property, ids
    differ between indexes, and value encodings are self-delimiting, so distinct
    combinations (and ancestor leads) concatenate to distinct entries.
    """
    registry = api.registry
    builtin = registry.builtin_by_kind.get(kind)
    if builtin is None or not builtin.keys() >= values.keys():
        registry.reload()
        builtin = registry.builtin_by_kind.get(kind, {})
        missing = values.keys() - builtin.keys()
        if missing:  # pragma: no cover - ensure_builtin ran before the commit
            name = sorted(missing)[0]
            raise exceptions.InternalServerError(f"no index registered for {kind}.{name}")
    rows: list[IndexRow] = []
    for name, encoded in values.items():
        iid = builtin[name]
        if len(encoded) == 1:
            rows.append((iid, encoded[0], key))
        else:
            rows += [(iid, value, key) for value in encoded]
    composites = registry.writable(kind)
    if composites:
        if path is None:
            path = decode_path(key)
        # shared by the entity's composite indexes: ancestor leads, descending encodings
        leads = ancestor_leads(path) if any(e.index.ancestor for e in composites) else None
        inverted: dict[str, list[bytes]] = {}
        for entry in composites:
            iid = entry.id
            rows += [
                (iid, value, key)
                for value in composite_values(entry.index, values, path, leads, inverted)
            ]
    return rows


Clock = Callable[[], float]
