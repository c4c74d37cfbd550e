"""Engine-side query types: what ``run_query`` receives and returns (the v1 RunQuery shape).

Values inside filters are engine values (``KeyRef``, ``GeoValue``, ``datetime``, scalars,
lists for IN/NOT_IN), never public objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._values import KeyRef

__all__ = ["CompositeSpec", "FilterSpec", "QuerySpec", "ResultBatch", "ResultItem"]


@dataclass(frozen=True)
class FilterSpec:
    """``name op value`` with op in ``= < <= > >= != IN NOT_IN``."""

    name: str
    op: str
    value: Any


@dataclass(frozen=True)
class CompositeSpec:
    """``AND`` or ``OR`` of filters."""

    op: str
    filters: tuple[FilterSpec | CompositeSpec, ...]


@dataclass(frozen=True)
class QuerySpec:
    """A query without its in-flight parts (limit, offset, cursors)."""

    project: str
    database: str
    namespace: str
    kind: str | None
    ancestor: KeyRef | None = None
    filter: FilterSpec | CompositeSpec | None = None
    projection: tuple[str, ...] = ()
    orders: tuple[tuple[str, bool], ...] = ()  # (name, descending)
    distinct_on: tuple[str, ...] = ()

    @property
    def keys_only(self) -> bool:
        return self.projection == ("__key__",)


@dataclass(slots=True)
class ResultItem:
    """One result: its key, and either the stored body or projected values (or neither)."""

    key: KeyRef | bytes  # bytes: the encoded path, in the batch's partition
    body: bytes | None = None
    projection: dict[str, Any] | None = None


@dataclass
class ResultBatch:
    """One RunQuery response batch."""

    NOT_FINISHED = 1
    MORE_RESULTS_AFTER_LIMIT = 2
    NO_MORE_RESULTS = 3
    MORE_RESULTS_AFTER_CURSOR = 4

    results: list[ResultItem] = field(default_factory=list)
    end_cursor: bytes = b""
    more_results: int = NO_MORE_RESULTS
    skipped_results: int = 0
    partition: tuple[str, str, str] = ("", "", "")  # of results whose key is bytes
