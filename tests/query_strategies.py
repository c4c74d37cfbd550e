"""Hypothesis strategies for query tests: entity sets and queries, checked by tests/reference.py.

Values come mostly from small pools so that filters hit, sorts tie and arrays overlap
(every cross-type edge case of SEMANTICS.md §2.1 is in the pool), with an occasional
arbitrary value from ``tests/strategies.py``. Entities and queries are drawn as *specs*
(flat key paths instead of keys) so one example can be materialised in any namespace:
``EntitySpec.build(client)``, ``QuerySpec.reference(client)`` and
``QuerySpec.build(client)``.

Generated queries respect the rules the team fixed, so every one of them is valid:

* under the legacy profile at most one inequality property, and an explicit order starts
  with it; several inequality properties only under ``profile="firestore"``, and then no
  explicit ``__key__`` order (which index serves that is not settled);
* a property is filtered either by equalities (``=``/``IN``) or by ranges
  (``< <= > >= != NOT_IN``), never both; ``Or`` composites either combine equalities, or
  ranges on one property that no other filter touches;
* at most one ``!=``/``NOT_IN`` per query, and ``NOT_IN`` never with ``IN``/``Or``;
* projected properties carry no equality filter; ``distinct_on`` only without inequality
  filters, listed in name order and leading any explicit order;
* kindless queries filter and order on ``__key__`` only (ascending order).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from datastore_lite import Entity, GeoPoint, Key
from tests import reference as ref
from tests.strategies import scalar_values

__all__ = [
    "ANCESTOR_PATHS",
    "EntitySpec",
    "Example",
    "KeyPath",
    "PROPS",
    "QuerySpec",
    "VALUE_POOL",
    "describe",
    "disjunctions",
    "entity_sets",
    "examples",
    "filter_values",
    "query_specs",
]

PROPS = ("x", "y", "z")
KEY = "__key__"
PROJECT = "test-proj"

#: Every cross-type edge case of SEMANTICS.md §2.1, small enough that values collide.
VALUE_POOL: list[Any] = [
    None,
    -5,
    0,
    1,
    2,
    3,
    5,
    7,
    9,
    2**63 - 1,
    -(2**63),
    dt.datetime(1970, 1, 1, tzinfo=dt.UTC),  # == int 0
    dt.datetime(1970, 1, 1, 0, 0, 0, 5, tzinfo=dt.UTC),  # == int 5
    dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    False,
    True,
    "",
    "B",
    "a",
    "é",
    "str",
    "x",
    b"a",
    b"\xff",
    b"",
    b"a\x00",
    -math.inf,
    -1.5,
    -0.0,
    0.0,
    1.0,
    5.0,
    math.inf,
    math.nan,
    GeoPoint(-1.0, 5.0),
    GeoPoint(1.0, 2.0),
    GeoPoint(1.0, 2.5),
    Key("A", 5, project=PROJECT),
    Key("A", 5, "B", 1, project=PROJECT),
    Key("A", "x", project=PROJECT),
    Key("A", 5, project="aaa-proj"),
    Key("A", 5, project=PROJECT, namespace="a"),
]

#: Parents of generated keys (and the ancestors of generated queries).
ANCESTOR_PATHS: list[tuple[Any, ...]] = [("P", 1), ("P", "p"), ("K", 1)]
_PARENTS: list[tuple[Any, ...]] = [(), (), *ANCESTOR_PATHS]
_IDS: list[int | str] = [1, 2, 10, -5, "a", "B", "10", "é"]


@dataclass(frozen=True)
class KeyPath:
    """A key in the example's namespace, known by its flat path until materialised."""

    path: tuple[Any, ...]

    def build(self, client: Any) -> Key:
        key: Key = client.key(*self.path)
        return key


def _materialise(value: Any, client: Any) -> Any:
    if isinstance(value, KeyPath):
        return value.build(client)
    if isinstance(value, list):
        return [_materialise(v, client) for v in value]
    return value


@dataclass
class EntitySpec:
    """An entity to store: flat key path, properties, unindexed names."""

    path: tuple[Any, ...]
    props: dict[str, Any]
    exclude: tuple[str, ...] = ()

    def build(self, client: Any) -> Entity:
        entity = Entity(client.key(*self.path), exclude_from_indexes=self.exclude)
        entity.update({name: _materialise(v, client) for name, v in self.props.items()})
        return entity


@dataclass(frozen=True)
class QuerySpec:
    """A query, namespace-free: ``KeyPath`` stands for keys in the example's namespace."""

    kind: str | None = "K"
    ancestor: tuple[Any, ...] | None = None
    filters: tuple[ref.Filter, ...] = ()
    projection: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    distinct_on: tuple[str, ...] = ()
    keys_only: bool = False
    limit: int | None = None
    offset: int = 0
    profile: str = "legacy"

    @property
    def uses_modern_filters(self) -> bool:
        """``Or``, ``IN``, ``NOT_IN`` or ``!=``: outside §3.1's index table and the emulator."""
        return _modern(self.filters)

    def reference(self, client: Any) -> ref.RefQuery:
        """The query for :func:`tests.reference.evaluate`, keys in ``client``'s namespace."""
        return ref.RefQuery(
            kind=self.kind,
            ancestor=client.key(*self.ancestor) if self.ancestor else None,
            filters=tuple(_materialise_filter(f, client) for f in self.filters),
            projection=self.projection,
            order=self.order,
            distinct_on=self.distinct_on,
            keys_only=self.keys_only,
            limit=self.limit,
            offset=self.offset,
        )

    def build(
        self,
        client: Any,
        filter_classes: tuple[Any, Any, Any],
        convert: Callable[[Any], Any] | None = None,
    ) -> Any:
        """The client's query object (limit and offset are ``fetch`` arguments).

        ``filter_classes`` = the library's ``(PropertyFilter, And, Or)`` and ``convert``
        maps filter values to the library's types, so the same spec builds a datastore_lite
        query or an official one.
        """
        property_filter, and_, or_ = filter_classes
        query = client.query(kind=self.kind) if self.kind else client.query()
        if self.ancestor:
            query.ancestor = client.key(*self.ancestor)
        for item in self.filters:
            query.add_filter(
                filter=_client_filter(
                    _materialise_filter(item, client), property_filter, and_, or_, convert
                )
            )
        if self.keys_only:
            query.keys_only()
        elif self.projection:
            query.projection = list(self.projection)
        if self.order:
            query.order = list(self.order)
        if self.distinct_on:
            query.distinct_on = list(self.distinct_on)
        return query


def _modern(filters: tuple[ref.Filter, ...]) -> bool:
    for item in filters:
        if isinstance(item, ref.Or):
            return True
        if isinstance(item, ref.And) and _modern(item.children):
            return True
        if isinstance(item, ref.Cond) and item.op in ("!=", "IN", "NOT_IN"):
            return True
    return False


def disjunctions(filters: list[ref.Filter] | tuple[ref.Filter, ...]) -> int:
    """Sub-queries in disjunctive normal form, counting ``IN`` as one per value and, to be
    safe, ``!=`` as two ranges and ``NOT_IN`` with n values as n + 1 ranges."""
    total = 1
    for item in filters:
        total *= _disjunctions_one(item)
    return total


def _disjunctions_one(item: ref.Filter) -> int:
    if isinstance(item, ref.Cond):
        if item.op == "IN":
            return len(item.value)
        if item.op == "NOT_IN":
            return len(item.value) + 1
        return 2 if item.op == "!=" else 1
    if isinstance(item, ref.And):
        return disjunctions(item.children)
    return sum(_disjunctions_one(child) for child in item.children)


def _materialise_filter(item: ref.Filter, client: Any) -> ref.Filter:
    if isinstance(item, ref.Cond):
        return ref.Cond(item.prop, item.op, _materialise(item.value, client))
    children = tuple(_materialise_filter(c, client) for c in item.children)
    return ref.And(children) if isinstance(item, ref.And) else ref.Or(children)


def _client_filter(
    item: ref.Filter,
    property_filter: Any,
    and_: Any,
    or_: Any,
    convert: Callable[[Any], Any] | None,
) -> Any:
    if isinstance(item, ref.Cond):
        value = convert(item.value) if convert is not None else item.value
        return property_filter(item.prop, item.op, value)
    children = [_client_filter(c, property_filter, and_, or_, convert) for c in item.children]
    return and_(children) if isinstance(item, ref.And) else or_(children)


@dataclass
class Example:
    """One generated case: entities, a query, and where to split its pages."""

    entities: list[EntitySpec]
    query: QuerySpec
    page_sizes: list[int] = field(default_factory=list)


# -- values and entities -----------------------------------------------------------------------

_wide = scalar_values()


def filter_values() -> st.SearchStrategy[Any]:
    """A filter or property value: mostly from the pool, now and then anything indexable."""
    return st.one_of(st.sampled_from(VALUE_POOL), st.sampled_from(VALUE_POOL), _wide)


def _no_ambiguous_pairs(items: list[Any]) -> bool:
    """No two elements equal in the index but returned as different values by a projection.

    (``"a"`` and ``b"a"`` share an index entry; which type a projection returns for that
    entry is not specified, so one array never holds both.)
    """
    seen: dict[Any, Any] = {}
    for item in items:
        key = ref.sort_key(item)
        shown = ref.projected_value(item)
        if key in seen and type(seen[key]) is not type(shown):
            return False
        seen.setdefault(key, shown)
    return True


def _property_values() -> st.SearchStrategy[Any]:
    scalar = filter_values()
    array = st.lists(scalar, max_size=3, unique_by=ref.sort_key).filter(_no_ambiguous_pairs)
    return st.one_of(scalar, scalar, array)


@st.composite
def _key_paths(draw: st.DrawFn) -> tuple[Any, ...]:
    parent = draw(st.sampled_from(_PARENTS))
    kind = draw(st.sampled_from(["K", "K", "K", "L"]))
    return (*parent, kind, draw(st.sampled_from(_IDS)))


@st.composite
def entity_sets(draw: st.DrawFn, max_size: int = 12) -> list[EntitySpec]:
    """Up to ``max_size`` entities with unique keys: mixed types, arrays, missing and
    unindexed properties, entities under ancestors (and ancestors that are entities)."""
    paths = draw(st.lists(_key_paths(), max_size=max_size, unique=True))
    specs = []
    for path in paths:
        props = {}
        for name in PROPS:
            if draw(st.integers(0, 3)) > 0:  # a quarter of entities lack each property
                props[name] = draw(_property_values())
        # An empty list cannot carry exclude_from_indexes through the official client's
        # protobuf (it marks the elements), so it is never excluded here.
        exclude = tuple(
            name for name in props if props[name] != [] and draw(st.integers(0, 9)) == 0
        )
        specs.append(EntitySpec(path, props, exclude))
    return specs


# -- queries -----------------------------------------------------------------------------------


def _cond(draw: st.DrawFn, prop: str, op: str) -> ref.Cond:
    if prop == KEY:
        value: Any = draw(_key_paths().map(KeyPath))
        if op in ("IN", "NOT_IN"):
            value = draw(st.lists(_key_paths().map(KeyPath), min_size=1, max_size=3))
        return ref.Cond(prop, op, value)
    if op in ("IN", "NOT_IN"):
        return ref.Cond(prop, op, draw(st.lists(filter_values(), min_size=1, max_size=3)))
    return ref.Cond(prop, op, draw(filter_values()))


_RANGE = ["<", "<=", ">", ">="]


@st.composite
def query_specs(draw: st.DrawFn, profile: str | None = None, modern: bool = True) -> QuerySpec:
    """A valid query for ``profile`` (drawn when None); ``modern=False`` keeps to what the
    legacy emulator runs: no ``Or``, ``IN``, ``NOT_IN`` or ``!=``."""
    if profile is None:
        profile = draw(st.sampled_from(["legacy", "firestore"]))
    ancestor = draw(st.one_of(st.none(), st.sampled_from(ANCESTOR_PATHS)))
    limit = draw(st.one_of(st.none(), st.none(), st.integers(0, 6)))
    offset = draw(st.sampled_from([0, 0, 0, 1, 3]))
    keys_only = draw(st.integers(0, 6)) == 0
    if draw(st.integers(0, 9)) == 0:
        # kindless: __key__ filters and __key__ ASC only (§4.4)
        filters: tuple[ref.Filter, ...] = ()
        if draw(st.booleans()):
            op = draw(st.sampled_from(["=", *_RANGE]))
            filters = (_cond(draw, KEY, op),)
        order = draw(st.sampled_from([(), (KEY,)]))
        return QuerySpec(None, ancestor, filters, (), order, (), keys_only, limit, offset, profile)

    # Roles: inequality properties get range filters, equality properties = / IN.
    candidates = [*PROPS, KEY]
    max_ineq = 2 if profile == "firestore" else 1
    n_ineq = draw(st.integers(0, max_ineq))
    ineq = draw(
        st.lists(st.sampled_from(candidates), min_size=n_ineq, max_size=n_ineq, unique=True)
    )
    if KEY in ineq and len(ineq) > 1:
        ineq = [KEY]
    rest = [p for p in PROPS if p not in ineq]
    eq = draw(st.lists(st.sampled_from(rest), max_size=2, unique=True)) if rest else []
    special = draw(st.sampled_from([None, None, "!=", "NOT_IN"])) if modern else None
    use_in = modern and special != "NOT_IN"
    use_or = modern and special != "NOT_IN" and draw(st.integers(0, 3)) == 0

    filters_list: list[ref.Filter] = []
    or_prop: str | None = None
    if use_or and ineq and ineq[0] != KEY and draw(st.booleans()):
        # Or of ranges on the (first) inequality property, the only filters on it
        or_prop = ineq[0]
        children: list[ref.Filter] = []
        for _ in range(draw(st.integers(2, 3))):
            if draw(st.booleans()):
                children.append(_cond(draw, or_prop, draw(st.sampled_from(_RANGE))))
            else:
                children.append(
                    ref.And(
                        (
                            _cond(draw, or_prop, draw(st.sampled_from([">", ">="]))),
                            _cond(draw, or_prop, draw(st.sampled_from(["<", "<="]))),
                        )
                    )
                )
        filters_list.append(ref.Or(tuple(children)))
    for prop in ineq:
        if prop == or_prop:
            continue
        for _ in range(draw(st.integers(1, 2))):
            filters_list.append(_cond(draw, prop, draw(st.sampled_from(_RANGE))))
    if special is not None and ineq and ineq[-1] != or_prop:
        filters_list.append(_cond(draw, ineq[-1], special))
    for prop in eq:
        for _ in range(draw(st.integers(1, 2))):
            op = draw(st.sampled_from(["=", "=", "IN"])) if use_in else "="
            filters_list.append(_cond(draw, prop, op))
    eq_role = set(eq)
    if use_or and or_prop is None and rest:
        # Or of equalities (possibly on properties with no other filter)
        children = []
        for _ in range(draw(st.integers(2, 3))):
            prop = draw(st.sampled_from(rest))
            eq_role.add(prop)
            children.append(_cond(draw, prop, draw(st.sampled_from(["=", "IN"]))))
        filters_list.append(ref.Or(tuple(children)))
    if KEY not in ineq and len(ineq) < 2 and draw(st.integers(0, 5)) == 0:
        # (__key__ = with several inequalities: index rule not settled, see test_indexes)
        filters_list.append(_cond(draw, KEY, "="))
    filters_list = draw(st.permutations(filters_list))
    # "subject to disjunction limits" (§4.2): at most 30 sub-queries in normal form
    assume(disjunctions(filters_list) <= 30)

    # Orders: under legacy an explicit order starts with the inequality property (§4.3).
    order_pool = [*PROPS, KEY]
    order_props = draw(st.lists(st.sampled_from(order_pool), max_size=2, unique=True))
    if profile == "legacy" and ineq and order_props:
        order_props = [ineq[0]] + [p for p in order_props if p != ineq[0]][:1]
    if profile == "firestore" and [p for p in ineq if p != KEY]:
        # An explicit __key__ order with inequalities on other properties leaves the
        # recommended index open (tests/behaviour/test_indexes.py pins the results).
        order_props = [p for p in order_props if p != KEY]
    order = tuple(("-" if draw(st.booleans()) else "") + p for p in order_props)

    projection: tuple[str, ...] = ()
    distinct: tuple[str, ...] = ()
    projectable = [p for p in PROPS if p not in eq_role]
    if not keys_only and projectable and draw(st.integers(0, 2)) == 0:
        projection = tuple(
            draw(st.lists(st.sampled_from(projectable), min_size=1, max_size=2, unique=True))
        )
    if not ineq and not keys_only and draw(st.integers(0, 3)) == 0:
        pool = sorted(projection) if projection else [p for p in PROPS if p not in eq_role][:1]
        if pool:
            distinct = tuple(sorted(draw(st.lists(st.sampled_from(pool), min_size=1, unique=True))))
            if draw(st.booleans()):
                order = ()
            else:
                order = tuple(("-" if draw(st.booleans()) else "") + p for p in distinct)
    return QuerySpec(
        "K",
        ancestor,
        tuple(filters_list),
        projection,
        order,
        distinct,
        keys_only,
        limit,
        offset,
        profile,
    )


@st.composite
def examples(
    draw: st.DrawFn,
    profile: str | None = None,
    modern: bool = True,
    max_entities: int = 12,
) -> Example:
    """Entities, a valid query and page sizes for cursor paging."""
    entities = draw(entity_sets(max_entities))
    query = draw(query_specs(profile, modern))
    pages = draw(st.lists(st.integers(1, 5), min_size=1, max_size=6))
    return Example(entities, query, pages)


def describe(example: Example) -> str:
    """A readable dump of an example (for failure messages)."""
    lines = ["entities:"]
    lines.extend(f"  {e.path} {e.props} exclude={e.exclude}" for e in example.entities)
    lines.append(f"query: {example.query}")
    lines.append(f"pages: {example.page_sizes}")
    return "\n".join(lines)
