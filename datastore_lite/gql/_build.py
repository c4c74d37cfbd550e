"""Binding GQL: resolving @sites and literals, and building the query objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import exceptions
from .._convert import to_value
from ..key import Key
from ..query import And, BaseFilter, Or, PropertyFilter, _decode_token
from ._lexer import _BINDING_NAME, KEY_PROPERTY, _error
from ._parser import _parse
from ._queries import CountUpToAggregation, GqlAggregationQuery, GqlQuery
from ._syntax import (
    ArrayLiteral,
    Binding,
    Compound,
    Condition,
    GqlAggregate,
    GqlSelect,
    KeyLiteral,
    Literal,
    Position,
    Value,
    _Parsed,
)

if TYPE_CHECKING:
    from ..client import Client


# -- binding and building -------------------------------------------------------------------


class _Binder:
    """Resolves binding sites and literal nodes to Python values, tracking what was used."""

    def __init__(
        self,
        client: Client,
        text: str,
        positional: Sequence[Any],
        named: Mapping[str, Any],
        allow_literals: bool,
    ) -> None:
        self.client = client
        self.text = text
        self.positional = positional
        self.named = named
        self.allow_literals = allow_literals
        for name in named:
            if not _BINDING_NAME.fullmatch(name):
                raise exceptions.InvalidArgument(
                    f'GQL binding name "{name}" is not a valid name ([A-Za-z_$][A-Za-z_$0-9]*)'
                )
            if name.startswith("__") and name.endswith("__"):
                raise exceptions.InvalidArgument(f'GQL binding name "{name}" is reserved (__...__)')

    def check_sites(self, parsed: _Parsed) -> None:
        """Every site bound, every binding used, no literal when literals are disallowed."""
        if not self.allow_literals and parsed.literals:
            at = min(parsed.literals)
            raise _error(self.text, at, "literals are not allowed here (allow_literals=False)")
        used_names = {b.name for b in parsed.bindings if b.name is not None}
        used_positions = {b.position for b in parsed.bindings if b.position is not None}
        for site in parsed.bindings:
            if site.name is not None and site.name not in self.named:
                given = ", ".join(sorted(self.named)) or "none"
                raise _error(
                    self.text, site.offset, f"no value bound to @{site.name} (named: {given})"
                )
            if site.position is not None and site.position > len(self.positional):
                raise _error(
                    self.text,
                    site.offset,
                    f"no value bound to @{site.position} ({len(self.positional)} positional "
                    "value(s) given)",
                )
        for position in range(1, len(self.positional) + 1):
            if position not in used_positions:
                raise exceptions.InvalidArgument(
                    f"GQL positional binding @{position} is not used by the query"
                )
        for name in self.named:
            if name not in used_names:
                raise exceptions.InvalidArgument(
                    f'GQL named binding "{name}" is not used by the query (no @{name} in it)'
                )

    def bound(self, site: Binding) -> Any:
        if site.name is not None:
            return self.named[site.name]
        assert site.position is not None
        return self.positional[site.position - 1]

    def value(self, node: Value) -> Any:
        """The Python value of a value node (bindings checked as Datastore values)."""
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, KeyLiteral):
            client = self.client
            namespace = client.namespace if node.namespace is None else (node.namespace or None)
            return Key(
                *node.path,
                project=node.project or client.project,
                namespace=namespace,
                database=client.database,
            )
        if isinstance(node, ArrayLiteral):
            return [self.value(item) for item in node.items]
        value = self.bound(node)
        if isinstance(value, tuple):
            value = list(value)
        try:
            to_value(value)
        except ValueError as exc:
            if len(exc.args) == 1:  # "Value out of range: ..."
                reason = f"{node} is bound to an invalid value: {exc.args[0]}"
            else:  # ("Unknown protobuf attr type", type)
                reason = f"{node} is bound to a {type(value).__name__}, not a Datastore value"
            raise _error(self.text, node.offset, reason) from None
        return value

    def position(self, node: Position, role: str) -> tuple[str, Any]:
        """``("count", int)`` or ``("cursor", token)`` for a LIMIT / OFFSET operand."""
        if isinstance(node, Literal):
            return "count", node.value
        value = self.bound(node)
        if isinstance(value, int) and not isinstance(value, bool):
            return "count", value
        if isinstance(value, (bytes, str)):
            try:
                _decode_token(value)
            except exceptions.InvalidArgument as exc:
                raise _error(self.text, node.offset, f"{node} in {role}: {exc.message}") from None
            return "cursor", value
        raise _error(
            self.text,
            node.offset,
            f"{node} in {role} is bound to a {type(value).__name__}; expected an integer or a "
            "cursor (a next_page_token)",
        )


@dataclass
class _Window:
    """LIMIT / OFFSET / cursors of a select, resolved."""

    limit: int | None = None
    offset: int = 0
    start_cursor: bytes | str | None = None
    end_cursor: bytes | str | None = None


def _window(binder: _Binder, select: GqlSelect) -> _Window:
    window = _Window()
    text = binder.text
    if select.limit:
        resolved = [binder.position(p, "LIMIT") for p in select.limit]
        kinds = sorted(kind for kind, _ in resolved)
        if len(resolved) == 2 and kinds != ["count", "cursor"]:
            raise _error(
                text,
                select.limit[0].offset,
                "LIMIT FIRST(a, b) needs one integer and one cursor @binding",
            )
        for node, (kind, value) in zip(select.limit, resolved):
            if kind == "cursor":
                window.end_cursor = value
            elif value < 0:
                raise _error(text, node.offset, f"the limit {value} is < 0")
            else:
                window.limit = value
    if select.offset:
        resolved = [binder.position(p, "OFFSET") for p in select.offset]
        if len(resolved) == 2 and (resolved[0][0], resolved[1][0]) != ("cursor", "count"):
            raise _error(
                text, select.offset_at, "OFFSET a + b needs a cursor @binding + an integer"
            )
        for kind, value in resolved:
            if kind == "cursor":
                window.start_cursor = value
            elif value < 0:
                raise _error(text, select.offset_at, f"the offset {value} is < 0")
            else:
                window.offset = value
    return window


def _filters(binder: _Binder, where: Condition | Compound | None) -> tuple[list[Any], Key | None]:
    """Query ``filters`` (tuples for the top-level ANDed conditions) and the ancestor."""
    if where is None:
        return [], None
    top = list(where.parts) if isinstance(where, Compound) and where.op == "AND" else [where]
    while any(isinstance(p, Compound) and p.op == "AND" for p in top):  # (a AND b) AND c
        flat: list[Condition | Compound] = []
        for part in top:
            flat.extend(part.parts if isinstance(part, Compound) and part.op == "AND" else [part])
        top = flat
    filters: list[Any] = []
    ancestor: Key | None = None
    for part in top:
        if isinstance(part, Compound):
            filters.append(_compound(binder, part))
        elif part.op == "HAS_ANCESTOR":
            if ancestor is not None:
                raise _error(binder.text, part.offset, "a query can have only one HAS ANCESTOR")
            value = binder.value(part.value)
            if not isinstance(value, Key):
                raise _error(
                    binder.text,
                    part.offset,
                    f"HAS ANCESTOR needs a key, not a {type(value).__name__}",
                )
            ancestor = value
        else:
            filters.append(_condition(binder, part))
    return filters, ancestor


def _compound(binder: _Binder, node: Compound) -> BaseFilter:
    parts: list[BaseFilter] = []
    for part in node.parts:
        if isinstance(part, Compound):
            parts.append(_compound(binder, part))
        else:
            if part.op == "HAS_ANCESTOR":
                raise _error(
                    binder.text,
                    part.offset,
                    "HAS ANCESTOR must be ANDed at the top level of WHERE, not inside OR",
                )
            parts.append(PropertyFilter(*_condition(binder, part)))
    return Or(parts) if node.op == "OR" else And(parts)


def _condition(binder: _Binder, node: Condition) -> tuple[str, str, Any]:
    """``(property, operator, value)`` in the Query API's terms."""
    value = binder.value(node.value)
    op = node.op
    is_list = isinstance(value, list)
    if op == "CONTAINS":  # CONTAINS is = on a multi-valued property
        op = "IN" if is_list else "="
    elif op in ("IN", "NOT_IN"):
        if not is_list:  # emulator: "n IN 5" means n IN ARRAY(5)
            value, is_list = [value], True
    elif is_list:
        raise _error(
            binder.text,
            node.offset,
            f"a list value is only allowed with IN, NOT IN or CONTAINS, not {op}",
        )
    if is_list and any(isinstance(item, list) for item in value):
        raise _error(binder.text, node.offset, "an array cannot contain another array")
    if node.prop == KEY_PROPERTY:
        items = value if is_list else [value]
        for item in items:
            if not isinstance(item, Key):
                raise _error(
                    binder.text,
                    node.offset,
                    f"__key__ can only be compared with keys, not a {type(item).__name__}",
                )
    return node.prop, op, value


def _select_kwargs(binder: _Binder, select: GqlSelect) -> dict[str, Any]:
    filters, ancestor = _filters(binder, select.where)
    return {
        "kind": select.kind,
        "filters": filters,
        "ancestor": ancestor,
        "projection": list(select.projection),
        "distinct_on": list(select.distinct_on),
        "order": [f"-{name}" if descending else name for name, descending in select.order],
    }


def build(
    client: Client,
    query_string: str,
    positional_bindings: Sequence[Any] = (),
    named_bindings: Mapping[str, Any] | None = None,
    *,
    allow_literals: bool = True,
) -> GqlQuery | GqlAggregationQuery:
    """Parse and bind GQL into a query on ``client`` (what ``Client.gql()`` calls).

    Args:
        client: The client the query runs on; its project, database and namespace apply
            (also to ``KEY(...)`` literals without ``PROJECT``/``NAMESPACE``).
        query_string: The GQL text.
        positional_bindings: Values of ``@1``, ``@2``, ... (every one must be used).
        named_bindings: Values of ``@name`` sites (every one must be used).
        allow_literals: ``False`` rejects any literal in the text (values must be bound),
            as ``GqlQuery.allow_literals`` does in the Datastore API.

    Returns:
        A :class:`GqlQuery`, or a :class:`GqlAggregationQuery` for aggregation GQL.

    Raises:
        GqlSyntaxError: The text is not GQL.
        InvalidArgument: A binding is missing, unused or of the wrong type; a value is
            invalid where it is used.
    """
    parsed = _parse(query_string)
    binder = _Binder(
        client, query_string, positional_bindings, named_bindings or {}, allow_literals
    )
    binder.check_sites(parsed)
    statement = parsed.statement
    select = statement.query if isinstance(statement, GqlAggregate) else statement
    window = _window(binder, select)
    query = GqlQuery(
        client,
        query_string=query_string,
        limit=window.limit,
        offset=window.offset,
        start_cursor=window.start_cursor,
        end_cursor=window.end_cursor,
        **_select_kwargs(binder, select),
    )
    if not isinstance(statement, GqlAggregate):
        return query
    if select.offset or window.end_cursor is not None:
        at = select.offset_at if select.offset else select.limit[0].offset
        raise _error(
            query_string,
            at,
            "datastore_lite aggregations support LIMIT n but not OFFSET or cursors",
        )
    aggregation_query = GqlAggregationQuery(client, query, query_string=query_string)
    for item in statement.aggregations:
        if item.function == "COUNT":
            aggregation_query.count(alias=item.alias)
        elif item.function == "SUM":
            assert item.prop is not None
            aggregation_query.sum(item.prop, alias=item.alias)
        elif item.function == "AVG":
            assert item.prop is not None
            aggregation_query.avg(item.prop, alias=item.alias)
        else:
            assert item.up_to is not None
            kind, up_to = binder.position(item.up_to, "COUNT_UP_TO")
            if kind != "count" or up_to <= 0:
                raise _error(
                    query_string, item.up_to.offset, "COUNT_UP_TO needs a positive integer"
                )
            aggregation_query.add_aggregation(CountUpToAggregation(up_to, alias=item.alias))
    return aggregation_query
