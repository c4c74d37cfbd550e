"""Queries inside transactions (issue #4; SEMANTICS.md §6.1, §4.3; DESIGN.md §8).

An ancestor query is a read of its entity group: the group is snapshotted at the
transaction's first read of it (lookup or query), a later outside write to any entity of the
group makes the commit fail with ``Aborted``, and reading the moved group again fails at that
read (no history is kept). Queries do not see the transaction's own queued writes. Legacy
allows only ancestor queries inside a transaction and at most 25 groups, counting groups read
through queries; ``profile="firestore"`` lifts both. Every test runs on SQLite (memory, file)
and PostgreSQL.

An "outside write" is a ``client.put`` made from another thread (whose batch stack is its
own), or while a transaction started with ``begin()`` (not pushed) is open.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest

from datastore_lite import Client, Entity, Eventual
from datastore_lite import exceptions as exc
from datastore_lite.key import Key
from datastore_lite.query import PropertyFilter
from datastore_lite.transaction import NOT_IN_PROGRESS

CONTENTION = "409 too much contention on these datastore entities. please try again."
TOO_MANY_GROUPS = "400 operating on too many entity groups in a single transaction."
ONLY_ANCESTOR = "400 Only ancestor queries are allowed inside transactions."
ONE_OF = r"^At most one of eventual, transaction, or read_time is allowed\.$"


def make_entity(key: Key, **values: Any) -> Entity:
    entity = Entity(key)
    entity.update(values)
    return entity


def in_another_thread(fn: Callable[..., Any], *args: Any) -> None:
    """``fn(*args)`` in another thread: never part of this thread's transaction."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            fn(*args)
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the outside operation hung"
    if failure:
        raise failure[0]


def write_outside(client: Client, entity: Entity) -> None:
    in_another_thread(client.put, entity)


def values(client: Client, kind: str | None, ancestor: Key | None, **kwargs: Any) -> list[Any]:
    """``v`` of each result of a query (in key order)."""
    query = client.query(kind=kind, ancestor=ancestor) if kind else client.query(ancestor=ancestor)
    return [e.get("v") for e in query.fetch(**kwargs)]


def names(entities: Any) -> list[Any]:
    return [e.key.flat_path[-1] for e in entities]


def value_of(client: Client, key: Key) -> Any:
    entity = client.get(key)
    return None if entity is None else entity.get("v")


@pytest.fixture
def root(client: Client) -> Key:
    """A stored root (v=0) with two stored children c1 (v=1) and c2 (v=2)."""
    key = client.key("Parent", "p")
    client.put_multi(
        [
            make_entity(key, v=0),
            make_entity(Key("Child", "c1", parent=key), v=1),
            make_entity(Key("Child", "c2", parent=key), v=2),
        ]
    )
    return key


def child_of(root: Key, name: str) -> Key:
    return Key("Child", name, parent=root)


# -- snapshot at the first read, conflicts at commit -------------------------------------------


@pytest.mark.parametrize("outside", ["root", "child", "new child", "delete child", "grandchild"])
def test_ancestor_query_snapshots_the_group_an_outside_write_then_aborts_the_commit(
    client: Client, root: Key, outside: str
) -> None:
    elsewhere = client.key("Parent", "elsewhere")
    with pytest.raises(exc.Aborted) as info, client.transaction():
        assert values(client, "Child", root) == [1, 2]
        if outside == "root":
            write_outside(client, make_entity(root, v="outside"))
        elif outside == "child":
            write_outside(client, make_entity(child_of(root, "c1"), v="outside"))
        elif outside == "new child":
            write_outside(client, make_entity(child_of(root, "c3"), v="outside"))
        elif outside == "delete child":
            in_another_thread(client.delete, child_of(root, "c2"))
        else:
            write_outside(client, make_entity(Key("G", 1, parent=child_of(root, "c1")), v=1))
        client.put(make_entity(child_of(root, "c1"), v="txn"))
        client.put(make_entity(elsewhere, v="txn"))  # another group: not written either
    assert str(info.value) == CONTENTION
    assert value_of(client, child_of(root, "c1")) == ("outside" if outside == "child" else 1)
    assert client.get(elsewhere) is None


def test_kindless_and_keys_only_ancestor_queries_snapshot_too(client: Client, root: Key) -> None:
    for keys_only in (False, True):
        with pytest.raises(exc.Aborted), client.transaction():
            query = client.query(ancestor=root)
            if keys_only:
                query.keys_only()
            assert names(query.fetch()) == ["p", "c1", "c2"]
            write_outside(client, make_entity(child_of(root, "c1"), v=10 + keys_only))
            client.put(make_entity(root, v="txn"))
    assert value_of(client, root) == 0


def test_ancestor_query_of_a_child_snapshots_the_whole_group(client: Client, root: Key) -> None:
    with pytest.raises(exc.Aborted), client.transaction():
        assert names(client.query(ancestor=child_of(root, "c1")).fetch()) == ["c1"]
        write_outside(client, make_entity(root, v="outside"))  # the root: same group
        client.put(make_entity(child_of(root, "c1"), v="txn"))
    assert value_of(client, child_of(root, "c1")) == 1


def test_outside_write_before_the_first_query_is_seen_and_commits(
    client: Client, root: Key
) -> None:
    # SEMANTICS.md §6.1: the group is snapshotted at the first read, not at begin
    with client.transaction():
        write_outside(client, make_entity(child_of(root, "c1"), v=10))
        seen = values(client, "Child", root)
        assert seen == [10, 2]
        client.put(make_entity(root, v=sum(seen)))
    assert value_of(client, root) == 12


def test_outside_write_to_another_group_does_not_conflict(client: Client, root: Key) -> None:
    other = client.key("Parent", "other")
    with client.transaction():
        assert values(client, "Child", root) == [1, 2]
        write_outside(client, make_entity(Key("Child", "c1", parent=other), v="outside"))
        client.put(make_entity(root, v=3))
    assert value_of(client, root) == 3


@pytest.mark.parametrize("namespace", [None, "fresh"], ids=["empty-store", "new-namespace"])
def test_ancestor_query_of_an_empty_group_conflicts_with_an_outside_insert(
    client: Client, namespace: str | None
) -> None:
    # nothing was ever written there: the group's version 0 is still the snapshot
    key = client.key("Counter", "c", namespace=namespace)
    with pytest.raises(exc.Aborted), client.transaction():
        assert list(client.query(kind="Counter", ancestor=key, namespace=namespace).fetch()) == []
        write_outside(client, make_entity(key, v="outside"))
        client.put(make_entity(key, v="txn"))
    assert value_of(client, key) == "outside"


def test_two_transactions_querying_one_group_first_commit_wins(client: Client, root: Key) -> None:
    with pytest.raises(exc.Aborted), client.transaction():  # the outer one commits last
        outer = sum(values(client, "Child", root))
        with client.transaction():  # nested: now the current transaction
            inner = sum(values(client, "Child", root))
            client.put(make_entity(child_of(root, "c1"), v=inner))
        client.put(make_entity(child_of(root, "c2"), v=outer))
    assert values(client, "Child", root) == [3, 2]


# -- (d) reads are one snapshot: a moved group cannot be read again -----------------------------


@pytest.mark.parametrize(
    "first, second",
    [("query", "query"), ("query", "lookup"), ("lookup", "query")],
)
def test_reading_a_moved_group_again_aborts_at_that_read(
    client: Client, root: Key, first: str, second: str
) -> None:
    def read(how: str) -> Any:
        if how == "query":
            return values(client, "Child", root)
        return value_of(client, child_of(root, "c2"))

    with pytest.raises(exc.Aborted) as info, client.transaction():
        read(first)
        write_outside(client, make_entity(child_of(root, "c1"), v="outside"))
        read(second)  # fails here, not at the commit
        pytest.fail("the second read of the moved group returned")  # pragma: no cover
    assert str(info.value) == CONTENTION
    assert value_of(client, child_of(root, "c1")) == "outside"


def test_reading_an_unmoved_group_again_returns_the_same(client: Client, root: Key) -> None:
    with client.transaction():
        assert values(client, "Child", root) == [1, 2]
        write_outside(client, make_entity(client.key("Parent", "other"), v=1))
        assert values(client, "Child", root) == [1, 2]
        assert value_of(client, child_of(root, "c1")) == 1
        client.put(make_entity(root, v=3))
    assert value_of(client, root) == 3


def test_the_next_page_of_a_moved_group_aborts(client: Client, root: Key) -> None:
    with pytest.raises(exc.Aborted), client.transaction():
        query = client.query(kind="Child", ancestor=root)
        first_page = query.fetch(limit=1)
        assert [e["v"] for e in first_page] == [1]
        cursor = first_page.next_page_token
        assert cursor is not None
        write_outside(client, make_entity(child_of(root, "c3"), v=3))
        list(query.fetch(start_cursor=cursor))


def test_run_in_transaction_retries_an_aborted_query(make_client: Callable[..., Client]) -> None:
    client = make_client()
    root = client.key("Parent", "p")
    client.put(make_entity(Key("Child", "c1", parent=root), v=1))
    attempts = 0

    def total() -> int:
        nonlocal attempts
        attempts += 1
        first = sum(values(client, "Child", root))
        if attempts == 1:
            write_outside(client, make_entity(Key("Child", "c2", parent=root), v=10))
        again = sum(values(client, "Child", root))  # aborts on the first attempt only
        client.put(make_entity(root, v=again))
        return again if again == first else -1

    assert client.run_in_transaction(total, retries=1) == 11
    assert attempts == 2
    assert value_of(client, root) == 11


# -- no read-your-own-writes ---------------------------------------------------------------------


def test_ancestor_query_does_not_see_the_transactions_own_writes(client: Client, root: Key) -> None:
    with client.transaction():
        client.put(make_entity(child_of(root, "c1"), v=100))
        client.put(make_entity(child_of(root, "c3"), v=3))
        client.delete(child_of(root, "c2"))
        client.put(Entity(Key("Child", parent=root)))  # partial: completed at commit
        assert values(client, "Child", root) == [1, 2]
        assert names(client.query(ancestor=root).fetch()) == ["p", "c1", "c2"]
        query = client.query(kind="Child", ancestor=root)
        query.add_filter(filter=PropertyFilter("v", "=", 2))
        assert [e["v"] for e in query.fetch()] == [2]
        count = client.aggregation_query(client.query(kind="Child", ancestor=root)).count()
        assert [r.value for r in next(iter(count.fetch()))] == [2]
    after = client.query(kind="Child", ancestor=root).fetch()
    assert sorted(e.get("v") or 0 for e in after) == [0, 3, 100]


# -- profile rules: only ancestor queries (legacy), any query (firestore) -----------------------


def _non_ancestor_reads(client: Client) -> dict[str, Callable[[], Any]]:
    def filtered() -> Any:
        query = client.query(kind="Child")
        query.add_filter(filter=PropertyFilter("v", "=", 1))
        return list(query.fetch())

    def keys_only() -> Any:
        query = client.query(kind="Child")
        query.keys_only()
        return list(query.fetch())

    def projection() -> Any:
        return list(client.query(kind="Child", projection=["v"]).fetch())

    def count() -> Any:
        return list(client.aggregation_query(client.query(kind="Child")).count().fetch())

    def total() -> Any:
        return list(client.aggregation_query(client.query(kind="Child")).sum("v").fetch())

    return {
        "kind": lambda: list(client.query(kind="Child").fetch()),
        "kindless": lambda: list(client.query().fetch()),
        "filtered": filtered,
        "keys-only": keys_only,
        "projection": projection,
        "count": count,
        "sum": total,
    }


def test_legacy_refuses_non_ancestor_queries_in_a_transaction(client: Client, root: Key) -> None:
    refused = []
    for name, read in _non_ancestor_reads(client).items():
        with pytest.raises(exc.InvalidArgument) as info, client.transaction():
            client.put(make_entity(root, v=name))
            read()
        refused.append(name)
        assert str(info.value) == ONLY_ANCESTOR, name
        assert value_of(client, root) == 0  # the with block rolled back
    assert len(refused) == 7


def test_legacy_allows_ancestor_aggregations_in_a_transaction(client: Client, root: Key) -> None:
    with client.transaction():
        agg = client.aggregation_query(client.query(kind="Child", ancestor=root))
        agg.count(alias="n").sum("v", alias="total")
        results = {r.alias: r.value for r in next(iter(agg.fetch()))}
        assert results == {"n": 2, "total": 3}
        client.put(make_entity(root, v=results["total"]))
    assert value_of(client, root) == 3


def test_legacy_ancestor_aggregation_snapshots_its_group(client: Client, root: Key) -> None:
    with pytest.raises(exc.Aborted), client.transaction():
        agg = client.aggregation_query(client.query(kind="Child", ancestor=root)).count()
        assert [r.value for r in next(iter(agg.fetch()))] == [2]
        write_outside(client, make_entity(child_of(root, "c3"), v=3))
        client.put(make_entity(root, v=2))
    assert value_of(client, root) == 0


def test_firestore_profile_allows_any_query_and_aggregation(
    make_client: Callable[..., Client],
) -> None:
    client = make_client(profile="firestore")
    root = client.key("Parent", "p")
    client.put_multi([make_entity(Key("Child", f"c{i}", parent=root), v=i) for i in (1, 2)])
    with client.transaction():
        results = {name: read() for name, read in _non_ancestor_reads(client).items()}
        client.put(make_entity(root, v=len(results["kind"])))
    assert len(results["kind"]) == 2 and len(results["kindless"]) == 2
    assert [e["v"] for e in results["filtered"]] == [1]
    assert [r.value for r in results["count"][0]] == [2]
    assert [r.value for r in results["sum"][0]] == [3]
    assert value_of(client, root) == 2


# -- groups read through queries count toward the legacy limit of 25 -----------------------------


def _groups(client: Client, n: int, kind: str = "G") -> list[Key]:
    return [client.key(kind, i + 1) for i in range(n)]


@pytest.mark.parametrize("stored", [False, True], ids=["empty-store", "stored"])
def test_legacy_26th_group_queried_is_refused(client: Client, stored: bool) -> None:
    keys = _groups(client, 26)
    if stored:
        client.put_multi([make_entity(k, v=1) for k in keys])
    with pytest.raises(exc.InvalidArgument) as info, client.transaction():
        for key in keys[:25]:
            assert len(list(client.query(kind="G", ancestor=key).fetch())) == int(stored)
        for key in keys[:25]:  # the same groups again: still 25
            list(client.query(ancestor=key).fetch())
        list(client.query(kind="G", ancestor=keys[25]).fetch())
    assert str(info.value) == TOO_MANY_GROUPS


def test_legacy_queries_lookups_and_writes_count_together(client: Client) -> None:
    queried, looked_up, written = (_groups(client, 9, kind) for kind in ("Q", "L", "W"))
    with pytest.raises(exc.InvalidArgument) as info, client.transaction():
        for key in queried:
            list(client.query(ancestor=key).fetch())
            client.get(Key("Child", 1, parent=key))  # same group as the query: no extra
        client.get_multi(looked_up[:8])
        client.put_multi([make_entity(k, v=1) for k in written])  # 9 + 8 + 9 = 26
    assert str(info.value) == TOO_MANY_GROUPS
    assert client.get_multi(written) == []


def test_legacy_aggregations_count_toward_the_limit(client: Client) -> None:
    keys = _groups(client, 26)
    with pytest.raises(exc.InvalidArgument, match="too many entity groups"), client.transaction():
        for key in keys:
            agg = client.aggregation_query(client.query(kind="G", ancestor=key)).count()
            list(agg.fetch())


def test_firestore_profile_has_no_group_limit_for_queries(
    make_client: Callable[..., Client],
) -> None:
    client = make_client(profile="firestore")
    keys = _groups(client, 40)
    with client.transaction():
        for key in keys:
            assert list(client.query(kind="G", ancestor=key).fetch()) == []
        client.put_multi([make_entity(k, v=1) for k in keys])
    assert len(client.get_multi(keys)) == 40


# -- read options and finished transactions -------------------------------------------------------


def test_eventual_or_read_time_query_inside_a_transaction_is_refused(
    client: Client, root: Key
) -> None:
    when = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    query = client.query(kind="Child", ancestor=root)
    agg = client.aggregation_query(client.query(kind="Child", ancestor=root)).count()
    with client.transaction():
        with pytest.raises(ValueError, match=ONE_OF):
            list(query.fetch(eventual=True))
        with pytest.raises(ValueError, match=ONE_OF):
            list(query.fetch(read_time=when))
        with pytest.raises(ValueError, match=ONE_OF):
            list(agg.fetch(eventual=True))
        with pytest.raises(ValueError, match=ONE_OF):
            list(agg.fetch(read_time=when))
        assert values(client, "Child", root) == [1, 2]  # still usable
        client.put(make_entity(root, v=3))
    assert value_of(client, root) == 3


@pytest.mark.parametrize("how", ["committed", "rolled back"])
def test_query_with_a_finished_transaction_is_refused(client: Client, root: Key, how: str) -> None:
    # datastore_lite refuses it (the official client silently reads outside any transaction)
    with client.transaction() as txn:
        if how == "committed":
            client.put(make_entity(root, v=5))
            txn.commit()
        else:
            txn.rollback()
        assert client.current_transaction is txn
        with pytest.raises(ValueError) as info:
            list(client.query(kind="Child", ancestor=root).fetch())
        assert str(info.value) == NOT_IN_PROGRESS
        agg = client.aggregation_query(client.query(kind="Child", ancestor=root)).count()
        with pytest.raises(ValueError, match="not in progress"):
            list(agg.fetch())
    assert client.current_transaction is None
    assert value_of(client, root) == (5 if how == "committed" else 0)


def test_begin_later_query_as_the_first_read_begins_the_transaction(
    client: Client, root: Key
) -> None:
    with client.transaction(begin_later=True) as txn:
        assert txn.id is None
        write_outside(client, make_entity(child_of(root, "c1"), v=10))  # before: seen
        assert values(client, "Child", root) == [10, 2]
        assert txn.id is not None
        client.put(make_entity(root, v=12))
    assert value_of(client, root) == 12

    with pytest.raises(exc.Aborted), client.transaction(begin_later=True) as txn:
        agg = client.aggregation_query(client.query(kind="Child", ancestor=root)).sum("v")
        assert [r.value for r in next(iter(agg.fetch()))] == [12]
        assert txn.id is not None  # began, and snapshotted the group
        write_outside(client, make_entity(child_of(root, "c2"), v=20))
        client.put(make_entity(root, v=0))
    assert value_of(client, root) == 12


def test_begin_later_refused_query_leaves_nothing_behind(client: Client, root: Key) -> None:
    with (
        pytest.raises(exc.InvalidArgument, match="Only ancestor"),
        client.transaction(begin_later=True),
    ):
        client.put(make_entity(root, v=1))
        list(client.query(kind="Child").fetch())
    assert value_of(client, root) == 0
    assert client.current_transaction is None


# -- eventual consistency: an ancestor query in a transaction rolls the group forward ---------


def test_ancestor_query_in_a_transaction_sees_the_latest_write_under_eventual(
    make_client: Callable[..., Client],
) -> None:
    client = make_client(consistency=Eventual(probability=0.0))
    root = client.key("Parent", "p")
    child = Key("Child", "c", parent=root)
    client.put(make_entity(root, v=0))
    client.put(make_entity(child, v=1))
    client.put(make_entity(child, v=2))  # applies v=1 first; v=2 stays pending
    assert values(client, "Child", None) == [1]  # a global query: stale
    assert values(client, "Child", root, eventual=True) == [1]
    with client.transaction():
        seen = values(client, "Child", root)
        assert seen == [2]  # rolled forward: the latest write
        client.put(make_entity(child, v=seen[0] + 1))
    assert values(client, "Child", root) == [3]
    client.consistency.apply_all()
    assert values(client, "Child", None) == [3]


def test_ancestor_query_under_eventual_still_conflicts(make_client: Callable[..., Client]) -> None:
    client = make_client(consistency=Eventual(probability=0.0))
    root = client.key("Parent", "p")
    client.put(make_entity(Key("Child", "c", parent=root), v=1))
    with pytest.raises(exc.Aborted), client.transaction():
        assert values(client, "Child", root) == [1]
        write_outside(client, make_entity(Key("Child", "d", parent=root), v=2))
        client.put(make_entity(root, v=1))
    assert client.get(root) is None


# -- known bugs ----------------------------------------------------------------------------------


def test_firestore_query_then_write_is_not_a_lost_update(
    make_client: Callable[..., Client],
) -> None:
    client = make_client(profile="firestore")
    key = client.key("Counter", "a")
    client.put(make_entity(key, n=0))
    with pytest.raises(exc.Aborted), client.transaction():
        (counter,) = client.query(kind="Counter").fetch()
        write_outside(client, make_entity(key, n=100))
        counter["n"] += 1
        client.put(counter)
    assert client.get(key)["n"] == 100  # type: ignore[index]
