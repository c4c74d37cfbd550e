"""Entity bodies as msgpack, led by a format-version byte. Pure functions, no I/O.

Layout::

    01 | msgpack [ {name: value, ...}, [excluded names...] ]

Scalars use msgpack's own types (``str`` = str, ``bytes`` = bin, int, float, bool, nil,
list = array); the rest are extension types:

    ext -1 timestamp   msgpack's own Timestamp type (seconds + nanoseconds), always whole
                       microseconds; decoded in C straight to a tz-aware UTC datetime
    ext 2  geo point   two big-endian doubles (latitude, longitude)
    ext 3  key         msgpack [project, database, namespace, [path...]]
    ext 4  entity      msgpack [key-ext or nil, {props}, [excluded...]]

Decoding goes through a :class:`ValueFactory` so the engine can get its own value types and
the public layer can get ``Key``/``Entity``/``GeoPoint`` objects directly, without a second
conversion pass.
"""

from __future__ import annotations

import datetime as _dt
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

import msgpack

from ._values import EntityValue, GeoValue, KeyRef, from_micros, to_micros

__all__ = [
    "FORMAT_VERSION",
    "INTERNAL",
    "ValueFactory",
    "decode_body",
    "encode_body",
]

FORMAT_VERSION = 1
_VERSION_BYTE = bytes([FORMAT_VERSION])
_EXT_TIMESTAMP = 1
_EXT_GEO = 2
_EXT_KEY = 3
_EXT_ENTITY = 4
_q = struct.Struct(">q")
_dd = struct.Struct(">dd")


class ValueFactory(NamedTuple):
    """How decoded extension values are built."""

    key: Callable[[str, str, str, tuple[Any, ...]], Any]
    geo: Callable[[float, float], Any]
    entity: Callable[[Any, dict[str, Any], list[str]], Any]
    timestamp: Callable[[int], Any]


INTERNAL = ValueFactory(
    key=KeyRef,
    geo=GeoValue,
    entity=lambda key, props, exclude: EntityValue(key, props, frozenset(exclude)),
    timestamp=from_micros,
)


def _default(value: Any) -> Any:
    if isinstance(value, _dt.datetime):
        # only naive or non-UTC datetimes get here (aware ones are packed natively):
        # store the same instant as an aware UTC datetime
        return msgpack.Timestamp.from_datetime(
            _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(microseconds=to_micros(value))
        )
    kind = type(value)
    if kind is KeyRef:
        return msgpack.ExtType(_EXT_KEY, _pack_key(value))
    if kind is GeoValue:
        return msgpack.ExtType(_EXT_GEO, _dd.pack(value.latitude, value.longitude))
    if kind is EntityValue:
        key = msgpack.ExtType(_EXT_KEY, _pack_key(value.key)) if value.key is not None else None
        payload = _packb([key, value.properties, sorted(value.exclude)])
        return msgpack.ExtType(_EXT_ENTITY, payload)
    raise TypeError(f"cannot store a value of type {kind.__name__}")


def _pack_key(key: KeyRef) -> bytes:
    return _packb([key.project, key.database, key.namespace, list(key.path)])


def _packb(obj: Any) -> bytes:
    data: bytes = msgpack.packb(
        obj, default=_default, use_bin_type=True, strict_types=True, datetime=True
    )
    return data


def encode_body(properties: dict[str, Any], exclude: frozenset[str] | set[str]) -> bytes:
    """Serialise an entity's properties and its unindexed names.

    Raises:
        TypeError: A value the codec cannot store (never silently dropped).
    """
    return _VERSION_BYTE + _packb([properties, sorted(exclude) if exclude else []])


def _ext_hook(factory: ValueFactory) -> Callable[[int, bytes], Any]:
    def hook(code: int, data: bytes) -> Any:
        if code == _EXT_KEY:
            project, database, namespace, path = msgpack.unpackb(data, raw=False)
            return factory.key(project, database, namespace, tuple(path))
        if code == _EXT_GEO:
            lat, lng = _dd.unpack(data)
            return factory.geo(lat, lng)
        if code == _EXT_ENTITY:
            key, props, exclude = msgpack.unpackb(data, raw=False, ext_hook=hook, timestamp=3)
            return factory.entity(key, props, exclude)
        raise ValueError(f"unknown extension type {code} in entity body")

    return hook


_HOOKS: dict[int, Callable[[int, bytes], Any]] = {}


def decode_body(data: bytes, factory: ValueFactory = INTERNAL) -> tuple[dict[str, Any], list[str]]:
    """Return ``(properties, excluded names)`` of a stored body.

    Raises:
        ValueError: The body was written by a newer, unknown format version.
    """
    if data[0] != FORMAT_VERSION:
        raise ValueError(
            f"entity body has format version {data[0]}; this datastore_lite reads {FORMAT_VERSION}"
        )
    hook = _HOOKS.get(id(factory))
    if hook is None:
        hook = _HOOKS[id(factory)] = _ext_hook(factory)
    # a short body is cheaper copied than viewed (0.59 against 0.71 us for 90 bytes)
    rest = data[1:] if len(data) <= 4096 else memoryview(data)[1:]
    props, exclude = msgpack.unpackb(rest, raw=False, ext_hook=hook, timestamp=3)
    return props, exclude
