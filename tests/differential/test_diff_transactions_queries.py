"""Differential: queries inside transactions, on Google's emulator and on datastore_lite.

SEMANTICS.md §6.1, §4.3. Each scenario runs, step for step, through the official client
against the Cloud Datastore emulator (legacy mode, the shared ``official`` fixture) and
through datastore_lite on each store of ``backend_url``; the outcome (what the scenario
returned, or the exception's class name and ``str``) and the values stored afterwards must
be the same. Transactions are ``with client.transaction()`` blocks (queries use the current
transaction); "outside" writes run in another thread, whose batch stack is its own in both
libraries.

Deliberate difference (d): datastore_lite keeps no history, so reading a group again after
it moved fails with ``Aborted`` at that read, where the emulator returns the snapshot and
fails the commit; scenarios that re-read a moved group also write, so both end in the same
``Aborted`` (``test_reading_a_moved_group_again`` pins the difference itself).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from datastore_lite import Client, Eventual
from tests.differential.harness import PROJECT, EmulatorFactory, Raised, Side, outcome, side_of

pytestmark = pytest.mark.emulator

CONTENTION = ("Aborted", "409 too much contention on these datastore entities. please try again.")
ONLY_ANCESTOR = ("InvalidArgument", "400 Only ancestor queries are allowed inside transactions.")
TOO_MANY_GROUPS = (
    "InvalidArgument",
    "400 operating on too many entity groups in a single transaction.",
)
Scenario = Callable[[Side], Any]


def in_another_thread(fn: Callable[..., Any], *args: Any) -> None:
    failure: list[BaseException] = []

    def run() -> None:
        try:
            fn(*args)
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    if failure:
        raise failure[0]


def property_filter(side: Side, name: str, op: str, value: Any) -> Any:
    if side.name == "lite":
        from datastore_lite.query import PropertyFilter
    else:
        from google.cloud.datastore.query import PropertyFilter
    return PropertyFilter(name, op, value)


# -- the family: Parent p (v=0) with children c1 (v=1) and c2 (v=2) ---------------------------


def root(side: Side) -> Any:
    return side.key("Parent", "p")


def child(side: Side, name: str) -> Any:
    return side.key("Parent", "p", "Child", name)


def setup(side: Side) -> None:
    side.client.put_multi(
        [
            side.entity(root(side), v=0),
            side.entity(child(side, "c1"), v=1),
            side.entity(child(side, "c2"), v=2),
        ]
    )


def outside_put(side: Side, key: Any, v: Any) -> None:
    in_another_thread(side.client.put, side.entity(key, v=v))


def children(side: Side, ancestor: Any = None) -> list[Any]:
    """``v`` of each Child under ``ancestor`` (default: the root p), in key order."""
    query = side.client.query(kind="Child", ancestor=ancestor or root(side))
    return [e.get("v") for e in query.fetch()]


def stored(side: Side) -> list[Any]:
    """The family as stored now (strong lookups): v of p, c1, c2, c3 (None if missing)."""
    keys = [root(side), *(child(side, n) for n in ("c1", "c2", "c3"))]
    got = []
    for key in keys:
        entity = side.client.get(key)
        got.append(None if entity is None else entity.get("v"))
    return got


# -- scenarios ---------------------------------------------------------------------------------


def query_then_outside(write: Callable[[Side], None]) -> Scenario:
    """Query the group, let ``write`` change it from outside, write, commit."""

    def scenario(side: Side) -> Any:
        setup(side)
        with side.client.transaction():
            seen = children(side)
            write(side)
            side.client.put(side.entity(root(side), v=sum(seen)))
            side.client.put(side.entity(side.key("Parent", "elsewhere"), v="txn"))
        return seen

    return scenario


def kindless_keys_only_then_child_write(side: Side) -> Any:
    setup(side)
    with side.client.transaction():
        query = side.client.query(ancestor=root(side))
        query.keys_only()
        seen = [e.key.flat_path for e in query.fetch()]
        outside_put(side, child(side, "c1"), "outside")
        side.client.put(side.entity(root(side), v=len(seen)))
    return seen


def outside_write_before_first_query(side: Side) -> Any:
    setup(side)
    with side.client.transaction():
        outside_put(side, child(side, "c1"), 10)
        seen = children(side)
        side.client.put(side.entity(root(side), v=sum(seen)))
    return seen


def outside_write_to_another_group(side: Side) -> Any:
    setup(side)
    with side.client.transaction():
        seen = children(side)
        outside_put(side, side.key("Parent", "q", "Child", "c1"), "outside")
        side.client.put(side.entity(root(side), v=sum(seen)))
    return seen


def query_empty_group_then_outside_insert(namespace: str | None) -> Scenario:
    def scenario(side: Side) -> Any:
        key = side.key("Parent", "p", namespace=namespace)
        with side.client.transaction():
            query = side.client.query(kind="Parent", ancestor=key, namespace=namespace)
            seen = list(query.fetch())
            in_another_thread(side.client.put, side.entity(key, v="outside"))
            side.client.put(side.entity(key, v="txn"))
        return seen

    return scenario


def two_transactions_first_commit_wins(side: Side) -> Any:
    setup(side)
    with side.client.transaction():  # the outer one commits last
        outer = sum(children(side))
        with side.client.transaction():
            inner = sum(children(side))
            side.client.put(side.entity(child(side, "c1"), v=inner))
        side.client.put(side.entity(child(side, "c2"), v=outer))


def read_again_after_move(first: str, second: str) -> Scenario:
    def read(side: Side, how: str) -> Any:
        if how == "query":
            return children(side)
        return side.client.get(child(side, "c2"))["v"]

    def scenario(side: Side) -> Any:
        setup(side)
        with side.client.transaction():
            read(side, first)
            outside_put(side, child(side, "c3"), "outside")
            read(side, second)  # lite: Aborted here; emulator: at the commit
            side.client.put(side.entity(root(side), v="txn"))

    return scenario


def own_writes_are_not_seen(side: Side) -> Any:
    setup(side)
    with side.client.transaction():
        side.client.put(side.entity(child(side, "c1"), v=100))
        side.client.put(side.entity(child(side, "c3"), v=3))
        side.client.delete(child(side, "c2"))
        seen = children(side)
        everything = [e.key.flat_path for e in side.client.query(ancestor=root(side)).fetch()]
        query = side.client.query(kind="Child", ancestor=root(side))
        query.add_filter(filter=property_filter(side, "v", "=", 2))
        filtered = [e["v"] for e in query.fetch()]
    return seen, everything, filtered


def groups_through_queries(n: int) -> Scenario:
    def scenario(side: Side) -> Any:
        side.client.put(side.entity(side.key("G", 1), v=1))
        with side.client.transaction():
            for i in range(n):
                list(side.client.query(kind="G", ancestor=side.key("G", i + 1)).fetch())
            for i in range(n):  # the same groups again: they count once
                list(side.client.query(ancestor=side.key("G", i + 1)).fetch())
            side.client.put(side.entity(side.key("G", 1), v="txn"))

    return scenario


def queries_lookups_and_writes(side: Side) -> Any:
    with side.client.transaction():
        for i in range(9):
            list(side.client.query(ancestor=side.key("Q", i + 1)).fetch())
            side.client.get(side.key("Q", i + 1, "Child", 1))  # same group: no extra
        side.client.get_multi([side.key("L", i + 1) for i in range(8)])
        side.client.put_multi([side.entity(side.key("W", i + 1), v=1) for i in range(9)])


def non_ancestor(make_query: Callable[[Side], Any]) -> Scenario:
    def scenario(side: Side) -> Any:
        setup(side)
        with side.client.transaction():
            side.client.put(side.entity(root(side), v="txn"))
            return list(make_query(side).fetch())

    return scenario


def _filtered(side: Side) -> Any:
    query = side.client.query(kind="Child")
    query.add_filter(filter=property_filter(side, "v", "=", 1))
    return query


def _keys_only(side: Side) -> Any:
    query = side.client.query(kind="Child")
    query.keys_only()
    return query


SCENARIOS: dict[str, tuple[Scenario, Any]] = {
    # name: (scenario, the emulator's outcome)
    "query-outside-write-root": (
        query_then_outside(lambda side: outside_put(side, root(side), "outside")),
        CONTENTION,
    ),
    "query-outside-write-child": (
        query_then_outside(lambda side: outside_put(side, child(side, "c1"), "outside")),
        CONTENTION,
    ),
    "query-outside-new-child": (
        query_then_outside(lambda side: outside_put(side, child(side, "c3"), "outside")),
        CONTENTION,
    ),
    "query-outside-delete-child": (
        query_then_outside(lambda side: in_another_thread(side.client.delete, child(side, "c2"))),
        CONTENTION,
    ),
    "kindless-keys-only-outside-write-child": (kindless_keys_only_then_child_write, CONTENTION),
    "outside-write-before-first-query": (outside_write_before_first_query, ("ok", [10, 2])),
    "outside-write-other-group": (outside_write_to_another_group, ("ok", [1, 2])),
    "query-empty-store-outside-insert": (query_empty_group_then_outside_insert(None), CONTENTION),
    "query-empty-namespace-outside-insert": (
        query_empty_group_then_outside_insert("fresh"),
        CONTENTION,
    ),
    "two-transactions-first-commit-wins": (two_transactions_first_commit_wins, CONTENTION),
    "query-again-after-move": (read_again_after_move("query", "query"), CONTENTION),
    "query-then-lookup-after-move": (read_again_after_move("query", "lookup"), CONTENTION),
    "lookup-then-query-after-move": (read_again_after_move("lookup", "query"), CONTENTION),
    "own-writes-not-seen": (
        own_writes_are_not_seen,
        (
            "ok",
            (
                [1, 2],
                [("Parent", "p"), ("Parent", "p", "Child", "c1"), ("Parent", "p", "Child", "c2")],
                [2],
            ),
        ),
    ),
    "25-groups-through-queries": (groups_through_queries(25), ("ok", None)),
    "26-groups-through-queries": (groups_through_queries(26), TOO_MANY_GROUPS),
    "queries-lookups-writes-26-groups": (queries_lookups_and_writes, TOO_MANY_GROUPS),
    "non-ancestor-kind": (
        non_ancestor(lambda side: side.client.query(kind="Child")),
        ONLY_ANCESTOR,
    ),
    "non-ancestor-kindless": (non_ancestor(lambda side: side.client.query()), ONLY_ANCESTOR),
    "non-ancestor-filtered": (non_ancestor(_filtered), ONLY_ANCESTOR),
    "non-ancestor-keys-only": (non_ancestor(_keys_only), ONLY_ANCESTOR),
    "non-ancestor-projection": (
        non_ancestor(lambda side: side.client.query(kind="Child", projection=["v"])),
        ONLY_ANCESTOR,
    ),
}


def run(scenario: Scenario, side: Side) -> Any:
    """``("ok", what the scenario returned)`` or the exception's ``(class name, str)``."""
    got = outcome(lambda: scenario(side))
    return tuple(got) if isinstance(got, Raised) else ("ok", got)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_query_in_transaction_matches_the_emulator(name: str, official: Any, lite: Client) -> None:
    scenario, expected = SCENARIOS[name]
    results = []
    for side in (side_of(official), side_of(lite)):
        results.append((run(scenario, side), stored(side)))
    on_emulator, on_lite = results
    assert on_emulator[0] == expected  # the emulator still answers what was captured
    assert on_lite == on_emulator


# -- the deliberate difference (d), pinned -------------------------------------------------------


def test_reading_a_moved_group_again(official: Any, lite: Client) -> None:
    """Emulator: the second read returns the snapshot (the commit fails later). datastore_lite
    keeps no history, so that read fails at once with the same contention error."""

    def scenario(side: Side) -> Any:
        setup(side)
        with side.client.transaction():
            first = children(side)
            outside_put(side, child(side, "c1"), "outside")
            return first, children(side)

    assert run(scenario, side_of(official)) == ("ok", ([1, 2], [1, 2]))
    assert run(scenario, side_of(lite)) == CONTENTION


# -- eventual consistency: the transaction's ancestor query rolls the group forward -----------


@pytest.fixture
def eventual_official(emulator_factory: EmulatorFactory) -> Any:
    """An official client on an emulator started with ``--consistency=0.0``."""
    return emulator_factory(consistency=0.0).client(project=PROJECT)


@pytest.fixture
def eventual_lite(make_client: Callable[..., Client]) -> Client:
    return make_client(project=PROJECT, consistency=Eventual(probability=0.0))


def test_ancestor_query_in_transaction_sees_the_latest_write_under_eventual(
    eventual_official: Any, eventual_lite: Client
) -> None:
    def scenario(side: Side) -> Any:
        key = child(side, "c")
        side.client.put(side.entity(root(side), v=0))
        side.client.put(side.entity(key, v=1))
        side.client.put(side.entity(key, v=2))
        with side.client.transaction():
            seen = children(side)
            side.client.put(side.entity(key, v=seen[-1] + 1))
        return seen, children(side), side.client.get(key)["v"]

    on_emulator = scenario(side_of(eventual_official))
    assert on_emulator == ([2], [3], 3)
    assert scenario(side_of(eventual_lite)) == on_emulator


# -- known bugs -----------------------------------------------------------------------------------


def test_query_of_another_group_after_a_read_group_moved(official: Any, lite: Client) -> None:
    def scenario(side: Side) -> Any:
        setup(side)
        other = side.key("Parent", "q")
        side.client.put(side.entity(side.key("Parent", "q", "Child", "c1"), v=1))
        with side.client.transaction():
            first = children(side)
            outside_put(side, child(side, "c1"), "outside")
            return first, children(side, other)

    on_emulator = run(scenario, side_of(official))
    assert on_emulator == CONTENTION
    assert run(scenario, side_of(lite)) == on_emulator
