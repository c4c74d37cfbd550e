"""Public objects <-> engine values (the role protobuf conversion plays in the official client).

``Key`` -> ``KeyRef``, ``Entity``/``dict`` -> ``EntityValue``, ``GeoPoint`` -> ``GeoValue``;
scalars pass through. Unknown types raise the official client's
``ValueError('Unknown protobuf attr type', type)`` at ``put()`` time, before any I/O.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from ._codec import ValueFactory, decode_body
from ._ordering import StrOrBytes
from ._values import EntityValue, GeoValue, KeyRef, from_micros
from .entity import Entity
from .helpers import GeoPoint
from .key import Key

__all__ = [
    "PUBLIC",
    "body_to_entity",
    "entity_to_value",
    "key_to_ref",
    "ref_to_key",
    "to_value",
    "value_to_public",
]

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


from ._limits import check_ids  # noqa: E402  (re-exported for the public layer)


def key_to_ref(key: Key) -> KeyRef:
    path = key.flat_path
    check_ids(path)
    return KeyRef(key.project, key.database or "", key.namespace or "", path)


def ref_to_key(ref: KeyRef) -> Key:
    return Key._from_trusted(ref.path, ref.project, ref.namespace or None, ref.database or None)


def to_value(value: Any) -> Any:
    """Convert one property value (recursively for lists and embedded entities)."""
    kind = type(value)
    if kind is str or kind is float or kind is bool or kind is bytes or value is None:
        return value
    if kind is int:
        if not _INT64_MIN <= value <= _INT64_MAX:
            # the official client's text (from protobuf): "Value out of range: 9223372036854775808"
            raise ValueError(f"Value out of range: {value}")
        return value
    if isinstance(value, _dt.datetime):
        # SEMANTICS.md §2.1: naive means UTC; stored to the microsecond
        if value.tzinfo is None:
            return value.replace(tzinfo=_dt.UTC)
        return value.astimezone(_dt.UTC)
    if isinstance(value, Key):
        return key_to_ref(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        return to_value(int(value))
    if isinstance(value, str):
        # the string content: str() of a (str, Enum) member would be "Color.RED"
        return str.__str__(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, Entity):
        return entity_to_value(value)
    if isinstance(value, dict):
        return EntityValue(None, {k: to_value(v) for k, v in value.items()}, frozenset())
    if isinstance(value, list):
        return [to_value(v) for v in value]
    if isinstance(value, GeoPoint):
        return GeoValue(float(value.latitude), float(value.longitude))
    raise ValueError("Unknown protobuf attr type", type(value))


#: Types ``to_value`` returns unchanged (``int`` only within int64: not here).
_PLAIN = frozenset({str, float, bool, bytes, type(None)})


def entity_to_value(entity: Entity) -> EntityValue:
    """Convert an entity (its key may be partial or None)."""
    key = entity.key
    props = {}
    for name, value in entity.items():
        kind = type(value)
        if kind is str or kind is float or kind is bool or kind is bytes or value is None:
            props[name] = value
        elif kind is list:  # a list of plain values (the common case) is copied as is
            plain = True
            for element in value:
                if type(element) not in _PLAIN:
                    plain = False
                    break
            props[name] = value[:] if plain else [to_value(v) for v in value]
        else:
            props[name] = to_value(value)
    # The official client marks exclusion on each value, so a name with no value to carry
    # the mark (absent, or an empty list) is not excluded once stored and read back.
    exclude = entity.exclude_from_indexes
    if exclude:
        exclude = {n for n in exclude if n in props and props[n] != []}
    return EntityValue(
        key_to_ref(key) if key is not None else None,
        props,
        frozenset(exclude),
    )


_new_entity = Entity.__new__


def _make_entity(key: Key | None, props: dict[str, Any], exclude: list[str]) -> Entity:
    # Entity.__init__ validates user input; stored data is known good, so build directly.
    entity = _new_entity(Entity)
    dict.update(entity, props)
    entity.key = key
    entity.exclude_from_indexes = set(exclude)
    entity._meanings = {}
    return entity


def _make_key(project: str, database: str, namespace: str, path: tuple[Any, ...]) -> Key:
    return Key._from_trusted(path, project, namespace or None, database or None)


# How the codec builds public objects straight from stored bodies.
PUBLIC = ValueFactory(key=_make_key, geo=GeoPoint, entity=_make_entity, timestamp=from_micros)


def body_to_entity(key: Key, body: bytes) -> Entity:
    """Decode a stored body into an ``Entity`` with ``key``."""
    props, exclude = decode_body(body, PUBLIC)
    return _make_entity(key, props, exclude)


def value_to_public(value: Any) -> Any:
    """Engine value (e.g. from an index row) -> public value."""
    kind = type(value)
    if kind is KeyRef:
        return ref_to_key(value)
    if kind is GeoValue:
        return GeoPoint(value.latitude, value.longitude)
    if kind is StrOrBytes:
        return bytes(value)
    if kind is EntityValue:
        entity = Entity(ref_to_key(value.key) if value.key else None, value.exclude)
        dict.update(entity, {k: value_to_public(v) for k, v in value.properties.items()})
        return entity
    if kind is list:
        return [value_to_public(v) for v in value]
    return value


def micros_to_datetime(micros: int) -> _dt.datetime:
    return from_micros(micros)
