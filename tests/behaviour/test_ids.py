"""Id allocation and reservation on every backend (SEMANTICS.md §1.4, §8).

Scattered ids: ``id = 2**52 + bitreverse64(counter << 13)`` for counter = 1, 2, 3...; writing
or reserving an id in the scattered range moves the counter past it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from datastore_lite import Client, Entity, Key

# SEMANTICS.md §1.4: what both emulators return first on a fresh store
FIRST_IDS = [
    5629499534213120,
    5066549580791808,
    6192449487634432,
    4785074604081152,
    5910974510923776,
    5348024557502464,
]
_SCATTERED_LOW, _SCATTERED_HIGH = 2**52, 2**52 + 2**51


def _reference_scattered(counter: int) -> int:
    """SEMANTICS.md §1.4, written out independently of ``_ids``."""
    shifted = counter << 13
    reversed_bits = int(format(shifted, "064b")[::-1], 2)
    return 2**52 + reversed_bits


def test_reference_formula_gives_the_documented_ids() -> None:
    assert [_reference_scattered(c) for c in range(1, 7)] == FIRST_IDS


def test_allocate_ids_on_a_fresh_store(client: Client) -> None:
    keys = client.allocate_ids(client.key("Task"), 3)
    assert [k.id for k in keys] == FIRST_IDS[:3]
    assert all(k.kind == "Task" and k.project == "test-proj" for k in keys)
    # later calls continue the sequence
    assert [k.id for k in client.allocate_ids(client.key("Other"), 2)] == FIRST_IDS[3:5]


def test_allocate_ids_keeps_parent_namespace_and_kind(client: Client) -> None:
    partial = client.key("Parent", "p", "Child", namespace="ns")
    keys = client.allocate_ids(partial, 2)
    assert [k.flat_path for k in keys] == [("Parent", "p", "Child", i) for i in FIRST_IDS[:2]]
    assert all(k.namespace == "ns" for k in keys)


def test_partial_key_puts_draw_scattered_ids(client: Client) -> None:
    entities = [Entity(client.key("Task")) for _ in range(3)]
    client.put_multi(entities)
    # request order (SEMANTICS.md §1.4: one id per incomplete key, in order)
    assert [e.key.id for e in entities if e.key is not None] == FIRST_IDS[:3]
    allocated = client.allocate_ids(client.key("Task"), 1)
    assert allocated[0].id == FIRST_IDS[3]
    single = Entity(client.key("Task"))
    client.put(single)
    assert single.key is not None and single.key.id == FIRST_IDS[4]


def test_allocated_ids_are_unique_and_scattered(client: Client) -> None:
    ids = [k.id for k in client.allocate_ids(client.key("K"), 200)]
    entities = [Entity(client.key("K")) for _ in range(50)]
    client.put_multi(entities)
    ids += [e.key.id for e in entities if e.key is not None]
    assert len(set(ids)) == 250
    assert all(i is not None and _SCATTERED_LOW < i < _SCATTERED_HIGH for i in ids)
    assert ids[:6] == FIRST_IDS


def test_reserve_ids_multi_skips_past_a_scattered_id(client: Client) -> None:
    client.reserve_ids_multi([client.key("Task", FIRST_IDS[4])])
    # the counter moved past counter 5: the next id comes from counter 6
    assert [k.id for k in client.allocate_ids(client.key("Task"), 1)] == [FIRST_IDS[5]]


def test_reserve_ids_sequential_skips_past_a_scattered_id(client: Client) -> None:
    client.reserve_ids_sequential(client.key("Task", FIRST_IDS[2]), 1)
    ids = [k.id for k in client.allocate_ids(client.key("Task"), 3)]
    assert ids == [FIRST_IDS[3], FIRST_IDS[4], FIRST_IDS[5]]
    assert FIRST_IDS[2] not in ids


def test_reserving_an_id_in_the_parent_path(client: Client) -> None:
    # "every id in their paths reserved" (SEMANTICS.md §1.4)
    client.reserve_ids_multi([client.key("Parent", FIRST_IDS[3], "Child", 1)])
    assert client.allocate_ids(client.key("X"), 1)[0].id == FIRST_IDS[4]


def test_reserving_small_sequential_ids_does_not_move_scattered_allocation(client: Client) -> None:
    client.reserve_ids_sequential(client.key("Task", 1), 100)
    client.reserve_ids_multi([client.key("Task", 5), client.key("Task", "named")])
    assert [k.id for k in client.allocate_ids(client.key("Task"), 2)] == FIRST_IDS[:2]


def test_writing_a_scattered_id_moves_allocation_past_it(client: Client) -> None:
    client.put(Entity(client.key("Task", FIRST_IDS[1])))
    new = Entity(client.key("Task"))
    client.put(new)
    assert new.key is not None and new.key.id == FIRST_IDS[2]


def test_reserve_ids_is_deprecated(client: Client) -> None:
    with pytest.warns(DeprecationWarning, match="reserve_ids_sequential"):
        client.reserve_ids(client.key("Task", FIRST_IDS[0]), 1)
    # and it still reserves
    assert client.allocate_ids(client.key("Task"), 1)[0].id == FIRST_IDS[1]


def test_official_value_error_texts(client: Client) -> None:
    # SEMANTICS.md §8: the args are one tuple (message, key), as in the official client
    complete = client.key("Task", 1)
    with pytest.raises(ValueError) as info:
        client.allocate_ids(complete, 1)
    assert info.value.args == (("Key is not partial.", complete),)
    partial = client.key("Task")
    with pytest.raises(ValueError) as info:
        client.reserve_ids_sequential(partial, 1)
    assert info.value.args[0][0] == "Key is not Complete."
    assert info.value.args[0][1] is partial
    named = client.key("Task", "name")
    with pytest.raises(ValueError) as info:
        client.reserve_ids_sequential(named, 1)
    assert info.value.args == (("Key must use numeric id.", named),)
    with pytest.raises(ValueError) as info:
        client.reserve_ids_multi([complete, partial])
    assert info.value.args[0][0] == "Key is not Complete."
    with pytest.raises(ValueError) as info:
        client.reserve_ids_sequential(complete, "3")  # type: ignore[arg-type]
    assert info.value.args == (("num_ids is not a valid integer.", "3"),)


def test_ids_are_shared_by_clients_of_one_store(make_client: Callable[..., Client]) -> None:
    first = make_client()
    if first.url == "sqlite://":
        pytest.skip("two clients on sqlite:// are two separate in-memory stores")
    second = make_client(namespace="other")
    a = first.allocate_ids(first.key("K"), 1)[0].id
    b = second.allocate_ids(second.key("K"), 1)[0].id
    assert [a, b] == FIRST_IDS[:2]


def test_allocated_key_is_usable(client: Client) -> None:
    key = client.allocate_ids(client.key("Task"), 1)[0]
    assert isinstance(key, Key) and not key.is_partial
    entity = Entity(key)
    entity["done"] = False
    client.put(entity)
    assert client.get(key) == entity
