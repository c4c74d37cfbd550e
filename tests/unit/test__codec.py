"""Entity bodies (``_codec``): every value type round trips, the format is versioned.

DESIGN.md §5 / STYLE.md §8 rule 5: msgpack led by a format-version byte; a value the codec
cannot store is an error at write time, never a silent drop.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datastore_lite import Entity, GeoPoint, Key
from datastore_lite._codec import FORMAT_VERSION, INTERNAL, decode_body, encode_body
from datastore_lite._convert import PUBLIC, entity_to_value, to_value
from datastore_lite._values import EntityValue, GeoValue, KeyRef
from tests import strategies as ds


def _internal_canonical(value: Any) -> Any:
    """Exact comparison form of an engine value (NaN == NaN, -0.0 != 0.0)."""
    if isinstance(value, KeyRef):
        return ("key", value.project, value.database, value.namespace, value.path)
    if isinstance(value, GeoValue):
        return ("geo", ds.canonical(value.latitude), ds.canonical(value.longitude))
    if isinstance(value, EntityValue):
        return (
            "entity",
            _internal_canonical(value.key) if value.key is not None else None,
            frozenset(value.exclude),
            tuple(sorted((k, _internal_canonical(v)) for k, v in value.properties.items())),
        )
    if isinstance(value, list):
        return ("list", tuple(_internal_canonical(v) for v in value))
    return ds.canonical(value)


def _props_canonical(props: dict[str, Any], convert: Any) -> Any:
    return tuple(sorted((k, convert(v)) for k, v in props.items()))


@given(ds.entities())
def test_round_trip_internal_factory(entity: Entity) -> None:
    value = entity_to_value(entity)
    body = encode_body(value.properties, value.exclude)
    props, exclude = decode_body(body, INTERNAL)
    assert set(exclude) == set(value.exclude)
    assert _props_canonical(props, _internal_canonical) == _props_canonical(
        value.properties, _internal_canonical
    )


@given(ds.entities())
def test_round_trip_public_factory(entity: Entity) -> None:
    value = entity_to_value(entity)
    body = encode_body(value.properties, value.exclude)
    props, exclude = decode_body(body, PUBLIC)
    assert set(exclude) == ds.effective_exclusions(entity)
    # datetimes come back tz-aware UTC, dicts as Entities, everything else unchanged
    expected = {k: ds.expected_after_store(v) for k, v in entity.items()}
    assert _props_canonical(props, ds.canonical) == _props_canonical(expected, ds.canonical)
    for name, got in props.items():
        assert type(got) is type(expected[name]) or isinstance(got, Entity), name


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="null"),
        pytest.param(True, id="bool"),
        pytest.param(-(2**63), id="int-min"),
        pytest.param(2**63 - 1, id="int-max"),
        pytest.param(math.nan, id="nan"),
        pytest.param(-0.0, id="neg-zero"),
        pytest.param(-math.inf, id="neg-inf"),
        pytest.param("é\x00日", id="str"),
        pytest.param(b"\x00\xff", id="bytes"),
        pytest.param(dt.datetime(1, 1, 1, 0, 0, 0, 1), id="ts-year-1"),
        pytest.param(dt.datetime(9999, 12, 31, 23, 59, 59, 999999), id="ts-year-9999"),
        pytest.param(GeoPoint(-90.0, 180.0), id="geo"),
        pytest.param(Key("A", -5, "B", "é", project="p", namespace="ns", database="d"), id="key"),
        pytest.param([1, "a", None, {"q": [1.5]}], id="list"),
        pytest.param({"a": {"b": {"c": 1}}}, id="dict"),
        pytest.param([], id="empty-list"),
    ],
)
def test_each_type_round_trips(value: Any) -> None:
    body = encode_body({"v": to_value(value)}, frozenset())
    props, exclude = decode_body(body, PUBLIC)
    assert exclude == []
    assert ds.canonical(props["v"]) == ds.canonical(ds.expected_after_store(value))


def test_embedded_entity_keeps_key_and_exclusions() -> None:
    inner = Entity(Key("E", 1, project="p"), exclude_from_indexes=("z",))
    inner["z"] = "zz"
    body = encode_body({"e": to_value(inner)}, frozenset({"e"}))
    props, exclude = decode_body(body, PUBLIC)
    assert exclude == ["e"]
    got = props["e"]
    assert isinstance(got, Entity)
    assert got.key == Key("E", 1, project="p")
    assert got.exclude_from_indexes == {"z"}
    assert got == inner


def test_naive_datetime_is_utc_and_returned_aware() -> None:
    # SEMANTICS.md §2.1: naive datetimes mean UTC; returned tz-aware UTC, µs precision
    naive = dt.datetime(2020, 5, 17, 12, 30, 45, 123456)
    aware = dt.datetime(2020, 5, 17, 14, 30, 45, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    for given_value in (naive, aware):
        props, _ = decode_body(encode_body({"t": to_value(given_value)}, frozenset()), PUBLIC)
        assert props["t"] == dt.datetime(2020, 5, 17, 12, 30, 45, 123456, tzinfo=dt.UTC)
        assert props["t"].utcoffset() == dt.timedelta(0)


def test_format_version_byte_leads_the_body() -> None:
    body = encode_body({"a": 1}, frozenset())
    assert FORMAT_VERSION == 1
    assert body[0] == FORMAT_VERSION
    # the rest is plain msgpack: [properties, excluded names]
    assert msgpack.unpackb(body[1:]) == [{"a": 1}, []]


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_format_version_is_rejected(version: int) -> None:
    body = bytes([version]) + encode_body({"a": 1}, frozenset())[1:]
    with pytest.raises(ValueError, match=f"format version {version}"):
        decode_body(body, INTERNAL)
    with pytest.raises(ValueError, match=f"format version {version}"):
        decode_body(body, PUBLIC)


def test_unknown_extension_type_is_rejected() -> None:
    body = bytes([FORMAT_VERSION]) + msgpack.packb([{"a": msgpack.ExtType(42, b"")}, []])
    with pytest.raises(ValueError, match="unknown extension type 42"):
        decode_body(body, INTERNAL)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(object(), id="object"),
        pytest.param({1, 2}, id="set"),
        pytest.param((1, 2), id="tuple"),
        pytest.param(Key("K", 1, project="p"), id="public-key-unconverted"),
        pytest.param(GeoPoint(1, 2), id="public-geo-unconverted"),
        pytest.param(dt.date(2020, 1, 1), id="date"),
        pytest.param(1j, id="complex"),
    ],
)
def test_unsupported_type_raises_type_error(value: Any) -> None:
    with pytest.raises(TypeError):
        encode_body({"v": value}, frozenset())
    with pytest.raises(TypeError):
        encode_body({"v": [value]}, frozenset())


@given(st.lists(ds.property_names, unique=True, max_size=5))
def test_excluded_names_round_trip(names: list[str]) -> None:
    props = dict.fromkeys(names, 1)
    _, exclude = decode_body(encode_body(props, frozenset(names)), INTERNAL)
    assert sorted(exclude) == sorted(names)
