"""Helpers of the differential tests (fixtures live in ``conftest.py``, documented there)."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import datastore_lite
from datastore_lite import Client
from datastore_lite.testing.emulator import Emulator

__all__ = [
    "PROJECT",
    "Both",
    "EmulatorFactory",
    "Raised",
    "Side",
    "outcome",
    "plain",
    "side_of",
]

#: Project used by both clients, so texts and keys that mention it agree.
PROJECT = "diff-proj"

T = TypeVar("T")

Both = Callable[[Callable[["Side"], Any]], tuple[Any, Any]]


class EmulatorFactory:
    """Starts emulators on demand, one per distinct set of flags, stopped at session end."""

    def __init__(self) -> None:
        self._running: dict[tuple[Any, ...], Emulator] = {}

    def __call__(
        self,
        consistency: float = 1.0,
        *,
        require_indexes: bool = False,
        index_file: str | None = None,
        auto_id_policy: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> Emulator:
        """The (started, freshly reset) emulator with these flags."""
        flags = (consistency, require_indexes, index_file, auto_id_policy, tuple(extra_args))
        emu = self._running.get(flags)
        if emu is None:
            emu = Emulator(
                consistency,
                require_indexes=require_indexes,
                index_file=index_file,
                auto_id_policy=auto_id_policy,
                extra_args=tuple(extra_args),
            ).start()
            self._running[flags] = emu
        else:
            emu.reset()
        return emu

    def close(self) -> None:
        """Stop every emulator this factory started."""
        running, self._running = self._running, {}
        for emu in running.values():
            emu.stop()


@dataclass(frozen=True)
class Side:
    """One side of a differential test: a client and its library's public classes."""

    name: str  # "official" or "lite"
    client: Any
    Entity: Any
    Key: Any
    GeoPoint: Any

    def key(self, *path: Any, **kwargs: Any) -> Any:
        """``client.key(...)`` (project and default namespace from the client)."""
        return self.client.key(*path, **kwargs)

    def entity(self, key: Any = None, exclude_from_indexes: Any = (), **props: Any) -> Any:
        """A new entity with ``props`` set."""
        entity = self.Entity(key, exclude_from_indexes=tuple(exclude_from_indexes))
        entity.update(props)
        return entity


def side_of(client: Any) -> Side:
    """The :class:`Side` for an official or a datastore_lite client."""
    if isinstance(client, Client):
        return Side(
            "lite", client, datastore_lite.Entity, datastore_lite.Key, datastore_lite.GeoPoint
        )
    from google.cloud import datastore
    from google.cloud.datastore.helpers import GeoPoint

    return Side("official", client, datastore.Entity, datastore.Key, GeoPoint)


class Raised(NamedTuple):
    """An exception an operation raised: its class name and ``str(exc)``."""

    name: str
    message: str


def outcome(op: Callable[[], T]) -> T | Raised:
    """``op()``'s result, or the :class:`Raised` describing the exception it raised."""
    try:
        return op()
    except Exception as exc:  # the point is to capture whatever either library raises
        return Raised(type(exc).__name__, str(exc))


# -- comparable plain values ----------------------------------------------------------------


def plain(value: Any) -> Any:
    """A comparable, library-neutral form of a value read back from either client.

    Types stay distinguishable (``1``, ``1.0`` and ``True`` differ), NaN equals NaN,
    ``-0.0`` differs from ``0.0``; official ``DatetimeWithNanoseconds`` become plain
    ``datetime``; keys become ``("Key", project, namespace, database, flat_path)``;
    entities ``("Entity", key, sorted exclude_from_indexes, meanings, {name: value})``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        if math.isnan(value):
            return ("float", "nan")
        return ("float", value, math.copysign(1.0, value))
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, bytes):
        return ("bytes", value)
    if isinstance(value, _dt.datetime):
        # DatetimeWithNanoseconds is a datetime subclass; compare as a plain datetime
        as_datetime = _dt.datetime(*value.timetuple()[:6], value.microsecond, value.tzinfo)
        return ("datetime", as_datetime, value.utcoffset())
    if isinstance(value, list):
        return ("list", [plain(v) for v in value])
    if isinstance(value, dict):  # Entity (of either library) or a plain dict
        key = getattr(value, "key", None)
        return (
            type(value).__name__,
            plain(key),
            sorted(getattr(value, "exclude_from_indexes", ())),
            dict(getattr(value, "_meanings", {})),
            {name: plain(v) for name, v in value.items()},
        )
    if type(value).__name__ == "Key" and hasattr(value, "flat_path"):
        return ("Key", value.project, value.namespace, value.database, value.flat_path)
    if type(value).__name__ == "GeoPoint":
        return ("GeoPoint", plain(value.latitude), plain(value.longitude))
    raise TypeError(f"plain() does not know {type(value)!r}")
