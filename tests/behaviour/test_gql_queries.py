"""GQL run against stored data on every backend (SEMANTICS.md §4.8).

Each test runs ``client.gql(...)`` and the equivalent ``Query`` / ``AggregationQuery`` built by
hand on the same data and compares them, and pins the expected result. The data set is the
one used to probe Google's Cloud Datastore emulator (gcloud 528): the §4.8 examples and the
cursor forms (``OFFSET @c + 2``, ``LIMIT FIRST(@c, 2)``...) expect exactly what the emulator
returned for the same GQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import pytest

from datastore_lite import Client, Entity, GeoPoint, Key
from datastore_lite.exceptions import InvalidArgument
from datastore_lite.gql import GqlAggregationQuery, GqlQuery
from datastore_lite.query import And, Or, PropertyFilter, Query

UTC = dt.UTC

# -- data and helpers ---------------------------------------------------------------------------


def _seed(client: Client) -> None:
    """C/1..C/10 (n, g = n % 3, s, tags, f = n / 2), C/11 with n = null, C/1/D/'x' (n = 100)."""
    entities = []
    for i in range(1, 11):
        entity = Entity(client.key("C", i))
        entity.update({"n": i, "g": i % 3, "s": f"s{i}", "tags": ["a", f"t{i % 2}"], "f": i / 2})
        entities.append(entity)
    child = Entity(client.key("C", 1, "D", "x"))
    child["n"] = 100
    null = Entity(client.key("C", 11))
    null["n"] = None
    client.put_multi([*entities, child, null])


@pytest.fixture
def seeded(client: Client) -> Client:
    _seed(client)
    return client


def gql(client: Client, text: str, *args: Any, **kwargs: Any) -> GqlQuery:
    query = client.gql(text, *args, **kwargs)
    assert isinstance(query, GqlQuery)
    return query


def paths(entities: Iterable[Entity]) -> list[tuple[Any, ...]]:
    return [e.key.flat_path for e in entities if e.key is not None]


def ids(entities: Iterable[Entity]) -> list[Any]:
    return [e.key.id_or_name for e in entities if e.key is not None]


def rows(entities: Iterable[Entity]) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    return [(e.key.flat_path, dict(e)) for e in entities if e.key is not None]


def same(client: Client, text: str, query: Query, **bindings: Any) -> list[Entity]:
    """Run GQL and ``query``; assert the same entities (keys and properties) in order."""
    from_gql = list(gql(client, text, **bindings).fetch())
    by_hand = list(query.fetch())
    assert rows(from_gql) == rows(by_hand)
    return from_gql


def aggregate(query: Any, **fetch_kwargs: Any) -> list[tuple[str, Any]]:
    (batch,) = list(query.fetch(**fetch_kwargs))
    return [(r.alias, r.value) for r in batch]


# -- the examples verified on the emulator (SEMANTICS.md §4.8) -------------------------------------


def test_where_greater_than(seeded: Client) -> None:
    result = same(
        seeded,
        "SELECT * FROM C WHERE n > 7",
        seeded.query(kind="C", filters=[("n", ">", 7)]),
    )
    assert ids(result) == [8, 9, 10]
    assert result[0]["s"] == "s8" and result[0]["tags"] == ["a", "t0"]


def test_order_desc_limit_offset(seeded: Client) -> None:
    query = gql(seeded, "SELECT __key__ FROM C ORDER BY n DESC LIMIT 2 OFFSET 1")
    by_hand = seeded.query(kind="C", order=["-n"])
    by_hand.keys_only()
    assert paths(query.fetch()) == paths(by_hand.fetch(limit=2, offset=1)) == [("C", 9), ("C", 8)]
    assert all(dict(e) == {} for e in query.fetch())


def test_key_literal_equality(seeded: Client) -> None:
    result = same(
        seeded,
        "SELECT * FROM C WHERE __key__ = KEY(C, 3)",
        seeded.query(kind="C", filters=[("__key__", "=", seeded.key("C", 3))]),
    )
    assert ids(result) == [3]


def test_named_binding(seeded: Client) -> None:
    result = same(
        seeded,
        "SELECT * FROM C WHERE n = @x",
        seeded.query(kind="C", filters=[("n", "=", 4)]),
        x=4,
    )
    assert ids(result) == [4]


def test_distinct(seeded: Client) -> None:
    by_hand = seeded.query(kind="C", projection=["g"], distinct_on=["g"])
    result = same(seeded, "SELECT DISTINCT g FROM C", by_hand)
    # emulator: [C/3 {g: 0}, C/1 {g: 1}, C/2 {g: 2}]
    assert rows(result) == [(("C", 3), {"g": 0}), (("C", 1), {"g": 1}), (("C", 2), {"g": 2})]


# -- conditions ----------------------------------------------------------------------------------


def test_positional_bindings_and_value_first(seeded: Client) -> None:
    result = same(
        seeded,
        "SELECT * FROM C WHERE 3 < n AND n <= 5",
        seeded.query(kind="C", filters=[("n", ">", 3), ("n", "<=", 5)]),
    )
    assert ids(result) == [4, 5]
    assert ids(gql(seeded, "SELECT * FROM C WHERE @1 < n AND n <= @2", 3, 5).fetch()) == [4, 5]


def test_contains(seeded: Client) -> None:
    result = same(
        seeded,
        "SELECT __key__ FROM C WHERE tags CONTAINS 't1'",
        seeded.query(kind="C", filters=[("tags", "=", "t1")], projection=["__key__"]),
    )
    assert ids(result) == [1, 3, 5, 7, 9]
    either = gql(seeded, "SELECT __key__ FROM C WHERE tags CONTAINS ARRAY('t0', 'zz')")
    assert ids(either.fetch()) == [2, 4, 6, 8, 10]


def test_is_null(seeded: Client) -> None:
    result = same(
        seeded,
        "SELECT * FROM C WHERE n IS NULL",
        seeded.query(kind="C", filters=[("n", "=", None)]),
    )
    assert ids(result) == [11]
    assert ids(gql(seeded, "SELECT * FROM C WHERE NULL = n").fetch()) == [11]


def test_has_ancestor_and_has_descendant(seeded: Client) -> None:
    root = seeded.key("C", 1)
    by_hand = seeded.query(ancestor=root)
    result = same(seeded, "SELECT * WHERE __key__ HAS ANCESTOR KEY(C, 1)", by_hand)
    assert paths(result) == [("C", 1), ("C", 1, "D", "x")]
    children = gql(seeded, "SELECT * FROM D WHERE KEY(C, 1) HAS DESCENDANT __key__")
    assert rows(children.fetch()) == [(("C", 1, "D", "x"), {"n": 100})]
    bound = gql(seeded, "SELECT * FROM C WHERE __key__ HAS ANCESTOR @k", k=root)
    assert ids(bound.fetch()) == [1]


def test_in_not_in_not_equal_and_or(seeded: Client) -> None:
    same(
        seeded,
        "SELECT * FROM C WHERE n IN ARRAY(2, 4, 99)",
        seeded.query(kind="C", filters=[("n", "IN", [2, 4, 99])]),
    )
    assert ids(gql(seeded, "SELECT * FROM C WHERE n IN @v", v=[2, 4, 99]).fetch()) == [2, 4]
    assert ids(gql(seeded, "SELECT * FROM C WHERE n IN 3").fetch()) == [3]
    not_in = same(
        seeded,
        "SELECT * FROM C WHERE n NOT IN ARRAY(1, 2, 3)",
        seeded.query(kind="C", filters=[("n", "NOT_IN", [1, 2, 3])]),
    )
    assert ids(not_in) == [11, 4, 5, 6, 7, 8, 9, 10]  # null sorts first and satisfies NOT IN
    assert ids(gql(seeded, "SELECT * FROM C WHERE n != 5").fetch()) == [
        11,
        1,
        2,
        3,
        4,
        6,
        7,
        8,
        9,
        10,
    ]
    precedence = seeded.query(
        kind="C",
        filters=[
            Or(
                [
                    PropertyFilter("n", "=", 1),
                    And([PropertyFilter("g", "=", 2), PropertyFilter("s", "=", "s8")]),
                ]
            )
        ],
    )
    result = same(seeded, "SELECT * FROM C WHERE n = 1 OR g = 2 AND s = 's8'", precedence)
    assert sorted(ids(result)) == [1, 8]
    grouped = gql(seeded, "SELECT * FROM C WHERE (n = 1 OR g = 2) AND s = 's8'")
    assert ids(grouped.fetch()) == [8]


def test_kindless_key_queries(seeded: Client) -> None:
    everything = paths(gql(seeded, "SELECT __key__").fetch())
    assert everything[:2] == [("C", 1), ("C", 1, "D", "x")] and len(everything) == 12
    after = gql(seeded, "SELECT __key__ WHERE __key__ > KEY(C, 10)")
    assert paths(after.fetch()) == [("C", 11)]


def test_projection_and_distinct_on(make_client: Any, tmp_path: Any) -> None:
    index_yaml = tmp_path / "index.yaml"
    index_yaml.write_text(
        "indexes:\n"
        "- kind: C\n  properties:\n  - name: g\n  - name: n\n"
        "- kind: C\n  properties:\n  - name: g\n    direction: desc\n"
        "  - name: n\n    direction: desc\n"
    )
    client = make_client(index_yaml=str(index_yaml))
    _seed(client)
    single = same(
        client,
        "SELECT n FROM C WHERE n >= 9",
        client.query(kind="C", projection=["n"], filters=[("n", ">=", 9)]),
    )
    assert rows(single) == [(("C", 9), {"n": 9}), (("C", 10), {"n": 10})]
    projected = same(
        client,
        "SELECT g, n FROM C WHERE g > 1",
        client.query(kind="C", projection=["g", "n"], filters=[("g", ">", 1)]),
    )
    assert ids(projected) == [2, 5, 8] and projected[0] == {"g": 2, "n": 2}
    first_of_each = same(
        client,
        "SELECT DISTINCT ON (g) * FROM C ORDER BY g DESC, n DESC",
        client.query(kind="C", distinct_on=["g"], order=["-g", "-n"]),
    )
    assert ids(first_of_each) == [8, 10, 9]
    assert first_of_each[0]["s"] == "s8"  # whole entities


def test_metadata_kinds(seeded: Client) -> None:
    kinds = gql(seeded, "SELECT __key__ FROM __kind__")
    assert paths(kinds.fetch()) == [("__kind__", "C"), ("__kind__", "D")]
    properties = gql(
        seeded, "SELECT * FROM __property__ WHERE __key__ HAS ANCESTOR KEY(__kind__, 'D')"
    )
    assert rows(properties.fetch()) == [
        (("__kind__", "D", "__property__", "n"), {"property_representation": ["INT64"]})
    ]


def test_backquoted_names(client: Client) -> None:
    entity = Entity(client.key("odd kind", "a"))
    entity.update({"my prop": 1, "order": 2, "a.b": 3})
    client.put(entity)
    found = gql(client, "SELECT * FROM `odd kind` WHERE `my prop` = 1 AND `order` = 2")
    assert rows(found.fetch()) == [(("odd kind", "a"), {"my prop": 1, "order": 2, "a.b": 3})]
    assert ids(gql(client, "SELECT * FROM `odd kind` WHERE a.b = 3").fetch()) == ["a"]


def test_literal_value_types(client: Client) -> None:
    entity = Entity(client.key("V", 1))
    when = dt.datetime(2020, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)
    entity.update(
        {
            "s": 'it\'s "q"\n',
            "i": -7,
            "f": 1.5,
            "b": True,
            "z": None,
            "blob": b"\xfb\xff",
            "t": when,
            "k": client.key("C", "x"),
            "big": 2**63 - 1,
        }
    )
    client.put(entity)
    conditions = [
        "s = 'it''s \"q\"\\n'",
        's = "it\'s \\"q\\"\\n"',
        "i = -7",
        "f = 15e-1",
        "b = true",
        "z = NULL",
        "blob = BLOB('-_8')",
        "t = DATETIME('2020-01-01T00:00:00.5Z')",
        "t = DATETIME('2020-01-01T01:00:00.500000+01:00')",
        "k = KEY(C, 'x')",
        "big = 9223372036854775807",
    ]
    for condition in conditions:
        assert ids(gql(client, f"SELECT * FROM V WHERE {condition}").fetch()) == [1], condition


def test_binding_value_types(client: Client) -> None:
    entity = Entity(client.key("V", 1))
    when = dt.datetime(2021, 5, 6, 7, 8, 9, tzinfo=UTC)
    entity.update({"t": when, "geo": GeoPoint(1.5, 2.5), "blob": b"\x00", "k": client.key("C", 1)})
    client.put(entity)
    for name, value in [
        ("t", when),
        ("geo", GeoPoint(1.5, 2.5)),
        ("blob", b"\x00"),
        ("k", client.key("C", 1)),
    ]:
        found = gql(client, f"SELECT * FROM V WHERE {name} = @v", v=value)
        assert ids(found.fetch()) == [1], name


def test_namespace_of_the_client(make_client: Any) -> None:
    default = make_client()
    spaced = make_client(namespace="ns1")
    for client, n in ((default, 1), (spaced, 2)):
        entity = Entity(client.key("C", 1))
        entity["n"] = n
        client.put(entity)
    assert rows(gql(spaced, "SELECT * FROM C").fetch()) == [(("C", 1), {"n": 2})]
    keyed = gql(spaced, "SELECT * FROM C WHERE __key__ = KEY(C, 1)").fetch()
    assert [e.key for e in keyed] == [Key("C", 1, project="test-proj", namespace="ns1")]
    with pytest.raises(InvalidArgument, match="namespace"):
        list(gql(spaced, "SELECT * FROM C WHERE __key__ = KEY(NAMESPACE(''), C, 1)").fetch())


# -- LIMIT, OFFSET, cursors ------------------------------------------------------------------------


def test_fetch_arguments_replace_the_text(seeded: Client) -> None:
    query = gql(seeded, "SELECT __key__ FROM C ORDER BY n LIMIT 3 OFFSET 2")
    assert ids(query.fetch()) == [2, 3, 4]
    assert ids(query.fetch(limit=1)) == [2]
    assert ids(query.fetch(offset=0)) == [11, 1, 2]
    query.limit = None
    assert ids(query.fetch()) == [2, 3, 4, 5, 6, 7, 8, 9, 10]


def test_paging_through_a_gql_query(seeded: Client) -> None:
    query = gql(seeded, "SELECT __key__ FROM C WHERE n > 0 ORDER BY n LIMIT 4 OFFSET 1")
    first = query.fetch()
    assert ids(first) == [2, 3, 4, 5]
    # as in the official client, a cursor already accounts for the offset
    second = query.fetch(start_cursor=first.next_page_token)
    assert ids(second) == [6, 7, 8, 9]


@pytest.fixture
def cursor_after_three(seeded: Client) -> bytes:
    """The cursor after the first 3 results of ``ORDER BY n`` (C/11 (null), C/1, C/2)."""
    iterator = gql(seeded, "SELECT __key__ FROM C ORDER BY n LIMIT 3").fetch()
    assert ids(iterator) == [11, 1, 2]
    token = iterator.next_page_token
    assert isinstance(token, bytes)
    return token


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # each expectation is what the emulator returned for the same GQL and data
        ("SELECT __key__ FROM C ORDER BY n OFFSET @c", [3, 4, 5, 6, 7, 8, 9, 10]),
        ("SELECT __key__ FROM C ORDER BY n OFFSET @c + 2", [5, 6, 7, 8, 9, 10]),
        ("SELECT __key__ FROM C ORDER BY n LIMIT 2 OFFSET @c + 1", [4, 5]),
        ("SELECT __key__ FROM C ORDER BY n LIMIT 2 OFFSET @c + 20", []),
        ("SELECT __key__ FROM C ORDER BY n LIMIT FIRST(@c, 2)", [11, 1]),
    ],
)
def test_cursor_positions(
    seeded: Client, cursor_after_three: bytes, text: str, expected: list[int]
) -> None:
    assert ids(gql(seeded, text, c=cursor_after_three).fetch()) == expected
    as_text = cursor_after_three.decode("ascii")  # str tokens work too
    assert ids(gql(seeded, text, c=as_text).fetch()) == expected


def test_offset_after_cursor_skips_across_batches(client: Client) -> None:
    for start in (1, 351):
        client.put_multi([Entity(client.key("M", i)) for i in range(start, start + 350)])
    head = gql(client, "SELECT __key__ FROM M LIMIT 5").fetch()
    assert ids(head) == [1, 2, 3, 4, 5]
    query = gql(client, "SELECT __key__ FROM M OFFSET @c + @n", c=head.next_page_token, n=650)
    assert ids(query.fetch()) == list(range(656, 701))


def test_offset_after_cursor_in_a_transaction(seeded: Client) -> None:
    head = gql(seeded, "SELECT __key__ WHERE __key__ HAS ANCESTOR KEY(C, 1) LIMIT 1").fetch()
    assert paths(head) == [("C", 1)]
    with seeded.transaction():
        query = gql(
            seeded,
            "SELECT __key__ WHERE __key__ HAS ANCESTOR KEY(C, 1) OFFSET @c + 1",
            c=head.next_page_token,
        )
        assert paths(query.fetch()) == []  # C/1/D/x is skipped
        with pytest.raises(ValueError, match="At most one of eventual, transaction"):
            list(query.fetch(eventual=True))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT __key__ FROM C ORDER BY n LIMIT @c", [11, 1, 2]),
        ("SELECT __key__ FROM C ORDER BY n LIMIT FIRST(5, @c)", [11, 1, 2]),
        ("SELECT __key__ FROM C ORDER BY n LIMIT @c OFFSET 1", [1, 2]),
    ],
)
def test_end_cursor_positions(
    seeded: Client, cursor_after_three: bytes, text: str, expected: list[int]
) -> None:
    assert ids(gql(seeded, text, c=cursor_after_three).fetch()) == expected


def test_end_cursor_with_the_query_api(seeded: Client) -> None:
    query = seeded.query(kind="C", order=["n"])
    first = query.fetch(limit=3)
    assert ids(first) == [11, 1, 2]
    assert ids(query.fetch(end_cursor=first.next_page_token)) == [11, 1, 2]


# -- aggregations ---------------------------------------------------------------------------------


def test_count_sum_avg(seeded: Client) -> None:
    query = seeded.gql("SELECT COUNT(*) AS total, SUM(n), AVG(n) AS mean FROM C WHERE g = 1")
    assert isinstance(query, GqlAggregationQuery)
    by_hand = (
        seeded.aggregation_query(seeded.query(kind="C", filters=[("g", "=", 1)]))
        .count(alias="total")
        .sum("n")
        .avg("n", alias="mean")
    )
    assert sorted(aggregate(query)) == sorted(aggregate(by_hand))
    assert aggregate(query) == [("total", 4), ("property_1", 22), ("mean", 5.5)]


def test_aggregate_over(seeded: Client) -> None:
    query = seeded.gql("AGGREGATE COUNT(*), AVG(f) OVER (SELECT * FROM C WHERE n > @n)", n=6)
    assert aggregate(query) == [("property_1", 4), ("property_2", 4.25)]


def test_count_up_to_limits_only_the_count(seeded: Client) -> None:
    query = seeded.gql("SELECT COUNT_UP_TO(2) AS few, COUNT(*) AS all, SUM(n) AS s FROM C")
    assert aggregate(query) == [("few", 2), ("all", 11), ("s", 55)]
    alone = seeded.gql("SELECT COUNT_UP_TO(@n) FROM C WHERE g = 0", n=100)
    assert aggregate(alone) == [("property_1", 3)]


def test_aggregation_limit(seeded: Client) -> None:
    query = seeded.gql("SELECT COUNT(*), SUM(n) FROM C WHERE n > 0 ORDER BY n LIMIT 4")
    assert isinstance(query, GqlAggregationQuery)
    assert aggregate(query) == [("property_1", 4), ("property_2", 10)]  # 1 + 2 + 3 + 4
    by_hand = seeded.aggregation_query(
        seeded.query(kind="C", filters=[("n", ">", 0)], order=["n"])
    ).count()
    assert aggregate(by_hand, limit=4) == [("property_1", 4)]
    assert aggregate(query, limit=2) == [("property_1", 2), ("property_2", 3)]
    nothing = seeded.gql("SELECT COUNT(*), SUM(n), AVG(n), COUNT_UP_TO(3) FROM C LIMIT 0")
    assert aggregate(nothing) == [
        ("property_1", 0),
        ("property_2", 0),
        ("property_3", None),
        ("property_4", 0),
    ]


def test_aggregation_errors_from_the_engine(seeded: Client) -> None:
    six = seeded.gql("SELECT COUNT(*), COUNT(*), COUNT(*), COUNT(*), COUNT(*), COUNT(*) FROM C")
    with pytest.raises(InvalidArgument, match="at most 5 aggregations"):
        aggregate(six)
    duplicate = seeded.gql("SELECT COUNT(*) AS a, SUM(n) AS a FROM C")
    with pytest.raises(InvalidArgument, match="aliases must be unique"):
        aggregate(duplicate)


# -- engine errors surface unchanged ---------------------------------------------------------------


def test_empty_in_is_rejected_by_the_engine(seeded: Client) -> None:
    with pytest.raises(InvalidArgument, match="non-empty list"):
        list(gql(seeded, "SELECT * FROM C WHERE n IN ARRAY()").fetch())


def test_kindless_property_filter_is_rejected_by_the_engine(seeded: Client) -> None:
    with pytest.raises(InvalidArgument, match="kind is required for non-__key__ filters"):
        list(gql(seeded, "SELECT * WHERE n = 1").fetch())


def test_keys_only_with_key_equality(seeded: Client) -> None:
    assert paths(gql(seeded, "SELECT __key__ FROM C WHERE __key__ = KEY(C, 3)").fetch()) == [
        ("C", 3)
    ]


def test_projection_of_key_and_a_property(seeded: Client) -> None:
    result = rows(gql(seeded, "SELECT __key__, n FROM C WHERE n > 8").fetch())
    assert result == [(("C", 9), {"n": 9}), (("C", 10), {"n": 10})]


def test_distinct_on_key_is_rejected(seeded: Client) -> None:
    with pytest.raises(InvalidArgument, match="group by is not supported"):
        list(gql(seeded, "SELECT DISTINCT __key__ FROM C").fetch())
