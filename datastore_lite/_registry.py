"""The index registry: which indexes exist, their ids and states, cached per process.

Index definitions live in ``dl_indexes`` so every process agrees on them. A process caches
them and reloads when the database's index generation moves (checked inside each commit's
write transaction, so a writer never misses an index another process just added).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .backends.sql import SQLBackend
from .indexes import Index, IndexProperty

__all__ = ["CompositeIndex", "IndexRegistry"]

BUILDING, SERVING, DELETING = "building", "serving", "deleting"
MEMO_SIZE = 4096
_T = TypeVar("_T")


class CompositeIndex:
    """A registered composite index: its id, definition and state."""

    __slots__ = ("id", "index", "state")

    def __init__(self, index_id: int, index: Index, state: str) -> None:
        self.id = index_id
        self.index = index
        self.state = state

    def __repr__(self) -> str:
        return f"CompositeIndex({self.id}, {self.index!r}, {self.state!r})"


def builtin_definition(kind: str, prop: str) -> str:
    import json

    return json.dumps(["builtin", kind, prop])


class IndexRegistry:
    """Ids of built-in single-property indexes and the composite indexes, per kind."""

    def __init__(self, backend: SQLBackend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self.generation = -1
        self.builtin: dict[tuple[str, str], int] = {}
        # the same ids by kind, then property name (a writer looks up an entity's kind once)
        self.builtin_by_kind: dict[str, dict[str, int]] = {}
        self.composites: dict[str, list[CompositeIndex]] = {}
        self.by_id: dict[int, CompositeIndex] = {}
        # The planner's shape-only decisions (which composite index serves a query shape,
        # which one the SDK rules demand), valid for these definitions: replaced on reload.
        self.memo: dict[Any, Any] = {}

    def recall(self, key: Any, decide: Callable[[], _T]) -> _T:
        """The remembered decision for ``key``, else ``decide()`` (then remembered)."""
        memo = self.memo
        if key in memo:
            remembered: _T = memo[key]
            return remembered
        value = decide()
        self.remember(key, value)
        return value

    def remember(self, key: Any, value: Any) -> None:
        """Keep a planner decision for ``key`` (a query shape: names and operators only)."""
        memo = self.memo
        if len(memo) >= MEMO_SIZE:  # shapes are few; a runaway app only costs re-planning
            memo.clear()
        memo[key] = value

    def reload(self, generation: int | None = None) -> None:
        """Re-read every definition from the database."""
        rows = self._backend.load_indexes()
        builtin: dict[tuple[str, str], int] = {}
        by_kind: dict[str, dict[str, int]] = {}
        composites: dict[str, list[CompositeIndex]] = {}
        by_id: dict[int, CompositeIndex] = {}
        for index_id, _definition, kind, ancestor, props, is_builtin, state in rows:
            if is_builtin:
                builtin[(kind, props[0][0])] = index_id
                by_kind.setdefault(kind, {})[props[0][0]] = index_id
                continue
            index = Index(kind, ancestor, tuple(IndexProperty(n, d) for n, d in props))
            entry = CompositeIndex(index_id, index, state)
            composites.setdefault(kind, []).append(entry)
            by_id[index_id] = entry
        with self._lock:
            self.builtin = builtin
            self.builtin_by_kind = by_kind
            self.composites = composites
            self.by_id = by_id
            self.memo = {}
            if generation is not None:
                self.generation = generation

    def ensure_builtin(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Register built-in indexes for new (kind, property) pairs, then learn their ids."""
        missing = {p for p in pairs if p not in self.builtin}
        if not missing:
            return
        self._backend.register_indexes(
            (builtin_definition(kind, prop), kind, False, [[prop, "asc"]], True, SERVING)
            for kind, prop in sorted(missing)
        )
        self.reload()

    def builtin_id(self, kind: str, prop: str) -> int | None:
        return self.builtin.get((kind, prop))

    def writable(self, kind: str) -> list[CompositeIndex]:
        """Composite indexes of ``kind`` that writers maintain (building or serving)."""
        entries = self.composites.get(kind)
        if not entries:
            return []  # most kinds have no composite index (every commit asks)
        return [c for c in entries if c.state != DELETING]

    def find(self, index: Index) -> CompositeIndex | None:
        for entry in self.composites.get(index.kind, ()):
            if entry.index == index:
                return entry
        return None
