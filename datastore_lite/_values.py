"""The engine's value model: what crosses the seam between the public classes and the engine.

Public objects (``Key``, ``Entity``, ``GeoPoint``) never reach the engine or the codec; the
public layer converts them to these small, storage-neutral types (as google-cloud-datastore
converts them to protobufs), and the codec turns them into bytes. ``datetime`` values stay
``datetime`` (tz-aware UTC); lists stay lists; scalars stay scalars.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

__all__ = ["EPOCH", "EntityValue", "GeoValue", "KeyRef", "from_micros", "to_micros"]

EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_ONE_MICRO = _dt.timedelta(microseconds=1)


def to_micros(value: _dt.datetime) -> int:
    """Microseconds since the epoch; a naive datetime is UTC (SEMANTICS.md §2.1)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    return (value - EPOCH) // _ONE_MICRO


def from_micros(micros: int) -> _dt.datetime:
    """The tz-aware UTC datetime ``micros`` microseconds after the epoch."""
    return EPOCH + _dt.timedelta(microseconds=micros)


class KeyRef:
    """A key as the engine sees it: partition strings plus the flat path tuple.

    ``database`` and ``namespace`` are normalised to ``""`` for the defaults. Not a tuple
    subclass on purpose: msgpack would silently pack a tuple as an array.
    """

    __slots__ = ("project", "database", "namespace", "path")

    def __init__(self, project: str, database: str, namespace: str, path: tuple[Any, ...]) -> None:
        self.project = project
        self.database = database
        self.namespace = namespace
        self.path = path

    @property
    def is_partial(self) -> bool:
        return len(self.path) % 2 == 1

    @property
    def partition(self) -> tuple[str, str, str]:
        return (self.project, self.database, self.namespace)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyRef):
            return NotImplemented
        return (
            self.path == other.path
            and self.project == other.project
            and self.namespace == other.namespace
            and self.database == other.database
        )

    def __hash__(self) -> int:
        return hash((self.project, self.database, self.namespace, self.path))

    def __repr__(self) -> str:
        return f"KeyRef({self.project!r}, {self.database!r}, {self.namespace!r}, {self.path!r})"


class GeoValue:
    """A geo point as the engine sees it."""

    __slots__ = ("latitude", "longitude")

    def __init__(self, latitude: float, longitude: float) -> None:
        self.latitude = latitude
        self.longitude = longitude

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GeoValue):
            return NotImplemented
        return self.latitude == other.latitude and self.longitude == other.longitude

    def __hash__(self) -> int:
        return hash((self.latitude, self.longitude))

    def __repr__(self) -> str:
        return f"GeoValue({self.latitude!r}, {self.longitude!r})"


class EntityValue:
    """An entity (top-level or embedded) as the engine sees it."""

    __slots__ = ("key", "properties", "exclude")

    def __init__(
        self, key: KeyRef | None, properties: dict[str, Any], exclude: frozenset[str]
    ) -> None:
        self.key = key
        self.properties = properties
        self.exclude = exclude

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EntityValue):
            return NotImplemented
        return (
            self.key == other.key
            and self.properties == other.properties
            and self.exclude == other.exclude
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EntityValue({self.key!r}, {self.properties!r}, {sorted(self.exclude)!r})"
