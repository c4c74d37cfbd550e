"""Text output of the ``datastore-lite`` command: compact values and aligned tables.

Values are shown the way GQL writes literals where it can (``Key(User, 'alice')``,
``2020-01-01T00:00:00Z``), long ones cut with ``…``; columns are padded by display width,
so wide (CJK) characters and combining marks line up.
"""

from __future__ import annotations

import datetime as _dt
import math
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from ._values import from_micros, to_micros
from .entity import Entity
from .helpers import GeoPoint
from .key import Key

__all__ = [
    "aggregation_json",
    "format_index",
    "format_size",
    "format_value",
    "render_table",
]

# the (project, namespace) a table is about: keys elsewhere say where they point
Context = tuple[str, str | None]


def format_index(kind: str, ancestor: bool, properties: Iterable[tuple[str, str]]) -> str:
    """``Photo(tags, date desc)``; an ancestor index reads ``Photo(ancestor, tags)``."""
    parts = ["ancestor"] if ancestor else []
    parts += [
        name if direction == "asc" else f"{name} {direction}" for name, direction in properties
    ]
    return f"{kind}({', '.join(parts)})"


def format_size(size: int) -> str:
    """``512 B``, ``1.5 KiB``, ``2.0 MiB``..."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _double(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _timestamp(value: _dt.datetime) -> str:
    moment = from_micros(to_micros(value)).replace(tzinfo=None)
    spec = "microseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec) + "Z"


def _quote(text: str) -> str:
    return "'" + _escape(text).replace("'", "\\'") + "'"


def _escape(text: str) -> str:
    """Control and other unprintable characters as Python escapes; the rest as is."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _key(key: Key, context: Context | None) -> str:
    flat = key.flat_path
    parts = []
    for i, item in enumerate(flat):
        if i % 2 == 0:
            parts.append(item if item.isidentifier() else _quote(item))
        else:
            parts.append(_quote(item) if isinstance(item, str) else str(item))
    project, namespace = context if context is not None else (None, None)
    if key.project != project:
        parts.append(f"project={_quote(key.project)}")
    if key.database:
        parts.append(f"database={_quote(key.database)}")
    if key.namespace != namespace:
        parts.append(f"namespace={_quote(key.namespace or '')}")
    return f"Key({', '.join(parts)})"


def _value(value: Any, context: Context | None, top: bool) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _double(value)
    if isinstance(value, str):
        return _escape(value) if top else _quote(value)
    if isinstance(value, bytes):
        return repr(value)
    if isinstance(value, _dt.datetime):
        return _timestamp(value)
    if isinstance(value, GeoPoint):
        return f"GeoPoint({_double(value.latitude)}, {_double(value.longitude)})"
    if isinstance(value, Key):
        return _key(value, context)
    if isinstance(value, dict):
        body = ", ".join(f"{name}: {_value(v, context, False)}" for name, v in value.items())
        key = value.key if isinstance(value, Entity) else None
        return (_key(key, context) if key is not None else "") + "{" + body + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v, context, False) for v in value) + "]"
    return _escape(repr(value))


def format_value(value: Any, max_width: int = 40, context: Context | None = None) -> str:
    """A value as one compact table cell, cut to ``max_width`` display columns with ``…``
    (``...`` when stdout cannot encode ``…``)."""
    return _truncate(_value(value, context, True), max_width)


def _ellipsis() -> str:
    import sys

    try:
        "…".encode(getattr(sys.stdout, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return "..."
    return "…"


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes."""
    if text.isascii():
        return len(text)
    return sum(_char_width(ch) for ch in text)


def _truncate(text: str, max_width: int) -> str:
    if display_width(text) <= max_width:
        return text
    mark = _ellipsis()
    room = max(0, max_width - len(mark))
    out = []
    used = 0
    for ch in text:
        width = _char_width(ch)
        if used + width > room:
            break
        out.append(ch)
        used += width
    return "".join(out) + mark


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - display_width(text))
    return fill + text if right else text + fill


def render_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Sequence[bool] | None = None,
    footer: bool = False,
) -> str:
    """An aligned table, two spaces between columns, a dashed rule under the header.

    ``right`` flags right-aligned (numeric) columns; ``footer`` puts a rule above the last
    row (a total).
    """
    widths = [display_width(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], display_width(cell))
    flags = list(right) if right is not None else [False] * len(header)

    def line(cells: Sequence[str]) -> str:
        padded = [_pad(cell, widths[i], flags[i]) for i, cell in enumerate(cells)]
        return "  ".join(padded).rstrip() + "\n"

    rule = "  ".join("-" * w for w in widths) + "\n"
    body = [line(row) for row in rows]
    if footer and body:
        body.insert(len(body) - 1, rule)
    return line(header) + rule + "".join(body)


def aggregation_json(results: Iterable[Any]) -> dict[str, Any]:
    """``{"aggregateProperties": {alias: typed value}}``, as Datastore's REST API returns."""
    from ._export import value_to_json

    return {"aggregateProperties": {r.alias: value_to_json(r.value) for r in results}}
