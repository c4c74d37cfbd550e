"""Query planning: from a ``QuerySpec`` to index range scans (DESIGN.md §10).

Steps:

1. validate the query (value types, the legacy restrictions of SEMANTICS.md §4.3);
2. fix the query-level order: explicit orders, else the inequality properties, else key;
3. rewrite ``IN``/``!=``/``NOT_IN``/``OR`` into a disjunction of conjunctions of
   ``= < <= > >=`` conditions (each conjunction is a *branch*);
4. for each branch pick, in order: a kind/key scan of the entities table; one built-in
   single-property index; a merge join of built-in equality scans (Datastore's zigzag);
   an exact composite index from index.yaml. No index -> ``FailedPrecondition`` with the
   recommended index (§3.5).

Every branch is a range scan whose rows carry a *merge key* (the encoded sort values of the
query-level order, descending parts inverted); branches are merged on (merge key, entity key)
and cursors are positions in that space.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from . import exceptions
from ._limits import MAX_INDEXED_BYTES, is_reserved
from ._need_index import requirement, satisfies
from ._ordering import PATH_END, encode_path, encode_path_value, encode_value, invert, prefix_end
from ._queryspec import CompositeSpec, FilterSpec, QuerySpec
from ._registry import SERVING, CompositeIndex
from ._values import EntityValue, KeyRef
from .indexes import Index, IndexProperty

if TYPE_CHECKING:
    from ._profiles import Profile
    from ._registry import IndexRegistry

__all__ = ["Branch", "Cond", "Interval", "Plan", "plan_query", "rebind_ancestor", "typed_values"]

KEY = "__key__"
T = TypeVar("T")
_INEQUALITY = ("<", "<=", ">", ">=")
MAX_DISJUNCTIONS = 30


def _invalid(message: str) -> exceptions.DatastoreLiteError:
    return exceptions.InvalidArgument(message)


@dataclass
class Interval:
    """A range of encoded values; ``None`` bounds are open."""

    lo: bytes | None = None
    lo_incl: bool = True
    hi: bytes | None = None
    hi_incl: bool = True

    def add(self, op: str, value: bytes) -> None:
        if op in (">", ">="):
            incl = op == ">="
            if self.lo is None or value > self.lo or (value == self.lo and not incl):
                self.lo, self.lo_incl = value, incl
        else:
            incl = op == "<="
            if self.hi is None or value < self.hi or (value == self.hi and not incl):
                self.hi, self.hi_incl = value, incl

    def empty(self) -> bool:
        if self.lo is None or self.hi is None:
            return False
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_incl and self.hi_incl))

    def contains(self, value: bytes) -> bool:
        if self.lo is not None and (value < self.lo or (value == self.lo and not self.lo_incl)):
            return False
        return not (
            self.hi is not None and (value > self.hi or (value == self.hi and not self.hi_incl))
        )


@dataclass
class Cond:
    """The conditions of one branch on one property: equal values and/or one interval."""

    eq: list[bytes] = field(default_factory=list)
    interval: Interval | None = None

    def matches(self, values: list[bytes] | None) -> bool:
        """Datastore array semantics: each equality by any element; the interval by one."""
        if not values:
            return False
        for want in self.eq:
            if want not in values:
                return False
        return self.interval is None or any(self.interval.contains(v) for v in values)


@dataclass
class Component:
    """One part of a merge key: a constant (equality-fixed order) or a scanned component."""

    const: bytes | None = None
    position: int = -1  # index of the component in the index value (scanned)
    descending: bool = False  # the merge key holds the value inverted (descending order)
    name: str | None = None  # computed from the entity's own values (key-equality branches)
    is_key: bool = False  # a ``__key__`` component: a bare path encoding, no rank byte


@dataclass
class Branch:
    """One conjunction, served by one index range scan.

    ``layout`` names the components of the scanned index value (after the ancestor lead of
    an ancestor index) and whether each is stored inverted (descending composite parts).
    """

    source: str  # "entities" | "builtin" | "merge" | "composite"
    conds: dict[str, Cond]
    key_interval: Interval
    index_id: int | None = None
    index: Index | None = None
    layout: list[tuple[str, bool]] = field(default_factory=list)
    lead: bytes = b""  # ancestor index: the ancestor's path, leading every value
    prefix: bytes = b""  # lead + equality components (composite)
    n_prefix: int = 0  # number of equality components in the prefix
    interval: Interval | None = None  # on the whole index value
    scan_desc: bool = False  # built-in descending scan: value DESC, key ASC
    joins: list[tuple[int, bytes]] = field(default_factory=list)
    merge: list[Component] = field(default_factory=list)
    entry_checks: dict[int, Interval] = field(default_factory=dict)
    body_checks: dict[str, Cond] = field(default_factory=dict)
    empty: bool = False
    merge_is_tail: bool = False  # composite: merge key == index value after the prefix
    # the order this branch produces (the plan's, except for projected properties a
    # composite index holds in another order or direction)
    orders: list[tuple[str, bool]] = field(default_factory=list)
    # one entity may have several entries at one position (index components after a
    # __key__ component that the order ignores): keep the first
    may_repeat: bool = False
    # properties over which an entity may also repeat across branches (see plan_query)
    extra_bits: int = 0
    # the index holds filtered components between the ordered ones and the key: rows with
    # equal merge keys are re-sorted by key (firestore: inequalities after a __key__ order)
    regroup: bool = False
    # what rebind_ancestor needs to redo the ancestor's part: the key range before the
    # ancestor's bounds, emptiness for other reasons, and (composite) the condition range
    # on the first scanned component with its direction
    base_keys: Interval | None = None
    base_empty: bool = False
    range_on: tuple[Interval, bool] | None = None

    @property
    def computed(self) -> bool:
        """Whether merge keys are computed from entity values (key-equality branches)."""
        return any(c.name is not None for c in self.merge)

    _scans: dict[bool, Any] = field(default_factory=dict)  # executor's cached ScanSpecs
    # a rebound branch (rebind_ancestor): the scans of the branch it was made from, same
    # SQL with other bounds
    _scan_template: dict[bool, Any] | None = None

    _bits: int = -1

    @property
    def multi_bits(self) -> int:
        """Mask of the properties over which an entity may repeat in this scan (cached)."""
        if self._bits < 0:
            from .indexes import property_bit

            mask = 0
            interval = self.interval
            fixed_value = (
                interval is not None
                and interval.lo is not None
                and interval.lo == interval.hi
                and interval.lo_incl
            )
            if self.source == "builtin" and not fixed_value:
                mask = property_bit(self.layout[0][0])
            elif self.source == "composite":
                # components fixed by the equality prefix cannot repeat an entity; only
                # the scanned ones (one entry per element combination) can
                for name, _inverted in self.layout[self.n_prefix :]:
                    if name != KEY:
                        mask |= property_bit(name)
            self._bits = mask | self.extra_bits
        return self._bits


@dataclass
class Plan:
    """How to run a query."""

    spec: QuerySpec
    pid: int
    kind: str | None
    branches: list[Branch]
    orders: list[tuple[str, bool]]
    projection: tuple[str, ...]
    distinct_on: tuple[str, ...]
    keys_only: bool
    cross_branch: bool  # branches differ in their properties: an entity may match several
    fingerprint: bytes
    ancestor: KeyRef | None
    recommended: Index | None = None
    # rebind_ancestor's cache: the fingerprint's text around the ancestor's path
    fingerprint_parts: tuple[str, str] | None = None


# -- step 1: validation ------------------------------------------------------------------------


def _atoms(f: FilterSpec | CompositeSpec | None) -> list[FilterSpec]:
    if f is None:
        return []
    if isinstance(f, FilterSpec):
        return [f]
    out: list[FilterSpec] = []
    for child in f.filters:
        out.extend(_atoms(child))
    return out


def _has_or(f: FilterSpec | CompositeSpec | None) -> bool:
    if f is None or isinstance(f, FilterSpec):
        return False
    return f.op == "OR" or any(_has_or(c) for c in f.filters)


def _check_value(name: str, value: Any, op: str) -> None:
    if op in ("IN", "NOT_IN"):
        if type(value) is not list or not value:
            raise _invalid(f"A filter with operator {op} on {name!r} needs a non-empty list value.")
        if op == "NOT_IN" and len(value) > 10:
            raise _invalid(f"A NOT_IN filter on {name!r} may have at most 10 values.")
        for element in value:
            _check_value(name, element, "=")
        return
    if type(value) is list:
        raise _invalid("A list value is not allowed")
    if type(value) is EntityValue:
        raise _invalid("An entity value is not allowed")
    if type(value) in (str, bytes):
        size = len(value.encode("utf-8")) if type(value) is str else len(value)
        if size > MAX_INDEXED_BYTES:
            raise _invalid(f'The value of property "{name}" is longer than 1500 bytes.')


def _check_ancestor(spec: QuerySpec) -> None:
    anc = spec.ancestor
    if anc is None:
        return
    if anc.is_partial:
        from ._limits import describe_path

        raise _invalid(f"Key path element must not be incomplete: {describe_path(anc.path)}")
    if anc.namespace != spec.namespace or anc.project != spec.project:
        raise _invalid(
            f"ancestor namespace is {anc.namespace!r} but query namespace is {spec.namespace!r}"
        )


def _validate(spec: QuerySpec, profile: Profile, in_transaction: bool) -> list[FilterSpec]:
    atoms = _atoms(spec.filter)
    total = len(atoms) + len(spec.orders) + (1 if spec.ancestor is not None else 0)
    if total > 100:
        raise _invalid(
            "query is too large. may not have more than 100 filters + sort orders ancestor total"
        )
    _check_ancestor(spec)
    for atom in atoms:
        if atom.name == KEY:
            values = atom.value if atom.op in ("IN", "NOT_IN") else [atom.value]
            for value in values if isinstance(values, list) else [values]:
                if type(value) is not KeyRef:
                    raise _invalid(f"__key__ filter value must be a Key, not {value!r}")
                if value.is_partial:
                    from ._limits import describe_path

                    raise _invalid(
                        f"Key path element must not be incomplete: {describe_path(value.path)}"
                    )
                if value.namespace != spec.namespace:
                    raise _invalid(
                        f"__key__ filter namespace is {value.namespace!r} but query namespace "
                        f"is {spec.namespace!r}"
                    )
        else:
            _check_value(atom.name, atom.value, atom.op)
    if in_transaction and profile.ancestor_queries_only_in_transactions and spec.ancestor is None:
        raise _invalid("Only ancestor queries are allowed inside transactions.")
    # projection rules (SEMANTICS.md §4.3)
    proj = spec.projection
    if len(set(proj)) != len(proj):
        raise _invalid("cannot project a property multiple times")
    if KEY in spec.distinct_on:
        raise _invalid("group by is not supported for the property: __key__")
    for name in proj:
        if name != KEY and is_reserved(name):
            raise _invalid(f"projections are not supported for the property: {name}")
    eq_props = {a.name for a in atoms if a.op in ("=", "IN") and a.name != KEY}
    for name in proj:
        if name in eq_props:
            raise _invalid("cannot use projection on a property with an equality filter")
    # kindless queries
    if spec.kind is None:
        for atom in atoms:
            if atom.name != KEY:
                raise _invalid("kind is required for non-__key__ filters")
        for name, desc in spec.orders:
            if name != KEY or desc:
                raise _invalid("kind is required for all orders except __key__ ascending")
    ineq = _inequality_props(atoms)
    if not profile.multiple_inequalities and len(ineq) > 1:
        raise _invalid(
            f"Only one inequality filter per query is supported.  Encountered both "
            f"{ineq[0]} and {ineq[1]}"
        )
    if ineq and spec.orders and not profile.multiple_inequalities:
        first = spec.orders[0][0]
        if first != ineq[0]:
            raise _invalid(
                "The first sort property must be the same as the property to which the "
                f"inequality filter is applied.  In your query the first sort property is "
                f"{first} but the inequality filter is on {ineq[0]}"
            )
    if spec.distinct_on and spec.orders:
        leading = [name for name, _ in spec.orders[: len(spec.distinct_on)]]
        if sorted(leading) != sorted(spec.distinct_on):
            raise _invalid("items in the group by clause must be specified first in the ordering")
    return atoms


def _inequality_props(atoms: list[FilterSpec]) -> list[str]:
    out: list[str] = []
    for atom in atoms:
        if atom.op in (*_INEQUALITY, "!=", "NOT_IN") and atom.name not in out:
            out.append(atom.name)
    return out


# -- step 2: query-level order -----------------------------------------------------------------


def _top_level_key_equality(f: FilterSpec | CompositeSpec | None) -> bool:
    """Whether every result must meet a ``__key__ =`` filter (not inside an ``OR``)."""
    if f is None:
        return False
    if isinstance(f, FilterSpec):
        return f.name == KEY and f.op == "="
    return f.op == "AND" and any(_top_level_key_equality(c) for c in f.filters)


@dataclass
class Orders:
    """The query-level order and the role of each of its properties.

    ``free``: inequality properties with no explicit order (ascending, but an index may
    hold them descending: the scan then runs backwards). ``exists``: projected /
    distinct properties ordered only because the index serving the query holds them
    (any order and direction within that group).
    """

    orders: list[tuple[str, bool]]
    free: frozenset[str]
    exists: frozenset[str]


def _effective_orders(spec: QuerySpec, atoms: list[FilterSpec]) -> Orders:
    """Explicit orders (cut after ``__key__``), the inequality properties, then the
    distinct and projected properties (each group by name): the order of the index that
    serves the query (SEMANTICS.md §3.1, §4.3; tests/reference.py ``effective_orders``).

    Under a top-level ``__key__ =`` filter the explicit orders are dropped (SDK
    ``Normalize``). Orders after ``__key__`` cannot reorder entities, but inequality and
    projected properties still order the rows of one entity as its index does.
    """
    orders: list[tuple[str, bool]] = []
    seen: set[str] = set()
    explicit = () if _top_level_key_equality(spec.filter) else spec.orders
    for name, desc in explicit:
        if name in seen:
            continue
        seen.add(name)
        orders.append((name, desc))
        if name == KEY:
            break
    free: set[str] = set()
    projected = [p for p in spec.projection if p != KEY]
    # after an explicit __key__ order the inequality properties cannot reorder entities;
    # a projection still orders one entity's rows by them, as its index does
    if KEY not in seen or projected:
        for name in _inequality_props(atoms):
            if name not in seen:
                seen.add(name)
                orders.append((name, False))
                free.add(name)
    exists: set[str] = set()
    for name in [*sorted(spec.distinct_on), *sorted(projected)]:
        if name not in seen:
            seen.add(name)
            orders.append((name, False))
            exists.add(name)
    # a trailing __key__ ASC is the tie-break every query has anyway
    while orders and orders[-1] == (KEY, False):
        orders.pop()
    return Orders(orders, frozenset(free), frozenset(exists))


# -- step 3: disjunctive normal form -----------------------------------------------------------

Atom = tuple[str, str, Any]  # (name, op in = < <= > >=, engine value)


def _sorted_unique(values: list[Any], encode: Any) -> list[tuple[bytes, Any]]:
    seen: dict[bytes, Any] = {}
    for value in values:
        seen.setdefault(encode(value), value)
    return sorted(seen.items())


def _dnf(f: FilterSpec | CompositeSpec | None) -> list[list[Atom]]:
    if f is None:
        return [[]]
    if isinstance(f, FilterSpec):
        enc = (lambda v: encode_path(v.path)) if f.name == KEY else encode_value
        if f.op == "IN":
            return [[(f.name, "=", v)] for _, v in _sorted_unique(f.value, enc)]
        if f.op == "!=":
            return [[(f.name, "<", f.value)], [(f.name, ">", f.value)]]
        if f.op == "NOT_IN":
            values = [v for _, v in _sorted_unique(f.value, enc)]
            out = [[(f.name, "<", values[0])]]
            for low, high in itertools.pairwise(values):
                out.append([(f.name, ">", low), (f.name, "<", high)])
            out.append([(f.name, ">", values[-1])])
            return out
        return [[(f.name, f.op, f.value)]]
    parts = [_dnf(child) for child in f.filters]
    if f.op == "OR":
        return [conj for part in parts for conj in part]
    result: list[list[Atom]] = [[]]
    for part in parts:
        result = [a + b for a in result for b in part]
        if len(result) > MAX_DISJUNCTIONS * 4:
            break
    return result


# -- step 4: index selection per branch --------------------------------------------------------


def _branch_conds(conj: list[Atom]) -> tuple[dict[str, Cond], Interval, bool, bytes | None]:
    conds: dict[str, Cond] = {}
    keys = Interval()
    key_eq: set[bytes] = set()
    for name, op, value in conj:
        if name == KEY:
            enc = encode_path(value.path)
            if op == "=":
                key_eq.add(enc)
                keys.add(">=", enc)
                keys.add("<=", enc)
            else:
                keys.add(op, enc)
            continue
        cond = conds.setdefault(name, Cond())
        enc = encode_value(value)
        if op == "=":
            if enc not in cond.eq:
                cond.eq.append(enc)
        else:
            if cond.interval is None:
                cond.interval = Interval()
            cond.interval.add(op, enc)
    empty = (
        len(key_eq) > 1
        or keys.empty()
        or any(c.interval is not None and c.interval.empty() for c in conds.values())
    )
    key_value = None
    if len(key_eq) == 1:
        # a composite index may hold __key__ as an equality component (SDK: kept when an
        # inequality on another property exists): its value is the entity's path
        (path,) = {value.path for name, op, value in conj if name == KEY and op == "="}
        key_value = encode_path_value(path)
    return conds, keys, empty, key_value


def _ancestor_keys(ancestor: KeyRef | None, keys: Interval) -> Interval:
    if ancestor is None:
        return keys
    enc = encode_path(ancestor.path)
    return _within(keys, enc, prefix_end(enc))


def _within(keys: Interval, path: bytes, end: bytes | None) -> Interval:
    """Narrow ``keys`` (in place) to ``path`` and its descendants (``end``: its prefix_end)."""
    keys.add(">=", path)
    if end is not None:
        keys.add("<", end)
    return keys


def recommended_index(
    kind: str,
    ancestor: bool,
    conds: dict[str, Cond],
    orders: list[tuple[str, bool]],
    projection: tuple[str, ...],
) -> Index:
    """SEMANTICS.md §3.1: equality props by name, then the orders, then the rest.

    ``orders`` are the query-level orders (inequality, distinct and projected properties
    included); inequality properties they leave out (after a ``__key__`` order) and
    projected ones follow.
    """
    eq_props = sorted(name for name, c in conds.items() if c.eq)
    props = [IndexProperty(name) for name in eq_props]
    listed = set(eq_props)
    for name, desc in orders:
        if name in listed:
            continue
        props.append(IndexProperty(name, "desc" if desc else "asc"))
        listed.add(name)
    for name in sorted(n for n, c in conds.items() if c.interval is not None and n not in listed):
        props.append(IndexProperty(name))
        listed.add(name)
    for name in sorted(set(projection) - listed - {KEY}):
        props.append(IndexProperty(name))
    return Index(kind, ancestor, tuple(props))


def plan_query(
    spec: QuerySpec,
    pid: int,
    profile: Profile,
    registry: IndexRegistry,
    in_transaction: bool = False,
) -> Plan:
    """Plan ``spec``; raises InvalidArgument / FailedPrecondition like Datastore."""
    atoms = _validate(spec, profile, in_transaction)
    order = _effective_orders(spec, atoms)
    orders = order.orders
    conjunctions = _dnf(spec.filter)
    if len(conjunctions) > MAX_DISJUNCTIONS:
        raise _invalid(
            "The query contains more than 30 disjunctions after being converted to "
            "disjunctive normal form."
        )
    branches: list[Branch] = []
    recommended: Index | None = None
    prop_sets = set()
    for conj in conjunctions:
        conds, keys, empty, key_value = _branch_conds(conj)
        base_keys = replace(keys)  # _ancestor_keys narrows it in place
        keys = _ancestor_keys(spec.ancestor, keys)
        prop_sets.add(frozenset(conds))
        sdk_need = _sdk_requirement(spec, conj, registry)
        if sdk_need is not None:
            recommended = sdk_need
            break
        branch, needed = _plan_branch(spec, conds, keys, order, registry, key_value)
        if needed is not None:
            recommended = needed
            break
        assert branch is not None
        branch.base_keys = base_keys
        branch.base_empty = branch.empty or empty
        branch.empty = branch.base_empty or keys.empty()
        branches.append(branch)
    if len(branches) > 1:
        # an equality-fixed order property (x IN [1, 2] ORDER BY x) puts an entity holding
        # several of the values at a different position in each branch: such entities
        # get the first-position check
        from .indexes import property_bit

        for branch in branches:
            for name, _desc in orders:
                if name in branch.conds and branch.conds[name].eq:
                    branch.extra_bits |= property_bit(name)
    if recommended is None and len(branches) == 1:
        # one branch: its index decides the order of the projected properties
        orders = branches[0].orders
    elif recommended is None and any(b.orders != orders for b in branches):
        # the branches' indexes order the projected properties differently: they cannot
        # be merged; ask for the index that orders them by name
        assert spec.kind is not None
        conds = _branch_conds(conjunctions[0])[0]
        recommended = recommended_index(
            spec.kind, spec.ancestor is not None, conds, orders, spec.projection
        )
    plan = Plan(
        spec=spec,
        pid=pid,
        kind=spec.kind,
        branches=branches,
        orders=orders,
        projection=tuple(p for p in spec.projection if p != KEY),
        distinct_on=spec.distinct_on,
        keys_only=spec.keys_only,
        cross_branch=len(prop_sets) > 1,
        fingerprint=fingerprint(spec),
        ancestor=spec.ancestor,
        recommended=recommended,
    )
    return plan


def rebind_ancestor(plan: Plan, spec: QuerySpec) -> Plan:
    """``plan``, made for the same query under another ancestor, for ``spec``'s ancestor.

    Which index serves each branch, its layout, merge key and checks depend on whether
    the query has an ancestor, not on which: only the key range, the ancestor lead of an
    ancestor index (and the prefix and value range built on it) and the fingerprint do.
    An app that queries many users' streams plans once, not once per user (W10: with a
    plan per user, 10,000 users at 1M photos missed the plan cache and re-planned at
    every query, 35 us a query).
    """
    _check_ancestor(spec)
    ancestor = spec.ancestor
    assert ancestor is not None
    path = encode_path(ancestor.path)
    lead = path + PATH_END  # encode_path_value
    key_end = prefix_end(path)
    branches = []
    for b in plan.branches:
        base = b.base_keys
        assert base is not None
        # _ancestor_keys, from the path encoded once
        keys = _within(Interval(base.lo, base.lo_incl, base.hi, base.hi_incl), path, key_end)
        # a new branch (a __dict__ copy: copy.copy costs 3x as much), without the
        # executor's cached scans (_scans), which hold the old bounds
        new = _shallow_copy(b)
        new.key_interval = keys
        new.empty = b.base_empty or keys.empty()
        new._scans = {}
        new._scan_template = b._scans  # the executor rebinds these scans' bounds
        if b.source == "composite" and b.lead:
            new.lead = lead
            new.prefix = lead + b.prefix[len(b.lead) :]
            if b.range_on is not None:
                new.interval = _component_range(new.prefix, *b.range_on)
            else:
                new.interval = Interval(new.prefix, True, prefix_end(new.prefix), False)
        branches.append(new)
    out = _shallow_copy(plan)
    out.fingerprint = _rebound_fingerprint(plan, ancestor)
    out.spec, out.ancestor, out.branches = spec, ancestor, branches
    return out


def _shallow_copy(obj: T) -> T:
    out = object.__new__(type(obj))
    out.__dict__.update(obj.__dict__)
    return out


def _sdk_requirement(spec: QuerySpec, conj: list[Atom], registry: IndexRegistry) -> Index | None:
    """The index Datastore would demand for this conjunction, if none serves it (§3.1).

    Returns the recommended index when the SDK rules require a composite index and no
    serving index satisfies them; raises FailedPrecondition when the one that would is
    still building; None otherwise. Several inequality properties (firestore profile)
    follow the same rules, each inequality property after the explicit orders.
    """
    if spec.kind is None:
        return None
    # the answer depends on the query's shape only (names, operators, orders), not on its
    # values: remembered per shape so a new user's first query plans like a repeat one
    memo_key = (
        "sdk",
        spec.kind,
        spec.ancestor is not None,
        tuple((name, op) for name, op, _ in conj),
        spec.orders,
        spec.projection,
        spec.distinct_on,
    )
    return registry.recall(memo_key, lambda: _sdk_requirement_uncached(spec, conj, registry))


def _sdk_requirement_uncached(
    spec: QuerySpec, conj: list[Atom], registry: IndexRegistry
) -> Index | None:
    assert spec.kind is not None
    need = requirement(
        spec.kind,
        spec.ancestor is not None,
        [(name, op) for name, op, _ in conj],
        spec.orders,
        spec.projection,
        spec.distinct_on,
    )
    if not need.required:
        return None
    building: CompositeIndex | None = None
    for entry in registry.composites.get(spec.kind, ()):
        if satisfies(entry.index, need):
            if entry.state == SERVING:
                return None
            building = entry
    if building is not None:
        raise _still_building(building)
    return need.recommended()


def _still_building(entry: CompositeIndex) -> exceptions.DatastoreLiteError:
    return exceptions.FailedPrecondition(
        "The index this query needs is still being built "
        f"({entry.index.kind}: {', '.join(p.name for p in entry.index.properties)}; "
        f"state {entry.state}). Wait for the build or run `datastore-lite indexes build`."
    )


def _plan_branch(
    spec: QuerySpec,
    conds: dict[str, Cond],
    keys: Interval,
    order: Orders,
    registry: IndexRegistry,
    key_value: bytes | None = None,
) -> tuple[Branch | None, Index | None]:
    """Pick the index for one branch; (None, recommended index) when none serves.

    In order: a kind/key scan; a key-equality read; one built-in index; a merge join of
    built-in equality scans; a composite index; then, for what the SDK rules let run
    without a composite index or serve with one laid out for another order (firestore:
    inequalities after a ``__key__`` order): one built-in index for the single order
    with the other filters checked per row, or a kind/ancestor key scan with the filters
    checked per row.
    """
    kind = spec.kind
    orders = order.orders
    projection = tuple(p for p in spec.projection if p != KEY)
    eq_props = {n for n, c in conds.items() if c.eq}
    # SEMANTICS.md §4.3: sort orders on equality-filtered properties are ignored; within a
    # branch their value is a constant part of the merge key.
    scan_orders = [(n, d) for n, d in orders if n not in eq_props]
    consts = {
        n: (invert(conds[n].eq[0]) if d else conds[n].eq[0]) for n, d in orders if n in eq_props
    }

    def merge(scanned: dict[str, tuple[int, bool]]) -> list[Component]:
        out = []
        for name, _desc in orders:
            if name in consts:
                out.append(Component(const=consts[name]))
            elif name in scanned:
                position, desc = scanned[name]
                out.append(Component(position=position, descending=desc, is_key=name == KEY))
        return out

    def finish(branch: Branch) -> tuple[Branch, None]:
        if not branch.orders:
            branch.orders = list(orders)
        return branch, None

    # (a) kind / key scan of the entities table (keys-only allowed)
    if not conds and not projection and not scan_orders:
        return finish(Branch("entities", conds, keys))
    # a __key__ equality pins the branch to one entity (SDK: it drops every order): read it
    # by key, check the other filters on its values, and compute its sort values from them
    if key_value is not None and not projection:
        branch = Branch("entities", conds, keys, body_checks=dict(conds))
        for name, desc in orders:
            if name in consts:
                branch.merge.append(Component(const=consts[name]))
            else:
                branch.merge.append(Component(name=name, descending=desc, is_key=name == KEY))
        return finish(branch)
    if kind is None:  # pragma: no cover - _validate rejects every other kindless shape
        raise _invalid("kind is required for non-__key__ filters")

    involved = set(conds) | {n for n, _ in scan_orders} | set(projection)
    # (b) one built-in single-property index (not for ancestor queries: SEMANTICS.md §3.1),
    # in the order of its values (or of keys, under one equality)
    if len(involved) == 1 and spec.ancestor is None and KEY not in involved:
        (prop,) = involved
        cond = conds.get(prop)
        if scan_orders or (cond is not None and cond.eq):
            return finish(_builtin_branch(registry, kind, prop, conds, keys, scan_orders, merge))
    # (c) merge join of built-in equality scans: equalities only, key order, no projection
    if (
        conds
        and all(c.interval is None for c in conds.values())
        and not scan_orders
        and not projection
    ):
        pairs = [(n, v) for n, c in sorted(conds.items()) for v in c.eq]
        first_name, first_value = pairs[0]
        branch = Branch(
            "merge",
            conds,
            keys,
            index_id=registry.builtin_id(kind, first_name),
            layout=[(first_name, False)],
            interval=Interval(first_value, True, first_value, True),
        )
        for name, value in pairs[1:]:
            iid = registry.builtin_id(kind, name)
            if iid is None:
                branch.empty = True
            else:
                branch.joins.append((iid, value))
        if branch.index_id is None:
            branch.empty = True
        branch.merge = merge({})
        return finish(branch)
    # (d) a composite index
    chosen = _match_composite(
        registry, kind, conds, scan_orders, order, projection, spec, key_value
    )
    if chosen is not None:
        return _composite_branch(spec, conds, keys, orders, consts, chosen, key_value), None
    # (e) one built-in index for the single order, the other filters checked per row
    if (
        spec.ancestor is None
        and len(scan_orders) == 1
        and scan_orders[0][0] != KEY
        and set(projection) <= {scan_orders[0][0]}
    ):
        prop = scan_orders[0][0]
        return finish(_builtin_branch(registry, kind, prop, conds, keys, scan_orders, merge))
    # (f) no order: the kind (or the ancestor's keys) in key order, filters checked per row
    if not scan_orders and not projection:
        branch = Branch("entities", conds, keys, body_checks=dict(conds))
        branch.merge = merge({})
        return finish(branch)
    # (g) a composite index holding filtered properties between the orders and the key
    # (the SDK's index for inequalities after an explicit __key__ order), re-sorted by key
    # within each group of equal sort values
    chosen = _match_composite(
        registry, kind, conds, scan_orders, order, projection, spec, key_value, regroup=True
    )
    if chosen is not None:
        return _composite_branch(spec, conds, keys, orders, consts, chosen, key_value), None
    needed = recommended_index(kind, spec.ancestor is not None, conds, orders, projection)
    return None, needed


def _builtin_branch(
    registry: IndexRegistry,
    kind: str,
    prop: str,
    conds: dict[str, Cond],
    keys: Interval,
    scan_orders: list[tuple[str, bool]],
    merge: Any,
) -> Branch:
    """A scan of ``prop``'s built-in index; conditions on other properties per row."""
    cond = conds.get(prop)
    desc = bool(scan_orders and scan_orders[0][1])
    branch = Branch(
        "builtin",
        conds,
        keys,
        index_id=registry.builtin_id(kind, prop),
        index=Index(kind, False, (IndexProperty(prop),)),
        layout=[(prop, False)],
        scan_desc=desc,
    )
    if branch.index_id is None:
        branch.empty = True  # nothing of this kind has ever had the property
    if cond is not None and cond.eq:
        branch.interval = Interval(cond.eq[0], True, cond.eq[0], True)
        rest = Cond(eq=cond.eq[1:], interval=cond.interval)
        if rest.eq or rest.interval is not None:
            branch.body_checks[prop] = rest
    elif cond is not None:
        branch.interval = cond.interval
    for name, other in conds.items():
        if name != prop:
            branch.body_checks[name] = other
    branch.merge = merge({prop: (0, desc)})
    return branch


@dataclass
class _Match:
    """A composite index serving a branch, and how (see ``_match_composite``)."""

    entry: CompositeIndex
    n_eq: int  # leading components fixed by equalities
    reverse: bool  # scan backwards (free inequality orders held descending)
    n_ordered: int  # components after the prefix that the merge key holds
    may_repeat: bool  # components after a __key__ component the order ignores
    regroup: bool = False  # filtered components before the key: re-sort groups by key


def _composite_branch(
    spec: QuerySpec,
    conds: dict[str, Cond],
    keys: Interval,
    orders: list[tuple[str, bool]],
    consts: dict[str, bytes],
    match: _Match,
    key_value: bytes | None,
) -> Branch:
    entry, n_eq = match.entry, match.n_eq
    index = entry.index
    props = index.properties
    branch = Branch(
        "composite",
        conds,
        keys,
        index_id=entry.id,
        index=index,
        layout=[(p.name, p.descending) for p in props],
        n_prefix=n_eq,
        scan_desc=match.reverse,
        may_repeat=match.may_repeat or match.regroup,
        regroup=match.regroup,
    )
    if spec.ancestor is not None:
        branch.lead = encode_path_value(spec.ancestor.path)
    parts = [branch.lead]
    for eq_prop in props[:n_eq]:
        component = key_value if eq_prop.name == KEY else conds[eq_prop.name].eq[0]
        assert component is not None
        parts.append(invert(component) if eq_prop.descending else component)
    branch.prefix = b"".join(parts)
    # every condition not enforced by the prefix or the scanned range is checked per row
    covered_eq = {p.name for p in props[:n_eq]}
    position = {p.name: i for i, p in enumerate(props)}
    first_scanned = props[n_eq].name if n_eq < len(props) else None
    for name, cond in conds.items():
        rest_eq = cond.eq[1:] if name in covered_eq else cond.eq
        interval = cond.interval
        if interval is not None and name == first_scanned and name not in covered_eq:
            branch.range_on = (interval, props[n_eq].descending)
            branch.interval = _component_range(branch.prefix, interval, props[n_eq].descending)
            interval = None
        elif interval is not None and name in position and name not in covered_eq:
            # SEMANTICS.md §3.3: ranges on one property hold for one element: per entry
            branch.entry_checks[position[name]] = interval
            interval = None
        if rest_eq or interval is not None:
            branch.body_checks[name] = Cond(eq=list(rest_eq), interval=interval)
    if branch.interval is None:
        end = prefix_end(branch.prefix) if branch.prefix else None
        branch.interval = Interval(branch.prefix or None, True, end, False)
    # the merge key: the orders, constants for equality-fixed ones, the others as scanned
    # (in the direction the scan produces them); projected properties in index order
    # the non-constant orders are the next components in index order (projected ones may
    # come in another order or direction than the plan's: the branch reports its own)
    ordered = iter(range(n_eq, n_eq + match.n_ordered))
    merge: list[Component] = []
    produced: list[tuple[str, bool]] = []
    for name, desc in orders:
        if name in consts:
            merge.append(Component(const=consts[name]))
            produced.append((name, desc))
            continue
        pos = next(ordered)
        prop = props[pos]
        pdesc = prop.descending != match.reverse
        merge.append(Component(position=pos, descending=pdesc, is_key=prop.name == KEY))
        produced.append((prop.name, pdesc))
    branch.merge = merge
    branch.orders = produced
    # when the merge key is exactly the value after the prefix, cursors resume in SQL
    branch.merge_is_tail = [c.position for c in merge] == list(range(n_eq, len(props)))
    return branch


def _component_range(prefix: bytes, interval: Interval, descending: bool) -> Interval:
    """Bounds on a composite value for a range on the component right after ``prefix``.

    Encodings are prefix-free, so ``component >= lo`` is ``value >= prefix + lo`` and
    ``component > lo`` is ``value >= prefix_end(prefix + lo)``; a descending component is
    stored inverted, which swaps the bounds.
    """
    lo, lo_incl, hi, hi_incl = interval.lo, interval.lo_incl, interval.hi, interval.hi_incl
    if descending:
        lo, lo_incl, hi, hi_incl = (
            invert(hi) if hi is not None else None,
            hi_incl,
            invert(lo) if lo is not None else None,
            lo_incl,
        )
    out = Interval()
    if lo is None:
        out.lo, out.lo_incl = (prefix, True) if prefix else (None, True)
    elif lo_incl:
        out.lo, out.lo_incl = prefix + lo, True
    else:
        end = prefix_end(prefix + lo)
        out.lo, out.lo_incl = (end, True) if end is not None else (prefix + lo, False)
    if hi is None:
        end = prefix_end(prefix) if prefix else None
        out.hi, out.hi_incl = (end, False) if end is not None else (None, True)
    elif hi_incl:
        end = prefix_end(prefix + hi)
        out.hi, out.hi_incl = (end, False) if end is not None else (None, True)
    else:
        out.hi, out.hi_incl = prefix + hi, False
    return out


def _match_composite(
    registry: IndexRegistry,
    kind: str,
    conds: dict[str, Cond],
    scan_orders: list[tuple[str, bool]],
    order: Orders,
    projection: tuple[str, ...],
    spec: QuerySpec,
    key_value: bytes | None = None,
    regroup: bool = False,
) -> _Match | None:
    """A serving index laid out as equalities + the scan orders (+ filtered extras).

    SEMANTICS.md §3.4: after a prefix of equality properties the index holds exactly the
    scan orders: explicit ones in their direction; free inequality ones ascending, or all
    descending when every order is free (the scan then runs backwards); the projected /
    distinct ones in any order and direction. After that only a ``__key__ ASC`` tie-break,
    or, once a ``__key__`` component fixed the order, filtered or projected properties
    (checked per entry); with ``regroup``, filtered properties without that ``__key__``
    component (no projection; the executor re-sorts each group of equal sort values by
    key). Prefers the longest equality prefix, then the plan's own order of projected
    properties. A matching index that is still building raises
    FailedPrecondition saying so.
    """
    eq_props = {n for n, c in conds.items() if c.eq}
    # the decision reads names and operators, never values: remembered per query shape
    memo_key = (
        "match",
        kind,
        frozenset(eq_props),
        frozenset(conds),
        tuple(scan_orders),
        order.free,
        order.exists,
        projection,
        spec.ancestor is not None,
        key_value is not None,
        regroup,
    )
    if memo_key in registry.memo:
        remembered: _Match | None = registry.memo[memo_key]
        return remembered
    head = [(n, d) for n, d in scan_orders if n not in order.exists]
    tail = [(n, d) for n, d in scan_orders if n in order.exists]
    tail_names = sorted(n for n, _ in tail)
    all_free = bool(head) and all(n in order.free for n, _ in head)
    usable = set(conds) | set(projection)
    best: tuple[tuple[int, int], _Match] | None = None
    building: CompositeIndex | None = None
    for entry in registry.composites.get(kind, ()):
        index = entry.index
        if index.ancestor != (spec.ancestor is not None):
            continue
        props = list(index.properties)
        n_eq = 0
        while n_eq < len(props) and (
            props[n_eq].name in eq_props or (props[n_eq].name == KEY and key_value is not None)
        ):
            n_eq += 1
        rest = props[n_eq:]
        if len(rest) < len(scan_orders):
            continue
        reverse = all_free and rest[0].descending
        if any(
            p.name != name or p.descending != (reverse if name in order.free else desc)
            for (name, desc), p in zip(head, rest)
        ):
            continue
        extras = rest[len(head) : len(scan_orders)]
        if sorted(p.name for p in extras) != tail_names:
            continue
        after = rest[len(scan_orders) :]
        keyed = any(name == KEY for name, _ in head)
        if after and after[0].name == KEY and not after[0].descending and not reverse:
            after = after[1:]  # the natural tie-break
            keyed = True
        grouped = False
        if after and not keyed:
            if not (regroup and head and not projection and not reverse):
                continue
            if any(p.name not in conds or p.name == KEY for p in after):
                continue
            grouped = True
        elif after and any(p.name not in usable for p in after):
            continue
        if not set(projection) <= {p.name for p in props}:
            continue
        if entry.state != SERVING:
            building = entry
            continue
        in_order = [(p.name, p.descending != reverse) for p in extras] == tail
        score = (n_eq, int(in_order))
        if best is None or score > best[0]:
            match = _Match(entry, n_eq, reverse, len(scan_orders), bool(after) and not grouped)
            match.regroup = grouped
            best = (score, match)
    if best is None and building is not None:
        raise _still_building(building)
    result = best[1] if best is not None else None
    registry.remember(memo_key, result)
    return result


def need_index_error(index: Index) -> exceptions.DatastoreLiteError:
    """SEMANTICS.md §3.5: production's FailedPrecondition with the paste-ready YAML."""
    return exceptions.FailedPrecondition(
        "no matching index found. recommended index is:\n" + index.to_yaml()
    )


def fingerprint(spec: QuerySpec) -> bytes:
    """8 bytes identifying the query (not its limit, offset or cursors)."""
    path = spec.ancestor.path if spec.ancestor is not None else None
    return _fingerprint_of(_fingerprint_parts(spec), path)


def _fingerprint_parts(spec: QuerySpec) -> tuple[str, str]:
    """``fingerprint``'s text before and after the ancestor's path: together the repr of
    (project, database, namespace, kind, ancestor path, filter, projection, orders,
    distinct_on), as cursors issued by earlier versions were signed with."""
    head = ", ".join(repr(v) for v in (spec.project, spec.database, spec.namespace, spec.kind))
    tail = ", ".join(repr(v) for v in (spec.filter, spec.projection, spec.orders, spec.distinct_on))
    return f"({head}, ", f", {tail})"


def _rebound_fingerprint(plan: Plan, ancestor: KeyRef) -> bytes:
    """``fingerprint`` of ``plan``'s query under ``ancestor``, reusing the rest's text."""
    parts = plan.fingerprint_parts
    if parts is None:
        parts = plan.fingerprint_parts = _fingerprint_parts(plan.spec)
    return _fingerprint_of(parts, ancestor.path)


def _fingerprint_of(parts: tuple[str, str], path: tuple[Any, ...] | None) -> bytes:
    text = parts[0] + repr(path) + parts[1]
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()


def typed_values(f: FilterSpec | CompositeSpec | None) -> Any:
    """The types of a filter's values (and the signs of floats), for plan cache keys.

    ``FilterSpec`` equality is Python's ``==``, under which ``1 == 1.0 == True`` and
    ``0.0 == -0.0``; Datastore tells them apart (SEMANTICS.md §2.1).
    """
    if f is None:
        return None
    if isinstance(f, FilterSpec):
        return _typed(f.value)
    return tuple(typed_values(child) for child in f.filters)


def _typed(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return (kind, math.copysign(1.0, value))
    if kind is list:
        return tuple(_typed(v) for v in value)
    return kind
