"""Metadata kinds ``__namespace__``, ``__kind__``, ``__property__`` (SEMANTICS.md §4.9)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._queryspec import ResultBatch

if TYPE_CHECKING:
    from ._api import LocalDatastoreAPI
    from ._planner import Plan

__all__ = ["METADATA_KINDS", "is_metadata_kind", "run"]

METADATA_KINDS = frozenset({"__namespace__", "__kind__", "__property__"})


def is_metadata_kind(kind: str | None) -> bool:
    return kind in METADATA_KINDS


def run(
    api: LocalDatastoreAPI,
    plan: Plan,
    limit: int | None,
    offset: int,
    start_cursor: bytes | None,
    end_cursor: bytes | None,
) -> ResultBatch:
    """Metadata queries (implemented in issue #7)."""
    return ResultBatch()
