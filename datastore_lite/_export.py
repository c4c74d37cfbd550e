"""The typed JSON form of entities (``datastore-lite export`` / ``import``), and the scans.

One entity per line (JSON Lines), in a form modelled on the Datastore REST v1 ``Entity``
and ``Value`` JSON, exact for every value type (docs/cli.md documents it)::

    {"key": {"partitionId": {"projectId": "app", "namespaceId": "ns"},
             "path": [{"kind": "User", "name": "alice"}, {"kind": "Photo", "id": "5"}]},
     "properties": {"likes": {"integerValue": "3"}, "ratio": {"doubleValue": "NaN"},
                    "image": {"blobValue": "AAE="}},
     "excludeFromIndexes": ["image"]}

Differences from REST: ``excludeFromIndexes`` is a list of names on the entity (and on each
embedded entity) rather than a mark on each value; doubles that JSON cannot write are the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (as proto3 JSON does); timestamps
always carry six fraction digits.
Reading also accepts REST's per-value ``"excludeFromIndexes": true`` and
``"nullValue": "NULL_VALUE"``.

Pure conversion functions plus two streaming helpers: :func:`stored_rows` reads a
store in key order, one bounded chunk per database round trip, and :func:`read_lines`
parses a JSON Lines stream lazily. Neither holds the data set in memory.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from ._codec import decode_body
from ._convert import PUBLIC
from ._ordering import decode_path
from ._values import from_micros, to_micros
from .entity import Entity
from .helpers import GeoPoint
from .indexes import composite_values, index_values
from .key import Key

if TYPE_CHECKING:
    from ._api import LocalDatastoreAPI

__all__ = [
    "JsonFormError",
    "Partition",
    "StoredRow",
    "count_stored",
    "dumps_entity",
    "entity_from_json",
    "entity_to_json",
    "key_from_json",
    "key_to_json",
    "kind_stats",
    "loads_entity",
    "read_lines",
    "row_to_entity",
    "select_partitions",
    "stored_rows",
    "value_from_json",
    "value_to_json",
]

CHUNK = 500
_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# RFC 3339, as Datastore's REST API writes and reads it (fraction up to nanoseconds)
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|z|[+-]\d\d:\d\d)\Z"
)
_VALUE_TYPES = (
    "nullValue",
    "booleanValue",
    "integerValue",
    "doubleValue",
    "timestampValue",
    "keyValue",
    "stringValue",
    "blobValue",
    "geoPointValue",
    "entityValue",
    "arrayValue",
)
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class JsonFormError(ValueError):
    """A line that is not a valid entity in the JSON form; the message says where and why."""


# -- public values -> JSON ---------------------------------------------------------------------


def key_to_json(key: Key) -> dict[str, Any]:
    """``{"partitionId": {...}, "path": [...]}``; ids are decimal strings (int64, as REST)."""
    partition: dict[str, str] = {"projectId": key.project}
    if key.database:
        partition["databaseId"] = key.database
    if key.namespace:
        partition["namespaceId"] = key.namespace
    flat = key.flat_path
    path: list[dict[str, str]] = []
    for i in range(0, len(flat), 2):
        element = {"kind": flat[i]}
        if i + 1 < len(flat):
            ident = flat[i + 1]
            if isinstance(ident, str):
                element["name"] = ident
            else:
                element["id"] = str(ident)
        path.append(element)
    return {"partitionId": partition, "path": path}


def _double_to_json(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _timestamp_to_json(value: _dt.datetime) -> str:
    # through µs since the epoch: naive means UTC (SEMANTICS.md §2.1), and isoformat()
    # pads year 1 to "0001" where strftime("%Y") would not
    moment = from_micros(to_micros(value)).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"


def value_to_json(value: Any) -> dict[str, Any]:
    """One property value in its typed JSON form (recursively for lists and entities)."""
    if value is None:
        return {"nullValue": None}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"integerValue": str(int(value))}
    if isinstance(value, float):
        return {"doubleValue": _double_to_json(value)}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes):
        return {"blobValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, _dt.datetime):
        return {"timestampValue": _timestamp_to_json(value)}
    if isinstance(value, GeoPoint):
        return {
            "geoPointValue": {
                "latitude": _double_to_json(float(value.latitude)),
                "longitude": _double_to_json(float(value.longitude)),
            }
        }
    if isinstance(value, Key):
        return {"keyValue": key_to_json(value)}
    if isinstance(value, Entity):
        return {"entityValue": entity_to_json(value)}
    if isinstance(value, dict):  # stored as an embedded entity with no key
        return {"entityValue": _props_json(value)}
    if isinstance(value, list):
        return {"arrayValue": {"values": [value_to_json(v) for v in value]}}
    raise TypeError(f"no JSON form for a value of type {type(value).__name__}")


def _props_json(props: dict[str, Any]) -> dict[str, Any]:
    return {"properties": {name: value_to_json(v) for name, v in props.items()}}


def entity_to_json(entity: Entity) -> dict[str, Any]:
    """``{"key": ..., "properties": {...}, "excludeFromIndexes": [...]}`` (key and list
    omitted when absent/empty)."""
    out: dict[str, Any] = {}
    if entity.key is not None:
        out["key"] = key_to_json(entity.key)
    out.update(_props_json(entity))
    if entity.exclude_from_indexes:
        out["excludeFromIndexes"] = sorted(entity.exclude_from_indexes)
    return out


def dumps_entity(entity: Entity) -> str:
    """One JSON Lines record (UTF-8 text, no newline); never writes JSON's non-standard NaN."""
    return json.dumps(entity_to_json(entity), ensure_ascii=False, allow_nan=False)


# -- JSON -> public values ---------------------------------------------------------------------


def _fail(where: str, message: str) -> JsonFormError:
    return JsonFormError(f"{where}: {message}" if where else message)


def _object(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _fail(where, f"expected a JSON object, got {_json_type(obj)}")
    return obj


def _json_type(obj: Any) -> str:
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "a boolean"
    if isinstance(obj, (int, float)):
        return "a number"
    if isinstance(obj, str):
        return "a string"
    if isinstance(obj, list):
        return "an array"
    return "an object"


def _string(obj: Any, where: str) -> str:
    if not isinstance(obj, str):
        raise _fail(where, f"expected a string, got {_json_type(obj)}")
    return obj


def _int64(obj: Any, where: str) -> int:
    # REST writes int64 as a decimal string; a JSON integer is accepted too
    if isinstance(obj, str) and re.fullmatch(r"-?\d+", obj):
        value = int(obj)
    elif isinstance(obj, int) and not isinstance(obj, bool):
        value = obj
    else:
        raise _fail(where, f"expected an int64 as a decimal string, got {json.dumps(obj)}")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise _fail(where, f"{value} is outside the int64 range")
    return value


def _double(obj: Any, where: str) -> float:
    if isinstance(obj, str) and obj in _SPECIAL_DOUBLES:
        return _SPECIAL_DOUBLES[obj]
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return float(obj)
    raise _fail(where, f'expected a number, "NaN", "Infinity" or "-Infinity", got {obj!r}')


def _timestamp(obj: Any, where: str) -> _dt.datetime:
    text = _string(obj, where)
    match = _TIMESTAMP.match(text)
    if match is None:
        raise _fail(
            where, f"expected an RFC 3339 timestamp like 2020-01-01T00:00:00Z, not {text!r}"
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    # nanoseconds are truncated to µs, Datastore's precision (SEMANTICS.md §2.2)
    micros = int((fraction or "").ljust(6, "0")[:6])
    try:
        moment = _dt.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros
        )
    except ValueError as exc:
        raise _fail(where, f"invalid timestamp {text!r}: {exc}") from None
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        offset = _dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        try:
            return (moment - sign * offset).replace(tzinfo=_dt.UTC)
        except OverflowError:
            raise _fail(where, f"timestamp {text!r} is out of range") from None
    return moment.replace(tzinfo=_dt.UTC)


def _blob(obj: Any, where: str) -> bytes:
    text = _string(obj, where)
    try:
        # REST uses standard base64; the URL-safe alphabet is accepted too
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise _fail(where, "invalid base64") from None


def key_from_json(obj: Any, where: str = "key") -> Key:
    """The :class:`Key` of a ``{"partitionId": ..., "path": [...]}`` object.

    Raises:
        JsonFormError: A malformed object, or a path the Key class rejects.
    """
    data = _object(obj, where)
    partition = _object(data.get("partitionId", {}), f"{where}.partitionId")
    project = partition.get("projectId")
    if project is None:
        raise _fail(f"{where}.partitionId", "projectId is required")
    project = _string(project, f"{where}.partitionId.projectId")
    namespace = _string(partition.get("namespaceId", ""), f"{where}.partitionId.namespaceId")
    database = _string(partition.get("databaseId", ""), f"{where}.partitionId.databaseId")
    path = data.get("path")
    if not isinstance(path, list) or not path:
        raise _fail(f"{where}.path", "expected a non-empty array of path elements")
    flat: list[Any] = []
    for i, element_obj in enumerate(path):
        at = f"{where}.path[{i}]"
        element = _object(element_obj, at)
        flat.append(_string(element.get("kind"), f"{at}.kind"))
        has_id, has_name = "id" in element, "name" in element
        if has_id and has_name:
            raise _fail(at, "a path element has an id or a name, not both")
        if has_id:
            flat.append(_int64(element["id"], f"{at}.id"))
        elif has_name:
            flat.append(_string(element["name"], f"{at}.name"))
        elif i != len(path) - 1:
            raise _fail(at, "only the last path element may lack an id and a name")
    try:
        return Key(*flat, project=project, namespace=namespace or None, database=database or None)
    except (ValueError, TypeError) as exc:
        raise _fail(where, f"invalid key: {exc}") from None


def value_from_json(obj: Any, where: str = "value") -> Any:
    """The public value of a typed JSON value (``{"integerValue": "3"}`` -> ``3``)."""
    return _value_from_json(obj, where)[0]


def _value_from_json(obj: Any, where: str) -> tuple[Any, bool]:
    """(value, excluded): ``excluded`` is REST's per-value ``excludeFromIndexes``."""
    data = _object(obj, where)
    kinds = [name for name in _VALUE_TYPES if name in data]
    extra = set(data) - set(_VALUE_TYPES) - {"excludeFromIndexes", "meaning"}
    if extra:
        raise _fail(where, f"unknown field {sorted(extra)[0]!r}")
    if len(kinds) != 1:
        expected = "exactly one of " + ", ".join(_VALUE_TYPES)
        raise _fail(where, f"expected {expected}; got {sorted(data) or 'none'}")
    kind = kinds[0]
    raw = data[kind]
    at = f"{where}.{kind}"
    excluded = data.get("excludeFromIndexes", False) is True
    value: Any
    if kind == "nullValue":
        if raw not in (None, "NULL_VALUE"):
            raise _fail(at, 'expected null or "NULL_VALUE"')
        value = None
    elif kind == "booleanValue":
        if not isinstance(raw, bool):
            raise _fail(at, f"expected true or false, got {_json_type(raw)}")
        value = raw
    elif kind == "integerValue":
        value = _int64(raw, at)
    elif kind == "doubleValue":
        value = _double(raw, at)
    elif kind == "timestampValue":
        value = _timestamp(raw, at)
    elif kind == "keyValue":
        value = key_from_json(raw, at)
    elif kind == "stringValue":
        value = _string(raw, at)
    elif kind == "blobValue":
        value = _blob(raw, at)
    elif kind == "geoPointValue":
        point = _object(raw, at)
        value = GeoPoint(
            _double(point.get("latitude", 0.0), f"{at}.latitude"),
            _double(point.get("longitude", 0.0), f"{at}.longitude"),
        )
    elif kind == "entityValue":
        value = entity_from_json(raw, at)
    else:  # arrayValue
        array = _object(raw, at)
        items = array.get("values", [])
        if not isinstance(items, list):
            raise _fail(f"{at}.values", f"expected an array, got {_json_type(items)}")
        value = []
        for i, item in enumerate(items):
            element, element_excluded = _value_from_json(item, f"{at}.values[{i}]")
            if isinstance(element, list):
                raise _fail(f"{at}.values[{i}]", "an array cannot contain an array")
            value.append(element)
            excluded = excluded or element_excluded
    return value, excluded


def entity_from_json(obj: Any, where: str = "") -> Entity:
    """The :class:`Entity` of a JSON entity object (top-level or ``entityValue``)."""
    data = _object(obj, where or "entity")
    prefix = f"{where}." if where else ""
    extra = set(data) - {"key", "properties", "excludeFromIndexes"}
    if extra:
        raise _fail(where, f"unknown field {sorted(extra)[0]!r}")
    key = key_from_json(data["key"], f"{prefix}key") if data.get("key") is not None else None
    names = data.get("excludeFromIndexes", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _fail(f"{prefix}excludeFromIndexes", "expected an array of property names")
    exclude = set(names)
    props = _object(data.get("properties", {}), f"{prefix}properties")
    values: dict[str, Any] = {}
    for name, raw in props.items():
        value, excluded = _value_from_json(raw, f"{prefix}properties.{name}")
        values[name] = value
        if excluded:
            exclude.add(name)
    entity = Entity(key, exclude_from_indexes=tuple(sorted(exclude)))
    entity.update(values)
    return entity


def loads_entity(line: str | bytes) -> Entity:
    """Parse one JSON Lines record.

    Raises:
        JsonFormError: Not JSON, or not an entity in the JSON form.
    """
    try:
        obj = json.loads(line)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise JsonFormError(f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict) or "key" not in obj:
        raise JsonFormError("expected an entity object with a key")
    return entity_from_json(obj)


def read_lines(stream: IO[bytes], name: str) -> Iterator[tuple[int, int, Entity]]:
    """Parse a JSON Lines stream lazily: ``(line number, bytes read, entity)``.

    Blank lines are skipped. Errors name the file and line: ``photos.jsonl:12: ...``.
    """
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            entity = loads_entity(raw)
        except JsonFormError as exc:
            raise JsonFormError(f"{name}:{number}: {exc}") from None
        yield number, len(raw), entity


# -- scanning a store ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    """A (project, database, namespace) stored in the database, with its row id."""

    pid: int
    project: str
    database: str
    namespace: str


def select_partitions(
    api: LocalDatastoreAPI,
    project: str | None = None,
    namespaces: Sequence[str] | None = None,
) -> list[Partition]:
    """The store's partitions, optionally only one project and some namespaces ("" = default)."""
    wanted = set(namespaces) if namespaces is not None else None
    out = [
        Partition(pid, proj, db, ns)
        for pid, proj, db, ns in api.backend.partitions()
        if (project is None or proj == project) and (wanted is None or ns in wanted)
    ]
    return sorted(out, key=lambda p: (p.project, p.database, p.namespace))


@dataclass(frozen=True)
class StoredRow:
    """One stored entity as raw bytes: its partition, encoded key, kind and body."""

    partition: Partition
    key: bytes
    kind: str
    body: bytes


def count_stored(
    api: LocalDatastoreAPI, partitions: Iterable[Partition], kinds: Sequence[str] | None = None
) -> int:
    """How many entities :func:`stored_rows` will yield (one COUNT per kind)."""
    total = 0
    with api.backend.read() as r:
        for part in partitions:
            for kind in kinds if kinds is not None else r.kinds(part.pid):
                total += r.count_entities(part.pid, kind)
    return total


def stored_rows(
    api: LocalDatastoreAPI,
    partitions: Iterable[Partition],
    kinds: Sequence[str] | None = None,
    chunk: int = CHUNK,
) -> Iterator[StoredRow]:
    """Every stored entity of ``partitions`` (optionally only ``kinds``), in key order.

    Reads ``chunk`` rows per round trip, resuming after the last key, so memory stays
    bounded whatever the size of the store. Each chunk is its own snapshot: entities
    written during the scan may or may not be included (as in Datastore's managed export).
    Writes still pending in the consistency simulation are not seen; callers that want
    them apply them first (``api.consistency.apply_all()``).
    """
    backend = api.backend
    for part in partitions:
        for kind in kinds if kinds is not None else [None]:
            after: bytes | None = None
            while True:
                with backend.read() as r:
                    if kind is None:
                        rows = r.entities_after(part.pid, after, chunk)
                    else:
                        found = r.entities_of_kind(part.pid, kind, after, chunk)
                        rows = [(raw_key, kind, body) for raw_key, body in found]
                for raw_key, row_kind, body in rows:
                    yield StoredRow(part, raw_key, row_kind, body)
                if len(rows) < chunk:
                    break
                after = rows[-1][0]


def row_to_entity(row: StoredRow) -> Entity:
    """The public :class:`Entity` of a stored row (key with its project/database/namespace)."""
    part = row.partition
    key = Key._from_trusted(
        decode_path(row.key), part.project, part.namespace or None, part.database or None
    )
    props, exclude = decode_body(row.body, PUBLIC)
    entity = Entity(key, exclude)
    dict.update(entity, props)
    return entity


def kind_stats(
    api: LocalDatastoreAPI,
    partitions: Iterable[Partition],
    kinds: Sequence[str] | None = None,
    tick: Callable[[], object] | None = None,
) -> list[dict[str, Any]]:
    """Per (project, database, namespace, kind): entities, stored bytes (keys and bodies)
    and index entries, sorted.

    Index entries are counted from the stored entities with the rules writers use (built-in
    entries per indexed value, composite entries of every index being built or serving),
    so they are exact per namespace without scanning the index table. ``tick`` is called
    once per entity (a progress bar).
    """
    api.registry.reload()
    empty_null = api.profile.empty_list_is_null
    # (project, database, namespace, kind) -> [entities, bytes, index entries]
    sums: dict[tuple[str, str, str, str], list[int]] = {}
    for row in stored_rows(api, partitions, kinds):
        part = row.partition
        slot = (part.project, part.database, part.namespace, row.kind)
        acc = sums.get(slot)
        if acc is None:
            acc = sums[slot] = [0, 0, 0]
        props, exclude = decode_body(row.body)
        values = index_values(props, exclude, empty_null)
        entries = sum(len(v) for v in values.values())
        composites = api.registry.writable(row.kind)
        if composites:
            path = decode_path(row.key)
            for entry in composites:
                entries += len(composite_values(entry.index, values, path))
        acc[0] += 1
        acc[1] += len(row.key) + len(row.body)
        acc[2] += entries
        if tick is not None:
            tick()
    return [
        {
            "project": project,
            "database": database,
            "namespace": namespace,
            "kind": kind,
            "entities": acc[0],
            "bytes": acc[1],
            "index_entries": acc[2],
        }
        for (project, database, namespace, kind), acc in sorted(sums.items())
    ]
