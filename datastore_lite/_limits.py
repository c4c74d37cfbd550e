"""Datastore's limits and the validators that enforce them before any I/O.

Texts are the emulator's / production's (SEMANTICS.md §1.2, §2.1, §3.2, §6.2, §7.1); each
error names the property, key or argument at fault.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from . import exceptions
from ._values import EntityValue, GeoValue, KeyRef

__all__ = [
    "MAX_ENTITY_BYTES",
    "MAX_INDEXED_BYTES",
    "MAX_LOOKUP_KEYS",
    "MAX_MUTATIONS",
    "check_key",
    "check_lookup_count",
    "check_mutation_count",
    "check_partition",
    "check_properties",
    "describe_path",
    "is_reserved",
]

MAX_MUTATIONS = 500  # per Commit [d-limits]
MAX_LOOKUP_KEYS = 1000  # per Lookup
MAX_INDEXED_BYTES = 1500  # indexed str/bytes value
MAX_UNINDEXED_BYTES = 1_048_487  # 1 MiB - 89
MAX_ENTITY_BYTES = 1_048_572  # 1 MiB - 4
MAX_NAME_BYTES = 1500  # kind, key name, property name
MAX_PATH_ELEMENTS = 100
MAX_NESTING = 20
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

_RESERVED = re.compile(r"^__.*__$", re.DOTALL)
_PARTITION_ID = re.compile(r"^[A-Za-z\d\.\-_]{1,100}$")


def is_reserved(name: str) -> bool:
    """Names matching ``__.*__`` are reserved for Datastore itself."""
    return _RESERVED.match(name) is not None


def _invalid(message: str) -> exceptions.DatastoreLiteError:
    return exceptions.InvalidArgument(message)


def describe_path(path: tuple[Any, ...]) -> str:
    """The emulator's rendering of a path in messages: ``[Parent: 1, Child: ]``."""
    parts = []
    for i in range(0, len(path), 2):
        ident = path[i + 1] if i + 1 < len(path) else ""
        parts.append(f"{path[i]}: {ident}")  # emulator: names unquoted, "[A: n, Other: ]"
    return "[" + ", ".join(parts) + "]"


def check_partition(project: str, database: str, namespace: str, write: bool = True) -> None:
    """Validate the partition strings of a key or query.

    A reserved namespace (``__x__``) may be read, and named by a key value, but not
    written (emulator: reads return nothing, key values are accepted).
    """
    if not project:
        raise _invalid("The project id is the empty string.")
    if namespace:
        if write and is_reserved(namespace):
            raise _invalid(f'The namespace id "{namespace}" is reserved.')
        if not _PARTITION_ID.match(namespace):
            raise _invalid(f'Illegal string "{namespace}" in namespace id.')
    if database and not _PARTITION_ID.match(database):
        raise _invalid(f'Illegal string "{database}" in database id.')


def check_ids(flat_path: tuple[Any, ...]) -> None:
    """Key ids are int64: the official client fails client-side, as protobuf does."""
    for ident in flat_path[1::2]:
        if type(ident) is int and not INT64_MIN <= ident <= INT64_MAX:
            raise ValueError(f"Value out of range: {ident}")


def plainly_valid(key: KeyRef, write: bool) -> bool:
    """Cheap test that passes the overwhelmingly common valid key (hot path of reads)."""
    return plainly_valid_path(key.project, key.database, key.namespace, key.path, write)


def plainly_valid_path(
    project: str, database: str, namespace: str, path: tuple[Any, ...], write: bool
) -> bool:
    """``plainly_valid`` of a key given by its parts (``client.get`` builds no KeyRef)."""
    n = len(path)
    if not n or n % 2 or n > 2 * MAX_PATH_ELEMENTS or namespace or database or not project:
        return False
    for i in range(0, n, 2):
        kind = path[i]
        ident = path[i + 1]
        # 375 chars cannot exceed 1500 UTF-8 bytes; "_" start may be a reserved name
        if type(kind) is not str or not kind or len(kind) > 375 or (write and kind[0] == "_"):
            return False
        kind_of_ident = type(ident)
        if kind_of_ident is int:
            if not ident or not INT64_MIN <= ident <= INT64_MAX:
                return False
        elif kind_of_ident is str:
            if not ident or len(ident) > 375 or (write and ident[0] == "_"):
                return False
        else:
            return False
    return True


def check_key(key: KeyRef, *, write: bool, allow_partial: bool = False) -> None:
    """Validate a key: kinds, names, ids, depth, partition (SEMANTICS.md §1.2).

    Args:
        write: Reserved kinds and names may be read but never written.
        allow_partial: Whether the last element may lack an id or name (inserts).
    """
    if plainly_valid(key, write):
        return
    check_partition(key.project, key.database, key.namespace, write)
    path = key.path
    if not path:  # a Key cannot be empty (its ValueError has this text); a KeyRef can
        raise _invalid("Key path must not be empty.")
    if len(path) > 2 * MAX_PATH_ELEMENTS:
        raise _invalid("Key path is too long. Cannot exceed 100 elements.")
    if len(path) % 2 == 1 and not allow_partial:
        raise _invalid(f"Key path element must not be incomplete: {describe_path(path)}")
    for i in range(0, len(path), 2):
        kind = path[i]
        if kind == "":
            raise _invalid("The kind is the empty string.")
        if len(kind.encode("utf-8")) > MAX_NAME_BYTES:
            raise _invalid("The kind is longer than 1500 bytes.")
        if write and is_reserved(kind):
            raise _invalid(f'The kind "{kind}" is reserved.')
        if i + 1 >= len(path):
            break
        ident = path[i + 1]
        if isinstance(ident, str):
            if ident == "":
                raise _invalid("The key path element name is the empty string.")
            if len(ident.encode("utf-8")) > MAX_NAME_BYTES:
                raise _invalid("The key path element name is longer than 1500 bytes.")
            if write and is_reserved(ident):
                raise _invalid(f'The key path element name "{ident}" is reserved.')
        else:
            if ident == 0:
                raise _invalid("Key path id is invalid. Must not be zero.")
            if not INT64_MIN <= ident <= INT64_MAX:
                raise _invalid(f"Key path id {ident} is outside the int64 range.")


def check_properties(entity: EntityValue, depth: int = 0) -> None:
    """Validate property names and values of an entity (recursively for embedded ones)."""
    if depth > MAX_NESTING:
        raise _invalid("At most 20 nested entity values are supported.")
    exclude = entity.exclude
    for name, value in entity.properties.items():
        _check_property_name(name)
        indexed = name not in exclude
        if type(value) is list:
            for element in value:
                if type(element) is list:
                    raise _invalid(
                        "list_value cannot contain a Value containing another list_value."
                    )
                _check_value(name, element, indexed, depth)
        else:
            _check_value(name, value, indexed, depth)


#: Property names already found valid: an app writes the same few names over and over.
#: Bounded, so names made from data (one per user, say) cannot grow it without end.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_MAX = 4096


def _check_property_name(name: str) -> None:
    if name in _VALID_NAMES and type(name) is str:
        return
    _check_new_property_name(name)
    if len(_VALID_NAMES) >= _VALID_NAMES_MAX:
        _VALID_NAMES.clear()
    _VALID_NAMES.add(name)


def _check_new_property_name(name: str) -> None:
    if not isinstance(name, str):
        raise _invalid(f"Property names must be strings, got {name!r}.")
    if name == "":
        raise _invalid("The property.name is the empty string.")
    if is_reserved(name):
        raise _invalid(f'The property.name "{name}" is reserved.')
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise _invalid("The property.name is longer than 1500 bytes.")


def _check_value(name: str, value: Any, indexed: bool, depth: int) -> None:
    kind = type(value)
    if kind is str or kind is bytes:
        if kind is str:
            if len(value) <= 375:  # 375 characters cannot exceed 1500 UTF-8 bytes
                return
            size = len(value.encode("utf-8"))
        else:
            size = len(value)
        if indexed and size > MAX_INDEXED_BYTES:
            raise _invalid(f'The value of property "{name}" is longer than 1500 bytes.')
        if size > MAX_UNINDEXED_BYTES:
            raise _invalid(f'The value of property "{name}" is longer than 1048487 bytes.')
    elif kind is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise _invalid(f'The value of property "{name}" is outside the int64 range.')
    elif kind is KeyRef:
        if value.is_partial:
            raise _invalid(f"Key path element must not be incomplete: {describe_path(value.path)}")
        check_key(value, write=False)
    elif kind is GeoValue:
        # emulator: NaN has its own text; latitude is checked fully before longitude
        if value.latitude != value.latitude:
            raise _invalid("Geo point latitude is not a number.")
        if not -90.0 <= value.latitude <= 90.0:
            raise _invalid("Geo point latitude outside permitted range -90.0 to 90.0.")
        if value.longitude != value.longitude:
            raise _invalid("Geo point longitude is not a number.")
        if not -180.0 <= value.longitude <= 180.0:
            raise _invalid("Geo point longitude outside permitted range -180.0 to 180.0.")
    elif kind is EntityValue:
        if value.key is not None and not value.key.is_partial:
            check_key(value.key, write=False)
        check_properties(value, depth + 1)
    elif isinstance(value, _dt.datetime):
        micros_ok = _dt.datetime.min <= value.replace(tzinfo=None) <= _dt.datetime.max
        if not micros_ok:  # pragma: no cover - datetime already bounds the range
            raise _invalid(f'The value of property "{name}" is out of the timestamp range.')


def check_mutation_count(count: int) -> None:
    if count > MAX_MUTATIONS:
        raise _invalid("cannot write more than 500 entities in a single call")


def check_lookup_count(count: int) -> None:
    if count > MAX_LOOKUP_KEYS:
        raise _invalid("cannot get more than 1000 keys in a single call")


def check_entity_size(size: int) -> None:
    """The stored size (key + encoded body) must fit Datastore's 1 MiB - 4 limit."""
    if size > MAX_ENTITY_BYTES:
        # production's exact text (SEMANTICS.md §7.1); the limit is in docs/compatibility.md
        raise _invalid("entity is too big")
