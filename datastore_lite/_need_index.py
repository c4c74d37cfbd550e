"""Which queries need a composite index: the App Engine SDK's rules, exactly.

A transcription of ``datastore_index.py`` (``Normalize``, ``RemoveNativelySupportedComponents``,
``CompositeIndexForQuery``, ``GetRecommendedIndexProperties`` and the postfix matching of
``MinimalCompositeIndexForQuery``), summarised in SEMANTICS.md §3.1/§3.4. The executor may
serve a query some other way; this module only decides whether Datastore would refuse it
for lack of a composite index, and which index it would recommend.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .indexes import Index, IndexProperty

__all__ = ["Requirement", "requirement", "satisfies"]

KEY = "__key__"
_SPECIAL = frozenset({KEY, "__scatter__", "__unapplied_log_timestamp_us__"})


@dataclass(frozen=True)
class Requirement:
    """What a query needs from a composite index (SDK ``CompositeIndexForQuery``)."""

    required: bool
    kind: str | None
    ancestor: bool
    prefix: frozenset[str]  # equality properties
    ordered: tuple[tuple[str, bool | None], ...]  # (name, descending | None = either)
    group_by: frozenset[str]
    unordered: frozenset[str]

    def recommended(self) -> Index:
        """SEMANTICS.md §3.1: equalities by name, orders, then group-by / projected extras."""
        props = [IndexProperty(name) for name in sorted(self.prefix)]
        props += [IndexProperty(name, "desc" if desc else "asc") for name, desc in self.ordered]
        props += [IndexProperty(name) for name in sorted(self.group_by)]
        props += [IndexProperty(name) for name in sorted(self.unordered)]
        return Index(self.kind or "", self.ancestor, tuple(props))


def requirement(
    kind: str | None,
    ancestor: bool,
    filters: Iterable[tuple[str, str]],
    orders: Iterable[tuple[str, bool]],
    projection: Iterable[str],
    group_by: Iterable[str],
) -> Requirement:
    """Decide for one conjunction: ``filters`` are (name, op) with op in ``= < <= > >=``."""
    filters = list(filters)
    group = list(group_by)
    exists = [p for p in projection if p != KEY] + group
    # -- Normalize -----------------------------------------------------------------------------
    eq = {name for name, op in filters if op == "="}
    ineq = {name for name, op in filters if op != "="}
    eq -= ineq
    new_orders: list[tuple[str, bool]] = []
    seen = set(eq)
    for name, desc in orders:
        if name not in seen:
            seen.add(name)
            new_orders.append((name, desc))
    # emulator-probed (tests/differential/test_diff_queries.py): under a __key__ equality
    # every order goes BEFORE the exists properties are computed, so an ordered distinct
    # property becomes an exists property
    if KEY in eq:
        new_orders = []
    cut: list[tuple[str, bool]] = []
    for name, desc in new_orders:
        cut.append((name, desc))
        if name == KEY:
            break
    orders_n = cut
    remove = set(eq) | {name for name, _ in orders_n} | ineq
    exists_filters: list[str] = []
    for name in exists:
        if name not in remove:
            remove.add(name)
            exists_filters.append(name)
    kept = list(filters)
    # -- RemoveNativelySupportedComponents -----------------------------------------------------
    if not exists_filters:
        key_desc = False
        if orders_n and orders_n[-1][0] == KEY:
            if not orders_n[-1][1]:
                orders_n = orders_n[:-1]
            else:
                key_desc = True
        if not key_desc and not any(op != "=" and name != KEY for name, op in kept):
            kept = [(name, op) for name, op in kept if name != KEY]
    # -- CompositeIndexForQuery ----------------------------------------------------------------
    required = kind is not None
    eq_filters = [name for name, op in kept if op == "="]
    ineq_filters = [name for name, op in kept if op != "="]
    if (
        kind
        and not ineq_filters
        and not exists_filters
        and not orders_n
        and not set(eq_filters) & _SPECIAL
    ):
        required = False
    group_set = set(group)
    prefix = frozenset(eq_filters)
    ordered: list[tuple[str, bool | None]] = [(n, d) for n, d in orders_n]
    # the inequality properties not already ordered follow the orders, either direction
    # (SDK: only without orders, where the legacy profile's single inequality property is
    # the one order; several inequality properties, firestore: each, in order of
    # appearance, as tests/reference.py's required_index does)
    for name in ineq_filters:
        if all(name != n for n, _ in ordered):
            ordered.append((name, None))
    post_group = frozenset(n for n in exists_filters if n in group_set)
    post_unordered = frozenset(n for n in exists_filters if n not in group_set)
    count = len(prefix) + len(ordered) + len(post_group) + len(post_unordered)
    if kind and not ancestor and count <= 1:
        required = False
        if ordered and ordered[0][0] == KEY and ordered[0][1] is True:
            required = True
    return Requirement(required, kind, ancestor, prefix, tuple(ordered), post_group, post_unordered)


def satisfies(index: Index, need: Requirement) -> bool:
    """Whether an existing index serves the query (SDK postfix matching, §3.4).

    The index must end with the unordered and group-by properties (in any order within each
    group), preceded by exactly the ordered properties (a ``None`` direction accepts
    either); what remains in front must be equality properties.
    """
    if index.kind != need.kind or index.ancestor != need.ancestor:
        return False
    props = list(index.properties)
    for group in (need.unordered, need.group_by):
        if not group:
            continue
        tail = props[-len(group) :] if len(props) >= len(group) else []
        if {p.name for p in tail} != set(group) or len(tail) != len(group):
            return False
        props = props[: -len(group)]
    if need.ordered:
        n = len(need.ordered)
        if len(props) < n:
            return False
        tail = props[-n:]
        for (name, desc), prop in zip(need.ordered, tail):
            if prop.name != name or (desc is not None and prop.descending != desc):
                return False
        # A ``None`` direction (an inequality property with no explicit order) accepts
        # either (SDK). Results still come ascending on it, so several such properties
        # must share one direction (the scan runs backwards when they are descending),
        # and after explicit orders they must be ascending.
        free = {prop.descending for (_, desc), prop in zip(need.ordered, tail) if desc is None}
        if len(free) > 1 or (free == {True} and any(d is not None for _, d in need.ordered)):
            return False
        props = props[:-n]
    return all(p.name in need.prefix for p in props)
