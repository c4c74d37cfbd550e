"""Every documented validation error, with its exact text, raised before anything is written.

SEMANTICS.md §1.2 (keys), §2.1 (values), §3.2 (indexed sizes), §6.2 (mutations), §7.1
(limits). Each bad write is sent together with an update of an existing entity and a new
entity; afterwards the store must be exactly as before (DESIGN.md §6 step 1: validate every
mutation before any I/O).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from google.api_core import exceptions as api_core
from google.cloud.datastore import Entity as OfficialEntity
from google.cloud.datastore import Key as OfficialKey
from google.cloud.datastore import helpers as official_helpers

from datastore_lite import Client, Entity, GeoPoint, Key, exceptions

PROJECT = "test-proj"


def _entity(key: Key, exclude: tuple[str, ...] = (), **props: Any) -> Entity:
    entity = Entity(key, exclude_from_indexes=exclude)
    entity.update(props)
    return entity


def _key(*path: Any, namespace: str | None = None) -> Key:
    return Key(*path, project=PROJECT, namespace=namespace)


def _nested(levels: int) -> dict[str, Any]:
    """A dict holding ``levels`` levels of embedded entity values (the top one included)."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"inner": value}
    return value


@pytest.fixture
def store(client: Client) -> Client:
    """A client whose store holds one known entity."""
    client.put(_entity(client.key("Sentinel", 1), v="original"))
    return client


def _assert_unchanged(client: Client) -> None:
    got = client.get(client.key("Sentinel", 1))
    assert got is not None and dict(got) == {"v": "original"}
    assert client.get(client.key("Fresh", 1)) is None


def _write_with(client: Client, bad: Entity) -> None:
    """One commit: update the sentinel, insert a fresh entity, and the bad one."""
    changed = _entity(client.key("Sentinel", 1), v="changed")
    fresh = _entity(client.key("Fresh", 1), v="new")
    client.put_multi([changed, fresh, bad])


def _each_case(cases: list[Any], check: Callable[..., None]) -> None:
    """Run ``check(*case.values)`` for every ``pytest.param`` case; report all failures.

    The cases share one store per backend (a fresh PostgreSQL schema per test is the
    expensive part), which also checks that rejected writes leave no trace for later ones.
    """
    failures = []
    for case in cases:
        try:
            check(*case.values)
        except AssertionError as exc:
            failures.append(f"[{case.id}] {exc}")
        except Exception as exc:  # an unexpected error is a failure of this case only
            failures.append(f"[{case.id}] {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)


def _assert_invalid(exc: BaseException, message: str) -> None:
    assert type(exc) is exceptions.InvalidArgument
    assert isinstance(exc, api_core.InvalidArgument)
    assert exc.message == message
    assert str(exc) == f"400 {message}"


# -- keys (SEMANTICS.md §1.2) ------------------------------------------------------------------

_BAD_KEYS = [
    pytest.param(_key("", 1), "The kind is the empty string.", id="kind-empty"),
    pytest.param(_key("K" * 1501, 1), "The kind is longer than 1500 bytes.", id="kind-long"),
    # bytes, not characters: 751 x 2-byte characters
    pytest.param(_key("é" * 751, 1), "The kind is longer than 1500 bytes.", id="kind-long-utf8"),
    pytest.param(_key("__Foo__", 1), 'The kind "__Foo__" is reserved.', id="kind-reserved"),
    pytest.param(
        _key("P", 1, "__Foo__", 1), 'The kind "__Foo__" is reserved.', id="kind-reserved-child"
    ),
    pytest.param(_key("K", ""), "The key path element name is the empty string.", id="name-empty"),
    pytest.param(
        _key("K", "n" * 1501),
        "The key path element name is longer than 1500 bytes.",
        id="name-long",
    ),
    pytest.param(
        _key("K", "__x__"), 'The key path element name "__x__" is reserved.', id="name-reserved"
    ),
    pytest.param(_key("K", 0), "Key path id is invalid. Must not be zero.", id="id-zero"),
    pytest.param(
        _key("P", 0, "K", 1), "Key path id is invalid. Must not be zero.", id="id-zero-parent"
    ),
    pytest.param(
        _key(*(["K", 1] * 101)),
        "Key path is too long. Cannot exceed 100 elements.",
        id="path-101",
    ),
    pytest.param(
        _key("K", 1, namespace="__x__"), 'The namespace id "__x__" is reserved.', id="ns-reserved"
    ),
    pytest.param(
        _key("K", 1, namespace="a b"), 'Illegal string "a b" in namespace id.', id="ns-space"
    ),
    pytest.param(
        _key("K", 1, namespace="a" * 101),
        f'Illegal string "{"a" * 101}" in namespace id.',
        id="ns-101-chars",
    ),
    pytest.param(
        _key("K", 1, namespace="é"), 'Illegal string "é" in namespace id.', id="ns-non-ascii"
    ),
]


def test_bad_keys_are_rejected_before_any_write(store: Client) -> None:
    def check(key: Key, message: str) -> None:
        with pytest.raises(exceptions.InvalidArgument) as info:
            _write_with(store, _entity(key, a=1))
        _assert_invalid(info.value, message)
        _assert_unchanged(store)

    _each_case(_BAD_KEYS, check)


_BOUNDARY_KEYS = [
    pytest.param(_key("K" * 1500, 1), id="kind-1500"),
    pytest.param(_key("é" * 750, 1), id="kind-1500-utf8"),
    pytest.param(_key("K", "n" * 1500), id="name-1500"),
    pytest.param(_key(*(["K", 1] * 100)), id="path-100"),
    pytest.param(_key("K", "_x_"), id="name-not-reserved"),
    pytest.param(_key("_K_", 1), id="kind-not-reserved"),
    pytest.param(_key("K", -5), id="negative-id"),
    pytest.param(_key("K", 1, namespace="a" * 100), id="ns-100"),
    pytest.param(_key("K", 1, namespace="Az09.-_"), id="ns-charset"),
]


def test_boundary_keys_are_accepted(client: Client) -> None:
    def check(key: Key) -> None:
        client.put(_entity(key, a=1))
        assert client.get(key) is not None

    _each_case(_BOUNDARY_KEYS, check)


def test_reserved_kinds_can_be_read(client: Client) -> None:
    # SEMANTICS.md §1.2: only writes are rejected
    assert client.get(_key("__Foo__", 1)) is None
    assert client.get(_key("K", "__x__")) is None


def test_reserved_kind_cannot_be_deleted(store: Client) -> None:
    with pytest.raises(exceptions.InvalidArgument) as info:
        store.delete(_key("__Foo__", 1))
    _assert_invalid(info.value, 'The kind "__Foo__" is reserved.')


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (_key("K"), "Key path element must not be incomplete: [K: ]"),
        (_key("Parent", 1, "K"), "Key path element must not be incomplete: [Parent: 1, K: ]"),
    ],
)
def test_partial_key_in_lookup(client: Client, key: Key, message: str) -> None:
    with pytest.raises(exceptions.InvalidArgument) as info:
        client.get(key)
    _assert_invalid(info.value, message)


_READS: dict[str, Callable[[Client, Key], Any]] = {
    "get": lambda client, key: client.get(key),
    "get_multi": lambda client, key: client.get_multi([client.key("Sentinel", 1), key]),
    "get_in_transaction": lambda client, key: _get_in_transaction(client, key),
}


def _get_in_transaction(client: Client, key: Key) -> Any:
    with client.transaction():
        return client.get(key)


@pytest.mark.parametrize("read", list(_READS))
@pytest.mark.parametrize(
    ("key", "message"),
    [
        (_key("K"), "Key path element must not be incomplete: [K: ]"),
        (_key("P", 1, "K"), "Key path element must not be incomplete: [P: 1, K: ]"),
        (_key("K" * 1501, 1), "The kind is longer than 1500 bytes."),
        (_key("K", "é" * 751), "The key path element name is longer than 1500 bytes."),
        (_key("P", "n" * 1501, "K", 1), "The key path element name is longer than 1500 bytes."),
    ],
    ids=["partial", "partial-child", "kind-1501", "name-1502-bytes", "parent-name-1501"],
)
def test_bad_keys_in_reads(store: Client, read: str, key: Key, message: str) -> None:
    # every read path validates a key the plain-key fast check declines (SEMANTICS.md §1.2)
    with pytest.raises(exceptions.InvalidArgument) as info:
        _READS[read](store, key)
    _assert_invalid(info.value, message)


@pytest.mark.parametrize("read", list(_READS))
def test_long_and_reserved_names_are_read_on_every_read_path(store: Client, read: str) -> None:
    # past the fast check's 375 characters, and reserved names: still valid for a read
    keys = [
        _key("K" * 1500, "é" * 750),
        _key("P", "n" * 1500, "K", 2**63 - 1),
        _key("__Foo__", "__bar__"),
        _key("K", 1, namespace="ns"),
    ]
    for key in keys[:2] + keys[3:]:
        store.put(_entity(key, a=1))
    for key in keys:
        got = _READS[read](store, key)
        if read == "get_multi":
            assert [e.key for e in got] == [store.key("Sentinel", 1)] + (
                [key] if key != keys[2] else []
            )
        else:
            assert (got is None) == (key == keys[2]), key
            if got is not None:
                assert got.key == key and got["a"] == 1


def test_partial_key_in_delete_is_a_client_error(store: Client) -> None:
    with pytest.raises(ValueError) as info:
        store.delete_multi([store.key("Sentinel", 1), store.key("K")])
    assert info.value.args == ("Key must be complete",)
    _assert_unchanged(store)


# -- properties and values (SEMANTICS.md §1.2, §2.1, §3.2) -------------------------------------

_BAD_PROPERTIES: list[Any] = [
    pytest.param(
        {"__foo__": 1}, (), 'The property.name "__foo__" is reserved.', id="prop-reserved"
    ),
    pytest.param(
        {"p" * 1501: 1}, (), "The property.name is longer than 1500 bytes.", id="prop-long"
    ),
    pytest.param(
        {"ref": _key("Other")},
        (),
        "Key path element must not be incomplete: [Other: ]",
        id="partial-key-value",
    ),
    pytest.param(
        {"refs": [_key("A", 1), _key("A", 1, "Other")]},
        (),
        "Key path element must not be incomplete: [A: 1, Other: ]",
        id="partial-key-in-list",
    ),
    pytest.param(
        {"m": {"ref": _key("Other")}},
        (),
        "Key path element must not be incomplete: [Other: ]",
        id="partial-key-in-entity",
    ),
    pytest.param(
        {"l": [1, [2]]},
        (),
        "list_value cannot contain a Value containing another list_value.",
        id="nested-list",
    ),
    pytest.param(
        {"l": [[]]},
        (),
        "list_value cannot contain a Value containing another list_value.",
        id="nested-empty-list",
    ),
    pytest.param(
        {"m": {"l": [[1]]}},
        (),
        "list_value cannot contain a Value containing another list_value.",
        id="nested-list-in-entity",
    ),
    pytest.param(
        {"m": _nested(21)},
        (),
        "At most 20 nested entity values are supported.",
        id="21-nesting-levels",
    ),
    pytest.param(
        {"m": _nested(21)},
        ("m",),
        "At most 20 nested entity values are supported.",
        id="21-nesting-levels-unindexed",
    ),
    pytest.param(
        {"s": "x" * 1501},
        (),
        'The value of property "s" is longer than 1500 bytes.',
        id="indexed-str-1501",
    ),
    pytest.param(
        {"s": "é" * 751},
        (),
        'The value of property "s" is longer than 1500 bytes.',
        id="indexed-str-utf8",
    ),
    pytest.param(
        {"b": b"x" * 1501},
        (),
        'The value of property "b" is longer than 1500 bytes.',
        id="indexed-bytes-1501",
    ),
    pytest.param(
        {"tags": ["ok", "x" * 1501]},
        (),
        'The value of property "tags" is longer than 1500 bytes.',
        id="indexed-list-element",
    ),
    pytest.param(
        {"s": "x" * 1_048_488},
        ("s",),
        'The value of property "s" is longer than 1048487 bytes.',
        id="unindexed-over-1048487",
    ),
    pytest.param(
        {"g": GeoPoint(90.5, 0)},
        (),
        "Geo point latitude outside permitted range -90.0 to 90.0.",
        id="geo-lat-high",
    ),
    pytest.param(
        {"g": [GeoPoint(-91, 0)]},
        (),
        "Geo point latitude outside permitted range -90.0 to 90.0.",
        id="geo-lat-low-in-list",
    ),
]


def test_bad_properties_are_rejected_before_any_write(store: Client) -> None:
    def check(props: dict[str, Any], exclude: tuple[str, ...], message: str) -> None:
        with pytest.raises(exceptions.InvalidArgument) as info:
            _write_with(store, _entity(store.key("Bad", 1), exclude, **props))
        _assert_invalid(info.value, message)
        _assert_unchanged(store)
        assert store.get(store.key("Bad", 1)) is None

    _each_case(_BAD_PROPERTIES, check)


def test_geo_longitude_out_of_range(store: Client) -> None:
    # SEMANTICS.md §2.1 documents the latitude text only; the longitude is checked too
    with pytest.raises(exceptions.InvalidArgument, match="longitude"):
        _write_with(store, _entity(store.key("Bad", 1), g=GeoPoint(0, 180.5)))
    _assert_unchanged(store)


def test_empty_property_name_is_rejected(store: Client) -> None:
    with pytest.raises(exceptions.InvalidArgument):
        _write_with(store, _entity(store.key("Bad", 1), (), **{"": 1}))
    _assert_unchanged(store)


_BOUNDARY_VALUES = [
    pytest.param({"s": "x" * 1500}, (), id="indexed-str-1500"),
    pytest.param({"s": "é" * 750}, (), id="indexed-str-1500-utf8"),
    pytest.param({"b": b"x" * 1500}, (), id="indexed-bytes-1500"),
    pytest.param({"s": "x" * 1501}, ("s",), id="unindexed-str-1501"),
    pytest.param({"b": b"x" * 100_000}, ("b",), id="unindexed-bytes-100k"),
    pytest.param({"tags": ["x" * 5000, "y"]}, ("tags",), id="unindexed-list"),
    pytest.param({"p" * 1500: 1}, (), id="prop-name-1500"),
    pytest.param({"_x_": 1, "__x": 2, "x__": 3}, (), id="prop-not-reserved"),
    pytest.param({"m": _nested(20)}, (), id="20-nesting-levels"),
    pytest.param({"g": GeoPoint(-90, -180), "h": GeoPoint(90, 180)}, (), id="geo-limits"),
    pytest.param({"ref": _key("__Reserved__", 1)}, (), id="reserved-kind-as-value"),
]


def test_boundary_values_are_accepted(client: Client) -> None:
    def check(props: dict[str, Any], exclude: tuple[str, ...]) -> None:
        entity = _entity(client.key("Ok", 1), exclude, **props)
        client.put(entity)
        assert client.get(client.key("Ok", 1)) == entity

    _each_case(_BOUNDARY_VALUES, check)


# -- entity size (SEMANTICS.md §7.1) -----------------------------------------------------------


def test_entity_over_1048572_bytes_is_rejected(store: Client) -> None:
    bad = _entity(store.key("Big", 1), ("a", "b"), a=b"x" * 600_000, b=b"y" * 600_000)
    with pytest.raises(exceptions.InvalidArgument) as info:
        _write_with(store, bad)
    # production: "entity is too big" (SEMANTICS.md §7.1); details may follow
    assert info.value.message.startswith("entity is too big")
    _assert_unchanged(store)
    assert store.get(store.key("Big", 1)) is None


def test_entity_just_under_the_limit_is_accepted(client: Client) -> None:
    entity = _entity(client.key("Big", 1), ("a", "b"), a=b"x" * 520_000, b=b"y" * 520_000)
    client.put(entity)
    got = client.get(client.key("Big", 1))
    assert got is not None and len(got["a"]) == 520_000


# -- mutations and lookups (SEMANTICS.md §6.2, §7.1) -------------------------------------------


def test_501_mutations_are_rejected(store: Client) -> None:
    entities = [_entity(store.key("Many", i), i=i) for i in range(1, 501)]
    entities.append(_entity(store.key("Sentinel", 1), v="changed"))
    with pytest.raises(exceptions.InvalidArgument) as info:
        store.put_multi(entities)
    _assert_invalid(info.value, "cannot write more than 500 entities in a single call")
    _assert_unchanged(store)
    assert store.get_multi([store.key("Many", i) for i in range(1, 501)]) == []


def test_501_deletes_are_rejected(store: Client) -> None:
    keys = [store.key("Many", i) for i in range(1, 501)] + [store.key("Sentinel", 1)]
    with pytest.raises(exceptions.InvalidArgument) as info:
        store.delete_multi(keys)
    _assert_invalid(info.value, "cannot write more than 500 entities in a single call")
    _assert_unchanged(store)


def test_500_mutations_are_accepted(client: Client) -> None:
    client.put_multi([_entity(client.key("Many", i), i=i) for i in range(1, 501)])
    assert len(client.get_multi([client.key("Many", i) for i in range(1, 501)])) == 500


def test_1001_lookup_keys_are_rejected(client: Client) -> None:
    keys = [client.key("Many", i) for i in range(1, 1002)]
    with pytest.raises(exceptions.InvalidArgument) as info:
        client.get_multi(keys)
    _assert_invalid(info.value, "cannot get more than 1000 keys in a single call")
    assert client.get_multi(keys[:1000]) == []


_SAME_ENTITY = (
    "A non-transactional commit may not contain multiple mutations affecting the same entity."
)


@pytest.mark.parametrize("second", ["put", "delete"])
def test_two_mutations_of_one_entity_in_one_commit(store: Client, second: str) -> None:
    with pytest.raises(exceptions.InvalidArgument) as info, store.batch() as batch:
        batch.put(_entity(store.key("Sentinel", 1), v="changed"))
        batch.put(_entity(store.key("Fresh", 1), v="new"))
        if second == "put":
            batch.put(_entity(store.key("Sentinel", 1), v="again"))
        else:
            batch.delete(store.key("Sentinel", 1))
    _assert_invalid(info.value, _SAME_ENTITY)
    _assert_unchanged(store)


def test_two_deletes_of_one_entity_in_one_commit(store: Client) -> None:
    with pytest.raises(exceptions.InvalidArgument) as info:
        store.delete_multi([store.key("Sentinel", 1), store.key("Sentinel", 1)])
    _assert_invalid(info.value, _SAME_ENTITY)
    _assert_unchanged(store)


def test_same_path_in_two_namespaces_is_two_entities(client: Client) -> None:
    client.put_multi(
        [_entity(client.key("K", 1), a=1), _entity(client.key("K", 1, namespace="ns"), a=2)]
    )
    assert client.get(client.key("K", 1, namespace="ns")) is not None


# -- client-side value errors (SEMANTICS.md §7.1, §8 helpers) ----------------------------------


def _official_error(value: Any) -> ValueError:
    """What google-cloud-datastore raises when serialising an entity holding ``value``."""
    entity = OfficialEntity(OfficialKey("K", 1, project=PROJECT))
    entity["v"] = value
    try:
        official_helpers.entity_to_protobuf(entity)
    except ValueError as exc:
        return exc
    raise AssertionError(f"the official client accepted {value!r}")


_OUT_OF_RANGE = [
    pytest.param(value, wrap, id=f"{wrap}-{value}")
    for value in (2**63, -(2**63) - 1, 2**100)
    for wrap in ("plain", "list", "embedded")
]


def test_int_out_of_range_is_a_client_value_error(store: Client) -> None:
    def check(value: int, wrap: str) -> None:
        wrapped: Any = {"plain": value, "list": [1, value], "embedded": {"n": value}}[wrap]
        with pytest.raises(ValueError) as info:
            _write_with(store, _entity(store.key("Bad", 1), v=wrapped))
        assert not isinstance(info.value, exceptions.DatastoreLiteError)
        # the official client's text: "Value out of range: 9223372036854775808"
        assert str(info.value) == f"Value out of range: {value}"
        assert str(info.value) == str(_official_error(value))
        _assert_unchanged(store)

    _each_case(_OUT_OF_RANGE, check)


_UNKNOWN_TYPES = [
    pytest.param(value, id=type(value).__name__)
    for value in (object(), {1, 2}, (1, 2), dt.date(2020, 1, 1), 1j, bytearray(b"x"))
]


def test_unknown_value_type(store: Client) -> None:
    def check(value: Any) -> None:
        with pytest.raises(ValueError) as info:
            _write_with(store, _entity(store.key("Bad", 1), v=value))
        assert info.value.args == ("Unknown protobuf attr type", type(value))
        assert info.value.args == _official_error(value).args
        _assert_unchanged(store)

    _each_case(_UNKNOWN_TYPES, check)


@pytest.mark.parametrize("ident", [2**63, -(2**63) - 1])
def test_key_id_out_of_range_is_a_client_value_error(store: Client, ident: int) -> None:
    # protobuf int64: the official client fails while serialising the key
    with pytest.raises(ValueError) as info:
        _write_with(store, _entity(_key("K", ident), a=1))
    try:
        OfficialKey("K", ident, project=PROJECT).to_protobuf()
    except ValueError as official:
        assert str(info.value) == str(official) == f"Value out of range: {ident}"
    else:
        raise AssertionError("the official client accepted the key")
    _assert_unchanged(store)
    with pytest.raises(ValueError, match="^Value out of range"):
        store.get(_key("K", ident))


def test_unknown_value_type_inside_a_list(store: Client) -> None:
    with pytest.raises(ValueError) as info:
        _write_with(store, _entity(store.key("Bad", 1), v=[1, object()]))
    assert info.value.args == ("Unknown protobuf attr type", object)
    _assert_unchanged(store)


def test_errors_name_the_property(store: Client) -> None:
    # DESIGN.md §6: bad input gets the documented error naming the property
    with pytest.raises(exceptions.InvalidArgument, match='"caption"'):
        store.put(_entity(store.key("Bad", 1), caption="x" * 2000))


def test_validation_under_the_firestore_profile(make_client: Callable[..., Client]) -> None:
    # the same server-side checks whatever the profile
    firestore = make_client(profile="firestore")
    with pytest.raises(exceptions.InvalidArgument) as info:
        firestore.put(_entity(firestore.key("K", 0), a=1))
    _assert_invalid(info.value, "Key path id is invalid. Must not be zero.")
