"""A brute-force reference evaluator of Datastore queries, written from SEMANTICS.md.

This is the oracle the query engine is checked against (STYLE.md §8 rule 13). It is
deliberately naive — every entity is examined, every index entry is materialised — and it
imports nothing from datastore_lite but the public value classes, so it cannot share a bug
with the engine. Rules implemented (section numbers refer to SEMANTICS.md):

* cross-type value order (§2.1): null < {int, timestamp} < bool < {str, bytes} < double <
  geo point < key, with the within-class rules (timestamps as int64 microseconds, str as
  UTF-8 bytes, doubles in their sortable IEEE-754 order so ``-0.0 < 0.0`` and NaN is the
  largest and equal to itself), and key order (§1.3);
* filters (§4.2): ``= < <= > >= != IN NOT_IN`` and ``And``/``Or`` composites, evaluated on
  the index entries of a property (§3.1/§3.2: a missing or unindexed property has none; an
  empty list is one null entry under the legacy profile and none under firestore);
  equality filters may each match a different element, while all range filters on one
  property (``< <= > >= != NOT_IN``) must be met by ONE element (§3.3);
* ordering: explicit orders, else the inequality properties ascending (in order of first
  appearance), else the ``distinct_on`` properties; a projection adds its remaining
  properties (sorted by name, as the index does); ties broken by key ascending, even for
  descending sorts. Each order property sorts by the smallest (asc) / largest (desc) of
  its elements that pass the filters on that property (§3.3 "pruning");
* results: every index entry of every matching entity (the cross product of the pruned
  element sets) is sorted; ``distinct_on`` keeps the first entry per distinct value; then
  a full-entity or keys-only result appears once, at its first entry, and a projection
  result once per distinct (key, projected values); then offset and limit (§4.1).

The module also knows the legacy restrictions of §4.3 (:func:`legacy_error`) and which
queries need a composite index and which index to recommend (:func:`required_index`,
§3.1/§3.5).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from datastore_lite import Entity, GeoPoint, Key

__all__ = [
    "EQUALITY_OPS",
    "RANGE_OPS",
    "And",
    "Cond",
    "Filter",
    "IndexDef",
    "Or",
    "RefQuery",
    "Result",
    "Row",
    "dnf",
    "effective_orders",
    "evaluate",
    "index_yaml",
    "inequality_properties",
    "key_sort_key",
    "legacy_error",
    "missing_index_message",
    "projected_value",
    "required_index",
    "sort_key",
]

KEY = "__key__"
EQUALITY_OPS = frozenset({"=", "IN"})
RANGE_OPS = frozenset({"<", "<=", ">", ">=", "!=", "NOT_IN"})
ALL_OPS = EQUALITY_OPS | RANGE_OPS
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# §2.1 order classes, ascending.
RANK_NULL, RANK_INT, RANK_BOOL, RANK_STR, RANK_DOUBLE, RANK_GEO, RANK_KEY = range(7)

SortKey = tuple[Any, ...]


# -- value order (§2.1, §1.3) ------------------------------------------------------------------


def micros(value: dt.datetime) -> int:
    """Microseconds since the epoch; a naive datetime is UTC (§2.1)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return (value - EPOCH) // dt.timedelta(microseconds=1)


def double_order(value: float) -> int:
    """The sortable IEEE-754 encoding of §2.1: negative -> flip all bits, else flip the sign.

    Every NaN is the positive quiet NaN (the largest double, equal to itself).
    """
    if math.isnan(value):
        bits = 0x7FF8000000000000
    else:
        bits = struct.unpack(">Q", struct.pack(">d", value))[0]
    if bits >> 63:
        return bits ^ 0xFFFFFFFFFFFFFFFF
    return bits | (1 << 63)


def key_sort_key(key: Key) -> SortKey:
    """§1.3: (project, namespace, path); per element kind, then every id before every name.

    Strings compare byte-wise as UTF-8; a path that is a prefix of another sorts first
    (tuple comparison gives exactly that).
    """
    path = []
    flat = key.flat_path
    for i in range(0, len(flat), 2):
        ident = flat[i + 1]
        ident_key = (0, ident) if isinstance(ident, int) else (1, ident.encode("utf-8"))
        path.append((flat[i].encode("utf-8"), ident_key))
    return (
        (key.project or "").encode("utf-8"),
        (key.namespace or "").encode("utf-8"),
        tuple(path),
    )


def sort_key(value: Any) -> SortKey:
    """The position of one indexed value in Datastore's mixed-type order (§2.1).

    Two values are equal for filters exactly when their sort keys are equal: int 0 equals
    the epoch timestamp, ``"a"`` equals ``b"a"``, NaN equals NaN, ``-0.0`` differs from
    ``0.0``, and ``0`` never equals ``0.0`` or ``False``.
    """
    if value is None:
        return (RANK_NULL,)
    if isinstance(value, bool):  # before int: bool is an int subclass
        return (RANK_BOOL, int(value))
    if isinstance(value, int):
        return (RANK_INT, value)
    if isinstance(value, dt.datetime):
        return (RANK_INT, micros(value))
    if isinstance(value, str):
        return (RANK_STR, value.encode("utf-8"))
    if isinstance(value, bytes):
        return (RANK_STR, value)
    if isinstance(value, float):
        return (RANK_DOUBLE, double_order(value))
    if isinstance(value, GeoPoint):
        return (RANK_GEO, double_order(float(value.latitude)), double_order(float(value.longitude)))
    if isinstance(value, Key):
        return (RANK_KEY, key_sort_key(value))
    raise TypeError(f"{type(value).__name__} values are not indexed")


def projected_value(value: Any) -> Any:
    """What a projection returns for an index value (§2.2): timestamps as int µs."""
    if isinstance(value, dt.datetime):
        return micros(value)
    return value


class Desc:
    """Reverses the comparison of a sort key (a descending order component)."""

    __slots__ = ("key",)

    def __init__(self, key: SortKey) -> None:
        self.key = key

    def __lt__(self, other: Desc) -> bool:
        return other.key < self.key

    def __gt__(self, other: Desc) -> bool:
        return other.key > self.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Desc) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"Desc({self.key!r})"


# -- the query model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cond:
    """One property filter ``prop op value`` (``IN``/``NOT_IN`` take a list)."""

    prop: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if self.op not in ALL_OPS:
            raise ValueError(f"unknown operator {self.op!r}")


@dataclass(frozen=True)
class And:
    """All children must match."""

    children: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    """At least one child must match."""

    children: tuple[Filter, ...]


Filter = Cond | And | Or


@dataclass(frozen=True)
class RefQuery:
    """A query as the reference sees it. ``filters`` are ANDed (as the client does)."""

    kind: str | None = None
    ancestor: Key | None = None
    filters: tuple[Filter, ...] = ()
    projection: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    distinct_on: tuple[str, ...] = ()
    keys_only: bool = False
    limit: int | None = None
    offset: int = 0

    @property
    def projected(self) -> tuple[str, ...]:
        """The projected properties (empty for keys-only and full-entity queries)."""
        if self.keys_only:
            return ()
        return tuple(p for p in self.projection if p != KEY)

    @property
    def is_keys_only(self) -> bool:
        return self.keys_only or tuple(self.projection) == (KEY,)


@dataclass
class Row:
    """One index entry of one entity: its sort key and the elements it holds."""

    sort: tuple[Any, ...]
    entity: Entity
    values: dict[str, Any]


@dataclass
class Result:
    """One query result.

    ``entity`` is the stored entity; ``projection`` maps each projected property to the
    value the query returns for it (None when the query is not a projection).
    """

    entity: Entity
    projection: dict[str, Any] | None = None
    keys_only: bool = False

    @property
    def key(self) -> Key:
        assert self.entity.key is not None
        return self.entity.key


# -- filters -----------------------------------------------------------------------------------


def walk(filters: Iterable[Filter]) -> Iterable[Cond]:
    """Every property filter, depth first, in the order written."""
    for item in filters:
        if isinstance(item, Cond):
            yield item
        else:
            yield from walk(item.children)


def dnf(filters: Sequence[Filter]) -> list[list[Cond]]:
    """The disjunctive normal form of the AND of ``filters``: a list of conjunctions."""
    conjuncts: list[list[Cond]] = [[]]
    for item in filters:
        conjuncts = [a + b for a in conjuncts for b in _dnf_one(item)]
    return conjuncts


def _dnf_one(item: Filter) -> list[list[Cond]]:
    if isinstance(item, Cond):
        return [[item]]
    if isinstance(item, And):
        return dnf(item.children)
    out: list[list[Cond]] = []
    for child in item.children:
        out.extend(_dnf_one(child))
    return out


def top_level_conds(filters: Sequence[Filter]) -> list[Cond]:
    """The filters every result must meet (top-level AND, nested Ands flattened)."""
    out: list[Cond] = []
    for item in filters:
        if isinstance(item, Cond):
            out.append(item)
        elif isinstance(item, And):
            out.extend(top_level_conds(item.children))
    return out


def inequality_properties(query: RefQuery) -> list[str]:
    """Properties with a range filter (``< <= > >= != NOT_IN``), in order of appearance."""
    out: list[str] = []
    for cond in walk(query.filters):
        if cond.op in RANGE_OPS and cond.prop not in out:
            out.append(cond.prop)
    return out


def _test(element: Any, cond: Cond) -> bool:
    """Does one index value satisfy one filter? (Not type-restricted, §2.1.)"""
    have = sort_key(element)
    op = cond.op
    if op == "IN":
        return have in {sort_key(v) for v in cond.value}
    if op == "NOT_IN":
        return have not in {sort_key(v) for v in cond.value}
    want = sort_key(cond.value)
    if op == "=":
        return have == want
    if op == "!=":
        return have != want
    if op == "<":
        return have < want
    if op == "<=":
        return have <= want
    if op == ">":
        return have > want
    return have >= want


# -- index entries of an entity ------------------------------------------------------------------


def _lookup(values: Mapping[str, Any], exclude: Iterable[str], parts: list[str]) -> list[Any]:
    """The raw values stored under a (possibly dotted) property name, or ``[]``."""
    name, rest = parts[0], parts[1:]
    if name in set(exclude) or name not in values:
        return []
    value = values[name]
    if not rest:
        return [value]
    found: list[Any] = []
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, Mapping):
            sub_exclude = getattr(item, "exclude_from_indexes", ())
            found.extend(_lookup(item, sub_exclude, rest))
    return found


def elements(entity: Entity, prop: str, profile: str) -> list[Any]:
    """The index values of ``prop`` for ``entity``, one per distinct element (§3.1-§3.3).

    A missing or unindexed property has no entry; a list gives one entry per distinct
    element; an empty list is a null entry under the legacy profile and nothing under
    firestore (§2.2); an embedded entity has no entry of its own (its sub-properties are
    indexed under dotted names).
    """
    if prop == KEY:
        assert entity.key is not None
        return [entity.key]
    out: list[Any] = []
    seen: set[SortKey] = set()
    for raw in _lookup(entity, entity.exclude_from_indexes, prop.split(".")):
        if isinstance(raw, list):
            items = raw if raw else ([None] if profile == "legacy" else [])
        else:
            items = [raw]
        for item in items:
            if isinstance(item, Mapping | list):
                continue
            key = sort_key(item)
            if key not in seen:
                seen.add(key)
                out.append(item)
    return out


def _match(entity: Entity, conds: list[Cond], profile: str) -> dict[str, list[Any]] | None:
    """If ``entity`` satisfies the conjunction, the surviving elements of each property.

    Equality filters (``=``/``IN``) may each be met by a different element; all range
    filters on one property must be met by one element (§3.3); the survivors of a property
    are the elements that meet every range filter on it (and the equality values).
    """
    by_prop: dict[str, list[Cond]] = {}
    for cond in conds:
        by_prop.setdefault(cond.prop, []).append(cond)
    survivors: dict[str, list[Any]] = {}
    for prop, prop_conds in by_prop.items():
        found = elements(entity, prop, profile)
        equalities = [c for c in prop_conds if c.op in EQUALITY_OPS]
        ranges = [c for c in prop_conds if c.op in RANGE_OPS]
        for cond in equalities:
            if not any(_test(e, cond) for e in found):
                return None
        kept = [e for e in found if all(_test(e, c) for c in ranges)]
        if not kept:
            return None
        if equalities:
            # An equality-filtered property is constant within the scan of one equality
            # value; several equality filters on it keep the elements meeting any of them.
            kept = [e for e in kept if any(_test(e, c) for c in equalities)]
        survivors[prop] = kept
    return survivors


def _in_scope(entity: Entity, query: RefQuery) -> bool:
    key = entity.key
    assert key is not None
    if query.kind is not None and key.kind != query.kind:
        return False
    if query.ancestor is not None:
        anc = query.ancestor.flat_path
        if key.flat_path[: len(anc)] != anc:
            return False
        if (key.namespace or None) != (query.ancestor.namespace or None):
            return False
    return True


# -- ordering ------------------------------------------------------------------------------------


def explicit_orders(query: RefQuery) -> list[tuple[str, bool]]:
    """The explicit orders as (property, descending), without repeats."""
    out: list[tuple[str, bool]] = []
    for item in query.order:
        desc = item.startswith("-")
        prop = item[1:] if desc else item
        if prop not in [p for p, _ in out]:
            out.append((prop, desc))
    return out


def effective_orders(query: RefQuery) -> list[tuple[str, bool]]:
    """The full sort of the results, ending with ``__key__``.

    Explicit orders, then the inequality properties not already ordered (ascending, in
    order of first appearance), then the ``distinct_on`` properties not yet ordered
    (ascending, by name), then the remaining projected properties (ascending, by name) —
    the order of the index that serves the query (§3.1) — and finally the key ascending
    (legacy tie-break, even after descending sorts). Orders after a ``__key__`` order
    cannot matter and are dropped; under a ``__key__ =`` filter all explicit orders are
    dropped (SDK ``Normalize``; emulator: ``__key__ = k ORDER BY x`` returns k even
    without ``x``).
    """
    orders = explicit_orders(query)
    if any(c.prop == KEY and c.op == "=" for c in top_level_conds(query.filters)):
        orders = []  # one key at most: its orders are dropped, so they require nothing
    names = [p for p, _ in orders]
    extra = [*inequality_properties(query), *sorted(query.distinct_on), *sorted(query.projected)]
    for prop in extra:
        if prop not in names:
            orders.append((prop, False))
            names.append(prop)
    if KEY in names:
        orders = orders[: names.index(KEY) + 1]
    else:
        orders.append((KEY, False))
    return orders


# -- evaluation ----------------------------------------------------------------------------------


def rows(entities: Iterable[Entity], query: RefQuery, profile: str = "legacy") -> list[Row]:
    """Every index entry the query visits, sorted (before distinct/dedup/offset/limit)."""
    orders = effective_orders(query)
    needed = [p for p, _ in orders if p != KEY]
    for prop in list(query.projected) + list(query.distinct_on):
        if prop not in needed:
            needed.append(prop)
    conjuncts = dnf(query.filters)
    out: list[Row] = []
    for entity in entities:
        if not _in_scope(entity, query):
            continue
        seen: set[tuple[Any, ...]] = set()
        for conds in conjuncts:
            survivors = _match(entity, conds, profile)
            if survivors is None:
                continue
            columns = [
                survivors[prop] if prop in survivors else elements(entity, prop, profile)
                for prop in needed
            ]
            for combo in itertools.product(*columns):
                values = dict(zip(needed, combo))
                sort = tuple(
                    _component(values[p] if p != KEY else entity.key, desc) for p, desc in orders
                )
                identity = (sort, tuple(sort_key(v) for v in combo))
                if identity in seen:
                    continue
                seen.add(identity)
                out.append(Row(sort, entity, values))
    out.sort(key=lambda row: row.sort)
    return out


def _component(value: Any, desc: bool) -> Any:
    key = sort_key(value)
    return Desc(key) if desc else key


def evaluate(entities: Iterable[Entity], query: RefQuery, profile: str = "legacy") -> list[Result]:
    """The results of ``query`` over ``entities``, in order (§3.3, §4.1, §4.5)."""
    results: list[Result] = []
    seen_distinct: set[tuple[Any, ...]] = set()
    seen_results: set[tuple[Any, ...]] = set()
    projected = query.projected
    for row in rows(entities, query, profile):
        if query.distinct_on:
            distinct = tuple(sort_key(row.values[p]) for p in query.distinct_on)
            if distinct in seen_distinct:
                continue
            seen_distinct.add(distinct)
        assert row.entity.key is not None
        key = key_sort_key(row.entity.key)
        identity: tuple[Any, ...]
        if projected:
            identity = (key, tuple(sort_key(row.values[p]) for p in projected))
        else:
            identity = (key,)
        if identity in seen_results:
            continue
        seen_results.add(identity)
        if projected:
            proj = {p: projected_value(row.values[p]) for p in projected}
            results.append(Result(row.entity, proj))
        else:
            results.append(Result(row.entity, None, keys_only=query.is_keys_only))
    results = results[query.offset :]
    if query.limit is not None:
        results = results[: query.limit]
    return results


# -- legacy restrictions (§4.3) ----------------------------------------------------------------


def legacy_error(query: RefQuery, *, in_transaction: bool = False) -> str | None:
    """The InvalidArgument message a legacy-profile query gets (§4.3), or None if valid."""
    ineq = inequality_properties(query)
    if len(ineq) > 1:
        return (
            "Only one inequality filter per query is supported.  "
            f"Encountered both {ineq[0]} and {ineq[1]}"
        )
    orders = explicit_orders(query)
    if ineq and orders and orders[0][0] != ineq[0]:
        return (
            "The first sort property must be the same as the property to which the "
            "inequality filter is applied.  In your query the first sort property is "
            f"{orders[0][0]} but the inequality filter is on {ineq[0]}"
        )
    if query.kind is None:
        if any(c.prop != KEY for c in walk(query.filters)):
            return "kind is required for non-__key__ filters"
        if any(o != (KEY, False) for o in orders):
            return "kind is required for all orders except __key__ ascending"
    return None


# -- composite indexes (§3.1, §3.5) ---------------------------------------------------------------


@dataclass(frozen=True)
class IndexDef:
    """A composite index: kind, ancestor flag and (property, descending) pairs."""

    kind: str
    ancestor: bool = False
    properties: tuple[tuple[str, bool], ...] = field(default=())

    def yaml(self) -> str:
        return index_yaml(self)


def index_yaml(index: IndexDef) -> str:
    """The index in the form the missing-index error prints it (§3.5)."""
    lines = [f"- kind: {index.kind}"]
    if index.ancestor:
        lines.append("  ancestor: yes")
    lines.append("  properties:")
    for name, desc in index.properties:
        lines.append(f"  - name: {name}")
        if desc:
            lines.append("    direction: desc")
    return "\n".join(lines) + "\n"


def missing_index_message(index: IndexDef) -> str:
    """The FailedPrecondition message for a query needing ``index`` (§3.5)."""
    return "no matching index found. recommended index is:\n" + index_yaml(index)


def required_index(query: RefQuery) -> IndexDef | None:
    """The composite index a query needs (None if built-in indexes serve it), §3.1.

    Follows the App Engine SDK (``Normalize``, ``RemoveNativelySupportedComponents``,
    ``CompositeIndexForQuery``) as summarised in SEMANTICS.md §3.1, for queries whose
    filters are a conjunction; ``IN`` counts as an equality and ``!=``/``NOT_IN`` as
    inequalities. Details pinned by probing the Cloud Datastore emulator with
    ``--require_indexes`` (tests/differential/test_diff_queries.py):

    * the orders are normalised first (orders on equality properties dropped, all orders
      dropped under a ``__key__ =`` filter, orders after ``__key__`` dropped); the
      projected and distinct properties not covered by an equality, an inequality or a
      remaining order are "exists" properties;
    * when there are none, the natively supported parts go: a trailing ``__key__ ASC``
      order, and the ``__key__`` filters unless there is a ``__key__ DESC`` order or an
      inequality on another property. With exists properties both stay
      (emulator: ``projection x, __key__ = k`` and ``projection x ORDER BY __key__`` need
      an index, ``projection x ORDER BY x, __key__`` does not);
    * no index is needed for equalities alone, or for one property in a non-ancestor query
      (unless that is ``__key__ DESC``).

    Recommended properties: equality properties sorted by name, then the orders (the
    implicit inequality order included) with their directions, then the exists properties:
    distinct ones sorted by name, then projected ones sorted by name (emulator,
    autogenerated index.yaml: ``z = 3, distinct_on [b], projection [b, a]`` -> z, b, a).
    """
    if query.kind is None:
        return None
    conds = top_level_conds(query.filters)
    ineq = list(inequality_properties(query))
    eq = sorted({c.prop for c in conds if c.op in EQUALITY_OPS})
    orders = [(p, d) for p, d in explicit_orders(query) if p not in eq]
    if KEY in eq:
        orders = []
    names = [p for p, _ in orders]
    if KEY in names:
        orders = orders[: names.index(KEY) + 1]
    listed = set(eq) | {p for p, _ in orders} | set(ineq)
    # emulator (autogenerated index.yaml): distinct properties first, each group by name
    grouped = sorted({p for p in query.distinct_on if p not in listed})
    exists = grouped + sorted({p for p in query.projected if p not in listed and p not in grouped})
    if not exists:
        key_desc = False
        if orders and orders[-1][0] == KEY:
            if orders[-1][1]:
                key_desc = True
            else:
                orders = orders[:-1]
        if not key_desc and not [p for p in ineq if p != KEY]:
            eq = [p for p in eq if p != KEY]
            ineq = [p for p in ineq if p != KEY]
    if not ineq and not exists and not orders and KEY not in eq:
        return None  # built-in indexes, merge-joined for several equalities
    postfix = list(orders)
    for prop in ineq:
        if prop not in [p for p, _ in postfix]:
            postfix.append((prop, False))
    count = len(eq) + len(postfix) + len(exists)
    if query.ancestor is None and count <= 1 and postfix != [(KEY, True)]:
        return None  # one built-in single-property index
    props = [(p, False) for p in eq] + postfix + [(p, False) for p in exists]
    return IndexDef(query.kind, query.ancestor is not None, tuple(props))
