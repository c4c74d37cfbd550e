"""Aggregation queries: one test per rule of SEMANTICS.md §4.7 and the team's decisions.

``client.aggregation_query(q).count()/.sum()/.avg()``; aliases (default ``property_1``,
``property_2``… in request order among un-aliased aggregations); at most 5 per query; count
up to a limit via ``fetch(limit=n)``; non-numeric values (null included) skipped; SUM of
ints stays int (float with a double or on overflow); AVG always float, None when empty;
an empty COUNT is ``0`` and an empty SUM is ``0`` — ints, deliberately not the official
client's ``0.0`` (docs/compatibility.md). Run under both profiles.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import pytest

from datastore_lite import Client, Entity, GeoPoint
from datastore_lite.aggregation import (
    AggregationQuery,
    AggregationResult,
    AvgAggregation,
    CountAggregation,
    SumAggregation,
)
from datastore_lite.exceptions import InvalidArgument
from datastore_lite.query import PropertyFilter


@pytest.fixture(params=["legacy", "firestore"])
def agg_client(request: pytest.FixtureRequest, make_client: Callable[..., Client]) -> Client:
    """A client of each profile (aggregations run under both)."""
    return make_client(profile=request.param)


def put(
    client: Client, ident: Any, kind: str = "T", exclude: tuple[str, ...] = (), **props: Any
) -> None:
    entity = Entity(client.key(kind, ident), exclude_from_indexes=exclude)
    entity.update(props)
    client.put(entity)


def results(aggregation: AggregationQuery, **fetch: Any) -> dict[str, Any]:
    """The single batch of results as {alias: value}."""
    batches = list(aggregation.fetch(**fetch))
    assert len(batches) == 1, batches
    for item in batches[0]:
        assert isinstance(item, AggregationResult)
    return {item.alias: item.value for item in batches[0]}


def value(aggregation: AggregationQuery, **fetch: Any) -> Any:
    (only,) = results(aggregation, **fetch).values()
    return only


# -- COUNT -----------------------------------------------------------------------------------------


def test_s4_7_count_counts_the_query_results(agg_client: Client) -> None:
    for ident in range(1, 6):
        put(agg_client, ident, n=ident)
    q = agg_client.query(kind="T")
    q.add_filter(filter=PropertyFilter("n", ">", 2))
    got = value(agg_client.aggregation_query(q).count(alias="c"))
    assert got == 3 and type(got) is int


def test_s4_7_count_of_nothing_is_int_zero(agg_client: Client) -> None:
    """Team decision: 0 (int), not the official client's 0.0 quirk."""
    got = value(agg_client.aggregation_query(agg_client.query(kind="Nothing")).count())
    assert got == 0 and type(got) is int


def test_s4_7_count_up_to_a_limit(agg_client: Client) -> None:
    for ident in range(1, 11):
        put(agg_client, ident, n=ident)
    aggregation = agg_client.aggregation_query(agg_client.query(kind="T")).count(alias="c")
    assert value(aggregation, limit=4) == 4
    assert value(aggregation, limit=50) == 10
    assert value(aggregation) == 10


def test_s4_7_count_counts_entities_not_array_elements(agg_client: Client) -> None:
    put(agg_client, 1, x=[1, 2, 3])
    put(agg_client, 2, x=[5])
    q = agg_client.query(kind="T")
    q.add_filter(filter=PropertyFilter("x", ">", 0))
    assert value(agg_client.aggregation_query(q).count()) == 2


def test_s4_7_count_of_an_or_query(agg_client: Client) -> None:
    from datastore_lite.query import Or

    for ident in range(1, 9):
        put(agg_client, ident, a=ident % 2, b=ident % 3)
    q = agg_client.query(kind="T")
    q.add_filter(filter=Or([PropertyFilter("a", "=", 0), PropertyFilter("b", "=", 0)]))
    assert value(agg_client.aggregation_query(q).count()) == 5  # 2, 3, 4, 6, 8


def test_s4_7_count_of_an_ancestor_query(agg_client: Client) -> None:
    parent = agg_client.key("P", 1)
    for ident in range(1, 4):
        entity = Entity(agg_client.key("T", ident, parent=parent))
        entity["n"] = ident
        agg_client.put(entity)
    put(agg_client, 9, n=9)
    q = agg_client.query(kind="T", ancestor=parent)
    assert value(agg_client.aggregation_query(q).count()) == 3


# -- SUM and AVG -----------------------------------------------------------------------------------


def test_s4_7_sum_of_ints_is_an_int(agg_client: Client) -> None:
    for ident, n in enumerate([1, 2, 3, -10], start=1):
        put(agg_client, ident, n=n)
    got = value(agg_client.aggregation_query(agg_client.query(kind="T")).sum("n"))
    assert got == -4 and type(got) is int


def test_s4_7_sum_with_a_double_is_a_float(agg_client: Client) -> None:
    for ident, n in enumerate([1, 2.5, 3], start=1):
        put(agg_client, ident, n=n)
    got = value(agg_client.aggregation_query(agg_client.query(kind="T")).sum("n"))
    assert got == 6.5 and type(got) is float


def test_s4_7_sum_that_overflows_int64_is_a_float(agg_client: Client) -> None:
    put(agg_client, 1, n=2**63 - 1)
    put(agg_client, 2, n=2**63 - 1)
    got = value(agg_client.aggregation_query(agg_client.query(kind="T")).sum("n"))
    assert type(got) is float
    assert got == pytest.approx(2.0 * (2**63 - 1))


def test_s4_7_empty_sum_is_int_zero(agg_client: Client) -> None:
    got = value(agg_client.aggregation_query(agg_client.query(kind="Nothing")).sum("n"))
    assert got == 0 and type(got) is int


def test_s4_7_avg_is_always_a_float(agg_client: Client) -> None:
    for ident, n in enumerate([1, 2, 4], start=1):
        put(agg_client, ident, n=n)
    got = value(agg_client.aggregation_query(agg_client.query(kind="T")).avg("n"))
    assert got == pytest.approx(7 / 3) and type(got) is float
    put(agg_client, 4, n=5)
    got = value(agg_client.aggregation_query(agg_client.query(kind="T")).avg("n"))
    assert got == 3.0 and type(got) is float


def test_s4_7_avg_of_nothing_is_none(agg_client: Client) -> None:
    put(agg_client, 1, n="text")
    got = value(agg_client.aggregation_query(agg_client.query(kind="T")).avg("n"))
    assert got is None


@pytest.mark.parametrize(
    "skipped",
    [None, "5", b"5", True, dt.datetime(2020, 1, 1, tzinfo=dt.UTC), GeoPoint(1, 2)],
    ids=repr,
)
def test_s4_7_non_numeric_values_are_skipped(agg_client: Client, skipped: Any) -> None:
    put(agg_client, 1, n=2)
    put(agg_client, 2, n=4)
    put(agg_client, 3, n=skipped)
    put(agg_client, 4, other=1)
    aggregation = agg_client.aggregation_query(agg_client.query(kind="T"))
    aggregation.sum("n", alias="s").avg("n", alias="a").count(alias="c")
    assert results(aggregation) == {"s": 6, "a": 3.0, "c": 4}


def test_s4_7_nan_makes_sum_and_avg_nan(agg_client: Client) -> None:
    put(agg_client, 1, n=1)
    put(agg_client, 2, n=math.nan)
    aggregation = agg_client.aggregation_query(agg_client.query(kind="T"))
    got = results(aggregation.sum("n", alias="s").avg("n", alias="a"))
    assert math.isnan(got["s"]) and math.isnan(got["a"])


def test_s4_7_sum_and_avg_respect_the_filters(agg_client: Client) -> None:
    for ident in range(1, 7):
        put(agg_client, ident, n=ident, even=ident % 2 == 0)
    q = agg_client.query(kind="T")
    q.add_filter(filter=PropertyFilter("even", "=", True))
    aggregation = agg_client.aggregation_query(q).sum("n", alias="s").avg("n", alias="a")
    assert results(aggregation) == {"s": 12, "a": 4.0}


# -- aliases and limits ----------------------------------------------------------------------------


def test_s4_7_default_aliases_number_the_unaliased_in_request_order(agg_client: Client) -> None:
    put(agg_client, 1, n=2)
    put(agg_client, 2, n=4)
    aggregation = agg_client.aggregation_query(agg_client.query(kind="T"))
    aggregation.count().sum("n", alias="total").avg("n").count(alias="c")
    assert results(aggregation) == {"property_1": 2, "total": 6, "property_2": 3.0, "c": 2}


def test_s4_7_add_aggregation_objects(agg_client: Client) -> None:
    put(agg_client, 1, n=2)
    aggregation = agg_client.aggregation_query(agg_client.query(kind="T"))
    aggregation.add_aggregation(CountAggregation(alias="c"))
    aggregation.add_aggregations([SumAggregation("n", alias="s"), AvgAggregation("n", alias="a")])
    assert results(aggregation) == {"c": 1, "s": 2, "a": 2.0}


def test_s4_7_up_to_five_aggregations(agg_client: Client) -> None:
    put(agg_client, 1, n=2)
    five = agg_client.aggregation_query(agg_client.query(kind="T"))
    for i in range(5):
        five.count(alias=f"c{i}")
    assert len(results(five)) == 5
    six = agg_client.aggregation_query(agg_client.query(kind="T"))
    for i in range(6):
        six.count(alias=f"c{i}")
    with pytest.raises(InvalidArgument):
        list(six.fetch())


def test_s4_7_aliases_must_be_unique(agg_client: Client) -> None:
    aggregation = agg_client.aggregation_query(agg_client.query(kind="T"))
    aggregation.count(alias="same").sum("n", alias="same")
    with pytest.raises(InvalidArgument):
        list(aggregation.fetch())


def test_s4_7_results_are_one_list_of_aggregation_results(agg_client: Client) -> None:
    put(agg_client, 1, n=2)
    batches = list(
        agg_client.aggregation_query(agg_client.query(kind="T")).count(alias="c").fetch()
    )
    assert len(batches) == 1 and len(batches[0]) == 1
    (item,) = batches[0]
    assert (item.alias, item.value) == ("c", 1)
    assert repr(item) == "<Aggregation alias=c, value=1>"


def test_s4_7_unindexed_values_are_not_counted_by_property_filters(agg_client: Client) -> None:
    put(agg_client, 1, exclude=("n",), n=5)
    put(agg_client, 2, n=5)
    q = agg_client.query(kind="T")
    q.add_filter(filter=PropertyFilter("n", "=", 5))
    assert value(agg_client.aggregation_query(q).count()) == 1


def test_s4_7_count_of_an_or_with_a_key_equality(agg_client: Client) -> None:
    from datastore_lite.query import Or

    put(agg_client, 2, y=None)
    put(agg_client, 3, x=None)
    q = agg_client.query(kind="T")
    q.add_filter(filter=Or([PropertyFilter("x", "=", None), PropertyFilter("y", "=", None)]))
    q.add_filter(filter=PropertyFilter("__key__", "=", agg_client.key("T", 2)))
    assert value(agg_client.aggregation_query(q).count()) == 1


# -- counting directly vs once per entity (BENCHMARKS.md W9) ----------------------------------
# A count over an index whose properties never held several values in one entity of the
# kind counts the index entries directly; once one does, each entity is counted once. The
# switch is read from the database in the counting statement itself, so it holds for other
# clients (processes) on the same store, and a rolled-back write teaches nothing.


def _count_x_positive(client: Client, **fetch: Any) -> int:
    q = client.query(kind="T")
    q.add_filter(filter=PropertyFilter("x", ">", 0))
    result: int = value(client.aggregation_query(q).count(), **fetch)
    return result


def test_count_switches_to_per_entity_after_the_first_list_value(agg_client: Client) -> None:
    put(agg_client, 1, x=1, tags=["a", "b"])  # a list, but not of the counted property
    put(agg_client, 2, x=2)
    assert _count_x_positive(agg_client) == 2
    put(agg_client, 3, x=[3, 4, 5])
    assert _count_x_positive(agg_client) == 3
    assert _count_x_positive(agg_client, limit=2) == 2
    agg_client.delete(agg_client.key("T", 3))  # the kind keeps counting per entity
    put(agg_client, 4, x=[6, 7])
    assert _count_x_positive(agg_client) == 3


def test_count_sees_a_list_value_written_by_another_client(
    shared_url: str, make_client: Callable[..., Client]
) -> None:
    first = make_client(url=shared_url)
    second = make_client(url=shared_url)
    put(first, 1, x=1)
    assert _count_x_positive(first) == 1
    put(second, 2, x=[1, 2, 3])
    assert _count_x_positive(first) == 2
    assert _count_x_positive(second) == 2


def test_a_rolled_back_list_value_teaches_nothing(make_client: Callable[..., Client]) -> None:
    client = make_client()
    put(client, 1, x=1)
    backend = client._datastore_api.backend
    pid = backend.partition_id("test-proj", "", "")
    known = dict(backend.kind_multi_known)
    with pytest.raises(RuntimeError), backend.write() as w:
        # storage level: the entity row and its multi-valued mask are written, then the
        # scope fails, so both roll back and the known-bits cache must not learn the mask
        w.upsert_entities(pid, [(b"fake-key", "T", b"fake-group", 1, b"", -1 & ((1 << 62) - 1))])
        raise RuntimeError("roll back")
    assert backend.kind_multi_known == known
    put(client, 3, x=[4, 5])  # a later write must still record the list value
    assert _count_x_positive(client) == 2
