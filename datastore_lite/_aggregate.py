"""COUNT / SUM / AVG over a planned query (SEMANTICS.md §4.7)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._codec import decode_body
from ._executor import count, fetch_bodies

if TYPE_CHECKING:
    from ._api import LocalDatastoreAPI
    from ._planner import Plan

__all__ = ["aggregate"]

_INT64_MAX = (1 << 63) - 1


def aggregate(
    api: LocalDatastoreAPI,
    plan: Plan,
    pid: int,
    aggregations: Sequence[tuple[str, str, str | None]],
    limit: int | None,
) -> dict[str, Any]:
    """Return ``{alias: value}``: a count is an int, a sum int or float, an avg float/None."""
    out: dict[str, Any] = {alias: None for _kind, alias, _prop in aggregations}  # request order
    numeric = [a for a in aggregations if a[0] != "count"]
    for kind, alias, _prop in aggregations:
        if kind == "count":
            out[alias] = 0 if pid < 0 else count(api, plan, limit)
    if not numeric:
        return out
    sums: dict[str, list[Any]] = {alias: [] for _, alias, _ in numeric}
    if pid >= 0:
        for body in fetch_bodies(api, plan, limit):
            props, _exclude = decode_body(body)
            for _kind, alias, prop in numeric:
                value = props.get(prop) if prop is not None else None
                # non-numeric values (null, bools, strings, lists...) are skipped
                if type(value) in (int, float):
                    sums[alias].append(value)
    for kind, alias, _prop in numeric:
        values = sums[alias]
        if kind == "sum":
            out[alias] = _sum(values)
        else:
            out[alias] = (math.fsum(values) / len(values)) if values else None
            if values and any(isinstance(v, float) and math.isnan(v) for v in values):
                out[alias] = math.nan
    return out


def _sum(values: list[Any]) -> int | float:
    if any(type(v) is float for v in values):
        if any(math.isnan(v) for v in values):
            return math.nan
        return math.fsum(values)
    total: int = sum(values)
    if -_INT64_MAX - 1 <= total <= _INT64_MAX:
        return total
    return float(total)  # int64 overflow: the service switches to a double
