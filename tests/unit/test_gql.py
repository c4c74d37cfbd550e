"""The GQL parser and binder (``datastore_lite.gql``; SEMANTICS.md §4.8).

Parsing is checked on the syntax tree :func:`~datastore_lite.gql.parse` returns; binding on
the ``GqlQuery`` / ``GqlAggregationQuery`` objects :func:`~datastore_lite.gql.build` makes.
No query runs here: tests/behaviour/test_gql_queries.py runs GQL against stored data.
Lexical details (escapes, reserved words, BLOB and DATETIME forms, error cases) were probed
on Google's Cloud Datastore emulator (gcloud 528) through ``RunQueryRequest.gql_query``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import os
from collections.abc import Iterator
from typing import Any

import pytest

from datastore_lite import Client, GeoPoint, Key
from datastore_lite.aggregation import AvgAggregation, CountAggregation, SumAggregation
from datastore_lite.exceptions import BadRequest, InvalidArgument
from datastore_lite.gql import (
    Aggregation,
    ArrayLiteral,
    Binding,
    Compound,
    Condition,
    CountUpToAggregation,
    GqlAggregate,
    GqlAggregationQuery,
    GqlQuery,
    GqlSelect,
    GqlSyntaxError,
    KeyLiteral,
    Literal,
    build,
    parse,
)
from datastore_lite.query import BaseCompositeFilter, PropertyFilter, Query

UTC = dt.UTC

# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def mem_client() -> Iterator[Client]:
    """A client on an in-memory store (nothing is stored; queries are only built)."""
    client = Client(project="unit", url="sqlite://", consistency="strong", index_yaml=os.devnull)
    yield client
    client.close()


def select(text: str) -> GqlSelect:
    statement = parse(text)
    assert isinstance(statement, GqlSelect)
    return statement


def where(text: str) -> Condition | Compound:
    """The WHERE tree of ``SELECT * FROM K WHERE <text>``."""
    tree = select(f"SELECT * FROM K WHERE {text}").where
    assert tree is not None
    return tree


def condition(text: str) -> tuple[str, str, Any]:
    """``(prop, op, value node)`` of a single condition, offsets dropped."""
    tree = where(text)
    assert isinstance(tree, Condition)
    return tree.prop, tree.op, _strip(tree.value)


def literal(text: str) -> Any:
    """The Python value of the literal in ``p = <text>``."""
    prop, op, value = condition(f"p = {text}")
    return value


def _strip(node: Any) -> Any:
    """A value node without offsets (literals become their value)."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Binding):
        return ("@", node.name if node.name is not None else node.position)
    if isinstance(node, KeyLiteral):
        return ("KEY", node.project, node.namespace, node.path)
    if isinstance(node, ArrayLiteral):
        return ["ARRAY", *[_strip(item) for item in node.items]]
    raise AssertionError(node)


def tree(node: Condition | Compound) -> Any:
    """A WHERE tree as nested tuples."""
    if isinstance(node, Condition):
        return (node.prop, node.op, _strip(node.value))
    return (node.op, [tree(part) for part in node.parts])


def shape(item: Any) -> Any:
    """A Query filter (tuple, PropertyFilter, And/Or) as plain tuples."""
    if isinstance(item, tuple):
        return item
    if isinstance(item, PropertyFilter):
        return (item.property_name, item.operator, item.value)
    assert isinstance(item, BaseCompositeFilter)
    return (item.operation, [shape(f) for f in item.filters])


def gql_query(client: Client, text: str, *args: Any, **kwargs: Any) -> GqlQuery:
    query = client.gql(text, *args, **kwargs)
    assert isinstance(query, GqlQuery)
    return query


def syntax_error(text: str) -> GqlSyntaxError:
    with pytest.raises(GqlSyntaxError) as info:
        parse(text)
    return info.value


def bind_error(client: Client, text: str, *args: Any, **kwargs: Any) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        client.gql(text, *args, **kwargs)
    return info.value


# -- SELECT list -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "projection", "distinct_on"),
    [
        ("SELECT * FROM K", (), ()),
        ("SELECT __key__ FROM K", ("__key__",), ()),
        ("SELECT a FROM K", ("a",), ()),
        ("SELECT a, b,c FROM K", ("a", "b", "c"), ()),
        ("SELECT DISTINCT a, b FROM K", ("a", "b"), ("a", "b")),
        ("SELECT DISTINCT ON (a) * FROM K", (), ("a",)),
        ("SELECT DISTINCT ON (a, b) * FROM K", (), ("a", "b")),
        ("SELECT DISTINCT ON (a) b, c FROM K", ("b", "c"), ("a",)),
        ("SELECT DISTINCT ON (g) __key__ FROM K", ("__key__",), ("g",)),
        ("SELECT `odd name`, a.b, `x`.`y` FROM K", ("odd name", "a.b", "x.y"), ()),
    ],
)
def test_select_list(text: str, projection: tuple[str, ...], distinct_on: tuple[str, ...]) -> None:
    parsed = select(text)
    assert (parsed.projection, parsed.distinct_on) == (projection, distinct_on)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("SELECT *", None),
        ("SELECT * FROM Photo", "Photo"),
        ("SELECT * FROM photo", "photo"),  # names are case-sensitive
        ("SELECT * FROM `my kind`", "my kind"),
        ("SELECT * FROM `a``b`", "a`b"),
        ("SELECT * FROM `a\\`b`", "a`b"),
        ("SELECT * FROM `a\\\\b`", "a\\b"),
        ("SELECT * FROM `order`", "order"),
        ("SELECT * FROM __kind__", "__kind__"),
        ("SELECT * FROM Café", "Café"),
        ("SELECT * FROM $k_1", "$k_1"),
        ("SELECT * FROM a.b", "a.b"),
        ("SELECT * FROM a . b", "a.b"),
        ("SELECT * FROM Key", "Key"),  # KEY, FIRST, ARRAY... are not reserved
    ],
)
def test_from(text: str, kind: str | None) -> None:
    assert select(text).kind == kind


def test_keywords_are_case_insensitive() -> None:
    lower = select("select distinct on (a) * from K where n > 1 and b is null order by n desc")
    upper = select("SELECT DISTINCT ON (a) * FROM K WHERE n > 1 AND b IS NULL ORDER BY n DESC")
    mixed = select("Select Distinct On (a) * From K Where n > 1 And b Is Null Order By n Desc")
    assert tree(lower.where) == tree(upper.where) == tree(mixed.where)  # type: ignore[arg-type]
    assert (lower.kind, lower.distinct_on, lower.order) == (
        upper.kind,
        upper.distinct_on,
        upper.order,
    )
    assert (mixed.kind, mixed.order) == ("K", (("n", True),))


@pytest.mark.parametrize(
    "name", ["key", "KEY", "first", "array", "blob", "datetime", "project", "namespace"]
)
def test_function_words_are_usable_as_names(name: str) -> None:
    parsed = select(f"SELECT {name} FROM {name} WHERE {name} = 1 ORDER BY {name}")
    assert parsed.projection == (name,) and parsed.kind == name
    assert tree(parsed.where) == (name, "=", 1)  # type: ignore[arg-type]


def test_whitespace_and_newlines() -> None:
    parsed = select("  SELECT\t*\n  FROM K\r\n WHERE n>=1\n")
    assert parsed.kind == "K"
    assert tree(parsed.where) == ("n", ">=", 1)  # type: ignore[arg-type]


# -- WHERE -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n = 1", ("n", "=", 1)),
        ("n=1", ("n", "=", 1)),
        ("n < 1", ("n", "<", 1)),
        ("n <= 1", ("n", "<=", 1)),
        ("n > 1", ("n", ">", 1)),
        ("n >= 1", ("n", ">=", 1)),
        ("n != 1", ("n", "!=", 1)),
        ("n IN ARRAY(1, 2)", ("n", "IN", ["ARRAY", 1, 2])),
        ("n NOT IN ARRAY(1, 2)", ("n", "NOT_IN", ["ARRAY", 1, 2])),
        ("n not  in ARRAY(1)", ("n", "NOT_IN", ["ARRAY", 1])),
        ("tags CONTAINS 'a'", ("tags", "CONTAINS", "a")),
        ("n IS NULL", ("n", "=", None)),
        ("n is null", ("n", "=", None)),
        (
            "__key__ HAS ANCESTOR KEY(A, 1)",
            ("__key__", "HAS_ANCESTOR", ("KEY", None, None, ("A", 1))),
        ),
        ("__key__ = @k", ("__key__", "=", ("@", "k"))),
        ("a.b = 1", ("a.b", "=", 1)),
        ("`order` = 1", ("order", "=", 1)),
    ],
)
def test_forward_conditions(text: str, expected: tuple[str, str, Any]) -> None:
    assert condition(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # value first: stored property first, comparison flipped (emulator: 7 < n == n > 7)
        ("7 < n", ("n", ">", 7)),
        ("7 <= n", ("n", ">=", 7)),
        ("7 > n", ("n", "<", 7)),
        ("7 >= n", ("n", "<=", 7)),
        ("7 = n", ("n", "=", 7)),
        ("7 != n", ("n", "!=", 7)),
        ("NULL = n", ("n", "=", None)),
        ("ARRAY(1, 2) IN n", ("n", "IN", ["ARRAY", 1, 2])),
        ("ARRAY(1) NOT IN n", ("n", "NOT_IN", ["ARRAY", 1])),
        ("@1 < n", ("n", ">", ("@", 1))),
        (
            "KEY(A, 1) HAS DESCENDANT __key__",
            ("__key__", "HAS_ANCESTOR", ("KEY", None, None, ("A", 1))),
        ),
    ],
)
def test_backward_conditions(text: str, expected: tuple[str, str, Any]) -> None:
    assert condition(text) == expected


def test_and_binds_tighter_than_or() -> None:
    assert tree(where("a = 1 OR b = 2 AND c = 3")) == (
        "OR",
        [("a", "=", 1), ("AND", [("b", "=", 2), ("c", "=", 3)])],
    )
    assert tree(where("a = 1 AND b = 2 OR c = 3")) == (
        "OR",
        [("AND", [("a", "=", 1), ("b", "=", 2)]), ("c", "=", 3)],
    )


def test_parentheses_group_conditions() -> None:
    assert tree(where("(a = 1 OR b = 2) AND c = 3")) == (
        "AND",
        [("OR", [("a", "=", 1), ("b", "=", 2)]), ("c", "=", 3)],
    )
    assert tree(where("((a = 1))")) == ("a", "=", 1)
    assert tree(where("a = 1 AND(b = 2)")) == ("AND", [("a", "=", 1), ("b", "=", 2)])
    assert tree(where("a = 1 and b = 2 and c = 3")) == (
        "AND",
        [("a", "=", 1), ("b", "=", 2), ("c", "=", 3)],
    )


# -- values ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("'abc'", "abc"),
        ('"abc"', "abc"),
        ("''", ""),
        ("'it''s'", "it's"),
        ('"say ""hi"""', 'say "hi"'),
        ("'a\"b'", 'a"b'),
        ('"a\'b"', "a'b"),
        ("'a\\'b'", "a'b"),
        ("'a\\\"b'", 'a"b'),
        ("'a\\`b'", "a`b"),
        ("'a\\\\b'", "a\\b"),
        ("'a\\nb'", "a\nb"),
        ("'a\\tb'", "a\tb"),
        ("'a\\rb'", "a\rb"),
        ("'a\\bb'", "a\bb"),
        ("'a\\0b'", "a\0b"),
        ("'é ✓'", "é ✓"),
        ("'two\nlines'", "two\nlines"),
    ],
)
def test_string_literals(text: str, value: str) -> None:
    assert literal(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("01", 1),
        ("-7", -7),
        ("+7", 7),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("1.5", 1.5),
        ("-1.5", -1.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("15e-1", 1.5),
        ("1E3", 1000.0),
        ("1.5e+0", 1.5),
        ("-2.5e3", -2500.0),
    ],
)
def test_number_literals(text: str, value: float) -> None:
    parsed = literal(text)
    assert parsed == value and type(parsed) is type(value)


def test_huge_double_is_infinity() -> None:
    assert literal("1e400") == math.inf
    assert literal("-1e400") == -math.inf


@pytest.mark.parametrize(
    ("text", "value"),
    [("TRUE", True), ("true", True), ("False", False), ("NULL", None), ("null", None)],
)
def test_constant_literals(text: str, value: Any) -> None:
    assert literal(text) is value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("KEY(A, 1)", ("KEY", None, None, ("A", 1))),
        ("key(A, 'x')", ("KEY", None, None, ("A", "x"))),
        ('KEY(A, "x", B, 2)', ("KEY", None, None, ("A", "x", "B", 2))),
        ("KEY(`my kind`, -3)", ("KEY", None, None, ("my kind", -3))),
        ("KEY(A, +3)", ("KEY", None, None, ("A", 3))),
        ("KEY ( A , 1 )", ("KEY", None, None, ("A", 1))),
        ("KEY(PROJECT('p'), A, 1)", ("KEY", "p", None, ("A", 1))),
        ("KEY(NAMESPACE('n'), A, 1)", ("KEY", None, "n", ("A", 1))),
        ("KEY(PROJECT('p'), NAMESPACE(''), A, 1)", ("KEY", "p", "", ("A", 1))),
        ("KEY(NAMESPACE(\"n\"), PROJECT('p'), A, 1)", ("KEY", "p", "n", ("A", 1))),
        ("KEY(__kind__, 'A')", ("KEY", None, None, ("__kind__", "A"))),
        ("ARRAY()", ["ARRAY"]),
        (
            "ARRAY(1, 'a', NULL, TRUE, 1.5, @x, KEY(A, 1))",
            ["ARRAY", 1, "a", None, True, 1.5, ("@", "x"), ("KEY", None, None, ("A", 1))],
        ),
        ("BLOB('YWJj')", b"abc"),
        ('blob("-_8")', b"\xfb\xff"),
        ("BLOB('')", b""),
        ("DATETIME('2020-01-01T00:00:00Z')", dt.datetime(2020, 1, 1, tzinfo=UTC)),
        (
            "DATETIME('2020-01-01T00:00:00.5Z')",
            dt.datetime(2020, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
        ),
        (
            "datetime('2020-01-01t00:00:00.123456z')",
            dt.datetime(2020, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
        ),
        (
            "DateTime('2020-01-01T01:00:00.5+01:00')",
            dt.datetime(2020, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
        ),
        ("DATETIME('2019-12-31T23:00:00-01:00')", dt.datetime(2020, 1, 1, tzinfo=UTC)),
    ],
)
def test_function_literals(text: str, value: Any) -> None:
    assert literal(text) == value


def test_datetime_literal_is_utc() -> None:
    value = literal("DATETIME('2020-06-01T12:30:00+05:30')")
    assert value == dt.datetime(2020, 6, 1, 7, 0, tzinfo=UTC)
    assert value.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("@x", ("@", "x")),
        ("@_x$1", ("@", "_x$1")),
        ("@1", ("@", 1)),
        ("@01", ("@", 1)),
        ("@12", ("@", 12)),
    ],
)
def test_binding_sites(text: str, value: Any) -> None:
    assert literal(text) == value


# -- ORDER BY, LIMIT, OFFSET -----------------------------------------------------------------------


def test_order_by() -> None:
    assert select("SELECT * FROM K ORDER BY a").order == (("a", False),)
    assert select("SELECT * FROM K ORDER BY a ASC, b DESC, c").order == (
        ("a", False),
        ("b", True),
        ("c", False),
    )
    assert select("SELECT * FROM K ORDER BY __key__ desc").order == (("__key__", True),)
    assert select("SELECT * FROM K ORDER BY n, n").order == (("n", False), ("n", False))


@pytest.mark.parametrize(
    ("text", "limit", "offset"),
    [
        ("SELECT * FROM K LIMIT 5", (5,), ()),
        ("SELECT * FROM K LIMIT 0", (0,), ()),
        ("SELECT * FROM K LIMIT -1", (-1,), ()),  # syntax ok; rejected when bound
        ("SELECT * FROM K LIMIT @n", (("@", "n"),), ()),
        ("SELECT * FROM K LIMIT FIRST(@c, 5)", (("@", "c"), 5), ()),
        ("SELECT * FROM K LIMIT first(5, @1)", (5, ("@", 1)), ()),
        ("SELECT * FROM K OFFSET 3", (), (3,)),
        ("SELECT * FROM K OFFSET @c", (), (("@", "c"),)),
        ("SELECT * FROM K OFFSET @c + 2", (), (("@", "c"), 2)),
        ("SELECT * FROM K OFFSET @c +2", (), (("@", "c"), 2)),
        ("SELECT * FROM K OFFSET @c + @n", (), (("@", "c"), ("@", "n"))),
        ("SELECT * FROM K LIMIT 2 OFFSET 1", (2,), (1,)),
        ("SELECT * FROM K WHERE a = 1 ORDER BY a LIMIT 2 OFFSET 1", (2,), (1,)),
    ],
)
def test_limit_and_offset(text: str, limit: tuple[Any, ...], offset: tuple[Any, ...]) -> None:
    parsed = select(text)
    assert tuple(_strip(p) for p in parsed.limit) == limit
    assert tuple(_strip(p) for p in parsed.offset) == offset


# -- aggregations ----------------------------------------------------------------------------------


def test_select_aggregation() -> None:
    statement = parse(
        "SELECT COUNT(*), COUNT_UP_TO(5) AS c5, SUM(n) AS total, AVG(`odd n`) FROM K "
        "WHERE g = 1 ORDER BY n LIMIT 7"
    )
    assert isinstance(statement, GqlAggregate)
    assert [(a.function, a.prop, a.alias) for a in statement.aggregations] == [
        ("COUNT", None, None),
        ("COUNT_UP_TO", None, "c5"),
        ("SUM", "n", "total"),
        ("AVG", "odd n", None),
    ]
    assert _strip(statement.aggregations[1].up_to) == 5
    query = statement.query
    assert (query.kind, query.order, tree(query.where)) == (  # type: ignore[arg-type]
        "K",
        (("n", False),),
        ("g", "=", 1),
    )
    assert tuple(_strip(p) for p in query.limit) == (7,)


def test_aggregate_over() -> None:
    statement = parse("aggregate count(*) as n, sum(x) over (select * from K where x > 1)")
    assert isinstance(statement, GqlAggregate)
    assert statement.aggregations == (
        Aggregation("COUNT", alias="n"),
        Aggregation("SUM", prop="x"),
    )
    assert statement.query.kind == "K"
    assert tree(statement.query.where) == ("x", ">", 1)  # type: ignore[arg-type]


def test_aggregate_over_a_projection_and_a_binding_limit() -> None:
    statement = parse("AGGREGATE COUNT_UP_TO(@n) OVER (SELECT __key__ FROM K LIMIT @m)")
    assert isinstance(statement, GqlAggregate)
    assert _strip(statement.aggregations[0].up_to) == ("@", "n")
    assert statement.query.projection == ("__key__",)
    assert tuple(_strip(p) for p in statement.query.limit) == (("@", "m"),)


# -- syntax errors: position, expectation, excerpt -------------------------------------------------

START = 'expected a property name, a value or "(" at the start of a condition, found '
VALUE = (
    "expected a value (a string, a number, TRUE, FALSE, NULL, a @binding, KEY(...), ARRAY(...), "
    "BLOB(...) or DATETIME(...)), found "
)
OPERATOR = (
    "expected an operator (=, <, <=, >, >=, !=, IN, NOT IN, CONTAINS, HAS ANCESTOR, IS NULL) after "
)
BACKWARD = (
    "expected an operator (=, <, <=, >, >=, !=, IN, NOT IN, HAS DESCENDANT) after the value, found "
)
AGGREGATION = "expected an aggregation (COUNT(*), COUNT_UP_TO(n), SUM(p), AVG(p)), found "
KEY_PATH = 'expected "," after the kind (KEY needs a complete path: Kind, id_or_name), found '
ORDER_HINT = " (clauses go in the order FROM, WHERE, ORDER BY, LIMIT, OFFSET, each at most once)"
ESCAPES = " (valid: \\\\ \\' \\\" \\` \\n \\t \\r \\b \\0)"
NO_PADDING = ' (expected URL-safe base64 without "=" padding)'
PATTERN = ": expected YYYY-MM-DDThh:mm:ss[.ffffff](Z|+hh:mm|-hh:mm)"


@pytest.mark.parametrize(
    ("text", "column", "description"),
    [
        (
            "SELECT * FROM C ORDER BY LIMIT 5",
            26,
            'expected a property name after ORDER BY, found "LIMIT"',
        ),
        ("", 1, "expected SELECT or AGGREGATE, found the end of the query"),
        ("FROM C", 1, 'expected SELECT or AGGREGATE, found "FROM"'),
        (
            "SELECT",
            7,
            "expected *, __key__, a property name, DISTINCT or an aggregation (COUNT(*), "
            "COUNT_UP_TO(n), SUM(p), AVG(p)) after SELECT, found the end of the query",
        ),
        ("SELECT * FROM", 14, "expected a kind name after FROM, found the end of the query"),
        ("SELECT * FROM Order", 15, 'expected a kind name after FROM, found "Order"'),
        (
            "SELECT * FROM count",
            15,
            'expected a kind name after FROM, found "count" '
            "(COUNT is a keyword; write `count` for a name)",
        ),
        ("SELECT * FROM C WHERE", 22, START + "the end of the query"),
        (
            "SELECT * FROM C WHERE desc = 1",
            23,
            START + '"desc" (DESC is a keyword; write `desc` for a name)',
        ),
        (
            "SELECT * FROM C WHERE n = 1 extra",
            29,
            'expected AND, OR, ORDER BY, LIMIT, OFFSET or the end of the query, found "extra"',
        ),
        ("SELECT * FROM C WHERE n = 1 AND", 32, START + "the end of the query"),
        ("SELECT * FROM C WHERE n = 1 AND AND n = 2", 33, START + '"AND"'),
        ("SELECT * FROM C WHERE n == 1", 26, VALUE + '"="'),
        ("SELECT * FROM C WHERE n <> 1", 26, VALUE + '">"'),
        ("SELECT * FROM C WHERE n LIKE 'a'", 25, OPERATOR + '"n", found "LIKE"'),
        (
            "SELECT * FROM C WHERE n IS NOT NULL",
            28,
            'expected NULL after IS (IS NOT NULL is not GQL), found "NOT"',
        ),
        ("SELECT * FROM C WHERE n NOT = 1", 29, 'expected IN after NOT, found "="'),
        ("SELECT * FROM C WHERE 't0' CONTAINS tags", 28, BACKWARD + '"CONTAINS"'),
        (
            "SELECT * FROM C WHERE n HAS ANCESTOR KEY(C, 1)",
            23,
            'HAS ANCESTOR applies to __key__, not to "n"',
        ),
        (
            "SELECT * FROM C WHERE KEY(C, 1) HAS DESCENDANT n",
            48,
            'HAS DESCENDANT applies to __key__, not to "n"',
        ),
        (
            "SELECT * FROM C WHERE __key__ HAS DESCENDANT KEY(C, 1)",
            35,
            "expected ANCESTOR after HAS (with the key on the left write KEY(...) HAS DESCENDANT "
            '__key__), found "DESCENDANT"',
        ),
        (
            "SELECT * FROM C WHERE KEY(C, 1) HAS ANCESTOR __key__",
            37,
            "expected DESCENDANT after HAS (with __key__ on the left write __key__ HAS ANCESTOR "
            'KEY(...)), found "ANCESTOR"',
        ),
        ("SELECT * FROM C WHERE (n = 1", 29, 'expected AND, OR or ")", found the end of the query'),
        ("SELECT * FROM C WHERE ()", 24, START + '")"'),
        ("SELECT * FROM C ORDER n", 23, 'expected BY after ORDER, found "n"'),
        (
            "SELECT * FROM C ORDER BY n ASC DESC",
            32,
            'expected ",", LIMIT, OFFSET or the end of the query, found "DESC"',
        ),
        (
            "SELECT * FROM C ORDER BY n WHERE n = 1",
            28,
            'expected ",", ASC, DESC, LIMIT, OFFSET or the end of the query, found "WHERE"'
            + ORDER_HINT,
        ),
        (
            "SELECT * FROM C OFFSET 1 LIMIT 2",
            26,
            'expected the end of the query, found "LIMIT"' + ORDER_HINT,
        ),
        (
            "SELECT * FROM C LIMIT 1 LIMIT 2",
            25,
            'expected OFFSET or the end of the query, found "LIMIT"' + ORDER_HINT,
        ),
        (
            "SELECT * FROM C FROM D",
            17,
            'expected WHERE, ORDER BY, LIMIT, OFFSET or the end of the query, found "FROM"'
            + ORDER_HINT,
        ),
        (
            "SELECT * FROM C GROUP BY g",
            17,
            'expected WHERE, ORDER BY, LIMIT, OFFSET or the end of the query, found "GROUP"',
        ),
        (
            "SELECT * FROM C LIMIT",
            22,
            "expected an integer, a @binding or FIRST(...) after LIMIT, found the end of the query",
        ),
        (
            "SELECT * FROM C LIMIT 1.5",
            23,
            'expected an integer, a @binding or FIRST(...) after LIMIT, found "1.5"',
        ),
        (
            "SELECT * FROM C LIMIT FIRST(1)",
            30,
            'expected "," in FIRST(a, b), found ")"',
        ),
        (
            "SELECT * FROM C OFFSET 2 + 3",
            26,
            "OFFSET <integer> + ... is not GQL: the left of + must be a cursor @binding",
        ),
        (
            "SELECT * FROM C OFFSET @c +",
            28,
            "expected an integer or a @binding after +, found the end of the query",
        ),
        (
            "SELECT DISTINCT * FROM C",
            17,
            'expected a property name or ON after DISTINCT (DISTINCT * is not GQL), found "*"',
        ),
        ("SELECT DISTINCT ON g * FROM C", 20, 'expected "(" after DISTINCT ON, found "g"'),
        (
            "SELECT DISTINCT ON () * FROM C",
            21,
            'expected a property name in DISTINCT ON (...), found ")"',
        ),
        (
            "SELECT DISTINCT ON (g) FROM C",
            24,
            'expected * or a property name after DISTINCT ON (...), found "FROM"',
        ),
        ("SELECT a, FROM C", 11, 'expected a property name after ",", found "FROM"'),
        (
            "SELECT * FROM C WHERE n = FOO(1)",
            27,
            'unknown function "FOO" (GQL has KEY, ARRAY, BLOB and DATETIME)',
        ),
        ("SELECT * FROM C WHERE n = KEY", 27, VALUE + '"KEY"'),
        ("SELECT * FROM C WHERE n = -TRUE", 27, 'unexpected character "-"'),
        ("SELECT * FROM C WHERE n = - 1", 27, 'unexpected character "-"'),
        ("SELECT * FROM C WHERE n = 0x1", 27, 'invalid number "0x1"'),
        ("SELECT * FROM C WHERE n = 1.5.5", 27, 'invalid number "1.5.5"'),
        (
            "SELECT * FROM C WHERE n = 9223372036854775808",
            27,
            "integer 9223372036854775808 does not fit in 64 bits (use a double)",
        ),
        ("SELECT * FROM C WHERE n = 1;", 28, 'unexpected character ";"'),
        ("SELECT * FROM C WHERE n = 1 -- note", 29, 'unexpected character "-"'),
        ("SELECT * FROM C WHERE s = 'abc", 27, "unterminated string (missing closing ')"),
        ("SELECT * FROM `C", 15, "unterminated backquoted name (missing closing `)"),
        ("SELECT * FROM ``", 15, "a backquoted name must not be empty"),
        ("SELECT * FROM C WHERE s = 'a\\qb'", 29, 'invalid escape sequence "\\q"' + ESCAPES),
        ("SELECT * FROM C WHERE s = 'a\\u0041'", 29, 'invalid escape sequence "\\u"' + ESCAPES),
        ("SELECT * FROM `a\\xb`", 17, 'invalid escape sequence "\\x"' + ESCAPES),
        (
            "SELECT * FROM C WHERE n = @",
            27,
            "expected a binding name or a position (@name, @1) after @",
        ),
        (
            "SELECT * FROM C WHERE n = @ x",
            27,
            "expected a binding name or a position (@name, @1) after @",
        ),
        ("SELECT * FROM C WHERE n = @0", 27, "invalid binding site @0: positions start at @1"),
        (
            "SELECT * FROM C WHERE n = @__x__",
            27,
            'the GQL binding name "__x__" is reserved (__...__)',
        ),
        (
            "SELECT * FROM C WHERE __key__ = KEY('C', 1)",
            37,
            "expected a kind name in KEY(...), found \"'C'\"",
        ),
        ("SELECT * FROM C WHERE __key__ = KEY(C)", 38, KEY_PATH + '")"'),
        ("SELECT * FROM C WHERE __key__ = KEY(C, 1, D)", 44, KEY_PATH + '")"'),
        (
            "SELECT * FROM C WHERE __key__ = KEY(C, 1,)",
            42,
            'expected a kind name in KEY(...), found ")"',
        ),
        (
            "SELECT * FROM C WHERE __key__ = KEY(C, 1.5)",
            40,
            'expected an integer id or a quoted name in KEY(...), found "1.5"',
        ),
        (
            "SELECT * FROM C WHERE __key__ = KEY(C, @x)",
            40,
            'expected an integer id or a quoted name in KEY(...), found "@x"',
        ),
        ("SELECT * FROM C WHERE __key__ = KEY(C, 0)", 40, "a key id must not be zero"),
        (
            "SELECT * FROM C WHERE __key__ = KEY(C, '')",
            40,
            "a key name must not be the empty string",
        ),
        (
            "SELECT * FROM C WHERE __key__ = KEY(PROJECT(p), C, 1)",
            45,
            'expected a quoted string in PROJECT(...), found "p"',
        ),
        (
            "SELECT * FROM C WHERE __key__ = KEY(PROJECT('p'), PROJECT('p'), C, 1)",
            51,
            "a KEY has at most one PROJECT",
        ),
        (
            "SELECT * FROM C WHERE __key__ = KEY(NAMESPACE('x'), NAMESPACE('x'), C, 1)",
            53,
            "a KEY has at most one NAMESPACE",
        ),
        ("SELECT * FROM C WHERE __key__ = KEY(C, 1, PROJECT('p'))", 50, KEY_PATH + '"("'),
        (
            "SELECT * FROM C WHERE n IN ARRAY(1, ARRAY(2))",
            37,
            "an ARRAY(...) cannot contain another ARRAY",
        ),
        (
            "SELECT * FROM C WHERE n IN ARRAY(1 2)",
            36,
            'expected "," or ")" in ARRAY(...), found "2"',
        ),
        (
            "SELECT * FROM C WHERE n = BLOB(5)",
            32,
            'expected a quoted string in BLOB(...), found "5"',
        ),
        (
            "SELECT * FROM C WHERE n = BLOB('YWJj====')",
            32,
            'invalid BLOB text "YWJj===="' + NO_PADDING,
        ),
        ("SELECT * FROM C WHERE n = BLOB('-_8=')", 32, 'invalid BLOB text "-_8="' + NO_PADDING),
        ("SELECT * FROM C WHERE n = BLOB('+/8')", 32, 'invalid BLOB text "+/8"' + NO_PADDING),
        ("SELECT * FROM C WHERE n = BLOB('Y')", 32, 'invalid BLOB text "Y"' + NO_PADDING),
        (
            "SELECT * FROM C WHERE n = DATETIME(5)",
            36,
            'expected a quoted string in DATETIME(...), found "5"',
        ),
        (
            "SELECT * FROM C WHERE n = DATETIME('2020-01-01')",
            36,
            'invalid DATETIME text "2020-01-01"' + PATTERN,
        ),
        (
            "SELECT * FROM C WHERE n = DATETIME('2020-01-01 00:00:00Z')",
            36,
            'invalid DATETIME text "2020-01-01 00:00:00Z"' + PATTERN,
        ),
        (
            "SELECT * FROM C WHERE n = DATETIME('2020-01-01T00:00:00.1234567Z')",
            36,
            'invalid DATETIME text "2020-01-01T00:00:00.1234567Z"' + PATTERN,
        ),
        (
            "SELECT * FROM C WHERE n = DATETIME('2020-01-01T00:00:00+0100')",
            36,
            'invalid DATETIME text "2020-01-01T00:00:00+0100"' + PATTERN,
        ),
        (
            "SELECT * FROM C WHERE n = DATETIME('2020-01-01T00:00:00+00:00')",
            36,
            'invalid DATETIME text "2020-01-01T00:00:00+00:00": a zero offset must be written Z',
        ),
        (
            "SELECT * FROM C WHERE n = DATETIME('2020-02-30T00:00:00Z')",
            36,
            'invalid DATETIME text "2020-02-30T00:00:00Z": day is out of range for month',
        ),
        (
            "SELECT * FROM C WHERE n = DATETIME('2020-01-01T24:00:00Z')",
            36,
            'invalid DATETIME text "2020-01-01T24:00:00Z": hour must be in 0..23',
        ),
        (
            "SELECT COUNT(*) x",
            17,
            'expected ",", AS, FROM, WHERE, ORDER BY, LIMIT, OFFSET or the end of the query, '
            'found "x"',
        ),
        ("SELECT COUNT(n) FROM C", 14, 'expected "*" in COUNT(*), found "n"'),
        ("SELECT SUM(*) FROM C", 12, 'expected a property name in SUM(...), found "*"'),
        (
            "SELECT COUNT_UP_TO(1.5) FROM C",
            20,
            'expected an integer or a @binding in COUNT_UP_TO(...), found "1.5"',
        ),
        ("SELECT COUNT(*), n FROM C", 18, AGGREGATION + '"n"'),
        ("SELECT COUNT(*) AS FROM C", 20, 'expected an alias name after AS, found "FROM"'),
        ("AGGREGATE * OVER (SELECT * FROM C)", 11, AGGREGATION + '"*"'),
        ("AGGREGATE COUNT(*) (SELECT * FROM C)", 20, 'expected ",", AS or OVER, found "("'),
        ("AGGREGATE COUNT(*) OVER SELECT * FROM C", 25, 'expected "(" after OVER, found "SELECT"'),
        (
            "AGGREGATE COUNT(*) OVER (SELECT * FROM C",
            41,
            'expected WHERE, ORDER BY, LIMIT, OFFSET or ")" to close OVER (...), '
            "found the end of the query",
        ),
        (
            "AGGREGATE COUNT(*) OVER (SELECT * FROM C LIMIT 5 x)",
            50,
            'expected OFFSET or ")" to close OVER (...), found "x"',
        ),
        (
            "AGGREGATE COUNT(*) OVER (SELECT * FROM C) LIMIT 5",
            43,
            'expected the end of the query, found "LIMIT"' + ORDER_HINT,
        ),
    ],
)
def test_syntax_errors(text: str, column: int, description: str) -> None:
    error = syntax_error(text)
    assert (error.line, error.column, error.description) == (1, column, description)
    assert isinstance(error, InvalidArgument) and isinstance(error, BadRequest)
    assert error.message.startswith(f"GQL syntax error at line 1, column {column}: ")


def test_syntax_error_message_has_a_caret_excerpt() -> None:
    error = syntax_error("SELECT * FROM C ORDER BY LIMIT 5")
    assert error.message == (
        "GQL syntax error at line 1, column 26: "
        'expected a property name after ORDER BY, found "LIMIT"\n'
        "  SELECT * FROM C ORDER BY LIMIT 5\n"
        "                           ^"
    )
    assert str(error) == "400 " + error.message
    assert error.code == 400


def test_syntax_error_on_a_later_line() -> None:
    text = "SELECT *\nFROM Photo\n\tWHERE likes >> 3"
    error = syntax_error(text)
    assert (error.line, error.column) == (3, 15)
    assert error.message.splitlines()[1:] == ["  \tWHERE likes >> 3", "  \t             ^"]
    assert error.offset == text.index(">>") + 1 and error.query_string == text


def test_syntax_error_excerpt_of_a_long_line_is_trimmed() -> None:
    text = "SELECT * FROM K WHERE " + " AND ".join(f"p{i} = {i}" for i in range(30)) + " AND ?"
    error = syntax_error(text)
    _, excerpt, caret = error.message.splitlines()
    assert excerpt.startswith("  ...") and excerpt.endswith("AND ?")
    assert len(excerpt) < 120 and caret.index("^") == excerpt.index("?")
    assert error.column == len(text)


def test_found_token_is_shortened() -> None:
    error = syntax_error(
        "SELECT * FROM C WHERE n = 1 'a very long string literal that goes on and on'"
    )
    assert 'found "\'a very long string literal that goes..."' in error.description


def test_parse_rejects_a_non_string() -> None:
    with pytest.raises(TypeError, match="query_string must be a str, not bytes"):
        parse(b"SELECT *")  # type: ignore[arg-type]


# -- building Query objects ------------------------------------------------------------------------


def test_gql_returns_a_query_with_the_parts(mem_client: Client) -> None:
    query = gql_query(
        mem_client,
        "SELECT DISTINCT ON (g) n, g FROM C WHERE n > 7 AND s = 'x' ORDER BY g, n DESC "
        "LIMIT 4 OFFSET 2",
    )
    assert isinstance(query, GqlQuery) and isinstance(query, Query)
    assert query.kind == "C"
    assert query.filters == [("n", ">", 7), ("s", "=", "x")]
    assert query.projection == ["n", "g"] and query.distinct_on == ["g"]
    assert query.order == ["g", "-n"]
    assert (query.limit, query.offset, query.start_cursor, query.end_cursor) == (4, 2, None, None)
    assert query.ancestor is None
    assert (query.project, query.namespace) == ("unit", None)
    assert repr(query).startswith('<GqlQuery "SELECT DISTINCT ON (g) n, g FROM C')


def test_gql_defaults_match_a_plain_query(mem_client: Client) -> None:
    query = gql_query(mem_client, "SELECT *")
    assert (query.kind, query.filters, query.projection, query.order) == (None, [], [], [])
    assert isinstance(query, GqlQuery)
    assert (query.limit, query.offset) == (None, 0)


def test_keys_only_projection(mem_client: Client) -> None:
    assert gql_query(mem_client, "SELECT __key__ FROM C").projection == ["__key__"]


def test_namespace_comes_from_the_client(mem_client: Client) -> None:
    other = Client(project="unit", namespace="ns1", url="sqlite://", index_yaml=os.devnull)
    try:
        query = gql_query(other, "SELECT * FROM C WHERE __key__ = KEY(C, 1)")
        assert query.namespace == "ns1"
        assert query.filters == [("__key__", "=", Key("C", 1, project="unit", namespace="ns1"))]
    finally:
        other.close()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("KEY(C, 1)", Key("C", 1, project="unit")),
        ("KEY(C, 'a', D, 2)", Key("C", "a", "D", 2, project="unit")),
        ("KEY(PROJECT('other'), C, 1)", Key("C", 1, project="other")),
        ("KEY(NAMESPACE('n'), C, 1)", Key("C", 1, project="unit", namespace="n")),
        ("KEY(NAMESPACE(''), C, 1)", Key("C", 1, project="unit")),
        ("KEY(PROJECT(''), C, 1)", Key("C", 1, project="unit")),
    ],
)
def test_key_literals_become_keys(mem_client: Client, text: str, key: Key) -> None:
    query = gql_query(mem_client, f"SELECT * FROM C WHERE k = {text}")
    ((_, _, value),) = query.filters
    assert value == key and value.namespace == key.namespace


def test_value_conversions(mem_client: Client) -> None:
    query = gql_query(
        mem_client,
        "SELECT * FROM C WHERE a IS NULL AND b CONTAINS 'x' AND c CONTAINS ARRAY(1, 2) "
        "AND d IN 5 AND e NOT IN @1 AND f IN ARRAY() AND g = BLOB('YWJj') AND h < 1.5",
        (1, 2),
    )
    assert query.filters == [
        ("a", "=", None),
        ("b", "=", "x"),  # CONTAINS is = on a multi-valued property ...
        ("c", "IN", [1, 2]),  # ... and IN when given an array
        ("d", "IN", [5]),  # emulator: "n IN 5" is n IN ARRAY(5)
        ("e", "NOT_IN", [1, 2]),  # tuples bind as lists
        ("f", "IN", []),  # left to the engine ("needs a non-empty list value")
        ("g", "=", b"abc"),
        ("h", "<", 1.5),
    ]


def test_has_ancestor_sets_the_ancestor(mem_client: Client) -> None:
    query = gql_query(mem_client, "SELECT * FROM D WHERE __key__ HAS ANCESTOR KEY(C, 1) AND n = 2")
    assert query.ancestor == Key("C", 1, project="unit")
    assert query.filters == [("n", "=", 2)]
    backward = gql_query(mem_client, "SELECT * FROM D WHERE KEY(C, 1) HAS DESCENDANT __key__")
    assert backward.ancestor == query.ancestor and backward.filters == []
    bound = gql_query(
        mem_client, "SELECT * WHERE __key__ HAS ANCESTOR @a", a=Key("C", 2, project="unit")
    )
    assert bound.ancestor == Key("C", 2, project="unit")


def test_or_becomes_composite_filters(mem_client: Client) -> None:
    query = gql_query(
        mem_client,
        "SELECT * FROM C WHERE g = 1 AND (n < 2 OR n > 8 AND s = 'x') AND (h = 1 AND i = 2)",
    )
    assert [shape(f) for f in query.filters] == [
        ("g", "=", 1),
        ("OR", [("n", "<", 2), ("AND", [("n", ">", 8), ("s", "=", "x")])]),
        ("h", "=", 1),  # nested ANDs flatten into the top level
        ("i", "=", 2),
    ]
    (only,) = gql_query(mem_client, "SELECT * FROM C WHERE a = 1 OR b = 2").filters
    assert shape(only) == ("OR", [("a", "=", 1), ("b", "=", 2)])


# -- bindings --------------------------------------------------------------------------------------


def test_named_and_positional_bindings(mem_client: Client) -> None:
    when = dt.datetime(2020, 1, 1, tzinfo=UTC)
    key = mem_client.key("C", 1)
    query = gql_query(
        mem_client,
        "SELECT * FROM C WHERE a = @1 AND b = @2 AND c = @x AND d = @x AND e = @k AND f = @g "
        "AND h IN ARRAY(@1, @n)",
        "one",
        when,
        x=None,
        k=key,
        g=GeoPoint(1.0, 2.0),
        n=b"\x00",
    )
    assert query.filters == [
        ("a", "=", "one"),
        ("b", "=", when),
        ("c", "=", None),
        ("d", "=", None),  # one binding used twice
        ("e", "=", key),
        ("f", "=", GeoPoint(1.0, 2.0)),
        ("h", "IN", ["one", b"\x00"]),
    ]


def test_query_string_itself_can_be_a_binding_name(mem_client: Client) -> None:
    # Client.gql's first parameter is positional-only, so any name works as a binding
    query = gql_query(
        mem_client, "SELECT * FROM C WHERE a = @query_string AND b = @self", query_string=1, self=2
    )
    assert query.filters == [("a", "=", 1), ("b", "=", 2)]


def test_missing_named_binding_names_it(mem_client: Client) -> None:
    error = bind_error(mem_client, "SELECT * FROM C WHERE n = @x", y=1, z=2)
    assert error.message.splitlines()[0] == (
        "GQL error at line 1, column 27: no value bound to @x (named: y, z)"
    )
    error = bind_error(mem_client, "SELECT * FROM C WHERE n = @x")
    assert "no value bound to @x (named: none)" in error.message


def test_missing_positional_binding_names_it(mem_client: Client) -> None:
    error = bind_error(mem_client, "SELECT * FROM C WHERE n = @1 AND m = @3", 1, 2, 3)
    assert isinstance(error, InvalidArgument)
    # every value given must be used: @2 is unused
    assert error.message == "GQL positional binding @2 is not used by the query"
    error = bind_error(mem_client, "SELECT * FROM C WHERE n = @1 AND m = @2", 1)
    assert error.message.splitlines()[0] == (
        "GQL error at line 1, column 38: no value bound to @2 (1 positional value(s) given)"
    )


def test_unused_bindings_are_errors(mem_client: Client) -> None:
    error = bind_error(mem_client, "SELECT * FROM C WHERE n = @1", 1, 2)
    assert error.message == "GQL positional binding @2 is not used by the query"
    error = bind_error(mem_client, "SELECT * FROM C WHERE n = @x", x=1, y=2)
    assert error.message == 'GQL named binding "y" is not used by the query (no @y in it)'
    error = bind_error(mem_client, "SELECT * FROM C", 1)
    assert error.message == "GQL positional binding @1 is not used by the query"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad-name", 'GQL binding name "bad-name" is not a valid name ([A-Za-z_$][A-Za-z_$0-9]*)'),
        ("1x", 'GQL binding name "1x" is not a valid name ([A-Za-z_$][A-Za-z_$0-9]*)'),
        ("__x__", 'GQL binding name "__x__" is reserved (__...__)'),
    ],
)
def test_invalid_binding_names(mem_client: Client, name: str, message: str) -> None:
    error = bind_error(mem_client, "SELECT * FROM C", **{name: 1})
    assert error.message == message


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (decimal.Decimal(1), "@x is bound to a Decimal, not a Datastore value"),
        (dt.date(2020, 1, 1), "@x is bound to a date, not a Datastore value"),
        (object(), "@x is bound to a object, not a Datastore value"),
        (2**63, "@x is bound to an invalid value: Value out of range: 9223372036854775808"),
    ],
)
def test_invalid_binding_values(mem_client: Client, value: Any, reason: str) -> None:
    error = bind_error(mem_client, "SELECT * FROM C WHERE n = @x", x=value)
    assert error.message.splitlines()[0] == f"GQL error at line 1, column 27: {reason}"
    assert error.message.splitlines()[2] == "                            ^"


@pytest.mark.parametrize(
    ("text", "kwargs", "reason"),
    [
        ("n = ARRAY(1, 2)", {}, "a list value is only allowed with IN, NOT IN or CONTAINS, not ="),
        ("n < @x", {"x": [1]}, "a list value is only allowed with IN, NOT IN or CONTAINS, not <"),
        ("n IN @x", {"x": [1, [2]]}, "an array cannot contain another array"),
        ("n IN ARRAY(@x)", {"x": [2]}, "an array cannot contain another array"),
        ("__key__ = 5", {}, "__key__ can only be compared with keys, not a int"),
        (
            "__key__ IN ARRAY(KEY(C, 1), 'x')",
            {},
            "__key__ can only be compared with keys, not a str",
        ),
        ("__key__ HAS ANCESTOR @x", {"x": "C/1"}, "HAS ANCESTOR needs a key, not a str"),
        ("__key__ HAS ANCESTOR NULL", {}, "HAS ANCESTOR needs a key, not a NoneType"),
    ],
)
def test_invalid_condition_values(mem_client: Client, text: str, kwargs: Any, reason: str) -> None:
    error = bind_error(mem_client, f"SELECT * FROM C WHERE {text}", **kwargs)
    assert error.message.splitlines()[0] == f"GQL error at line 1, column 23: {reason}"


def test_only_one_has_ancestor(mem_client: Client) -> None:
    error = bind_error(
        mem_client,
        "SELECT * FROM C WHERE __key__ HAS ANCESTOR KEY(C, 1) AND __key__ HAS ANCESTOR KEY(C, 1)",
    )
    assert error.message.splitlines()[0] == (
        "GQL error at line 1, column 58: a query can have only one HAS ANCESTOR"
    )


def test_has_ancestor_inside_or_is_rejected(mem_client: Client) -> None:
    error = bind_error(mem_client, "SELECT * FROM C WHERE n = 1 OR __key__ HAS ANCESTOR KEY(C, 1)")
    assert error.message.splitlines()[0] == (
        "GQL error at line 1, column 32: HAS ANCESTOR must be ANDed at the top level of WHERE, "
        "not inside OR"
    )


# -- LIMIT / OFFSET binding ------------------------------------------------------------------------


def test_limit_and_offset_bindings(mem_client: Client) -> None:
    query = gql_query(mem_client, "SELECT * FROM C LIMIT @1 OFFSET @2", 3, 4)
    assert isinstance(query, GqlQuery)
    assert (query.limit, query.offset) == (3, 4)


def test_cursor_bindings(mem_client: Client) -> None:
    it = mem_client.query(kind="C").fetch()
    list(it)
    token = it.next_page_token or b"AQ"  # None when finished: any well-formed base64 works here
    query = gql_query(mem_client, "SELECT * FROM C LIMIT FIRST(@c, 3) OFFSET @c + 2", c=token)
    assert isinstance(query, GqlQuery)
    assert (query.limit, query.offset, query.start_cursor, query.end_cursor) == (3, 2, token, token)
    query = gql_query(mem_client, "SELECT * FROM C LIMIT FIRST(3, @c) OFFSET @c", c="AQ")
    assert isinstance(query, GqlQuery)
    assert (query.limit, query.offset, query.start_cursor, query.end_cursor) == (3, 0, "AQ", "AQ")
    query = gql_query(mem_client, "SELECT * FROM C LIMIT @c", c=b"AQ")
    assert isinstance(query, GqlQuery)
    assert (query.limit, query.end_cursor) == (None, b"AQ")


@pytest.mark.parametrize(
    ("text", "kwargs", "column", "reason"),
    [
        ("LIMIT -1", {}, 23, "the limit -1 is < 0"),
        ("LIMIT @n", {"n": -2}, 23, "the limit -2 is < 0"),
        ("OFFSET -1", {}, 17, "the offset -1 is < 0"),
        ("OFFSET @n", {"n": -2}, 17, "the offset -2 is < 0"),
        (
            "LIMIT @n",
            {"n": 1.5},
            23,
            "@n in LIMIT is bound to a float; expected an integer or a cursor (a next_page_token)",
        ),
        (
            "LIMIT @n",
            {"n": True},
            23,
            "@n in LIMIT is bound to a bool; expected an integer or a cursor (a next_page_token)",
        ),
        (
            "OFFSET @n",
            {"n": None},
            24,
            "@n in OFFSET is bound to a NoneType; "
            "expected an integer or a cursor (a next_page_token)",
        ),
        (
            "LIMIT @c",
            {"c": "A"},
            23,
            "@c in LIMIT: Invalid cursor: not a datastore_lite cursor (bad base64).",
        ),
        (
            "LIMIT FIRST(5, @n)",
            {"n": 6},
            29,
            "LIMIT FIRST(a, b) needs one integer and one cursor @binding",
        ),
        (
            "LIMIT FIRST(@c, @c)",
            {"c": "AQ"},
            29,
            "LIMIT FIRST(a, b) needs one integer and one cursor @binding",
        ),
        ("OFFSET @n + 1", {"n": 2}, 17, "OFFSET a + b needs a cursor @binding + an integer"),
        ("OFFSET @c + @c", {"c": "AQ"}, 17, "OFFSET a + b needs a cursor @binding + an integer"),
    ],
)
def test_invalid_limit_and_offset(
    mem_client: Client, text: str, kwargs: Any, column: int, reason: str
) -> None:
    error = bind_error(mem_client, f"SELECT * FROM C {text}", **kwargs)
    assert error.message.splitlines()[0] == f"GQL error at line 1, column {column}: {reason}"


# -- allow_literals --------------------------------------------------------------------------------


def test_allow_literals_false(mem_client: Client) -> None:
    query = build(
        mem_client,
        "SELECT * FROM C WHERE n = @x LIMIT @l",
        named_bindings={"x": 1, "l": 2},
        allow_literals=False,
    )
    assert isinstance(query, GqlQuery) and query.filters == [("n", "=", 1)] and query.limit == 2
    for text, column in [
        ("SELECT * FROM C WHERE n = 1", 27),
        ("SELECT * FROM C WHERE n IS NULL", 28),
        ("SELECT * FROM C WHERE n = @x LIMIT 2", 36),
        ("SELECT * FROM C WHERE k = KEY(C, 'a')", 27),
        ("SELECT COUNT_UP_TO(3) FROM C", 20),
    ]:
        with pytest.raises(InvalidArgument) as info:
            build(
                mem_client,
                text,
                named_bindings={"x": 1} if "@x" in text else {},
                allow_literals=False,
            )
        assert info.value.message.splitlines()[0] == (
            f"GQL error at line 1, column {column}: "
            "literals are not allowed here (allow_literals=False)"
        )


# -- aggregations ----------------------------------------------------------------------------------


def test_aggregation_query(mem_client: Client) -> None:
    query = mem_client.gql(
        "SELECT COUNT(*) AS n, COUNT_UP_TO(@up) AS few, SUM(x), AVG(x) AS mean FROM C "
        "WHERE g = 1 LIMIT 9",
        up=3,
    )
    assert isinstance(query, GqlAggregationQuery)
    aggregations = query._aggregations
    assert [type(a) for a in aggregations] == [
        CountAggregation,
        CountUpToAggregation,
        SumAggregation,
        AvgAggregation,
    ]
    assert [(a.alias, a.property_ref) for a in aggregations] == [
        ("n", None),
        ("few", None),
        (None, "x"),
        ("mean", "x"),
    ]
    assert isinstance(aggregations[1], CountUpToAggregation) and aggregations[1].up_to == 3
    nested = query._nested_query
    assert nested.kind == "C" and nested.filters == [("g", "=", 1)]
    assert query.limit == 9
    assert repr(query).startswith("<GqlAggregationQuery 'SELECT COUNT(*)")


def test_aggregate_over_builds_the_same(mem_client: Client) -> None:
    query = mem_client.gql("AGGREGATE SUM(x) AS s OVER (SELECT * FROM C WHERE g = @g)", g=2)
    assert isinstance(query, GqlAggregationQuery)
    assert [(a.kind, a.alias, a.property_ref) for a in query._aggregations] == [("sum", "s", "x")]
    assert query._nested_query.filters == [("g", "=", 2)]


@pytest.mark.parametrize(
    ("text", "kwargs", "column", "reason"),
    [
        ("SELECT COUNT_UP_TO(0) FROM C", {}, 20, "COUNT_UP_TO needs a positive integer"),
        ("SELECT COUNT_UP_TO(-1) FROM C", {}, 20, "COUNT_UP_TO needs a positive integer"),
        ("SELECT COUNT_UP_TO(@c) FROM C", {"c": "AQ"}, 20, "COUNT_UP_TO needs a positive integer"),
        (
            "SELECT COUNT(*) FROM C OFFSET 1",
            {},
            24,
            "datastore_lite aggregations support LIMIT n but not OFFSET or cursors",
        ),
        (
            "SELECT COUNT(*) FROM C LIMIT @c",
            {"c": "AQ"},
            30,
            "datastore_lite aggregations support LIMIT n but not OFFSET or cursors",
        ),
    ],
)
def test_invalid_aggregations(
    mem_client: Client, text: str, kwargs: Any, column: int, reason: str
) -> None:
    error = bind_error(mem_client, text, **kwargs)
    assert error.message.splitlines()[0] == f"GQL error at line 1, column {column}: {reason}"


def test_gql_rejects_a_non_string(mem_client: Client) -> None:
    with pytest.raises(TypeError):
        mem_client.gql(None)  # type: ignore[arg-type]
