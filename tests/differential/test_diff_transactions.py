"""Differential: transaction conflict outcomes on Google's emulator and on datastore_lite.

SEMANTICS.md §6.1. Each scenario runs, step for step, through the official client against
the Cloud Datastore emulator (legacy mode, ``--consistency=1.0``: the shared ``official``
fixture of ``conftest.py``) and through datastore_lite on each store of ``backend_url``;
the outcome (the values read and stored, or the exception's class name and ``str``) must be
the same. "Outside" writes are plain ``client.put`` calls made while a transaction started
with ``begin()`` is open.

Deliberate difference (d): datastore_lite keeps no history, so a second read of a group
that moved since the transaction's first read of it fails with ``Aborted`` at that read;
the emulator returns the snapshot and fails the commit. Scenarios that re-read a moved
group therefore also write, so that both end in the same ``Aborted``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from datastore_lite import Client
from tests.differential.harness import side_of

pytestmark = pytest.mark.emulator

Scenario = Callable[[Any, Any], Any]


def run(scenario: Scenario, client: Any) -> Any:
    """The scenario's result, or ``(exception class name, str(exc))``."""
    entity_class = side_of(client).Entity

    def make(key: Any, **values: Any) -> Any:
        entity = entity_class(key)
        entity.update(values)
        return entity

    try:
        return ("ok", scenario(client, make))
    except Exception as error:  # the exception itself is the outcome being compared
        return (type(error).__name__, str(error))


def stored(client: Any, *keys: Any) -> list[Any]:
    """``v`` of each key (None when missing), in the order given."""
    values = []
    for key in keys:
        entity = client.get(key)
        values.append(None if entity is None else entity.get("v"))
    return values


def read_root_then_outside_write_to_child(client: Any, make: Any) -> Any:
    root = client.key("Parent", "p")
    child = client.key("Parent", "p", "Child", "c")
    client.put(make(root, v=1))
    txn = client.transaction()
    txn.begin()
    client.get(root, transaction=txn)
    client.put(make(child, v="outside"))
    txn.put(make(root, v="txn"))
    try:
        txn.commit()
    finally:
        after = stored(client, root, child)
    return after


def two_blind_writes(client: Any, make: Any) -> Any:
    root = client.key("Parent", "p")
    child = client.key("Parent", "p", "Child", "c")
    client.put(make(root, v=0))
    first, second = client.transaction(), client.transaction()
    first.begin()
    second.begin()
    first.put(make(root, v="first"))
    second.put(make(root, v="second"))
    second.put(make(child, v="second"))
    first.commit()
    second.commit()
    return stored(client, root, child)


def outside_write_before_first_read(client: Any, make: Any) -> Any:
    root = client.key("Parent", "p")
    client.put(make(root, v=1))
    txn = client.transaction()
    txn.begin()
    client.put(make(root, v=2))
    seen = client.get(root, transaction=txn)["v"]
    txn.put(make(root, v=seen + 10))
    txn.commit()
    return seen, stored(client, root)


def read_missing_then_outside_insert(client: Any, make: Any) -> Any:
    client.put(make(client.key("Parent", "other"), v=0))
    key = client.key("Parent", "new")
    txn = client.transaction()
    txn.begin()
    missing = client.get(key, transaction=txn)
    client.put(make(key, v="outside"))
    txn.put(make(key, v="txn"))
    try:
        txn.commit()
    finally:
        after = stored(client, key)
    return missing, after


def outside_write_to_another_group(client: Any, make: Any) -> Any:
    root = client.key("Parent", "p")
    client.put(make(root, v=1))
    txn = client.transaction()
    txn.begin()
    client.get(root, transaction=txn)
    client.put(make(client.key("Parent", "q"), v="outside"))
    txn.put(make(root, v="txn"))
    txn.commit()
    return stored(client, root)


def two_readers_of_one_group(client: Any, make: Any) -> Any:
    root = client.key("Parent", "p")
    child = client.key("Parent", "p", "Child", "c")
    client.put(make(root, v=1))
    first, second = client.transaction(), client.transaction()
    first.begin()
    second.begin()
    client.get(root, transaction=first)
    client.get(child, transaction=second)
    first.put(make(root, v="first"))
    second.put(make(child, v="second"))
    first.commit()
    try:
        second.commit()
    finally:
        after = stored(client, root, child)
    return after


def read_again_after_outside_write(client: Any, make: Any) -> Any:
    root = client.key("Parent", "p")
    child = client.key("Parent", "p", "Child", "c")
    client.put(make(root, v=1))
    txn = client.transaction()
    txn.begin()
    client.get(root, transaction=txn)
    client.put(make(child, v="outside"))
    try:
        client.get(root, transaction=txn)  # lite: Aborted here; emulator: at the commit
        txn.put(make(root, v="txn"))
        txn.commit()
    finally:
        after = stored(client, root, child)
    return after


def read_in_empty_namespace_then_outside_insert(client: Any, make: Any) -> Any:
    key = client.key("Parent", "new", namespace="fresh")
    txn = client.transaction()
    txn.begin()
    missing = client.get(key, transaction=txn)
    client.put(make(key, v="outside"))
    txn.put(make(key, v="txn"))
    try:
        txn.commit()
    finally:
        after = stored(client, key)
    return missing, after


def read_only_commit_after_outside_write(client: Any, make: Any) -> Any:
    root = client.key("Parent", "p")
    client.put(make(root, v=1))
    txn = client.transaction(read_only=True)
    txn.begin()
    seen = client.get(root, transaction=txn)["v"]
    client.put(make(root, v=2))
    txn.commit()
    return seen, stored(client, root)


def twenty_six_groups(client: Any, make: Any) -> Any:
    client.put(make(client.key("G", 100), v=0))
    txn = client.transaction()
    txn.begin()
    for i in range(1, 27):
        txn.put(make(client.key("G", i), v=i))
    try:
        txn.commit()
    finally:
        after = stored(client, client.key("G", 1), client.key("G", 26))
    return after


SCENARIOS: dict[str, Scenario] = {
    "read-root-outside-write-child": read_root_then_outside_write_to_child,
    "two-blind-writes": two_blind_writes,
    "outside-write-before-first-read": outside_write_before_first_read,
    "read-missing-outside-insert": read_missing_then_outside_insert,
    "outside-write-other-group": outside_write_to_another_group,
    "two-readers-one-group": two_readers_of_one_group,
    "26-groups": twenty_six_groups,
    "read-again-after-outside-write": read_again_after_outside_write,
    "read-empty-namespace-outside-insert": read_in_empty_namespace_then_outside_insert,
    "read-only-commit-after-outside-write": read_only_commit_after_outside_write,
}

# What the emulator answers (captured with these scenarios): the conflict cases must keep
# failing on both sides, not merely agree.
EXPECTED: dict[str, Any] = {
    "read-root-outside-write-child": (
        "Aborted",
        "409 too much contention on these datastore entities. please try again.",
    ),
    "two-blind-writes": ("ok", ["second", "second"]),
    "outside-write-before-first-read": ("ok", (2, [12])),
    "read-missing-outside-insert": (
        "Aborted",
        "409 too much contention on these datastore entities. please try again.",
    ),
    "outside-write-other-group": ("ok", ["txn"]),
    "two-readers-one-group": (
        "Aborted",
        "409 too much contention on these datastore entities. please try again.",
    ),
    "26-groups": (
        "InvalidArgument",
        "400 operating on too many entity groups in a single transaction.",
    ),
    "read-again-after-outside-write": (
        "Aborted",
        "409 too much contention on these datastore entities. please try again.",
    ),
    "read-empty-namespace-outside-insert": (
        "Aborted",
        "409 too much contention on these datastore entities. please try again.",
    ),
    "read-only-commit-after-outside-write": ("ok", (1, [2])),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_conflict_outcome_matches_the_emulator(name: str, official: Any, lite: Client) -> None:
    scenario = SCENARIOS[name]
    on_emulator = run(scenario, official)
    on_lite = run(scenario, lite)
    assert on_lite == on_emulator
    assert on_emulator == EXPECTED[name]


PROBES: dict[str, list[tuple[Any, ...]]] = {
    "read-root-outside-write-child": [("Parent", "p"), ("Parent", "p", "Child", "c")],
    "read-again-after-outside-write": [("Parent", "p"), ("Parent", "p", "Child", "c")],
    "read-missing-outside-insert": [("Parent", "new")],
    "26-groups": [("G", 1), ("G", 26), ("G", 100)],
}


@pytest.mark.parametrize("name", list(PROBES))
def test_a_failed_commit_writes_nothing_on_either_side(
    name: str, official: Any, lite: Client
) -> None:
    """After the refused commit, the stored values are the same on both sides."""
    probes = PROBES[name]
    results = []
    for client in (official, lite):
        run(SCENARIOS[name], client)
        results.append(stored(client, *(client.key(*path) for path in probes)))
    assert results[0] == results[1]
    assert "txn" not in results[1]


def read_another_group_after_outside_write(client: Any, make: Any) -> Any:
    """A read-only transaction reads A; another transaction moves A and B; it reads B."""
    a, b = client.key("Account", "a"), client.key("Account", "b")
    client.put_multi([make(a, v=100), make(b, v=50)])
    txn = client.transaction(read_only=True)
    txn.begin()
    seen = [client.get(a, transaction=txn)["v"]]
    with client.transaction():  # another transaction (this one is not pushed)
        client.put_multi([make(a, v=70), make(b, v=80)])
    seen.append(client.get(b, transaction=txn)["v"])
    txn.commit()
    return seen


def test_read_of_another_group_after_a_read_group_moved(official: Any, lite: Client) -> None:
    on_emulator = run(read_another_group_after_outside_write, official)
    assert on_emulator == (
        "Aborted",
        "409 too much contention on these datastore entities. please try again.",
    )
    assert run(read_another_group_after_outside_write, lite) == on_emulator
