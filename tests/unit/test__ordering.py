"""Order-preserving encodings (``_ordering``) against a reference order written from SEMANTICS.md.

The reference comparator below is derived only from SEMANTICS.md §1.3 and §2.1, not from
the library: byte order of ``encode_value`` / ``encode_path`` must equal it exactly, with
equal encodings only where Datastore says two values tie.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import random
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datastore_lite import GeoPoint, Key
from datastore_lite._convert import to_value
from datastore_lite._limits import plainly_valid_path
from datastore_lite._ordering import (
    StrOrBytes,
    ancestor_leads,
    decode_path,
    decode_value,
    encode_key_group,
    encode_path,
    encode_path_value,
    encode_plain_key_group,
    encode_value,
    invert,
    prefix_end,
)
from datastore_lite._values import GeoValue, KeyRef
from tests import strategies as ds

# -- the reference order (SEMANTICS.md §1.3, §2.1) ---------------------------------------------


def _double_key(value: float) -> tuple[Any, ...]:
    # §2.1: -inf < ... < -0.0 < 0.0 < ... < +inf < NaN; -0.0 and 0.0 are distinct, NaN == NaN
    if math.isnan(value):
        return (2,)
    return (1, value, math.copysign(1.0, value))


def _path_key(flat_path: tuple[Any, ...]) -> tuple[Any, ...]:
    # §1.3: element by element; kind byte-wise UTF-8, then every integer id before every
    # string name (ids signed, names byte-wise); a proper prefix (ancestor) sorts first
    elements = []
    for i in range(0, len(flat_path), 2):
        ident = flat_path[i + 1]
        ident_key = (0, ident) if isinstance(ident, int) else (1, ident.encode("utf-8"))
        elements.append((flat_path[i].encode("utf-8"), ident_key))
    return tuple(elements)


def reference_key(value: Any) -> tuple[Any, ...]:
    """Sort key of a public value in Datastore's ascending order.

    null < {int, timestamp} < bool < {str, bytes} < double < geo point < key (§2.1).
    """
    if value is None:
        return (1,)
    if isinstance(value, bool):  # bool is checked before int (§2.1)
        return (3, int(value))
    if isinstance(value, int):
        return (2, value)
    if isinstance(value, dt.datetime):  # one class with int: µs since the epoch
        return (2, ds.micros_of(value))
    if isinstance(value, str):  # one class with bytes: compared as raw UTF-8 bytes
        return (4, value.encode("utf-8"))
    if isinstance(value, bytes):
        return (4, value)
    if isinstance(value, float):
        return (5, _double_key(value))
    if isinstance(value, GeoPoint):  # latitude, then longitude
        return (6, _double_key(value.latitude), _double_key(value.longitude))
    if isinstance(value, Key):  # project, namespace, path (§1.3 rule 1)
        return (
            7,
            value.project.encode("utf-8"),
            (value.namespace or "").encode("utf-8"),
            _path_key(value.flat_path),
        )
    raise TypeError(type(value))


def _sign(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def _enc(value: Any) -> bytes:
    return encode_value(to_value(value))


# Keys differing in project and namespace (database stays the default: SEMANTICS.md does
# not say where the database sorts).
_keys = ds.complete_keys(
    project=st.sampled_from(["aaa-proj", "test-proj", "p"]),
    namespace=st.sampled_from([None, "a", "b"]),
)
_scalars = ds.scalar_values(key_strategy=_keys)
# Lists of one class at a time, so that within-class orders are exercised densely too.
_value_lists = st.one_of(
    st.lists(_scalars, min_size=2, max_size=8),
    st.lists(st.one_of(ds.int64s, ds.datetimes), min_size=2, max_size=8),
    st.lists(st.one_of(ds.texts, ds.binaries), min_size=2, max_size=8),
    st.lists(ds.floats, min_size=2, max_size=8),
    st.lists(ds.geo_points, min_size=2, max_size=8),
    st.lists(_keys, min_size=2, max_size=8),
)


# -- encode_value order ------------------------------------------------------------------------


@given(_value_lists)
def test_encode_value_order_equals_reference(values: list[Any]) -> None:
    encoded = [_enc(v) for v in values]
    reference = [reference_key(v) for v in values]
    for i in range(len(values)):
        for j in range(len(values)):
            assert _sign(encoded[i], encoded[j]) == _sign(reference[i], reference[j]), (
                values[i],
                values[j],
            )


@given(_value_lists)
def test_encodings_are_prefix_free(values: list[Any]) -> None:
    # self-delimiting: concatenated components compare component by component
    encoded = [_enc(v) for v in values]
    for a in encoded:
        for b in encoded:
            if a != b:
                assert not b.startswith(a)


@given(st.lists(st.tuples(_scalars, _scalars), min_size=2, max_size=6), st.booleans())
def test_concatenated_components_compare_component_wise(
    rows: list[tuple[Any, Any]], second_descending: bool
) -> None:
    # DESIGN.md §5: a composite entry concatenates its components; a descending one inverted
    def composite(row: tuple[Any, Any]) -> bytes:
        second = _enc(row[1])
        return _enc(row[0]) + (invert(second) if second_descending else second)

    def ref(row: tuple[Any, Any]) -> tuple[Any, ...]:
        return (reference_key(row[0]), reference_key(row[1]))

    for a in rows:
        for b in rows:
            expected_first = _sign(reference_key(a[0]), reference_key(b[0]))
            expected = expected_first
            if expected_first == 0:
                expected = _sign(reference_key(a[1]), reference_key(b[1]))
                if second_descending:
                    expected = -expected
            assert _sign(composite(a), composite(b)) == expected, (a, b, ref(a), ref(b))


# The explicit vector of SEMANTICS.md §2.1 (verified on both emulators), ascending.
_TS_1970 = dt.datetime(1970, 1, 1)
_TS_2020 = dt.datetime(2020, 1, 1)
_MIXED_VECTOR: list[Any] = [
    None,
    -5,
    0,
    _TS_1970,
    _TS_2020,
    2**63 - 1,
    False,
    True,
    "",
    "B",
    b"a",
    "a",
    "é",
    b"\xff",
    -math.inf,
    -1.5,
    -0.0,
    0.0,
    1.0,
    math.inf,
    math.nan,
    GeoPoint(-1, 5),
    GeoPoint(1, 2),
    Key("A", 5, project="p"),
    Key("A", 5, "B", 1, project="p"),
    Key("A", "x", project="p"),
]
# The only ties SEMANTICS.md §2.1 allows in that vector: int 0 == the epoch timestamp, and
# "a" == b"a" (both tie and are broken by entity key).
_ALLOWED_TIES = {(2, 3), (10, 11)}


def test_mixed_type_vector_is_in_order() -> None:
    encoded = [_enc(v) for v in _MIXED_VECTOR]
    for i in range(len(encoded) - 1):
        if (i, i + 1) in _ALLOWED_TIES:
            assert encoded[i] == encoded[i + 1], (_MIXED_VECTOR[i], _MIXED_VECTOR[i + 1])
        else:
            assert encoded[i] < encoded[i + 1], (_MIXED_VECTOR[i], _MIXED_VECTOR[i + 1])


def test_mixed_type_vector_sorts_back_from_any_shuffle() -> None:
    rng = random.Random(20260101)
    positions = list(range(len(_MIXED_VECTOR)))
    for _ in range(20):
        rng.shuffle(positions)
        ordered = sorted(positions, key=lambda i: _enc(_MIXED_VECTOR[i]))
        # equal up to the allowed ties: map each tie to its first member
        canon = {3: 2, 11: 10}
        assert [canon.get(i, i) for i in ordered] == [canon.get(i, i) for i in range(26)]


def test_descending_is_the_exact_reverse() -> None:
    # SEMANTICS.md §10.4: descending order is the reverse (up to ties)
    inverted = [invert(_enc(v)) for v in _MIXED_VECTOR]
    for i in range(len(inverted) - 1):
        if (i, i + 1) in _ALLOWED_TIES:
            assert inverted[i] == inverted[i + 1]
        else:
            assert inverted[i] > inverted[i + 1]


@pytest.mark.parametrize(
    ("low", "high"),
    [
        # §2.1 within-class rules
        pytest.param(dt.datetime(2020, 1, 1), 2**63 - 1, id="ts2020<int-max"),
        pytest.param(-1, dt.datetime(1970, 1, 1), id="int-1<epoch"),
        pytest.param("B", b"a", id="B<b'a'"),
        pytest.param("a", "é", id="a<e-acute"),
        pytest.param("é", b"\xff", id="e-acute<0xff"),
        pytest.param("a", "a\x00", id="prefix-first"),
        pytest.param("a\x00", "a\x01", id="nul-sorts-low"),
        pytest.param(-0.0, 0.0, id="-0.0<0.0"),
        pytest.param(math.inf, math.nan, id="inf<nan"),
        pytest.param(math.inf, -math.nan, id="inf<negative-nan"),
        pytest.param(2**63 - 1, False, id="int<bool"),
        pytest.param(True, "", id="bool<str"),
        pytest.param(b"\xff" * 10, -math.inf, id="bytes<double"),
        pytest.param(math.nan, GeoPoint(-90, -180), id="double<geo"),
        pytest.param(GeoPoint(1, 2), GeoPoint(1, 3), id="geo-lng"),
        pytest.param(GeoPoint(90, 180), Key("A", 1, project="p"), id="geo<key"),
        # §1.3 rule 1: project, then namespace, then path
        pytest.param(Key("Z", 9, project="aaa-proj"), Key("A", 1, project="test-proj"), id="proj"),
        pytest.param(
            Key("Z", 9, project="p"), Key("A", 1, project="p", namespace="a"), id="ns-default"
        ),
        pytest.param(
            Key("Z", 9, project="p", namespace="a"),
            Key("A", 1, project="p", namespace="b"),
            id="ns-a<ns-b",
        ),
        pytest.param(Key("A", -5, project="p"), Key("A", 1, project="p"), id="signed-ids"),
        pytest.param(Key("A", 2**63 - 1, project="p"), Key("A", "0", project="p"), id="id<name"),
        pytest.param(Key("A", "x", project="p"), Key("B", 1, project="p"), id="kind-first"),
    ],
)
def test_pairwise_rules(low: Any, high: Any) -> None:
    assert _enc(low) < _enc(high)
    assert reference_key(low) < reference_key(high)  # the reference agrees with SEMANTICS


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(0, dt.datetime(1970, 1, 1), id="int0==epoch"),
        pytest.param(1577836800000000, dt.datetime(2020, 1, 1), id="int==ts2020"),
        pytest.param("a", b"a", id="str==bytes"),
        pytest.param("é", "é".encode(), id="utf8"),
        pytest.param(math.nan, -math.nan, id="nan==nan"),
        pytest.param(
            dt.datetime(2020, 1, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=5))),
            dt.datetime(2020, 1, 1),
            id="same-instant",
        ),
    ],
)
def test_values_that_tie(a: Any, b: Any) -> None:
    assert _enc(a) == _enc(b)


class _Color(str, enum.Enum):  # noqa: UP042 - the (str, Enum) mixin is the case under test
    RED = "red"


class _Level(enum.IntEnum):
    HIGH = 3


def test_subclasses_encode_as_their_content() -> None:
    # a (str, Enum) member indexes as its string, an IntEnum as its integer
    assert encode_value(_Color.RED) == encode_value("red")
    assert encode_value(_Level.HIGH) == encode_value(3)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(0, 0.0, id="int0!=double0"),
        pytest.param(0, False, id="int0!=false"),
        pytest.param(-0.0, 0.0, id="-0.0!=0.0"),
        pytest.param(1, True, id="1!=true"),
        pytest.param(None, 0, id="null!=0"),
        pytest.param("", None, id="empty!=null"),
    ],
)
def test_values_that_do_not_tie(a: Any, b: Any) -> None:
    # SEMANTICS.md §2.1 / §10.5: v = 0 does not match 0.0, -0.0 or False
    assert _enc(a) != _enc(b)


# -- decoding ----------------------------------------------------------------------------------


def _expected_decoded(value: Any) -> Any:
    """What decode_value returns: timestamps as int µs (§2.2), str/bytes as raw bytes."""
    if isinstance(value, dt.datetime):
        return ("int", ds.micros_of(value))
    if isinstance(value, str):
        return ("raw", value.encode("utf-8"))
    if isinstance(value, bytes):
        return ("raw", value)
    if isinstance(value, GeoPoint):
        return ("geo", ds.canonical(value.latitude), ds.canonical(value.longitude))
    if isinstance(value, Key):
        return ("key", value.project, value.database or "", value.namespace or "", value.flat_path)
    return ds.canonical(value)


def _observed(decoded: Any) -> Any:
    if isinstance(decoded, StrOrBytes):
        return ("raw", bytes(decoded))
    if isinstance(decoded, GeoValue):
        return ("geo", ds.canonical(decoded.latitude), ds.canonical(decoded.longitude))
    if isinstance(decoded, KeyRef):
        return ("key", decoded.project, decoded.database, decoded.namespace, decoded.path)
    if type(decoded) is int and not isinstance(decoded, bool):
        return ("int", decoded)
    return ds.canonical(decoded)


@given(_scalars)
def test_decode_value_round_trip(value: Any) -> None:
    encoded = _enc(value)
    decoded, end = decode_value(encoded)
    assert end == len(encoded)
    assert _observed(decoded) == _expected_decoded(value)
    assert encode_value(decoded if not isinstance(decoded, StrOrBytes) else bytes(decoded)) == (
        encoded
    )


@given(st.lists(_scalars, min_size=1, max_size=6))
def test_decode_concatenated_values(values: list[Any]) -> None:
    data = b"".join(_enc(v) for v in values)
    pos = 0
    for value in values:
        decoded, pos = decode_value(data, pos)
        assert encode_value(bytes(decoded) if isinstance(decoded, StrOrBytes) else decoded) == (
            _enc(value)
        )
    assert pos == len(data)


def test_decode_rejects_unknown_rank() -> None:
    with pytest.raises(ValueError):
        decode_value(b"\x99")


# -- invert / prefix_end -----------------------------------------------------------------------


@given(_scalars, _scalars)
def test_invert_reverses_order(a: Any, b: Any) -> None:
    ea, eb = _enc(a), _enc(b)
    assert _sign(invert(ea), invert(eb)) == -_sign(ea, eb)
    assert invert(invert(ea)) == ea
    assert len(invert(ea)) == len(ea)


@given(st.binary(max_size=6), st.binary(max_size=8))
def test_prefix_end_bounds_exactly_the_strings_with_the_prefix(prefix: bytes, other: bytes) -> None:
    end = prefix_end(prefix)
    for candidate in (other, prefix + other, prefix):
        starts = candidate.startswith(prefix)
        if end is None:
            # only an all-0xff (or empty) prefix has no upper bound
            assert prefix.strip(b"\xff") == b""
            assert starts == (candidate >= prefix)
        else:
            assert starts == (prefix <= candidate < end), (prefix, candidate, end)


def test_prefix_end_examples() -> None:
    assert prefix_end(b"a") == b"b"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"a\x00") == b"a\x01"
    assert prefix_end(b"\xff\xff") is None
    assert prefix_end(b"") is None


# -- encode_path (stored keys) -----------------------------------------------------------------

# SEMANTICS.md §1.3 rule 3, in ascending order (verified on the emulator).
_KEY_ORDER: list[tuple[Any, ...]] = [
    ("KO", 1),
    ("KO", 1, "Aaa", "z"),
    ("KO", 1, "Child", 1),
    ("KO", 1, "Child", "a"),
    ("KO", 2),
    ("KO", 10),
    ("KO", "10"),
    ("KO", "B"),
    ("KO", "a"),
]


def test_key_order_vector() -> None:
    encoded = [encode_path(p) for p in _KEY_ORDER]
    as_values = [encode_value(KeyRef("p", "", "", p)) for p in _KEY_ORDER]
    for i in range(len(_KEY_ORDER) - 1):
        assert encoded[i] < encoded[i + 1], (_KEY_ORDER[i], _KEY_ORDER[i + 1])
        assert as_values[i] < as_values[i + 1], (_KEY_ORDER[i], _KEY_ORDER[i + 1])


def test_key_order_of_the_conformance_list() -> None:
    # SEMANTICS.md §10.3: this __key__ order is exactly the list of §1.3
    shuffled = [
        ("KO", 2),
        ("KO", 10),
        ("KO", "a"),
        ("KO", "B"),
        ("KO", "10"),
        ("KO", 1, "Child", 1),
        ("KO", 1),
        ("KO", 1, "Aaa", "z"),
        ("KO", 1, "Child", "a"),
    ]
    assert sorted(shuffled, key=encode_path) == _KEY_ORDER


# kinds with NUL too: the escaping must keep "K" < "K\x00" < "K\x00a" < "Ka"
_kinds = st.one_of(ds.kinds, st.sampled_from(["K", "K\x00", "\x00", "K\x00a", "Ka", "K\x01"]))
_paths = st.lists(st.tuples(_kinds, st.one_of(ds.ids, ds.key_names)), min_size=1, max_size=4).map(
    lambda elements: tuple(x for element in elements for x in element)
)


@given(st.lists(_paths, min_size=2, max_size=8))
def test_encode_path_order_equals_reference(paths: list[tuple[Any, ...]]) -> None:
    for a in paths:
        for b in paths:
            assert _sign(encode_path(a), encode_path(b)) == _sign(_path_key(a), _path_key(b))
            assert _sign(encode_path_value(a), encode_path_value(b)) == _sign(
                _path_key(a), _path_key(b)
            )


@given(_paths)
def test_decode_path_round_trip(path: tuple[Any, ...]) -> None:
    assert decode_path(encode_path(path)) == path
    value = encode_path_value(path)
    assert decode_path(value, 0, len(value) - 2) == path


@given(_paths, _paths, st.integers(0, 4))
def test_ancestor_encoding_is_a_prefix_exactly_of_descendants(
    a: tuple[Any, ...], b: tuple[Any, ...], keep: int
) -> None:
    # DESIGN.md §5: "a and all its descendants" is one range scan
    descendant_or_other = a[: 2 * keep] + b
    candidates = [descendant_or_other, b, a]
    for candidate in candidates:
        is_descendant = candidate[: len(a)] == a
        assert encode_path(candidate).startswith(encode_path(a)) == is_descendant
        end = prefix_end(encode_path(a))
        assert end is not None
        assert (encode_path(a) <= encode_path(candidate) < end) == is_descendant


def test_double_encoding_is_total_over_all_bit_patterns() -> None:
    # sortable IEEE-754 (§2.1): adjacent doubles, in order, including subnormals
    values = [-math.inf, -1e308, -1.0, -5e-324, -0.0, 0.0, 5e-324, 2.2e-308, 1.0, 1e308, math.inf]
    encoded = [_enc(v) for v in values]
    assert encoded == sorted(encoded)
    assert len(set(encoded)) == len(encoded)
    # a NaN with a payload is still the largest value and equal to every NaN
    payload_nan = struct.unpack(">d", bytes.fromhex("7ff0000000000001"))[0]
    assert _enc(payload_nan) == _enc(math.nan) > _enc(math.inf)


@given(ds.complete_keys(max_depth=4))
def test_ancestor_leads_are_each_ancestors_path_value(key: Key) -> None:
    # the leads of an ancestor composite index's entries, computed in one pass
    path = key.flat_path
    expected = [encode_path_value(path[:end]) for end in range(2, len(path) + 1, 2)]
    assert ancestor_leads(path) == expected


# -- the fused check-and-encode of a read key (client.get's hot path) ------------------------

_kinds = st.one_of(
    st.sampled_from(["Photo", "User", "", "_x", "__kind__", "a" * 375, "a" * 376, "é" * 375]),
    st.text(max_size=8),
    st.integers(),
    st.none(),
)
_idents = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, "", "a\x00b", "n" * 376]),
    st.text(max_size=8),
    st.floats(allow_nan=False),
    st.none(),
)


@given(st.lists(st.one_of(_kinds, _idents), max_size=7).map(tuple))
def test_encode_plain_key_group_agrees_with_the_plain_rule(path: tuple[Any, ...]) -> None:
    # None exactly where _limits.plainly_valid_path says no; else encode_key_group's bytes
    encoded = encode_plain_key_group(path)
    if plainly_valid_path("p", "", "", path, False):
        assert encoded == encode_key_group(path)
    else:
        assert encoded is None


@given(st.lists(st.tuples(_kinds, _idents), min_size=1, max_size=5))
def test_encode_plain_key_group_of_element_pairs(pairs: list[tuple[Any, Any]]) -> None:
    # whole (kind, ident) pairs, so most paths have even length and deep paths occur
    path = tuple(part for pair in pairs for part in pair)
    encoded = encode_plain_key_group(path)
    if plainly_valid_path("p", "", "", path, False):
        assert encoded == encode_key_group(path)
        assert encoded is not None and encoded[1] == encode_key_group(path[:2])[0]
    else:
        assert encoded is None


@pytest.mark.parametrize(
    "path",
    [
        ("Photo", 1),
        ("User", "u", "Photo", 7),
        ("A", 1, "B", "b", "C", -5),
        ("__kind__", "Photo"),  # reserved names may be read
        ("A", "x\x00y"),
        ("A" * 375, "é" * 375),
        tuple(x for i in range(100) for x in ("K", i + 1)),  # the deepest allowed path
    ],
)
def test_encode_plain_key_group_encodes_plain_paths(path: tuple[Any, ...]) -> None:
    assert encode_plain_key_group(path) == encode_key_group(path)


@pytest.mark.parametrize(
    "path",
    [
        (),
        ("Photo",),
        ("Photo", 0),
        ("Photo", 2**63),
        ("Photo", -(2**63) - 1),
        ("", 1),
        ("A" * 376, 1),
        ("A", "n" * 376),
        ("A", ""),
        ("A", 1.5),
        ("A", True),  # a bool is not an id
        (1, 1),
        ("User", "u", "Photo", 0),
        tuple(x for i in range(101) for x in ("K", i + 1)),  # 101 elements
    ],
)
def test_encode_plain_key_group_declines_other_paths(path: tuple[Any, ...]) -> None:
    assert encode_plain_key_group(path) is None
