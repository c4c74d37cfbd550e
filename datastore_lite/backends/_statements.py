"""Shared pieces of the SQL backend: compiled statements and their parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["IN_CHUNK", "Row", "_Compiled", "_expand", "chunk_sizes", "in_list_size", "padded"]

Row = tuple[Any, ...]


# Statements are compiled once per shape (``SQLBackend.compiled``), and an IN list or a
# multi-row VALUES has one shape per length. Lengths are therefore rounded to a few sizes:
# a backlog applied in one go (thousands of groups) compiled a new 8,000-parameter
# statement at every application (87 ms of SQLAlchemy compile for 2,000 groups), and the
# cache grew with every new length. Lists longer than IN_CHUNK are split, which also keeps
# a statement under SQLite's 32,766 and PostgreSQL's 65,535 bind-parameter limits.
IN_CHUNK = 1024  # values per IN-list statement
_EXACT = 128  # IN lists up to this length keep their exact shape (get_multi, commits)
_ROUND = 128  # longer ones are padded to a multiple of this
_VALUES_EXACT = 16  # multi-row VALUES up to this many rows keep their exact shape
_VALUES_MAX = 256  # larger ones run as pieces of 32, 64, 128 or 256 rows


def in_list_size(n: int) -> int:
    """The compiled length of an IN list of ``n`` (1 <= n <= IN_CHUNK) values."""
    if n <= _EXACT:
        return n
    return -(-n // _ROUND) * _ROUND


def padded(values: Sequence[Any]) -> Sequence[Any]:
    """``values`` padded to ``in_list_size`` by repeating the last one (IN ignores repeats)."""
    size = in_list_size(len(values))
    if size == len(values):
        return values
    return [*values, *([values[-1]] * (size - len(values)))]


def chunk_sizes(n: int) -> list[int]:
    """Row counts of the multi-row VALUES statements that together write ``n`` rows.

    Up to ``_VALUES_EXACT`` rows in one statement of that exact size; more in pieces of
    at most ``_VALUES_MAX`` rows, each a power of two or <= ``_VALUES_EXACT``, so there
    are at most 20 shapes: 2,000 rows are 7 x 256 + 128 + 64 + 16.
    """
    sizes: list[int] = []
    while n > 0:
        take = min(n, _VALUES_MAX)
        if take > _VALUES_EXACT:
            take = 1 << (take.bit_length() - 1)
        sizes.append(take)
        n -= take
    return sizes


def _expand(
    params: dict[str, Any], name: str, values: Sequence[Any], blob: type | None = None
) -> None:
    """Bind an expanding IN list compiled for ``len(values)`` items (name_1, name_2, ...).

    ``blob``: the backend's ``bind_blob`` for a list of byte strings.
    """
    if blob is not None:
        values = [blob(value) for value in values]
    for i, value in enumerate(values, 1):
        params[f"{name}_{i}"] = value


class _Compiled:
    """A compiled statement: SQL text, plus defaults for bind values SQLAlchemy invented."""

    __slots__ = ("sql", "defaults")

    def __init__(self, sql: str, defaults: dict[str, Any]) -> None:
        self.sql = sql
        self.defaults = defaults
