"""Differential: eventual consistency under probability 0 (SEMANTICS.md §5.3).

Google's emulator started with ``--consistency=0.0`` applies no job by chance: a write
becomes visible to global queries only when a strong read (get, ancestor query,
transactional read) or a new write of its entity group rolls the group forward.
datastore_lite's ``Eventual(probability=0.0)`` promises the same observations; each
scenario below runs step by step through the official client on that emulator and through
datastore_lite on each store, and every step's observation must agree.

Observations: a query gives the sorted ``(flat_path, v)`` of its results, a get gives ``v``
(or None when nothing is found).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from datastore_lite import Client, Eventual
from tests.differential.harness import PROJECT, EmulatorFactory, Side, side_of

pytestmark = pytest.mark.emulator

Step = tuple[str, Any]
Scenario = Callable[[Side], list[Step]]


@pytest.fixture
def eventual_official(emulator_factory: EmulatorFactory) -> Any:
    """The official client on an emulator started with ``--consistency=0.0``, emptied."""
    return emulator_factory(consistency=0.0).client(project=PROJECT)


@pytest.fixture
def eventual_lite(make_client: Callable[..., Client]) -> Client:
    return make_client(project=PROJECT, consistency=Eventual(probability=0.0))


def put(side: Side, path: tuple[Any, ...], v: int) -> None:
    side.client.put(side.entity(side.key(*path), v=v))


def query(
    side: Side, kind: str | None = "Photo", v: int | None = None, eventual: bool = False, **kw: Any
) -> Any:
    q = side.client.query(kind=kind, **kw)
    if v is not None:
        q.add_filter(filter=_filter(side, v))
    return sorted((e.key.flat_path, e.get("v")) for e in q.fetch(eventual=eventual))


def _filter(side: Side, v: int) -> Any:
    """``v = value`` as the side's own ``PropertyFilter``."""
    if side.name == "lite":
        from datastore_lite.query import PropertyFilter

        return PropertyFilter("v", "=", v)
    from google.cloud.datastore.query import PropertyFilter as OfficialFilter

    return OfficialFilter("v", "=", v)  # type: ignore[no-untyped-call]


def get(side: Side, path: tuple[Any, ...], eventual: bool = False) -> Any:
    found = side.client.get(side.key(*path), eventual=eventual)
    return None if found is None else found.get("v")


# -- scenarios --------------------------------------------------------------------------------


def new_entity(side: Side) -> list[Step]:
    put(side, ("Photo", 1), 1)
    return [
        ("global query after put", query(side)),
        ("global v = 1 after put", query(side, v=1)),
        ("global query again", query(side)),
        ("eventual get", get(side, ("Photo", 1), eventual=True)),
        ("strong get", get(side, ("Photo", 1))),
        ("global query after the strong get", query(side)),
        ("eventual get after the strong get", get(side, ("Photo", 1), eventual=True)),
    ]


def ancestor_query_rolls_forward(side: Side) -> list[Step]:
    put(side, ("User", "a", "Photo", 2), 2)
    put(side, ("User", "b", "Photo", 3), 3)
    return [
        ("global query after put", query(side)),
        (
            "eventual ancestor query of a",
            query(side, ancestor=side.key("User", "a"), eventual=True),
        ),
        ("ancestor query of a", query(side, ancestor=side.key("User", "a"))),
        ("global query: a rolled forward, b not", query(side)),
        ("eventual global query", query(side, eventual=True)),
    ]


def update_keeps_old_value(side: Side) -> list[Step]:
    put(side, ("Photo", 1), 1)
    steps: list[Step] = [("strong get applies v = 1", get(side, ("Photo", 1)))]
    put(side, ("Photo", 2), 5)
    put(side, ("Photo", 1), 2)
    return [
        *steps,
        ("global v = 1 after the update", query(side, v=1)),
        ("global v = 2 after the update", query(side, v=2)),
        ("global query after the update", query(side)),
        ("eventual get after the update", get(side, ("Photo", 1), eventual=True)),
        ("strong get after the update", get(side, ("Photo", 1))),
        ("global v = 1 after the strong get", query(side, v=1)),
        ("global v = 2 after the strong get", query(side, v=2)),
    ]


def delete_keeps_appearing(side: Side) -> list[Step]:
    put(side, ("Photo", 1), 1)
    steps: list[Step] = [("strong get applies the put", get(side, ("Photo", 1)))]
    side.client.delete(side.key("Photo", 1))
    return [
        *steps,
        ("global query after the delete", query(side)),
        ("global v = 1 after the delete", query(side, v=1)),
        ("eventual get after the delete", get(side, ("Photo", 1), eventual=True)),
        ("strong get after the delete", get(side, ("Photo", 1))),
        ("global query after the strong get", query(side)),
    ]


def transactional_commit(side: Side) -> list[Step]:
    with side.client.transaction():
        put(side, ("User", "t", "Photo", 7), 7)
    steps: list[Step] = [("global query after the commit", query(side))]
    with side.client.transaction():
        steps.append(("transactional get", get(side, ("User", "t", "Photo", 7))))
    steps.append(("global query after the transactional get", query(side)))
    return steps


SCENARIOS = [
    new_entity,
    ancestor_query_rolls_forward,
    update_keeps_old_value,
    delete_keeps_appearing,
    transactional_commit,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_probability_zero_matches_the_emulator(
    scenario: Scenario, eventual_official: Any, eventual_lite: Client
) -> None:
    official = scenario(side_of(eventual_official))
    lite = scenario(side_of(eventual_lite))
    for (label, theirs), (_, ours) in zip(official, lite, strict=True):
        assert ours == theirs, f"{label}: emulator {theirs!r}, datastore_lite {ours!r}"


def test_a_write_rolls_its_group_forward_unlike_the_emulator(
    eventual_official: Any, eventual_lite: Client
) -> None:
    """Deliberate difference (docs/consistency.md): a second write to a group.

    Datastore's documentation and the App Engine SDK apply a group's pending writes before
    any write to it (SEMANTICS.md §5.1-5.2, every write runs as a transaction that catches
    the group up), so the first write becomes visible. The emulator (observed with
    ``--consistency=0.0``) queues both: neither is visible.
    """

    def two_writes(side: Side) -> Any:
        put(side, ("User", "w", "Photo", 1), 1)
        put(side, ("User", "w", "Photo", 2), 2)
        return query(side)

    assert two_writes(side_of(eventual_official)) == []
    assert two_writes(side_of(eventual_lite)) == [(("User", "w", "Photo", 1), 1)]
