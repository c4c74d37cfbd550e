"""Id allocation: the App Engine SDK's scattered ids (SEMANTICS.md §1.4).

    id = 2**52 + bitreverse64(counter << 13)     for counter = 1, 2, 3, ...

so a fresh database hands out 5629499534213120, 5066549580791808, 6192449487634432, ...
All scattered ids lie in (2**52, 2**52 + 2**51). Writing or reserving an id in that range
moves the counter past it, so an allocated id never collides with one chosen by hand.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCATTER_SHIFT", "counter_of", "reserve_threshold", "scattered_id"]

SCATTER_SHIFT = 13
_BASE = 1 << 52
_MAX_SCATTERED = _BASE + (1 << 51)


def _reverse64(value: int) -> int:
    return int(f"{value:064b}"[::-1], 2)


def scattered_id(counter: int) -> int:
    """The scattered id for a counter value (1-based)."""
    return _BASE + _reverse64(counter << SCATTER_SHIFT)


def counter_of(ident: int) -> int | None:
    """The counter value that produced a scattered id, or None if ``ident`` is not one."""
    if not _BASE < ident < _MAX_SCATTERED:
        return None
    shifted = _reverse64(ident - _BASE)
    if shifted & ((1 << SCATTER_SHIFT) - 1):
        return None
    return shifted >> SCATTER_SHIFT


def reserve_threshold(ident: Any) -> int:
    """The counter value a written/reserved id requires (0 when it needs none)."""
    if type(ident) is not int:
        return 0
    return counter_of(ident) or 0
