"""Query semantics, one test per rule of SEMANTICS.md §1.3, §2, §3.1-§3.3 and §4.1-§4.5.

Each test is named after its rule (``test_s3_3_…`` = SEMANTICS.md §3.3) and runs on every
backend (SQLite memory and file, PostgreSQL). Expected results come from the text of
SEMANTICS.md and the decisions recorded in the issue, never from the implementation; the
array examples are the emulator-verified data set of §3.3. Indexes, cursors and
aggregations have their own modules.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import pytest

import datastore_lite
from datastore_lite import Client, Entity, GeoPoint, Key
from datastore_lite.exceptions import BadRequest, InvalidArgument
from datastore_lite.query import And, BaseFilter, Or, PropertyFilter, Query

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
Y2020 = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
Y2020_MICROS = 1577836800000000

# -- helpers -----------------------------------------------------------------------------------


def put(
    client: Client, kind: str, ident: int | str, exclude: Sequence[str] = (), **props: Any
) -> Entity:
    """Store one entity ``kind/ident`` with ``props``."""
    entity = Entity(client.key(kind, ident), exclude_from_indexes=tuple(exclude))
    entity.update(props)
    client.put(entity)
    return entity


def query(
    client: Client,
    kind: str | None = "T",
    filters: Sequence[Any] = (),
    **kwargs: Any,
) -> Query:
    """A query; ``filters`` are filter objects or ``(name, op, value)`` tuples."""
    q = client.query(kind=kind, **kwargs) if kind else client.query(**kwargs)
    for item in filters:
        q.add_filter(filter=item if isinstance(item, BaseFilter) else PropertyFilter(*item))
    return q


def ids(q: Query, **fetch: Any) -> list[Any]:
    """The key ids/names of the results, in order."""
    return [e.key.id_or_name for e in q.fetch(**fetch)]


def run(
    client: Client, kind: str | None = "T", filters: Sequence[Any] = (), **kwargs: Any
) -> list[Any]:
    return ids(query(client, kind, filters, **kwargs))


def invalid(q: Query) -> str:
    """The InvalidArgument message the query raises."""
    with pytest.raises(InvalidArgument) as info:
        list(q.fetch())
    return str(info.value.message)


# -- §1.3 key order ----------------------------------------------------------------------------


def test_s1_3_key_order_conformance_list(client: Client) -> None:
    """§10.3: ids before names, kinds byte-wise, ancestors before descendants."""
    shuffled = [
        ("K", 2),
        ("K", 10),
        ("K", "a"),
        ("K", "B"),
        ("K", "10"),
        ("K", 1, "C", 1),
        ("K", 1),
        ("K", 1, "A", "z"),
        ("K", 1, "C", "a"),
    ]
    for path in shuffled:
        client.put(Entity(client.key(*path)))
    q = client.query()
    q.keys_only()
    got = [e.key.flat_path for e in q.fetch()]
    assert got == [
        ("K", 1),
        ("K", 1, "A", "z"),
        ("K", 1, "C", 1),
        ("K", 1, "C", "a"),
        ("K", 2),
        ("K", 10),
        ("K", "10"),
        ("K", "B"),
        ("K", "a"),
    ]


def test_s1_3_negative_ids_sort_before_positive_ids(client: Client) -> None:
    for ident in (3, -5, 1, "a", -1):
        put(client, "T", ident)
    assert run(client) == [-5, -1, 1, 3, "a"]


def test_s1_3_key_filters_compare_by_key_order(client: Client) -> None:
    """``__key__ > (K,1)`` includes the descendants of (K,1): they sort after it."""
    for path in [("K", 1), ("K", 1, "C", 1), ("K", 2), ("K", "a"), ("J", 5)]:
        client.put(Entity(client.key(*path)))
    q = client.query()
    q.add_filter(filter=PropertyFilter("__key__", ">", client.key("K", 1)))
    assert [e.key.flat_path for e in q.fetch()] == [("K", 1, "C", 1), ("K", 2), ("K", "a")]
    q = client.query()
    q.add_filter(filter=PropertyFilter("__key__", "<=", client.key("K", 2)))
    assert [e.key.flat_path for e in q.fetch()] == [("J", 5), ("K", 1), ("K", 1, "C", 1), ("K", 2)]


def test_s1_3_key_filter_in_a_kind_query(client: Client) -> None:
    for ident in (1, 2, 3, "a"):
        put(client, "T", ident, v=1)
    q = query(
        client,
        filters=[("__key__", ">=", client.key("T", 2)), ("__key__", "<", client.key("T", "a"))],
    )
    assert ids(q) == [2, 3]


def test_s1_3_key_valued_properties_order_by_project_namespace_then_path(client: Client) -> None:
    values = [
        Key("A", 5, project="aaa-proj"),
        Key("A", 5, project=client.project),
        Key("A", 5, "B", 1, project=client.project),
        Key("A", "x", project=client.project),
        Key("A", 1, project=client.project, namespace="a"),
        Key("A", 1, project=client.project, namespace="b"),
    ]
    for ident, value in reversed(list(enumerate(values, start=1))):
        put(client, "T", ident, v=value)
    assert run(client, order=["v"]) == [1, 2, 3, 4, 5, 6]


# -- §2.1 cross-type order -----------------------------------------------------------------------

MIXED_ORDER: list[Any] = [
    None,
    -5,
    0,
    EPOCH,
    Y2020,
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
]


@pytest.fixture
def mixed(client: Client) -> Client:
    """The §2.1 vector as property ``v`` of T/1..T/n, stored in reverse order."""
    values = [*MIXED_ORDER, client.key("A", 5), client.key("A", 5, "B", 1), client.key("A", "x")]
    for ident in range(len(values), 0, -1):
        put(client, "T", ident, v=values[ident - 1])
    return client


def test_s2_1_mixed_type_ascending_order(mixed: Client) -> None:
    """§10.4: null < int/timestamp < bool < str/bytes < double < geo point < key."""
    assert run(mixed, order=["v"]) == list(range(1, 27))


def test_s2_1_mixed_type_descending_order_is_the_reverse_up_to_key_ties(mixed: Client) -> None:
    """0 and the epoch tie, as do b"a" and "a": ties stay in key order (ascending)."""
    expected = list(range(26, 0, -1))
    for low, high in ((3, 4), (11, 12)):
        i, j = expected.index(high), expected.index(low)
        expected[i], expected[j] = low, high
    assert run(mixed, order=["-v"]) == expected


def test_s2_1_int_equals_epoch_timestamp_but_not_double_or_bool(client: Client) -> None:
    """§10.5: ``v = 0`` matches int 0 and 1970-01-01, not 0.0, -0.0 or False."""
    for ident, value in enumerate([0, EPOCH, 0.0, -0.0, False, None, "0"], start=1):
        put(client, "T", ident, v=value)
    assert run(client, filters=[("v", "=", 0)]) == [1, 2]
    assert run(client, filters=[("v", "=", EPOCH)]) == [1, 2]


def test_s2_1_timestamps_compare_as_int64_microseconds(client: Client) -> None:
    put(client, "T", 1, v=Y2020)
    put(client, "T", 2, v=2**63 - 1)
    put(client, "T", 3, v=Y2020_MICROS + 1)
    assert run(client, filters=[("v", "=", Y2020_MICROS)]) == [1]
    assert run(client, filters=[("v", ">", Y2020)]) == [3, 2]
    assert run(client, order=["v"]) == [1, 3, 2]


def test_s2_1_str_and_bytes_compare_as_raw_bytes(client: Client) -> None:
    """§10.7: "B" < b"a" <= "a" < "é" < b"\\xff" in one property's ordering."""
    for ident, value in enumerate(["B", b"a", "a", "é", b"\xff"], start=1):
        put(client, "T", 6 - ident, v=value)
    # b"a" (T/4) and "a" (T/3) tie: key order
    assert run(client, order=["v"]) == [5, 3, 4, 2, 1]


def test_s2_1_str_and_bytes_with_the_same_bytes_are_equal(client: Client) -> None:
    """One order class compared as bytes: "a" and b"a" tie, so ``v = "a"`` matches both."""
    put(client, "T", 1, v="a")
    put(client, "T", 2, v=b"a")
    put(client, "T", 3, v="b")
    assert run(client, filters=[("v", "=", "a")]) == [1, 2]
    assert run(client, filters=[("v", "=", b"a")]) == [1, 2]


def test_s2_1_doubles_total_order_with_nan_last(client: Client) -> None:
    """§10.6: -inf < -1.5 < -0.0 < 0.0 < 1.0 < inf < NaN."""
    values = [-math.inf, -1.5, -0.0, 0.0, 1.0, math.inf, math.nan]
    for ident, value in enumerate(values, start=1):
        put(client, "T", 8 - ident, v=value)
    assert run(client, order=["v"]) == [7, 6, 5, 4, 3, 2, 1]
    assert run(client, filters=[("v", ">", math.inf)]) == [1]


def test_s2_1_negative_zero_and_zero_are_distinct(client: Client) -> None:
    put(client, "T", 1, v=-0.0)
    put(client, "T", 2, v=0.0)
    assert run(client, filters=[("v", "=", 0.0)]) == [2]
    assert run(client, filters=[("v", "=", -0.0)]) == [1]
    assert run(client, filters=[("v", "<", 0.0)]) == [1]


def test_s2_1_nan_equals_nan(client: Client) -> None:
    put(client, "T", 1, v=math.nan)
    put(client, "T", 2, v=math.inf)
    assert run(client, filters=[("v", "=", math.nan)]) == [1]


def test_s2_1_int_and_double_never_compare_equal(client: Client) -> None:
    put(client, "T", 1, v=1)
    put(client, "T", 2, v=1.0)
    put(client, "T", 3, v=True)
    assert run(client, filters=[("v", "=", 1)]) == [1]
    assert run(client, filters=[("v", "=", 1.0)]) == [2]
    assert run(client, filters=[("v", "=", True)]) == [3]


def test_s2_1_bool_false_before_true(client: Client) -> None:
    put(client, "T", 1, v=True)
    put(client, "T", 2, v=False)
    assert run(client, order=["v"]) == [2, 1]
    assert run(client, filters=[("v", ">", False)]) == [1]


def test_s2_1_geo_points_order_by_latitude_then_longitude(client: Client) -> None:
    put(client, "T", 1, v=GeoPoint(1, 2.5))
    put(client, "T", 2, v=GeoPoint(1, 2))
    put(client, "T", 3, v=GeoPoint(-1, 5))
    assert run(client, order=["v"]) == [3, 2, 1]
    assert run(client, filters=[("v", "=", GeoPoint(1, 2))]) == [2]


def test_s2_1_ties_broken_by_key_ascending_even_for_descending_sorts(client: Client) -> None:
    for ident, value in [(3, 1), (1, 1), (2, 2), (4, 2)]:
        put(client, "T", ident, v=value)
    assert run(client, order=["v"]) == [1, 3, 2, 4]
    assert run(client, order=["-v"]) == [2, 4, 1, 3]


def test_s2_1_inequalities_are_not_type_restricted(mixed: Client) -> None:
    """``v > 0`` returns everything sorting after int 0; ``v > 'a'`` the doubles, geo, keys."""
    after_zero = list(range(5, 27))  # 2020, int max, bools, strings, doubles, geo, keys
    assert sorted(run(mixed, filters=[("v", ">", 0)])) == after_zero
    assert run(mixed, filters=[("v", ">", 0)]) == after_zero  # ordered by v, then key
    assert run(mixed, filters=[("v", ">", "a")]) == list(range(13, 27))


def test_s2_1_long_unindexed_strings_have_no_order(client: Client) -> None:
    put(client, "T", 1, exclude=["v"], v="x" * 2000)
    put(client, "T", 2, v="y")
    assert run(client, order=["v"]) == [2]
    assert run(client, filters=[("v", ">", "")]) == [2]


# -- §2.2 projections and empty lists -----------------------------------------------------------


def test_s2_2_projection_returns_timestamps_as_int_microseconds(client: Client) -> None:
    """§10.14: a projected timestamp is an int (µs since the epoch)."""
    moment = dt.datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    put(client, "T", 1, v=moment, w=1)
    (result,) = query(client, projection=["v"]).fetch()
    assert result["v"] == 1577934245678901 and type(result["v"]) is int


def test_s2_2_projection_returns_key_and_only_projected_properties(client: Client) -> None:
    """§10.14: the projected entity has its key and exactly the projected properties."""
    put(client, "T", 1, v=3, w="other", u=[1, 2])
    (result,) = query(client, projection=["v"]).fetch()
    assert result.key == client.key("T", 1)
    assert dict(result) == {"v": 3}


@pytest.mark.parametrize(
    "value",
    [b"\x00bytes", "text", 1.5, -0.0, True, False, GeoPoint(1.5, -2.5), None, 7],
    ids=repr,
)
def test_s2_2_other_projected_types_round_trip(client: Client, value: Any) -> None:
    put(client, "T", 1, v=value)
    (result,) = query(client, projection=["v"]).fetch()
    assert result["v"] == value and type(result["v"]) is type(value)
    if isinstance(value, float):
        assert math.copysign(1, result["v"]) == math.copysign(1, value)


def test_s2_2_projected_key_values_round_trip(client: Client) -> None:
    ref = client.key("A", 5, "B", "x")
    put(client, "T", 1, v=ref)
    (result,) = query(client, projection=["v"]).fetch()
    assert result["v"] == ref


def test_s2_2_projected_str_and_bytes_keep_their_own_type(client: Client) -> None:
    """Team decision: str and bytes project as their own type (the emulator gives str)."""
    put(client, "T", 1, v=b"a")
    put(client, "T", 2, v="a")
    got = [(e.key.id, e["v"]) for e in query(client, projection=["v"]).fetch()]
    assert got == [(1, b"a"), (2, "a")]
    assert [type(v) for _, v in got] == [bytes, str]


@pytest.fixture
def arrays(client: Client) -> Client:
    """The emulator-verified data set of §3.3 (kind T, names a..g and nox)."""
    data: dict[str, Any] = {
        "a": [1, 9],
        "b": [5],
        "c": [3, 7],
        "d": None,
        "e": [],
        "f": "str",
        "g": [2, "x"],
    }
    for name, value in data.items():
        put(client, "T", name, x=value)
    put(client, "T", "nox", y=1)
    return client


@pytest.fixture
def firestore_arrays(make_client: Callable[..., Client]) -> Client:
    client = make_client(profile="firestore")
    client.namespace = "fs"
    for name, value in {"a": [1, 9], "d": None, "e": [], "f": "str"}.items():
        put(client, "T", name, x=value)
    put(client, "T", "nox", y=1)
    return client


def test_s2_2_empty_list_indexes_as_null_under_legacy(arrays: Client) -> None:
    """§10.9: ``x = None`` matches ``[]``, which sorts with the nulls and projects as None."""
    assert run(arrays, filters=[("x", "=", None)]) == ["d", "e"]
    assert run(arrays, order=["x"])[:2] == ["d", "e"]
    projected = [(e.key.name, e["x"]) for e in query(arrays, projection=["x"]).fetch()]
    assert projected[:2] == [("d", None), ("e", None)]


def test_s2_2_empty_list_has_no_index_entry_under_firestore(firestore_arrays: Client) -> None:
    assert run(firestore_arrays, filters=[("x", "=", None)]) == ["d"]
    assert run(firestore_arrays, order=["x"]) == ["d", "a", "f"]
    projected = [e.key.name for e in query(firestore_arrays, projection=["x"]).fetch()]
    assert projected == ["d", "a", "a", "f"]


def test_s2_2_empty_list_reads_back_as_empty_list(arrays: Client) -> None:
    (entity,) = query(arrays, filters=[("__key__", "=", arrays.key("T", "e"))]).fetch()
    assert entity["x"] == []


# -- §3.1 / §3.2 missing and unindexed properties -------------------------------------------------


def test_s3_1_entities_lacking_the_property_never_match(arrays: Client) -> None:
    """``nox`` has no x: absent from filters, orders and projections on x."""
    assert "nox" not in run(arrays, order=["x"])
    assert "nox" not in run(arrays, order=["-x"])
    assert "nox" not in run(arrays, filters=[("x", ">", None)])
    assert "nox" not in run(arrays, filters=[("x", "!=", 1)])
    assert "nox" not in [e.key.name for e in query(arrays, projection=["x"]).fetch()]


def test_s3_2_unindexed_property_never_matches_filters_orders_or_projections(
    client: Client,
) -> None:
    """§10.9: exclude_from_indexes removes the property from every index."""
    put(client, "T", 1, exclude=["x"], x=5, y=1)
    put(client, "T", 2, x=5, y=1)
    assert run(client, filters=[("x", "=", 5)]) == [2]
    assert run(client, filters=[("x", ">", 0)]) == [2]
    assert run(client, order=["x"]) == [2]
    assert [e.key.id for e in query(client, projection=["x"]).fetch()] == [2]
    assert run(client, filters=[("y", "=", 1)]) == [1, 2]  # other properties unaffected


def test_s3_2_unindexed_list_excludes_every_element(client: Client) -> None:
    put(client, "T", 1, exclude=["x"], x=[1, 2, 3])
    put(client, "T", 2, x=[2])
    assert run(client, filters=[("x", "=", 2)]) == [2]
    assert run(client, order=["-x"]) == [2]


def test_s3_2_indexed_string_longer_than_1500_bytes_is_rejected(client: Client) -> None:
    """§10.10."""
    entity = Entity(client.key("T", 1))
    entity["s"] = "é" * 751  # 1502 bytes in UTF-8
    with pytest.raises(InvalidArgument) as info:
        client.put(entity)
    assert info.value.message == 'The value of property "s" is longer than 1500 bytes.'
    assert client.get(client.key("T", 1)) is None


def test_s3_2_indexed_bytes_longer_than_1500_bytes_is_rejected(client: Client) -> None:
    entity = Entity(client.key("T", 1))
    entity["b"] = b"\x01" * 1501
    with pytest.raises(InvalidArgument) as info:
        client.put(entity)
    assert info.value.message == 'The value of property "b" is longer than 1500 bytes.'


def test_s3_2_string_of_exactly_1500_bytes_is_indexed(client: Client) -> None:
    put(client, "T", 1, s="a" * 1500)
    assert run(client, filters=[("s", "=", "a" * 1500)]) == [1]


def test_s3_2_filter_value_longer_than_1500_bytes_is_rejected(client: Client) -> None:
    put(client, "T", 1, s="a")
    with pytest.raises(InvalidArgument) as info:
        run(client, filters=[("s", "=", "a" * 1501)])
    assert "longer than 1500 bytes" in info.value.message


def test_s3_2_embedded_entity_properties_are_indexed_under_dotted_names(client: Client) -> None:
    inner = Entity()
    inner.update(a=1, b="x")
    put(client, "T", 1, m=inner)
    inner2 = Entity()
    inner2.update(a=2)
    put(client, "T", 2, m=inner2)
    assert run(client, filters=[("m.a", "=", 1)]) == [1]
    assert run(client, order=["-m.a"]) == [2, 1]
    assert run(client, filters=[("m.b", ">", "")]) == [1]


def test_s3_2_excluding_an_embedded_entity_removes_its_properties(client: Client) -> None:
    inner = Entity()
    inner.update(a=1)
    put(client, "T", 1, exclude=["m"], m=inner)
    assert run(client, filters=[("m.a", "=", 1)]) == []


# -- §3.3 arrays (the emulator-verified data set) -------------------------------------------------


def test_s3_3_any_element_matches_equality(arrays: Client) -> None:
    assert run(arrays, filters=[("x", "=", 1)]) == ["a"]
    assert run(arrays, filters=[("x", "=", "x")]) == ["g"]


def test_s3_3_equalities_on_one_property_may_match_different_elements(arrays: Client) -> None:
    assert run(arrays, filters=[("x", "=", 1), ("x", "=", 9)]) == ["a"]


def test_s3_3_inequalities_on_one_property_must_match_one_element(arrays: Client) -> None:
    """``x > 1 AND x < 9 -> g, c, b`` (not a: neither 1 nor 9 is inside), in x order."""
    assert run(arrays, filters=[("x", ">", 1), ("x", "<", 9)]) == ["g", "c", "b"]


def test_s3_3_ascending_sort_uses_smallest_element(arrays: Client) -> None:
    assert run(arrays, order=["x"]) == ["d", "e", "a", "g", "c", "b", "f"]


def test_s3_3_descending_sort_uses_largest_element(arrays: Client) -> None:
    assert run(arrays, order=["-x"]) == ["g", "f", "a", "c", "b", "d", "e"]


def test_s3_3_sort_uses_smallest_surviving_element(arrays: Client) -> None:
    """Only elements passing the filters count: ``x > 4 order x -> b(5), c(7), a(9), f, g``."""
    assert run(arrays, filters=[("x", ">", 4)], order=["x"]) == ["b", "c", "a", "f", "g"]


def test_s3_3_descending_sort_uses_largest_surviving_element(arrays: Client) -> None:
    """``x < 4 order -x -> c(3), g(2), a(1), d, e``."""
    assert run(arrays, filters=[("x", "<", 4)], order=["-x"]) == ["c", "g", "a", "d", "e"]


def test_s3_3_each_entity_appears_once_in_entity_results(arrays: Client) -> None:
    results = run(arrays, filters=[("x", ">", 0)])
    assert len(results) == len(set(results))
    assert results == ["a", "g", "c", "b", "f"]


def test_s3_3_keys_only_results_have_no_duplicates(arrays: Client) -> None:
    q = query(arrays, order=["x"])
    q.keys_only()
    assert ids(q) == ["d", "e", "a", "g", "c", "b", "f"]


def test_s3_3_projection_explodes_one_result_per_element(arrays: Client) -> None:
    got = [(e.key.name, e["x"]) for e in query(arrays, projection=["x"]).fetch()]
    assert got == [
        ("d", None),
        ("e", None),
        ("a", 1),
        ("g", 2),
        ("c", 3),
        ("b", 5),
        ("c", 7),
        ("a", 9),
        ("f", "str"),
        ("g", "x"),
    ]


def test_s3_3_projection_of_two_array_properties_is_the_cross_product(
    make_client: Callable[..., Client], tmp_path: Any
) -> None:
    index = tmp_path / "index.yaml"
    index.write_text("indexes:\n- kind: T\n  properties:\n  - name: x\n  - name: y\n")
    client = make_client(index_yaml=str(index))
    put(client, "T", 1, x=[1, 2], y=["a", "b"])
    put(client, "T", 2, x=3, y="c")
    got = [(e.key.id, e["x"], e["y"]) for e in query(client, projection=["x", "y"]).fetch()]
    assert got == [(1, 1, "a"), (1, 1, "b"), (1, 2, "a"), (1, 2, "b"), (2, 3, "c")]


def test_s3_3_projection_repeats_no_key_and_value_pair(client: Client) -> None:
    put(client, "T", 1, x=[1, 1, 2])
    got = [(e.key.id, e["x"]) for e in query(client, projection=["x"]).fetch()]
    assert got == [(1, 1), (1, 2)]


def test_s3_3_projection_with_a_range_keeps_the_elements_inside_it(arrays: Client) -> None:
    """Emulator: ``x > 4 projection x -> b 5, c 7, a 9, f str, g x``."""
    got = [
        (e.key.name, e["x"])
        for e in query(arrays, filters=[("x", ">", 4)], projection=["x"]).fetch()
    ]
    assert got == [("b", 5), ("c", 7), ("a", 9), ("f", "str"), ("g", "x")]


def test_s3_3_distinct_on_keeps_the_first_result_per_value(arrays: Client) -> None:
    """``projection x, distinct_on x``: one row per distinct element value (null once)."""
    q = query(arrays, projection=["x"], distinct_on=["x"])
    got = [(e.key.name, e["x"]) for e in q.fetch()]
    assert got == [
        ("d", None),
        ("a", 1),
        ("g", 2),
        ("c", 3),
        ("b", 5),
        ("c", 7),
        ("a", 9),
        ("f", "str"),
        ("g", "x"),
    ]


def test_s3_3_filter_value_may_not_be_a_list(client: Client) -> None:
    put(client, "T", 1, x=1)
    with pytest.raises(InvalidArgument) as info:
        run(client, filters=[("x", "=", [1, 2])])
    assert "A list value is not allowed" in info.value.message


def test_s3_3_filter_value_may_not_be_an_entity(client: Client) -> None:
    put(client, "T", 1, x=1)
    inner = Entity()
    inner["a"] = 1
    with pytest.raises(InvalidArgument) as info:
        run(client, filters=[("x", "=", inner)])
    assert "An entity value is not allowed" in info.value.message


# -- §4.1 pipeline -----------------------------------------------------------------------------


def test_s4_1_offset_applies_before_limit(client: Client) -> None:
    for ident in range(1, 8):
        put(client, "T", ident, v=ident)
    assert ids(query(client, order=["-v"]), offset=2, limit=3) == [5, 4, 3]
    assert ids(query(client), offset=10) == []
    assert ids(query(client), limit=0) == []


@pytest.mark.parametrize("fetch", [{"limit": -1}, {"offset": -1}], ids=["limit", "offset"])
def test_s4_1_limit_and_offset_must_not_be_negative(client: Client, fetch: dict[str, int]) -> None:
    put(client, "T", 1, v=1)
    with pytest.raises((InvalidArgument, ValueError)):
        ids(query(client), **fetch)


def test_s4_1_only_the_query_kind_is_returned(client: Client) -> None:
    put(client, "T", 1, v=1)
    put(client, "U", 1, v=1)
    assert [e.key.kind for e in query(client, filters=[("v", "=", 1)]).fetch()] == ["T"]


# -- §4.2 filters ------------------------------------------------------------------------------


def test_s4_2_invalid_operator_raises_valueerror_with_the_official_text() -> None:
    with pytest.raises(ValueError) as info:
        PropertyFilter("x", "~", 1)
    assert info.value.args == (
        'Invalid expression: "~"',
        "Please use one of: =, <, <=, >, >=, !=, IN, NOT_IN.",
    )


def test_s4_2_invalid_operator_in_positional_add_filter(client: Client) -> None:
    with pytest.raises(ValueError) as info:
        client.query(kind="T").add_filter("x", "==", 1)
    assert info.value.args[0] == 'Invalid expression: "=="'


def test_s4_2_key_filter_value_must_be_a_key(client: Client) -> None:
    with pytest.raises(ValueError) as info:
        PropertyFilter("__key__", "=", 5)
    assert info.value.args == ('Invalid key: "5"',)


def test_s4_2_in_matches_any_listed_value_in_key_order(client: Client) -> None:
    """IN counts as an equality: results in key order, not value order."""
    for ident, value in [(1, 9), (2, 1), (3, 5), (4, [5, 9]), (5, 2)]:
        put(client, "T", ident, x=value)
    assert run(client, filters=[("x", "IN", [9, 1, 5])]) == [1, 2, 3, 4]


def test_s4_2_not_equal_matches_null_but_not_missing(arrays: Client) -> None:
    """Null satisfies ``!= 1`` (null < 1); an entity lacking x never does. Ordered by x."""
    assert run(arrays, filters=[("x", "!=", 5)]) == ["d", "e", "a", "g", "c", "f"]


def test_s4_2_not_equal_under_firestore_excludes_empty_lists(firestore_arrays: Client) -> None:
    assert run(firestore_arrays, filters=[("x", "!=", 1)]) == ["d", "a", "f"]


def test_s4_2_not_in_matches_null_but_not_missing(arrays: Client) -> None:
    """``NOT_IN [1, 5]``: one element outside the list suffices; ordered by x."""
    assert run(arrays, filters=[("x", "NOT_IN", [1, 5])]) == ["d", "e", "g", "c", "a", "f"]


def test_s4_2_not_in_takes_at_most_ten_values(client: Client) -> None:
    put(client, "T", 1, x=1)
    assert run(client, filters=[("x", "NOT_IN", list(range(2, 12)))]) == [1]
    with pytest.raises(InvalidArgument):
        run(client, filters=[("x", "NOT_IN", list(range(2, 13)))])


@pytest.mark.parametrize("op", ["IN", "NOT_IN"])
def test_s4_2_in_and_not_in_take_a_non_empty_list(client: Client, op: str) -> None:
    put(client, "T", 1, x=1)
    with pytest.raises(InvalidArgument):
        run(client, filters=[("x", op, [])])


def test_s4_2_or_returns_the_union_once_in_key_order(client: Client) -> None:
    for ident, (x, y) in enumerate([(1, "a"), (2, "b"), (1, "b"), (3, "c")], start=1):
        put(client, "T", ident, x=x, y=y)
    flt = Or([PropertyFilter("x", "=", 1), PropertyFilter("y", "=", "b")])
    assert run(client, filters=[flt]) == [1, 2, 3]


def test_s4_2_or_combined_with_a_key_equality(client: Client) -> None:
    put(client, "T", 2, y=None)
    put(client, "T", 3, x=None)
    flt = Or([PropertyFilter("x", "=", None), PropertyFilter("y", "=", None)])
    assert run(client, filters=[flt, ("__key__", "=", client.key("T", 2))]) == [2]
    assert run(client, filters=[flt, ("__key__", "=", client.key("T", 3))]) == [3]
    assert run(client, filters=[flt, ("__key__", "=", client.key("T", 4))]) == []


def test_s4_2_filter_on_a_property_no_entity_of_the_kind_has(client: Client) -> None:
    """Never an error: a property nobody wrote simply matches nothing."""
    put(client, "T", 1, y=2)
    assert run(client, filters=[("x", "=", 1)]) == []
    assert run(client, filters=[("x", "IN", [1, 2])]) == []
    flt = Or([PropertyFilter("x", "=", 1), PropertyFilter("y", "=", 2)])
    assert run(client, filters=[flt]) == [1]
    assert run(client, order=["x"]) == []


def test_s4_2_nested_and_inside_or(client: Client) -> None:
    for ident, (x, y) in enumerate([(1, "a"), (1, "b"), (2, "a"), (3, "c")], start=1):
        put(client, "T", ident, x=x, y=y)
    flt = Or(
        [
            And([PropertyFilter("x", "=", 1), PropertyFilter("y", "=", "b")]),
            PropertyFilter("y", "=", "c"),
        ]
    )
    assert run(client, filters=[flt]) == [2, 4]


def test_s4_2_or_of_ranges_sorts_by_the_surviving_elements(arrays: Client) -> None:
    """``x < 2 OR x > 8`` keeps, per entity, the elements inside either range."""
    flt = Or([PropertyFilter("x", "<", 2), PropertyFilter("x", ">", 8)])
    assert run(arrays, filters=[flt]) == ["d", "e", "a", "f", "g"]
    assert run(arrays, filters=[flt], order=["-x"]) == ["g", "f", "a", "d", "e"]


@pytest.mark.parametrize("profile", ["legacy", "firestore"])
def test_s4_2_modern_operators_work_under_both_profiles(
    make_client: Callable[..., Client], profile: str
) -> None:
    """Team decision: IN, NOT_IN, != and OR run under the legacy profile too."""
    client = make_client(profile=profile)
    for ident in range(1, 6):
        put(client, "T", ident, x=ident)
    assert run(client, filters=[("x", "IN", [2, 4])]) == [2, 4]
    assert run(client, filters=[("x", "NOT_IN", [2, 4])]) == [1, 3, 5]
    assert run(client, filters=[("x", "!=", 3)]) == [1, 2, 4, 5]
    flt = Or([PropertyFilter("x", "<", 2), PropertyFilter("x", ">", 4)])
    assert run(client, filters=[flt]) == [1, 5]


def test_s4_2_ancestor_must_be_complete(client: Client) -> None:
    q = client.query(kind="T")
    q.ancestor = client.key("P")
    assert invalid(q) == "Key path element must not be incomplete: [P: ]"


# -- §4.3 legacy restrictions, firestore freedoms -----------------------------------------------


def test_s4_3_only_one_inequality_property_under_legacy(client: Client) -> None:
    q = query(client, filters=[("x", ">", 1), ("tag", ">", "a")])
    assert invalid(q) == (
        "Only one inequality filter per query is supported.  Encountered both x and tag"
    )


def test_s4_3_first_sort_must_be_the_inequality_property_under_legacy(client: Client) -> None:
    q = query(client, filters=[("x", ">", 1)], order=["tag"])
    assert invalid(q) == (
        "The first sort property must be the same as the property to which the inequality "
        "filter is applied.  In your query the first sort property is tag but the inequality "
        "filter is on x"
    )


def test_s4_3_not_equal_counts_as_an_inequality_under_legacy(client: Client) -> None:
    q = query(client, filters=[("x", "!=", 1), ("tag", ">", "a")])
    assert invalid(q).startswith("Only one inequality filter per query is supported.")


def test_s4_3_kindless_query_with_property_filter(client: Client) -> None:
    assert invalid(query(client, None, filters=[("x", "=", 1)])) == (
        "kind is required for non-__key__ filters"
    )


@pytest.mark.parametrize("order", [["x"], ["-__key__"]])
def test_s4_3_kindless_query_orders_only_by_key_ascending(client: Client, order: list[str]) -> None:
    assert invalid(query(client, None, order=order)) == (
        "kind is required for all orders except __key__ ascending"
    )


def test_s4_3_projection_of_a_property_with_an_equality_filter(client: Client) -> None:
    q = query(client, filters=[("x", "=", 1)], projection=["x"])
    assert invalid(q) == "cannot use projection on a property with an equality filter"


def test_s4_3_projecting_a_reserved_property(client: Client) -> None:
    q = query(client, projection=["__foo__"])
    assert invalid(q) == "projections are not supported for the property: __foo__"


def test_s4_3_projecting_a_property_twice(client: Client) -> None:
    q = query(client, projection=["x", "x"])
    assert invalid(q) == "cannot project a property multiple times"


def test_s4_3_distinct_on_must_lead_the_order(client: Client) -> None:
    q = query(client, projection=["x", "y"], distinct_on=["x"], order=["y"])
    assert invalid(q) == "items in the group by clause must be specified first in the ordering"


def test_s4_3_non_ancestor_query_in_legacy_transaction(client: Client) -> None:
    put(client, "T", 1, x=1)
    with client.transaction():
        q = query(client, filters=[("x", "=", 1)])
        assert invalid(q) == "Only ancestor queries are allowed inside transactions."


def test_s4_3_ancestor_query_in_legacy_transaction_is_allowed(client: Client) -> None:
    parent = client.key("P", 1)
    child = Entity(client.key("T", 1, parent=parent))
    child["x"] = 1
    client.put(child)
    with client.transaction():
        q = client.query(kind="T", ancestor=parent)
        assert [e.key for e in q.fetch()] == [child.key]


def test_s4_3_any_query_in_a_firestore_transaction(make_client: Callable[..., Client]) -> None:
    client = make_client(profile="firestore")
    put(client, "T", 1, x=1)
    with client.transaction():
        assert run(client, filters=[("x", "=", 1)]) == [1]


def test_s4_3_query_too_large(client: Client) -> None:
    q = query(client, filters=[("x", "=", i) for i in range(101)])
    assert invalid(q) == (
        "query is too large. may not have more than 100 filters + sort orders ancestor total"
    )


def test_s4_3_sort_on_an_equality_property_is_ignored(client: Client) -> None:
    for ident, value in [(3, [1, 9]), (1, [1, 2]), (2, [1, 5])]:
        put(client, "T", ident, x=value)
    assert run(client, filters=[("x", "=", 1)], order=["-x"]) == [1, 2, 3]


def test_s4_3_key_equality_drops_the_orders(client: Client) -> None:
    """SDK ``Normalize`` drops every order under ``__key__ =``, so the orders require
    nothing (emulator: ``__key__ = k ORDER BY x`` returns k although k has no x)."""
    put(client, "T", 1, y=1)
    put(client, "T", 2, x=1)
    assert run(client, filters=[("__key__", "=", client.key("T", 1))], order=["x"]) == [1]
    q = query(client, filters=[("__key__", "=", client.key("T", 1))], order=["-x", "y"])
    q.keys_only()
    assert ids(q) == [1]


def test_s4_3_keys_only_with_a_key_equality(client: Client) -> None:
    """keys_only is not a projection of a filtered property."""
    put(client, "T", 1, y=1)
    put(client, "T", 2, y=1)
    q = query(client, filters=[("__key__", "=", client.key("T", 2))])
    q.keys_only()
    assert ids(q) == [2]
    q = query(client, None, filters=[("__key__", "=", client.key("T", 2))])
    q.keys_only()
    assert ids(q) == [2]


def test_s4_3_no_order_means_key_order(client: Client) -> None:
    for ident, value in [(3, 1), (1, 3), (2, 2)]:
        put(client, "T", ident, x=value, y="same")
    assert run(client) == [1, 2, 3]
    assert run(client, filters=[("y", "=", "same")]) == [1, 2, 3]


def test_s4_3_no_order_with_an_inequality_means_that_property_then_key(client: Client) -> None:
    for ident, value in [(3, 1), (1, 3), (2, 2), (4, 1)]:
        put(client, "T", ident, x=value)
    assert run(client, filters=[("x", ">", 0)]) == [3, 4, 2, 1]


def test_s4_3_firestore_allows_inequalities_on_several_properties(
    make_client: Callable[..., Client], tmp_path: Any
) -> None:
    """Implicit order: the inequality properties in order of appearance, then the key."""
    index = tmp_path / "index.yaml"
    index.write_text("indexes:\n- kind: T\n  properties:\n  - name: x\n  - name: tag\n")
    client = make_client(profile="firestore", index_yaml=str(index))
    rows = [(1, 2, "b"), (2, 1, "c"), (3, 2, "a"), (4, 3, "z"), (5, 0, "q"), (6, 2, "")]
    for ident, x, tag in rows:
        put(client, "T", ident, x=x, tag=tag)
    assert run(client, filters=[("x", ">", 0), ("tag", ">", "a")]) == [2, 1, 4]


def test_s4_3_firestore_allows_ordering_on_another_property(
    make_client: Callable[..., Client], tmp_path: Any
) -> None:
    """``x > 1 ORDER BY tag``: explicit orders, then the inequality property, then key."""
    index = tmp_path / "index.yaml"
    index.write_text("indexes:\n- kind: T\n  properties:\n  - name: tag\n  - name: x\n")
    client = make_client(profile="firestore", index_yaml=str(index))
    for ident, x, tag in [(1, 5, "b"), (2, 3, "a"), (3, 9, "b"), (4, 1, "a"), (5, 4, "b")]:
        put(client, "T", ident, x=x, tag=tag)
    assert run(client, filters=[("x", ">", 1)], order=["tag"]) == [2, 5, 1, 3]


# -- §4.4 ancestor, kindless, keys-only ----------------------------------------------------------


@pytest.fixture
def family(client: Client) -> Client:
    """P/1 > T/1 > T/2 (grandchild), P/1 > U/1, P/2 > T/3, and the root T/9."""
    for path in [
        ("P", 1),
        ("P", 1, "T", 1),
        ("P", 1, "T", 1, "T", 2),
        ("P", 1, "U", 1),
        ("P", 2, "T", 3),
        ("T", 9),
    ]:
        entity = Entity(client.key(*path))
        entity["v"] = 1
        client.put(entity)
    return client


def test_s4_4_ancestor_query_returns_descendants_of_any_depth(family: Client) -> None:
    q = family.query(kind="T", ancestor=family.key("P", 1))
    assert [e.key.flat_path for e in q.fetch()] == [("P", 1, "T", 1), ("P", 1, "T", 1, "T", 2)]


def test_s4_4_ancestor_query_includes_the_ancestor_itself(family: Client) -> None:
    q = family.query(kind="T", ancestor=family.key("P", 1, "T", 1))
    assert [e.key.flat_path for e in q.fetch()] == [("P", 1, "T", 1), ("P", 1, "T", 1, "T", 2)]


def test_s4_4_kindless_ancestor_query_returns_all_descendants(family: Client) -> None:
    q = family.query(ancestor=family.key("P", 1))
    assert [e.key.flat_path for e in q.fetch()] == [
        ("P", 1),
        ("P", 1, "T", 1),
        ("P", 1, "T", 1, "T", 2),
        ("P", 1, "U", 1),
    ]


def test_s4_4_kindless_query_returns_every_kind_in_key_order(family: Client) -> None:
    assert [e.key.kind for e in family.query().fetch()] == ["P", "T", "T", "U", "T", "T"]


def test_s4_4_keys_only_returns_keys_without_properties(family: Client) -> None:
    q = family.query(kind="T")
    q.keys_only()
    results = list(q.fetch())
    assert [e.key.flat_path for e in results] == [
        ("P", 1, "T", 1),
        ("P", 1, "T", 1, "T", 2),
        ("P", 2, "T", 3),
        ("T", 9),
    ]
    assert all(dict(e) == {} for e in results)


def test_s4_4_ancestor_with_filters(family: Client) -> None:
    q = query(family, filters=[("v", "=", 1)])
    q.ancestor = family.key("P", 2)
    assert [e.key.flat_path for e in q.fetch()] == [("P", 2, "T", 3)]


def test_s4_4_namespaces_are_separate(client: Client) -> None:
    put(client, "T", 1, v=1)
    client.namespace = "other"
    put(client, "T", 2, v=1)
    assert run(client) == [2]
    assert ids(client.query(kind="T", namespace="other")) == [2]
    client.namespace = None
    assert run(client) == [1]


# -- §4.5 projection and distinct --------------------------------------------------------------


def test_s4_5_projection_omits_entities_lacking_or_unindexing_a_projected_property(
    client: Client,
) -> None:
    put(client, "T", 1, x=1)
    put(client, "T", 2, y=1)
    put(client, "T", 3, exclude=["x"], x=2)
    assert [e.key.id for e in query(client, projection=["x"]).fetch()] == [1]


def test_s4_5_distinct_on_returns_the_first_result_per_combination(
    make_client: Callable[..., Client], tmp_path: Any
) -> None:
    index = tmp_path / "index.yaml"
    index.write_text("indexes:\n- kind: T\n  properties:\n  - name: a\n  - name: b\n")
    client = make_client(index_yaml=str(index))
    for ident, (a, b) in enumerate([(1, 2), (1, 1), (2, 1), (1, 2), (2, 1)], start=1):
        put(client, "T", ident, a=a, b=b)
    q = query(client, projection=["a", "b"], distinct_on=["a", "b"])
    assert [(e.key.id, e["a"], e["b"]) for e in q.fetch()] == [(2, 1, 1), (1, 1, 2), (3, 2, 1)]


def test_s4_5_distinct_on_without_projection_returns_whole_entities(client: Client) -> None:
    for ident, a in [(1, 2), (2, 1), (3, 2), (4, 1), (5, 3)]:
        put(client, "T", ident, a=a, other="x")
    results = list(query(client, distinct_on=["a"]).fetch())
    assert [(e.key.id, dict(e)) for e in results] == [
        (2, {"a": 1, "other": "x"}),
        (1, {"a": 2, "other": "x"}),
        (5, {"a": 3, "other": "x"}),
    ]


def test_s4_5_distinct_on_an_array_applies_before_entity_dedup(client: Client) -> None:
    """Emulator: p=[1, 2], q=[2] -> only p (q's 2 was already seen, via p)."""
    put(client, "T", "p", x=[1, 2])
    put(client, "T", "q", x=[2])
    assert run(client, distinct_on=["x"]) == ["p"]


def test_s4_5_distinct_on_with_explicit_descending_order(client: Client) -> None:
    for ident, a in [(1, 2), (2, 1), (3, 2)]:
        put(client, "T", ident, a=a)
    q = query(client, projection=["a"], distinct_on=["a"], order=["-a"])
    assert [(e.key.id, e["a"]) for e in q.fetch()] == [(1, 2), (2, 1)]


# -- §8 Query API parity -------------------------------------------------------------------------


def test_s8_query_is_exported_from_the_package() -> None:
    assert getattr(datastore_lite, "Query", None) is Query


def test_s8_positional_add_filter_warns_and_still_filters(client: Client) -> None:
    put(client, "T", 1, x=1)
    put(client, "T", 2, x=2)
    q = client.query(kind="T")
    with pytest.warns(UserWarning) as record:
        returned = q.add_filter("x", "=", 2)
    assert returned is q
    assert [str(w.message) for w in record] == [
        "Detected filter using positional arguments. Prefer using the 'filter' keyword "
        "argument instead."
    ]
    assert q.filters == [("x", "=", 2)]
    assert ids(q) == [2]


def test_s8_keyword_add_filter_does_not_warn(client: Client) -> None:
    q = client.query(kind="T")
    flt = PropertyFilter("x", "=", 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert q.add_filter(filter=flt) is q
    assert q.filters == [flt]


def test_s8_filter_objects_passed_positionally_are_rejected(client: Client) -> None:
    q = client.query(kind="T")
    with pytest.raises(ValueError) as info:
        q.add_filter(PropertyFilter("x", "=", 1))
    assert str(info.value) == "PropertyFilter object must be passed using keyword argument 'filter'"
    with pytest.raises(ValueError) as info:
        q.add_filter(And([PropertyFilter("x", "=", 1)]))
    assert (
        str(info.value) == "'Or' and 'And' objects must be passed using keyword argument 'filter'"
    )


def test_s8_both_filter_forms_at_once_are_rejected(client: Client) -> None:
    with pytest.raises(ValueError) as info:
        client.query(kind="T").add_filter("x", "=", 1, filter=PropertyFilter("y", "=", 2))
    assert str(info.value) == (
        "Can't pass in both the positional arguments and 'filter' at the same time"
    )


def test_s8_constructor_filters_accept_tuples_and_objects(client: Client) -> None:
    put(client, "T", 1, x=1, y=2)
    put(client, "T", 2, x=1, y=3)
    with pytest.warns(UserWarning):
        q = client.query(kind="T", filters=[("x", "=", 1), PropertyFilter("y", "=", 3)])
    assert ids(q) == [2]


def test_s8_key_filter_adds_a_key_filter(client: Client) -> None:
    put(client, "T", 1, x=1)
    put(client, "T", 2, x=1)
    q = client.query(kind="T")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the official key_filter goes through add_filter
        q.key_filter(client.key("T", 2))
        q2 = client.query(kind="T")
        q2.key_filter(client.key("T", 2), "<")
    assert ids(q) == [2]
    assert ids(q2) == [1]


def test_s8_setters_validate_like_the_official_client(client: Client) -> None:
    q = client.query(kind="T")
    with pytest.raises(TypeError) as info:
        q.kind = 5  # type: ignore[assignment]
    assert str(info.value) == "Kind must be a string"
    with pytest.raises(ValueError) as info_ns:
        q.namespace = 5  # type: ignore[assignment]
    assert str(info_ns.value) == "Namespace must be a string"
    with pytest.raises(TypeError) as info:
        q.ancestor = "P"  # type: ignore[assignment]
    assert str(info.value) == "Ancestor must be a Key"
    q.ancestor = client.key("P", 1)
    del q.ancestor
    assert q.ancestor is None


def test_s8_projection_order_and_distinct_setters_accept_a_string(client: Client) -> None:
    q = client.query(kind="T")
    q.projection = "x"
    q.order = "-x"
    q.distinct_on = "x"
    assert (q.projection, q.order, q.distinct_on) == (["x"], ["-x"], ["x"])
    q.keys_only()
    assert q.projection == ["__key__"]


def test_s8_constructor_rejects_a_string_projection(client: Client) -> None:
    with pytest.raises(TypeError) as info:
        client.query(kind="T", projection="x")
    assert str(info.value) == "Expected projection to be a tuple or list. Received 'x'"


def test_s8_filters_property_returns_a_copy(client: Client) -> None:
    q = client.query(kind="T")
    q.add_filter(filter=PropertyFilter("x", "=", 1))
    q.filters.append(("y", "=", 2))
    assert len(q.filters) == 1


def test_s8_client_query_rejects_client_and_project(client: Client) -> None:
    with pytest.raises(TypeError) as info:
        client.query(kind="T", client=client)
    assert str(info.value) == "Cannot pass client"
    with pytest.raises(TypeError) as info:
        client.query(kind="T", project="other")
    assert str(info.value) == "Cannot pass project"


def test_s8_query_namespace_defaults_to_the_clients(client: Client) -> None:
    client.namespace = "ns1"
    assert client.query(kind="T").namespace == "ns1"
    assert client.query(kind="T", namespace="ns2").namespace == "ns2"


def test_s8_iterator_pages_and_iteration_are_exclusive(client: Client) -> None:
    for ident in range(1, 4):
        put(client, "T", ident, v=ident)
    iterator = query(client).fetch(limit=2)
    assert iterator.max_results == 2
    assert next(iter(iterator)).key.id == 1
    with pytest.raises(ValueError) as info:
        iterator.pages  # noqa: B018
    assert info.value.args[0] == "Iterator has already started"
    other = query(client).fetch()
    pages = list(other.pages)
    assert [e.key.id for page in pages for e in page] == [1, 2, 3]
    assert other.num_results == 3
    with pytest.raises(ValueError):
        list(other)


def test_s8_eventual_read_inside_a_transaction_is_rejected(client: Client) -> None:
    parent = client.key("P", 1)
    with client.transaction():
        q = client.query(kind="T", ancestor=parent)
        with pytest.raises(ValueError) as info:
            list(q.fetch(eventual=True))
    assert str(info.value) == "At most one of eventual, transaction, or read_time is allowed."


def test_s8_invalid_argument_is_a_bad_request(client: Client) -> None:
    with pytest.raises(BadRequest):
        list(query(client, None, filters=[("x", "=", 1)]).fetch())
