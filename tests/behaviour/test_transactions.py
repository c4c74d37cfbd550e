"""Transactions: the official client's API and legacy Datastore's optimistic semantics.

SEMANTICS.md §6.1 (snapshot at first read, per-group conflicts, blind writes, reuse after
finish, group and time limits), §6.2 (mutation order inside one commit), §8 (client API and
``ValueError`` texts); DESIGN.md §8. Every test runs on SQLite (memory, file) and PostgreSQL.

An "outside write" is a ``client.put`` made while a transaction started with ``begin()``
(not ``with``) is open, so it is not queued into that transaction; inside a ``with`` block
or ``run_in_transaction`` the outside write runs in another thread, whose batch stack is
its own.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest

from datastore_lite import Client, Entity, Transaction
from datastore_lite import exceptions as exc
from datastore_lite._commit import Mutation
from datastore_lite._convert import entity_to_value, key_to_ref
from datastore_lite.key import Key
from datastore_lite.transaction import NOT_IN_PROGRESS

CONTENTION = "409 too much contention on these datastore entities. please try again."
TOO_MANY_GROUPS = "400 operating on too many entity groups in a single transaction."


class FakeClock:
    """A clock that only moves when told to (or when something sleeps on it)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_entity(key: Key, **values: Any) -> Entity:
    entity = Entity(key)
    entity.update(values)
    return entity


def in_another_thread(fn: Callable[..., Any], *args: Any) -> None:
    """``fn(*args)`` in another thread (outside this thread's transaction)."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            fn(*args)
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    if failure:
        raise failure[0]


def write_outside(client: Client, entity: Entity) -> None:
    """``client.put`` from another thread: never part of this thread's transaction."""
    in_another_thread(client.put, entity)


def value_of(client: Client, key: Key, name: str = "v") -> Any:
    entity = client.get(key)
    return None if entity is None else entity.get(name)


def value_of_in(client: Client, key: Key, txn: Transaction) -> Any:
    """``v`` of ``key`` read inside ``txn``."""
    entity = client.get(key, transaction=txn)
    return None if entity is None else entity.get("v")


@pytest.fixture
def root(client: Client) -> Key:
    """A stored root entity (v=1); storing it also creates the test's partition."""
    key = client.key("Parent", "p")
    client.put(make_entity(key, v=1))
    return key


@pytest.fixture
def child(root: Key) -> Key:
    """A key in the same entity group as ``root`` (not stored)."""
    return Key("Child", "c", parent=root)


# -- API: context manager, begin / commit / rollback / id -------------------------------------


def test_context_manager_commits_on_exit(client: Client, root: Key) -> None:
    with client.transaction() as txn:
        assert isinstance(txn, Transaction)
        assert client.current_transaction is txn
        assert txn.id is not None
        entity = client.get(root)
        assert entity is not None
        entity["v"] = 2
        client.put(entity)
        new = Entity(Key("Photo", parent=root))
        client.put(new)
        # queued, not written: the partial key is completed at commit
        assert new.key is not None and new.key.is_partial
    assert client.current_transaction is None
    assert txn.id is None
    assert value_of(client, root) == 2
    assert new.key is not None and not new.key.is_partial
    assert client.get(new.key) is not None


def test_transaction_put_with_partial_root_key(client: Client) -> None:
    new = Entity(client.key("Photo"))
    with client.transaction():
        client.put(new)
    assert new.key is not None and not new.key.is_partial
    assert client.get(new.key) is not None
    # the same at the engine seam: an insert with a partial root key in a transaction
    value = entity_to_value(make_entity(client.key("M"), i=1))
    assert value.key is not None
    txn_id = client._datastore_api.begin_transaction()
    (result,) = client._datastore_api.commit(
        [Mutation("insert", value.key, value)], transaction=txn_id
    )
    assert result.key.path[0] == "M" and isinstance(result.key.path[1], int)
    assert value_of(client, client.key("M", result.key.path[1]), "i") == 1


def test_partial_root_keys_are_new_groups_of_their_own(client: Client) -> None:
    # each partial root key starts a new group: 25 of them fill the legacy limit
    fits = [Entity(client.key("Photo")) for _ in range(25)]
    with client.transaction():
        client.put_multi(fits)
    assert len({e.key for e in fits}) == 25
    assert len(client.get_multi([e.key for e in fits if e.key is not None])) == 25
    with pytest.raises(exc.InvalidArgument) as info, client.transaction():
        client.put_multi([Entity(client.key("Photo")) for _ in range(26)])
    assert str(info.value) == TOO_MANY_GROUPS


def test_context_manager_rolls_back_on_exception(client: Client, root: Key) -> None:
    class Boom(Exception):
        pass

    new = Entity(client.key("Photo", "x"))
    with pytest.raises(Boom), client.transaction() as txn:
        entity = client.get(root)
        assert entity is not None
        entity["v"] = 99
        client.put_multi([entity, new])
        client.delete(root)
        raise Boom
    assert client.current_transaction is None
    assert txn.id is None
    assert value_of(client, root) == 1
    assert client.get(new.key) is None  # type: ignore[arg-type]


def test_begin_commit_and_rollback_by_hand(client: Client, root: Key) -> None:
    txn = client.transaction()
    assert txn.id is None
    txn.begin()
    first_id = txn.id
    assert isinstance(first_id, bytes) and first_id
    txn.put(make_entity(root, v=5))
    txn.commit()
    assert txn.id is None
    assert value_of(client, root) == 5

    other = client.transaction()
    other.begin()
    assert other.id is not None and other.id != first_id
    other.put(make_entity(root, v=6))
    other.delete(root)
    other.rollback()
    assert other.id is None
    assert value_of(client, root) == 5


def test_begin_twice_is_refused(client: Client) -> None:
    txn = client.transaction()
    txn.begin()
    with pytest.raises(ValueError, match=r"^Batch already started previously\.$"):
        txn.begin()
    txn.rollback()


def test_transaction_put_and_delete_queue_until_commit(client: Client, root: Key) -> None:
    other = client.key("Parent", "q")
    client.put(make_entity(other, v=1))
    txn = client.transaction()
    txn.begin()
    txn.put(make_entity(root, v=2))
    txn.delete(other)
    assert [m.op for m in txn.mutations] == ["upsert", "delete"]
    assert value_of(client, root) == 1
    assert client.get(other) is not None
    txn.commit()
    assert value_of(client, root) == 2
    assert client.get(other) is None


def test_begin_later_begins_at_first_read(client: Client, root: Key) -> None:
    with client.transaction(begin_later=True) as txn:
        assert txn.id is None
        assert value_of(client, root) == 1
        assert txn.id is not None
        client.put(make_entity(root, v=3))
    assert value_of(client, root) == 3


def test_begin_later_without_reads_or_writes_commits_nothing(client: Client) -> None:
    with client.transaction(begin_later=True) as txn:
        pass
    assert txn.id is None
    with pytest.raises(ValueError, match=r"^Batch must be in progress to commit\(\)$"):
        txn.commit()


def test_begin_later_blind_write_begins_at_commit(client: Client) -> None:
    key = client.key("Parent", "late")
    with client.transaction(begin_later=True) as txn:
        client.put(make_entity(key, v=1))
        assert txn.id is None
    assert value_of(client, key) == 1


# -- read-only transactions ------------------------------------------------------------------


def test_read_only_transaction_refuses_put(client: Client, root: Key) -> None:
    with client.transaction(read_only=True) as txn:
        with pytest.raises(RuntimeError, match=r"^Transaction is read only$"):
            txn.put(make_entity(root, v=2))
        with pytest.raises(RuntimeError, match=r"^Transaction is read only$"):
            client.put(make_entity(root, v=2))
    assert value_of(client, root) == 1


def test_read_only_transaction_reads_and_commits(client: Client, root: Key) -> None:
    # regression (PostgreSQL): a commit that read but wrote nothing ran "key IN ()"
    with client.transaction(read_only=True):
        assert value_of(client, root) == 1
    with client.transaction():
        assert value_of(client, root) == 1
        assert len(client.get_multi([root, client.key("Parent", "missing")])) == 1


def test_read_only_transaction_commits_despite_outside_write(
    client: Client, root: Key, child: Key
) -> None:
    # nothing to write, nothing to re-check: the emulator commits it (SDK: empty commit =
    # rollback); the reads it made were of one snapshot
    txn = client.transaction(read_only=True)
    txn.begin()
    assert value_of_in(client, root, txn) == 1
    client.put(make_entity(child, v=1))
    txn.commit()
    assert txn.id is None


def test_transaction_without_mutations_commits_despite_outside_write(
    client: Client, root: Key, child: Key
) -> None:
    with client.transaction() as txn:
        assert value_of(client, root) == 1
        write_outside(client, make_entity(root, v=2))
        write_outside(client, make_entity(child, v=2))
    assert txn.id is None
    assert value_of(client, root) == 2


def test_read_only_transaction_delete_is_rejected_at_commit(client: Client, root: Key) -> None:
    # The official client checks read_only only in put(); the server rejects the delete.
    txn = client.transaction(read_only=True)
    txn.begin()
    txn.delete(root)
    with pytest.raises(exc.InvalidArgument, match="read-only transaction"):
        txn.commit()
    assert value_of(client, root) == 1


def test_read_time_needs_read_only(client: Client) -> None:
    with pytest.raises(ValueError, match=r"^read_time is only allowed in read only transaction\.$"):
        client.transaction(read_time=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))


# -- isolation: no read-your-own-writes, snapshot at first read -------------------------------


def test_no_read_your_own_writes(client: Client, root: Key) -> None:
    new = client.key("Parent", "new")
    with client.transaction():
        client.put(make_entity(root, v=2))
        client.put(make_entity(new, v=1))
        client.delete(client.key("Parent", "p", "Child", "x"))
        assert value_of(client, root) == 1  # the stored value, not the queued one
        assert client.get(new) is None
    assert value_of(client, root) == 2
    assert value_of(client, new) == 1


def test_outside_write_before_first_read_is_seen_and_commits(client: Client, root: Key) -> None:
    # SEMANTICS.md §6.1 [emu][fsemu p8]: the group is snapshotted at the first read, not at begin
    txn = client.transaction()
    txn.begin()
    client.put(make_entity(root, v=10))
    seen = client.get(root, transaction=txn)
    assert seen is not None and seen["v"] == 10
    seen["v"] = 11
    txn.put(seen)
    txn.commit()
    assert value_of(client, root) == 11


def test_snapshot_is_per_group_at_its_own_first_read(client: Client, root: Key) -> None:
    other = client.key("Parent", "other")
    client.put(make_entity(other, v=1))
    txn = client.transaction()
    txn.begin()
    assert client.get(root, transaction=txn) is not None  # group "p" snapshotted now
    client.put(make_entity(other, v=2))  # group "other" not read yet
    seen = client.get(other, transaction=txn)
    assert seen is not None and seen["v"] == 2
    txn.put(make_entity(root, v=3))
    txn.commit()
    assert value_of(client, root) == 3


def test_reading_a_group_again_sees_the_same_snapshot(client: Client, root: Key) -> None:
    other = client.key("Parent", "other")
    client.put(make_entity(other, v=1))
    txn = client.transaction()
    txn.begin()
    assert value_of_in(client, root, txn) == 1
    client.put(make_entity(other, v=2))  # another group: the snapshot of "p" still holds
    assert value_of_in(client, root, txn) == 1
    assert [e["v"] for e in client.get_multi([root, root], transaction=txn)] == [1, 1]
    txn.rollback()


@pytest.mark.parametrize("outside", ["same entity", "child", "delete"])
def test_reading_a_moved_group_again_aborts_at_that_read(
    client: Client, root: Key, child: Key, outside: str
) -> None:
    # No history is kept, so the group cannot be read at the transaction's snapshot any
    # more: the read itself fails with the contention error (the emulator would return the
    # snapshot and fail the commit; the transaction is lost either way).
    client.put(make_entity(child, v=0))
    txn = client.transaction()
    txn.begin()
    assert value_of_in(client, root, txn) == 1
    if outside == "same entity":
        client.put(make_entity(root, v=2))
    elif outside == "child":
        client.put(make_entity(child, v=2))
    else:
        client.delete(child)
    with pytest.raises(exc.Aborted) as info:
        client.get(child, transaction=txn)
    assert str(info.value) == CONTENTION
    with pytest.raises(exc.Aborted):
        client.get_multi([client.key("Parent", "elsewhere"), root], transaction=txn)
    txn.put(make_entity(root, v="txn"))
    with pytest.raises(exc.Aborted):
        txn.commit()
    assert value_of(client, root) == (2 if outside == "same entity" else 1)


def test_aborted_read_inside_with_block_rolls_back(client: Client, root: Key) -> None:
    new = client.key("Parent", "new")
    with pytest.raises(exc.Aborted), client.transaction() as txn:
        assert value_of(client, root) == 1
        client.put(make_entity(new, v=1))
        write_outside(client, make_entity(root, v=2))
        client.get(root)
    assert client.current_transaction is None
    assert txn.id is None
    assert client.get(new) is None


def test_run_in_transaction_retries_an_aborted_read(make_client: Callable[..., Client]) -> None:
    clock = FakeClock()
    client = make_client(clock=clock.time, sleep=clock.sleep)
    key = client.key("Counter", "c")
    client.put(make_entity(key, n=0))
    attempts = 0

    def read_twice() -> int:
        nonlocal attempts
        attempts += 1
        first = value_of(client, key, "n")
        if attempts == 1:
            write_outside(client, make_entity(key, n=5))
        second = value_of(client, key, "n")  # aborts on the first attempt
        assert second == first
        client.put(make_entity(key, n=second + 1))
        return int(second)

    assert client.run_in_transaction(read_twice, retries=1) == 5
    assert attempts == 2 and len(clock.sleeps) == 1
    assert value_of(client, key, "n") == 6


@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "read-write"])
def test_reads_across_groups_are_one_snapshot(client: Client, read_only: bool) -> None:
    alice, bob = client.key("Account", "alice"), client.key("Account", "bob")
    client.put_multi([make_entity(alice, v=100), make_entity(bob, v=50)])

    def transfer(amount: int) -> None:
        with client.transaction():
            src, dst = client.get(alice), client.get(bob)
            assert src is not None and dst is not None
            src["v"] -= amount
            dst["v"] += amount
            client.put_multi([src, dst])

    seen: list[int] = []
    with pytest.raises(exc.Aborted) as info, client.transaction(read_only=read_only):
        seen.append(value_of(client, alice))
        in_another_thread(transfer, 30)  # another transaction moves both groups
        seen.append(value_of(client, bob))
    assert str(info.value) == CONTENTION
    assert seen == [100]  # never 100 + 80: that total never existed


# -- conflicts (SEMANTICS.md §6.1) ------------------------------------------------------------


def test_read_root_then_outside_write_to_child_aborts(
    client: Client, root: Key, child: Key
) -> None:
    # emulator: txn read root, outside write to child in same group, commit -> Aborted
    elsewhere = client.key("Parent", "elsewhere")
    txn = client.transaction()
    txn.begin()
    assert client.get(root, transaction=txn) is not None
    client.put(make_entity(child, v="outside"))
    txn.put(make_entity(root, v=2))
    txn.put(make_entity(elsewhere, v=2))  # another group: must not be written either
    with pytest.raises(exc.Aborted) as info:
        txn.commit()
    assert str(info.value) == CONTENTION
    assert isinstance(info.value, exc.Conflict)
    assert value_of(client, root) == 1
    assert client.get(elsewhere) is None
    assert value_of(client, child) == "outside"


def test_read_child_then_outside_write_to_root_aborts(
    client: Client, root: Key, child: Key
) -> None:
    client.put(make_entity(child, v=1))
    txn = client.transaction()
    txn.begin()
    assert client.get(child, transaction=txn) is not None
    client.put(make_entity(root, v=2))
    txn.put(make_entity(child, v=2))
    with pytest.raises(exc.Aborted, match="too much contention"):
        txn.commit()
    assert value_of(client, child) == 1


def test_outside_delete_in_read_group_aborts(client: Client, root: Key, child: Key) -> None:
    client.put(make_entity(child, v=1))
    txn = client.transaction()
    txn.begin()
    assert client.get(root, transaction=txn) is not None
    client.delete(child)
    txn.put(make_entity(root, v=2))
    with pytest.raises(exc.Aborted):
        txn.commit()
    assert value_of(client, root) == 1


def test_read_of_missing_entity_then_outside_insert_aborts(client: Client, root: Key) -> None:
    # emulator: lookup finds nothing, an outside insert of that key, commit -> Aborted
    key = client.key("Parent", "missing")
    txn = client.transaction()
    txn.begin()
    assert client.get(key, transaction=txn) is None
    client.put(make_entity(key, v="outside"))
    txn.put(make_entity(key, v="txn"))
    with pytest.raises(exc.Aborted):
        txn.commit()
    assert value_of(client, key) == "outside"


@pytest.mark.parametrize("namespace", [None, "fresh"], ids=["empty-store", "new-namespace"])
def test_read_in_a_new_partition_conflicts_with_an_outside_insert(
    client: Client, namespace: str | None
) -> None:
    # a read where nothing was ever written still snapshots its group (version 0): a
    # concurrent first write must conflict with it (no lost update)
    key = client.key("Counter", "c", namespace=namespace)
    txn = client.transaction()
    txn.begin()
    assert client.get(key, transaction=txn) is None
    client.put(make_entity(key, n=1))
    txn.put(make_entity(key, n=1))
    with pytest.raises(exc.Aborted) as info:
        txn.commit()
    assert str(info.value) == CONTENTION
    assert value_of(client, key, "n") == 1


def test_first_increment_in_a_new_partition_is_not_lost(make_client: Callable[..., Client]) -> None:
    client = make_client()
    key = client.key("Counter", "c", namespace="fresh")

    def bump() -> None:
        entity = client.get(key) or Entity(key)
        if entity.get("n") is None:  # the first attempt is overtaken by a first write
            write_outside(client, make_entity(key, n=10))
        entity["n"] = entity.get("n", 0) + 1
        client.put(entity)

    client.run_in_transaction(bump)
    assert value_of(client, key, "n") == 11


def test_outside_write_to_another_group_does_not_conflict(client: Client, root: Key) -> None:
    txn = client.transaction()
    txn.begin()
    assert client.get(root, transaction=txn) is not None
    client.put(make_entity(client.key("Parent", "unrelated"), v=1))
    txn.put(make_entity(root, v=2))
    txn.commit()
    assert value_of(client, root) == 2


def test_two_readers_of_one_group_first_commit_wins(client: Client, root: Key) -> None:
    first, second = client.transaction(), client.transaction()
    first.begin()
    second.begin()
    for txn in (first, second):
        seen = client.get(root, transaction=txn)
        assert seen is not None
        seen["v"] += 1
        txn.put(seen)
    first.commit()
    with pytest.raises(exc.Aborted):
        second.commit()
    assert value_of(client, root) == 2


def test_two_blind_writes_both_succeed(client: Client, root: Key, child: Key) -> None:
    # emulator: blind writes (no reads) never conflict; the last commit wins
    first, second = client.transaction(), client.transaction()
    first.begin()
    second.begin()
    first.put(make_entity(root, v="first"))
    second.put(make_entity(child, v="second"))
    second.put(make_entity(root, v="second"))
    first.commit()
    second.commit()
    assert value_of(client, root) == "second"
    assert value_of(client, child) == "second"


def test_blind_write_is_not_checked_against_outside_writes(client: Client, root: Key) -> None:
    txn = client.transaction()
    txn.begin()
    txn.put(make_entity(root, v="txn"))
    client.put(make_entity(root, v="outside"))
    txn.commit()
    assert value_of(client, root) == "txn"


def test_aborted_inside_with_block_propagates_and_writes_nothing(
    client: Client, root: Key, child: Key
) -> None:
    with pytest.raises(exc.Aborted), client.transaction() as txn:
        assert client.get(root) is not None
        write_outside(client, make_entity(child, v=1))
        client.put(make_entity(root, v=2))
    assert client.current_transaction is None
    assert txn.id is None
    assert value_of(client, root) == 1


# -- a finished or aborted transaction cannot be used again ------------------------------------


def _finish(client: Client, root: Key, how: str) -> Transaction:
    txn = client.transaction()
    txn.begin()
    if how == "committed":
        txn.put(make_entity(root, v=2))
        txn.commit()
    elif how == "rolled back":
        txn.rollback()
    else:
        assert client.get(root, transaction=txn) is not None
        client.put(make_entity(root, v="outside"))
        txn.put(make_entity(root, v=2))
        with pytest.raises(exc.Aborted):
            txn.commit()
    return txn


@pytest.mark.parametrize("how", ["committed", "rolled back", "aborted"])
def test_finished_transaction_cannot_be_used_again(client: Client, root: Key, how: str) -> None:
    txn = _finish(client, root, how)
    before = value_of(client, root)
    assert txn.id is None
    with pytest.raises(ValueError, match=r"^Batch must be in progress to commit\(\)$"):
        txn.commit()
    with pytest.raises(ValueError, match=r"^Batch must be in progress to put\(\)$"):
        txn.put(make_entity(root, v=3))
    with pytest.raises(ValueError, match=r"^Batch must be in progress to delete\(\)$"):
        txn.delete(root)
    with pytest.raises(ValueError, match=r"^Batch must be in progress to rollback\(\)$"):
        txn.rollback()
    with pytest.raises(ValueError, match=r"^Batch already started previously\.$"):
        txn.begin()
    # datastore_lite refuses a read with an explicitly passed finished transaction (the
    # official client silently reads outside any transaction; see docs/transactions.md)
    with pytest.raises(ValueError) as info:
        client.get(root, transaction=txn)
    assert str(info.value) == NOT_IN_PROGRESS
    with pytest.raises(ValueError, match="not in progress"):
        client.get_multi([root], transaction=txn)
    assert value_of(client, root) == before


def test_engine_refuses_a_finished_transaction_id(client: Client, root: Key) -> None:
    api = client._datastore_api
    txn_id = api.begin_transaction()
    api.commit([], transaction=txn_id)
    with pytest.raises(exc.InvalidArgument) as info:
        api.lookup([key_to_ref(root)], transaction=txn_id)
    assert str(info.value) == "400 The referenced transaction has expired or is no longer valid."
    value = entity_to_value(make_entity(root, v=9))
    assert value.key is not None
    with pytest.raises(exc.InvalidArgument, match="expired or is no longer valid"):
        api.commit([Mutation("upsert", value.key, value)], transaction=txn_id)
    with pytest.raises(exc.InvalidArgument, match="expired or is no longer valid"):
        api.rollback(b"no such transaction")
    assert value_of(client, root) == 1


# -- read options -----------------------------------------------------------------------------


def test_eventual_read_inside_transaction_is_refused(client: Client, root: Key) -> None:
    message = r"^At most one of eventual, transaction, or read_time is allowed\.$"
    with client.transaction() as txn:
        with pytest.raises(ValueError, match=message):
            client.get(root, eventual=True)
        with pytest.raises(ValueError, match=message):
            client.get_multi([root], transaction=txn, eventual=True)
        with pytest.raises(ValueError, match=message):
            client.get(root, read_time=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        assert value_of(client, root) == 1
        client.put(make_entity(root, v=2))
    assert value_of(client, root) == 2


# -- profile limits ---------------------------------------------------------------------------


def _group_keys(client: Client, n: int, kind: str = "G") -> list[Key]:
    return [client.key(kind, i + 1) for i in range(n)]


@pytest.mark.parametrize("stored", [False, True], ids=["empty-store", "existing-partition"])
def test_legacy_reading_26_groups_is_refused(client: Client, stored: bool) -> None:
    # reads count whether or not anything was ever written in the partition
    if stored:
        client.put(make_entity(client.key("Parent", "p"), v=1))
    txn = client.transaction()
    txn.begin()
    assert client.get_multi(_group_keys(client, 25), transaction=txn) == []
    with pytest.raises(exc.InvalidArgument) as info:
        client.get(client.key("G", 26), transaction=txn)
    assert str(info.value) == TOO_MANY_GROUPS
    txn.rollback()


def test_legacy_writing_26_groups_is_refused_and_writes_nothing(client: Client) -> None:
    keys = _group_keys(client, 26)
    txn = client.transaction()
    txn.begin()
    for key in keys:
        txn.put(make_entity(key, v=1))
    with pytest.raises(exc.InvalidArgument) as info:
        txn.commit()
    assert str(info.value) == TOO_MANY_GROUPS
    assert client.get_multi(keys) == []


def test_legacy_reads_and_writes_count_together(client: Client, root: Key) -> None:
    reads, writes = _group_keys(client, 13, "R"), _group_keys(client, 13, "W")
    txn = client.transaction()
    txn.begin()
    client.get_multi(reads, transaction=txn)
    for key in writes:
        txn.put(make_entity(key, v=1))
    with pytest.raises(exc.InvalidArgument, match="too many entity groups"):
        txn.commit()
    assert client.get_multi(writes) == []


def test_legacy_25_groups_and_many_entities_per_group_are_fine(client: Client) -> None:
    keys = _group_keys(client, 25)
    children = [Key("C", i + 1, parent=keys[0]) for i in range(40)]
    with client.transaction():
        client.get_multi(keys + children)
        client.put_multi([make_entity(k, v=1) for k in keys + children])
    assert len(client.get_multi(keys + children)) == 65


def test_firestore_profile_lifts_the_group_limit(make_client: Callable[..., Client]) -> None:
    client = make_client(profile="firestore")
    keys = _group_keys(client, 60)
    with client.transaction():
        assert client.get_multi(keys) == []
        client.put_multi([make_entity(k, v=1) for k in keys])
    assert len(client.get_multi(keys)) == 60


# -- transaction time limit -------------------------------------------------------------------


def test_legacy_transaction_expires_after_60_seconds(make_client: Callable[..., Client]) -> None:
    clock = FakeClock()
    client = make_client(clock=clock.time, sleep=clock.sleep)
    key = client.key("Parent", "p")
    client.put(make_entity(key, v=1))

    on_time = client.transaction()
    on_time.begin()
    clock.advance(59.5)
    assert value_of(client, key) == 1
    on_time.put(make_entity(key, v=2))
    on_time.commit()

    late = client.transaction()
    late.begin()
    assert client.get(key, transaction=late) is not None
    late.put(make_entity(key, v=3))
    clock.advance(60.5)
    with pytest.raises(exc.InvalidArgument) as info:
        late.commit()
    message = str(info.value)
    assert message.startswith("400 The referenced transaction has expired or is no longer valid.")
    assert "60 s" in message and "legacy" in message
    assert value_of(client, key) == 2


def test_abandoned_transactions_are_forgotten_once_expired(
    make_client: Callable[..., Client],
) -> None:
    """Transactions begun and never finished do not pile up, and many open ones do not make
    every ``begin`` scan them all (the sweep waits until twice as many are open)."""
    clock = FakeClock()
    client = make_client(clock=clock.time, sleep=clock.sleep)
    api = client._datastore_api
    sweeps = 0
    first = set()
    for _ in range(300):
        before = api._sweep_at
        first.add(api.begin_transaction())
        sweeps += api._sweep_at != before
    assert len(api._txns) == 300  # none expired: all kept
    assert sweeps <= 4  # 32 -> 66 -> 134 -> 270 -> 540: a handful of scans, not 268
    clock.advance(61)  # past the legacy 60 s limit
    for _ in range(300):
        api.begin_transaction()
    assert not first & set(api._txns)  # the expired ones were forgotten at a sweep
    assert len(api._txns) <= 300


def test_expired_transaction_refuses_reads(make_client: Callable[..., Client]) -> None:
    clock = FakeClock()
    client = make_client(clock=clock.time, sleep=clock.sleep)
    key = client.key("Parent", "p")
    txn = client.transaction()
    txn.begin()
    clock.advance(61)
    with pytest.raises(exc.InvalidArgument, match="open longer than 60 s"):
        client.get(key, transaction=txn)


def test_firestore_transaction_limit_is_270_seconds(make_client: Callable[..., Client]) -> None:
    clock = FakeClock()
    client = make_client(profile="firestore", clock=clock.time, sleep=clock.sleep)
    key = client.key("Parent", "p")
    ok = client.transaction()
    ok.begin()
    clock.advance(200)
    ok.put(make_entity(key, v=1))
    ok.commit()
    late = client.transaction()
    late.begin()
    clock.advance(271)
    late.put(make_entity(key, v=2))
    with pytest.raises(exc.InvalidArgument, match="270 s"):
        late.commit()
    assert value_of(client, key) == 1


# -- mutation order inside one commit (SEMANTICS.md §6.2), at the engine seam ------------------

# Captured from the Cloud Datastore emulator (legacy mode, started with
# datastore_lite.testing.emulator.Emulator(consistency=1.0)), sending raw TRANSACTIONAL
# CommitRequests through google-cloud-datastore 2.x's _datastore_api: two mutations of one
# key, the first writing i=0, the second i=1. An existing entity holds i=-1 before. Outcome:
# the stored i afterwards ("-" = no entity), or the exception as "<Class>: <str(exc)>", in
# which case the entity must be unchanged.
_ALREADY = "AlreadyExists: 409 entity already exists"
_NOT_FOUND = "NotFound: 404 no entity to update"
TXN_SEQUENCES: dict[tuple[bool, str, str], str] = {
    # (exists before, first op, second op): outcome
    (False, "insert", "insert"): _ALREADY,
    (False, "insert", "update"): "1",
    (False, "insert", "upsert"): "1",
    (False, "insert", "delete"): "-",
    (False, "update", "insert"): _NOT_FOUND,
    (False, "update", "update"): _NOT_FOUND,
    (False, "update", "upsert"): _NOT_FOUND,
    (False, "update", "delete"): _NOT_FOUND,
    (False, "upsert", "insert"): _ALREADY,
    (False, "upsert", "update"): "1",
    (False, "upsert", "upsert"): "1",
    (False, "upsert", "delete"): "-",
    (False, "delete", "insert"): "1",
    (False, "delete", "update"): _NOT_FOUND,
    (False, "delete", "upsert"): "1",
    (False, "delete", "delete"): "-",
    (True, "insert", "insert"): _ALREADY,
    (True, "insert", "update"): _ALREADY,
    (True, "insert", "upsert"): _ALREADY,
    (True, "insert", "delete"): _ALREADY,
    (True, "update", "insert"): _ALREADY,
    (True, "update", "update"): "1",
    (True, "update", "upsert"): "1",
    (True, "update", "delete"): "-",
    (True, "upsert", "insert"): _ALREADY,
    (True, "upsert", "update"): "1",
    (True, "upsert", "upsert"): "1",
    (True, "upsert", "delete"): "-",
    (True, "delete", "insert"): "1",
    (True, "delete", "update"): _NOT_FOUND,
    (True, "delete", "upsert"): "1",
    (True, "delete", "delete"): "-",
}


def _mutation(op: str, key: Key, i: int) -> Mutation:
    if op == "delete":
        return Mutation("delete", key_to_ref(key))
    value = entity_to_value(make_entity(key, i=i))
    assert value.key is not None
    return Mutation(op, value.key, value)


def _outcome(client: Client, mutations: list[Mutation], key: Key, transactional: bool) -> str:
    api = client._datastore_api
    txn_id = api.begin_transaction() if transactional else None
    try:
        api.commit(mutations, transaction=txn_id)
    except exc.DatastoreLiteError as error:
        return f"{type(error).__name__}: {error}"
    stored = value_of(client, key, "i")
    return "-" if stored is None else str(stored)


def test_transactional_mutation_sequences_match_the_emulator(client: Client) -> None:
    mismatches = []
    for n, ((exists, first, second), expected) in enumerate(TXN_SEQUENCES.items()):
        key = client.key("M", f"k{n}")
        if exists:
            client.put(make_entity(key, i=-1))
        got = _outcome(client, [_mutation(first, key, 0), _mutation(second, key, 1)], key, True)
        if got != expected:
            mismatches.append(((exists, first, second), expected, got))
        if ":" in expected:  # an error: nothing written
            assert value_of(client, key, "i") == (-1 if exists else None), (first, second)
    assert mismatches == []


@pytest.mark.parametrize("ops", [("upsert", "upsert"), ("insert", "delete"), ("delete", "delete")])
def test_non_transactional_commit_refuses_two_mutations_of_one_entity(
    client: Client, ops: tuple[str, str]
) -> None:
    key = client.key("M", "same")
    got = _outcome(client, [_mutation(ops[0], key, 0), _mutation(ops[1], key, 1)], key, False)
    assert got == (
        "InvalidArgument: 400 A non-transactional commit may not contain multiple "
        "mutations affecting the same entity."
    )
    assert client.get(key) is None


def test_failed_mutation_fails_the_whole_transactional_commit(client: Client, root: Key) -> None:
    other = client.key("Parent", "other")
    mutations = [_mutation("upsert", other, 1), _mutation("insert", root, 2)]
    got = _outcome(client, mutations, other, True)
    assert got == _ALREADY
    assert client.get(other) is None
    assert value_of(client, root) == 1


def test_update_with_partial_key_is_invalid(client: Client) -> None:
    for path, shown in [(("P", "p", "M"), "[P: p, M: ]"), (("M",), "[M: ]")]:
        value = entity_to_value(make_entity(client.key(*path), i=1))
        assert value.key is not None
        txn_id = client._datastore_api.begin_transaction()
        with pytest.raises(exc.InvalidArgument) as info:
            client._datastore_api.commit([Mutation("update", value.key, value)], transaction=txn_id)
        assert str(info.value) == f"400 Key path element must not be incomplete: {shown}"


def test_insert_with_partial_key_gets_an_id_in_the_result(client: Client) -> None:
    value = entity_to_value(make_entity(client.key("P", "p", "M"), i=1))
    assert value.key is not None
    txn_id = client._datastore_api.begin_transaction()
    (result,) = client._datastore_api.commit(
        [Mutation("insert", value.key, value)], transaction=txn_id
    )
    assert result.key.path[:3] == ("P", "p", "M") and isinstance(result.key.path[3], int)
    assert result.version > 0
    assert value_of(client, client.key("P", "p", "M", result.key.path[3]), "i") == 1


# -- run_in_transaction -----------------------------------------------------------------------


def test_run_in_transaction_returns_fn_result_and_passes_arguments(
    make_client: Callable[..., Client],
) -> None:
    client = make_client()
    key = client.key("Counter", "c")
    client.put(make_entity(key, n=5))

    def add(target: Key, amount: int, *, label: str) -> tuple[str, int]:
        entity = client.get(target)
        assert entity is not None
        entity["n"] += amount
        client.put(entity)
        return label, entity["n"]

    assert client.run_in_transaction(add, key, 3, label="done") == ("done", 8)
    assert value_of(client, key, "n") == 8


def test_run_in_transaction_retries_aborted_from_scratch(
    make_client: Callable[..., Client],
) -> None:
    clock = FakeClock()
    client = make_client(clock=clock.time, sleep=clock.sleep)
    key = client.key("Counter", "c")
    client.put(make_entity(key, n=0))
    seen: list[int] = []

    def bump() -> int:
        entity = client.get(key)
        assert entity is not None
        seen.append(entity["n"])
        if len(seen) <= 2:  # the first two attempts are overtaken by an outside write
            write_outside(client, make_entity(key, n=entity["n"] + 100))
        entity["n"] += 1
        client.put(entity)
        return len(seen)

    assert client.run_in_transaction(bump, retries=3) == 3
    # each attempt re-read the value the previous outside write left
    assert seen == [0, 100, 200]
    assert value_of(client, key, "n") == 201
    # backoff between attempts: 10 ms doubling, with jitter of x0.5 .. x1.5
    assert len(clock.sleeps) == 2
    assert 0.005 <= clock.sleeps[0] <= 0.015
    assert 0.01 <= clock.sleeps[1] <= 0.03


def test_run_in_transaction_gives_up_after_retries(make_client: Callable[..., Client]) -> None:
    clock = FakeClock()
    client = make_client(clock=clock.time, sleep=clock.sleep)
    key = client.key("Counter", "c")
    client.put(make_entity(key, n=0))
    attempts = 0

    def always_overtaken() -> None:
        nonlocal attempts
        attempts += 1
        assert client.get(key) is not None
        write_outside(client, make_entity(key, n=-attempts))
        client.put(make_entity(key, n=attempts))

    with pytest.raises(exc.Aborted) as info:
        client.run_in_transaction(always_overtaken, retries=2)
    assert str(info.value) == CONTENTION
    assert attempts == 3
    assert len(clock.sleeps) == 2
    assert value_of(client, key, "n") == -3  # only the outside writes landed
    assert client.current_transaction is None


def test_run_in_transaction_zero_retries_tries_once(make_client: Callable[..., Client]) -> None:
    clock = FakeClock()
    client = make_client(clock=clock.time, sleep=clock.sleep)
    key = client.key("Counter", "c")
    client.put(make_entity(key, n=0))
    attempts = 0

    def overtaken() -> None:
        nonlocal attempts
        attempts += 1
        client.get(key)
        write_outside(client, make_entity(key, n=7))
        client.put(make_entity(key, n=1))

    with pytest.raises(exc.Aborted):
        client.run_in_transaction(overtaken, retries=0)
    assert attempts == 1 and clock.sleeps == []
    with pytest.raises(ValueError, match="retries must be >= 0"):
        client.run_in_transaction(overtaken, retries=-1)


def test_run_in_transaction_does_not_retry_other_errors(
    make_client: Callable[..., Client],
) -> None:
    clock = FakeClock()
    client = make_client(clock=clock.time, sleep=clock.sleep)
    key = client.key("Counter", "c")
    attempts = 0

    def broken() -> None:
        nonlocal attempts
        attempts += 1
        client.put(make_entity(key, n=1))
        raise KeyError("bug in fn")

    with pytest.raises(KeyError):
        client.run_in_transaction(broken, retries=5)
    assert attempts == 1 and clock.sleeps == []
    assert client.get(key) is None
