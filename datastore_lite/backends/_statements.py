"""Shared pieces of the SQL backend: compiled statements and their parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["Row", "_Compiled", "_expand"]

Row = tuple[Any, ...]


def _expand(params: dict[str, Any], name: str, values: Sequence[Any]) -> None:
    """Bind an expanding IN list compiled for ``len(values)`` items (name_1, name_2, ...)."""
    for i, value in enumerate(values, 1):
        params[f"{name}_{i}"] = value


class _Compiled:
    """A compiled statement: SQL text, plus defaults for bind values SQLAlchemy invented."""

    __slots__ = ("sql", "defaults")

    def __init__(self, sql: str, defaults: dict[str, Any]) -> None:
        self.sql = sql
        self.defaults = defaults
