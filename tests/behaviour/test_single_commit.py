"""The one-mutation commit and the one-key transactional read (the hot paths of a single
put and of a read-modify-write transaction) keep every rule of the general pipeline.

``_commit.commit`` takes a lean path for one mutation on a strong, unthrottled client, and
``client.get`` inside a transaction a lean read; both must give exactly what the general
path gives: SEMANTICS.md §6.2 outcomes, index rows, group versions, contention (§6.1, DESIGN.md
§8) and the roll-forward of writes an eventually consistent client left pending (§5.1). Every
test runs on SQLite (memory, file) and PostgreSQL.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from datastore_lite import Client, Entity, Eventual, Key
from datastore_lite import exceptions as exc
from datastore_lite._commit import Mutation
from datastore_lite._convert import entity_to_value, key_to_ref
from datastore_lite._values import KeyRef
from datastore_lite.query import PropertyFilter


def entity(key: Key, **values: Any) -> Entity:
    e = Entity(key)
    e.update(values)
    return e


def with_v(client: Client, v: Any, kind: str = "M") -> list[Any]:
    """Names of ``kind`` entities whose index says ``v == v`` (a global query)."""
    query = client.query(kind=kind, filters=[PropertyFilter("v", "=", v)])
    return sorted(e.key.id_or_name for e in query.fetch() if e.key is not None)


def mutation(op: str, key: Key, v: int) -> Mutation:
    if op == "delete":
        return Mutation("delete", key_to_ref(key))
    value = entity_to_value(entity(key, v=v))
    assert value.key is not None
    return Mutation(op, value.key, value)


def group_version(client: Client, key: Key) -> int:
    """The entity group's version, read the way a transaction snapshots it."""
    txn = client.transaction()
    txn.begin()
    client.get(key, transaction=txn)
    api = client._datastore_api
    assert txn.id is not None
    [version] = api._txns[txn.id].groups.values()
    txn.rollback()
    return version


# (exists before, op, read in the transaction first) -> stored v afterwards or the error
OUTCOMES = {
    (False, "insert"): "1",
    (False, "update"): "NotFound",
    (False, "upsert"): "1",
    (False, "delete"): "-",
    (True, "insert"): "AlreadyExists",
    (True, "update"): "1",
    (True, "upsert"): "1",
    (True, "delete"): "-",
}


@pytest.mark.parametrize("how", ["plain", "transaction", "transaction-after-read"])
def test_one_mutation_outcomes_index_rows_and_versions(client: Client, how: str) -> None:
    api = client._datastore_api
    for n, ((exists, op), expected) in enumerate(OUTCOMES.items()):
        key = client.key("G", f"g{n}", "M", f"m{n}")
        if exists:
            client.put(entity(key, v=0))
        before = group_version(client, key)
        rows_before = with_v(client, 0)
        txn_id = None
        if how != "plain":
            txn_id = api.begin_transaction()
            if how == "transaction-after-read":
                api.get_in_transaction(key_to_ref(key), txn_id)
        try:
            [result] = api.commit([mutation(op, key, 1)], transaction=txn_id)
        except exc.DatastoreLiteError as error:
            assert type(error).__name__ == expected, (exists, op, how)
            # a failed commit writes nothing: same entity, index rows and group version
            assert with_v(client, 0) == rows_before
            assert (client.get(key) is not None) == exists
            assert group_version(client, key) == before
            continue
        stored = client.get(key)
        assert ("-" if stored is None else str(stored["v"])) == expected, (exists, op, how)
        # the index follows the body: the old value's row is gone, the new one's is there
        assert f"m{n}" not in with_v(client, 0)
        assert (f"m{n}" in with_v(client, 1)) == (expected == "1")
        # the group moved by one, and the result reports the version written
        assert group_version(client, key) == before + 1 == result.version


def test_read_modify_write_detects_a_write_between_read_and_commit(client: Client) -> None:
    key = client.key("Counter", "c")
    client.put(entity(key, n=0))
    txn = client.transaction()
    txn.begin()
    counter = client.get(key, transaction=txn)
    assert counter is not None
    client.put(entity(key, n=10))  # not in the transaction: it is not the current batch
    counter["n"] += 1
    txn.put(counter)
    with pytest.raises(exc.Aborted):
        txn.commit()
    stored = client.get(key)
    assert stored is not None and stored["n"] == 10


def test_transactional_get_inside_with_reads_in_the_transaction(client: Client) -> None:
    a = client.key("A", 1)
    client.put(entity(a, v=1))
    with client.transaction() as txn:
        assert client.get(a)["v"] == 1  # type: ignore[index]
        assert client.get(client.key("A", 1, "Child", 1)) is None
        assert txn.id is not None
        state = client._datastore_api._txns[txn.id]
        # both reads were taken in the transaction: one group snapshotted, two bodies kept
        assert len(state.groups) == 1 and len(state.bodies) == 2


@pytest.mark.parametrize("second", ["same group", "other group"])
def test_transactional_read_after_an_outside_write_fails_early(
    shared_url: str, second: str
) -> None:
    """SEMANTICS.md §6.1: the reads are one snapshot; a group that moved cannot be read."""
    client = Client(project="p", url=shared_url, consistency="strong", index_yaml=os.devnull)
    outside = Client(project="p", url=shared_url, consistency="strong", index_yaml=os.devnull)
    try:
        a, b = client.key("A", 1), client.key("B", 1)
        client.put_multi([entity(a, v=1), entity(b, v=1)])
        with pytest.raises(exc.Aborted), client.transaction():
            assert client.get(a)["v"] == 1  # type: ignore[index]
            outside.put(entity(a, v=2))
            client.get(a if second == "same group" else b)
    finally:
        client.close()
        outside.close()


def test_transactional_get_of_a_bad_key_is_a_clear_error(client: Client) -> None:
    api = client._datastore_api
    txn_id = api.begin_transaction()
    with pytest.raises(exc.InvalidArgument, match="Must not be zero"):
        api.get_in_transaction(KeyRef(client.project, "", "", ("A", 0)), txn_id)


def test_strong_single_put_applies_writes_an_eventual_client_left_pending(
    shared_url: str,
) -> None:
    """SEMANTICS.md §5.1 across clients: a strong client's put to a group with pending
    writes applies them first, and the index rows of the pending version are replaced."""
    eventual = Client(
        project="p", url=shared_url, consistency=Eventual(probability=0.0), index_yaml=os.devnull
    )
    strong = Client(project="p", url=shared_url, consistency="strong", index_yaml=os.devnull)
    try:
        first, second = eventual.key("G", "g", "M", "a"), eventual.key("G", "g", "M", "b")
        eventual.put(entity(first, v=1))
        eventual.put(entity(second, v=1))  # applies the first; the second stays pending
        assert [p.version for p in eventual.consistency.pending()] == [2]
        strong.put(entity(second, v=2))  # one mutation: the lean path
        assert eventual.consistency.pending() == []
        assert with_v(strong, 1) == ["a"]
        assert with_v(strong, 2) == ["b"]
        assert group_version(strong, second) == 3
    finally:
        eventual.close()
        strong.close()


def test_changed_values_move_their_index_entries(client: Client) -> None:
    """Entries of a changed value are moved (UPDATE) rather than deleted and re-added; the
    index must end up exactly as if rebuilt: lists grown, shrunk and swapped, properties
    added and dropped, in one put and in a batch of several entities."""
    a, b = client.key("M", "a"), client.key("M", "b")
    client.put(entity(a, v=[1, 2, 3], w="x"))
    client.put_multi([entity(a, v=[3, 4], u=7), entity(b, v=[5])])
    assert with_v(client, 1) == [] and with_v(client, 2) == []
    assert with_v(client, 3) == ["a"] and with_v(client, 4) == ["a"] and with_v(client, 5) == ["b"]
    client.put_multi([entity(a, v=5), entity(b, v=[6, 7, 8, 9])])
    assert with_v(client, 5) == ["a"] and with_v(client, 3) == [] and with_v(client, 4) == []
    assert [with_v(client, n) for n in (6, 7, 8, 9)] == [["b"]] * 4
    for name, value in (("w", "x"), ("u", 7)):
        query = client.query(kind="M", filters=[PropertyFilter(name, "=", value)])
        assert list(query.fetch()) == []


def test_pairing_of_removed_and_added_entries() -> None:
    from datastore_lite._commit import _pair_moves

    k1, k2 = b"k1", b"k2"
    moves, remove, add = _pair_moves([(1, b"a", k1)], [(1, b"b", k1)])
    assert (moves, remove, add) == ([(1, b"a", b"b", k1)], [], [])
    # another index or another entity: no move
    assert _pair_moves([(1, b"a", k1)], [(2, b"b", k1)]) == ([], [(1, b"a", k1)], [(2, b"b", k1)])
    assert _pair_moves([(1, b"a", k1)], [(1, b"b", k2)])[0] == []
    moves, remove, add = _pair_moves(
        [(1, b"a", k1), (1, b"c", k1), (2, b"x", k2)], [(1, b"b", k1), (3, b"y", k2)]
    )
    assert len(moves) == 1 and moves[0][0] == 1 and moves[0][2] == b"b"
    assert sorted(remove + [(m[0], m[1], m[3]) for m in moves]) == [
        (1, b"a", k1),
        (1, b"c", k1),
        (2, b"x", k2),
    ]
    assert add == [(3, b"y", k2)]
