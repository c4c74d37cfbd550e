"""The GQL syntax tree: what :func:`~datastore_lite.gql.parse` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


# -- syntax tree ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    """A literal value (string, int, float, bool, None, bytes from BLOB, datetime)."""

    value: Any
    offset: int


@dataclass(frozen=True)
class Binding:
    """A binding site: ``@name`` (``name`` set) or ``@1`` (``position`` set)."""

    name: str | None
    position: int | None
    offset: int

    def __str__(self) -> str:
        return f"@{self.name if self.name is not None else self.position}"


@dataclass(frozen=True)
class KeyLiteral:
    """``KEY([PROJECT('p'),] [NAMESPACE('n'),] Kind, id_or_name, ...)``."""

    path: tuple[str | int, ...]
    project: str | None
    namespace: str | None
    offset: int


@dataclass(frozen=True)
class ArrayLiteral:
    """``ARRAY(v, ...)``."""

    items: tuple[Literal | Binding | KeyLiteral, ...]
    offset: int


Value = Literal | Binding | KeyLiteral | ArrayLiteral
Position = Literal | Binding  # a LIMIT / OFFSET operand: an integer or a binding


@dataclass(frozen=True)
class Condition:
    """``prop op value``; ``op`` is one of ``= < <= > >= != IN NOT_IN CONTAINS HAS_ANCESTOR``.

    Conditions written value-first are stored property-first (``7 < n`` is ``n > 7``;
    ``KEY(...) HAS DESCENDANT __key__`` is ``__key__ HAS_ANCESTOR KEY(...)``) and
    ``n IS NULL`` is ``n = NULL``.
    """

    prop: str
    op: str
    value: Value
    offset: int


@dataclass(frozen=True)
class Compound:
    """``AND`` / ``OR`` of conditions."""

    op: str
    parts: tuple[Condition | Compound, ...]


@dataclass(frozen=True)
class GqlSelect:
    """A parsed ``SELECT`` (see the module docstring)."""

    kind: str | None = None
    projection: tuple[str, ...] = ()
    distinct_on: tuple[str, ...] = ()
    where: Condition | Compound | None = None
    order: tuple[tuple[str, bool], ...] = ()  # (property, descending)
    limit: tuple[Position, ...] = ()  # LIMIT n / @c: one item; LIMIT FIRST(a, b): two
    offset: tuple[Position, ...] = ()  # OFFSET a: one item; OFFSET @cursor + n: two
    offset_at: int = 0


@dataclass(frozen=True)
class Aggregation:
    """``COUNT(*)``, ``COUNT_UP_TO(n)``, ``SUM(prop)`` or ``AVG(prop)``, with its alias."""

    function: str
    prop: str | None = None
    up_to: Position | None = None
    alias: str | None = None


@dataclass(frozen=True)
class GqlAggregate:
    """A parsed aggregation: ``SELECT COUNT(*) ...`` or ``AGGREGATE ... OVER (SELECT ...)``."""

    aggregations: tuple[Aggregation, ...]
    query: GqlSelect


@dataclass
class _Parsed:
    """A statement and every binding site and literal in it."""

    statement: GqlSelect | GqlAggregate
    bindings: list[Binding] = field(default_factory=list)
    literals: list[int] = field(default_factory=list)  # offsets, for allow_literals=False
