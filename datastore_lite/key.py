"""Datastore keys, with the behaviour of ``google.cloud.datastore.key.Key``.

Constructor rules, error texts, equality, hashing and ``repr`` follow the official client
(SEMANTICS.md §1, §8); ``to_legacy_urlsafe`` / ``from_legacy_urlsafe`` produce and read the
App Engine ``Reference`` protobuf byte for byte (§1.5), written out by hand so no protobuf
runtime is needed.
"""

from __future__ import annotations

import base64
from typing import Any

__all__ = ["Key"]

_DATABASE_ID_TEMPLATE = (
    "Received non-empty database ID: {!r}.\n"
    "urlsafe strings are not expected to encode a Reference that "
    "contains a database ID."
)
_BAD_ELEMENT_TEMPLATE = (
    "At most one of ID and name can be set on an element. Received id = {!r} and name = {!r}."
)
_EMPTY_ELEMENT = (
    "Exactly one of ID and name must be set on an element. "
    "Encountered an element with neither set that was not the last "
    "element of a path."
)

PathElement = dict[str, Any]


class Key:
    """An immutable representation of a datastore Key.

    Args:
        *path_args: Alternating kinds and ids/names. An odd number of items makes a
            partial key (the last element has no id or name yet).
        project: The project. Required unless ``parent`` is given.
        namespace: The namespace (``None`` is the default namespace).
        database: The database inside the store (``None`` is the default database).
        parent: A complete key whose path is prepended to ``path_args``.

    Raises:
        ValueError: With the official client's texts, e.g. ``'Key path must not be
            empty.'`` or ``'A Key must have a project set.'``.

    Example:
        >>> Key("Parent", "alice", "Photo", 7, project="photo-app")
        <Key('Parent', 'alice', 'Photo', 7), project=photo-app>
    """

    __slots__ = ("_flat_path", "_parent", "_namespace", "_database", "_project", "_encoded")

    def __init__(self, *path_args: Any, **kwargs: Any) -> None:
        self._flat_path: tuple[Any, ...] = path_args
        parent = self._parent = kwargs.get("parent")
        self._namespace: str | None = kwargs.get("namespace")
        self._database: str | None = kwargs.get("database")
        project = kwargs.get("project")
        if parent is None and project is None:
            raise ValueError("A Key must have a project set.")
        self._project: str = project  # type: ignore[assignment]  # fixed up from parent below
        self._combine_args()

    @classmethod
    def _from_trusted(
        cls, flat_path: tuple[Any, ...], project: str, namespace: str | None, database: str | None
    ) -> Key:
        """Build a key from a path already known to be valid (read back from storage)."""
        key = cls.__new__(cls)
        key._flat_path = flat_path
        key._parent = None
        key._namespace = namespace
        key._database = database
        key._project = project
        return key

    @classmethod
    def _from_encoded(
        cls, encoded: bytes, project: str, namespace: str | None, database: str | None
    ) -> Key:
        """A key read from storage whose path is decoded on first use.

        Query results build many keys that callers often never look at; decoding the
        stored path lazily keeps that cost off the result loop.
        """
        key = cls.__new__(cls)
        key._encoded = encoded  # type: ignore[attr-defined]  # a slot mypy cannot see
        key._parent = None
        key._namespace = namespace
        key._database = database
        key._project = project
        return key

    def __getattr__(self, name: str) -> Any:
        # Only reached for unset slots: the lazily decoded path of _from_encoded keys.
        if name == "_flat_path":
            try:
                encoded = object.__getattribute__(self, "_encoded")
            except AttributeError:
                raise AttributeError(name) from None
            from ._ordering import decode_path

            path = decode_path(encoded)
            self._flat_path = path
            return path
        raise AttributeError(name)

    # -- equality --------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Key):
            return NotImplemented
        # SEMANTICS.md §1.3: partial keys never compare equal, not even to themselves.
        if self.is_partial or other.is_partial:
            return False
        return (
            self._flat_path == other._flat_path
            and self._project == other._project
            and self._namespace == other._namespace
            and self._database == other._database
        )

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        # Same formula as the official client (SEMANTICS.md §1.3).
        hash_val = hash(self._flat_path) + hash(self._project) + hash(self._namespace)
        if self._database:
            hash_val = hash_val + hash(self._database)
        return hash_val

    # -- construction helpers --------------------------------------------------------------

    def _combine_args(self) -> None:
        _parse_path(self._flat_path)  # validates, with the official error texts
        parent = self._parent
        if parent is not None:
            if parent.is_partial:
                raise ValueError("Parent key must be complete.")
            self._flat_path = parent.flat_path + self._flat_path
            if self._namespace is not None and self._namespace != parent.namespace:
                raise ValueError("Child namespace must agree with parent's.")
            self._namespace = parent.namespace
            if self._project is not None and self._project != parent.project:
                raise ValueError("Child project must agree with parent's.")
            if self._database is not None and self._database != parent.database:
                raise ValueError("Child database must agree with parent's.")
            self._database = parent.database
            self._project = parent.project

    def _clone(self) -> Key:
        cloned = self.__class__(
            *self._flat_path,
            project=self._project,
            database=self._database,
            namespace=self._namespace,
        )
        cloned._parent = self._parent
        return cloned

    def completed_key(self, id_or_name: int | str) -> Key:
        """Return a new key with ``id_or_name`` added to this partial key.

        Raises:
            ValueError: ``'Only a partial key can be completed.'`` for a complete key, or
                when ``id_or_name`` is neither a string nor an integer.
        """
        if not self.is_partial:
            raise ValueError("Only a partial key can be completed.")
        if not isinstance(id_or_name, (str, int)):
            raise ValueError(id_or_name, "ID/name was not a string or integer.")
        new_key = self._clone()
        new_key._flat_path += (id_or_name,)
        return new_key

    # -- legacy urlsafe (SEMANTICS.md §1.5) --------------------------------------------------

    def to_legacy_urlsafe(self, location_prefix: str | None = None) -> bytes:
        """Encode as App Engine's urlsafe ``Reference`` string (padding stripped).

        Args:
            location_prefix: An App Engine location prefix such as ``"s~"``, prepended to
                the project to match strings produced inside App Engine.

        Returns:
            The URL-safe base64 bytes, identical to google-cloud-datastore's.
        """
        if self._database:
            raise ValueError("to_legacy_urlsafe only supports the default database")
        app = self._project if location_prefix is None else location_prefix + self._project
        raw = _encode_reference(app, _parse_path(self._flat_path), self._namespace)
        return base64.urlsafe_b64encode(raw).strip(b"=")

    @classmethod
    def from_legacy_urlsafe(cls, urlsafe: bytes | str) -> Key:
        """Decode a string made by :meth:`to_legacy_urlsafe` or by App Engine's ``urlsafe()``.

        Raises:
            ValueError: For a database id, an element with both id and name, or an empty
                element that is not the last one.
        """
        if isinstance(urlsafe, str):
            urlsafe = urlsafe.encode("ascii")
        urlsafe += b"=" * (-len(urlsafe) % 4)
        raw = base64.urlsafe_b64decode(urlsafe)
        app, name_space, database_id, elements = _decode_reference(raw)
        project = app.split("~", 1)[-1]
        if database_id:
            raise ValueError(_DATABASE_ID_TEMPLATE.format(database_id))
        flat: list[Any] = []
        last = len(elements) - 1
        for index, (kind, id_, name) in enumerate(elements):
            flat.append(kind)
            if id_ == 0:
                if name == "":
                    if index != last:
                        raise ValueError(_EMPTY_ELEMENT)
                else:
                    flat.append(name)
            elif name == "":
                flat.append(id_)
            else:
                raise ValueError(_BAD_ELEMENT_TEMPLATE.format(id_, name))
        return cls(*flat, project=project, namespace=name_space or None)

    # -- properties --------------------------------------------------------------------------

    @property
    def is_partial(self) -> bool:
        """True when the last path element has neither an id nor a name."""
        return len(self._flat_path) % 2 == 1

    @property
    def database(self) -> str | None:
        """The database of the key (``None`` = default)."""
        return self._database

    @property
    def namespace(self) -> str | None:
        """The namespace of the key (``None`` = default)."""
        return self._namespace

    @property
    def path(self) -> list[PathElement]:
        """The path as a new list: ``[{'kind': ..., 'id'|'name': ...}, ...]``."""
        return _parse_path(self._flat_path)

    @property
    def flat_path(self) -> tuple[Any, ...]:
        """The path as a flat tuple ``(kind, id_or_name, kind, ...)``."""
        return self._flat_path

    @property
    def kind(self) -> str:
        """The kind of the last path element."""
        path = self._flat_path
        return path[-1] if len(path) % 2 else path[-2]  # type: ignore[no-any-return]

    @property
    def id(self) -> int | None:
        """The numeric id of the last path element, if any."""
        path = self._flat_path
        if len(path) % 2 == 0 and not isinstance(path[-1], str):
            return path[-1]  # type: ignore[no-any-return]
        return None

    @property
    def name(self) -> str | None:
        """The string name of the last path element, if any."""
        path = self._flat_path
        if len(path) % 2 == 0 and isinstance(path[-1], str):
            return path[-1]
        return None

    @property
    def id_or_name(self) -> int | str | None:
        """The id, else the name, of the last path element."""
        path = self._flat_path
        return path[-1] if len(path) % 2 == 0 else None

    @property
    def project(self) -> str:
        """The project of the key."""
        return self._project

    @property
    def parent(self) -> Key | None:
        """The parent key, or ``None`` for a root key (cached)."""
        if self._parent is None:
            parent_args = self._flat_path[:-1] if self.is_partial else self._flat_path[:-2]
            if parent_args:
                self._parent = self.__class__(
                    *parent_args,
                    project=self._project,
                    database=self._database,
                    namespace=self._namespace,
                )
        return self._parent

    def to_protobuf(self) -> Any:
        """Return a ``google.cloud.datastore_v1.types.Key`` (needs google-cloud-datastore)."""
        from google.cloud.datastore_v1.types import entity as entity_pb2

        key = entity_pb2.Key()
        key.partition_id.project_id = self._project
        if self._database:
            key.partition_id.database_id = self._database
        if self._namespace:
            key.partition_id.namespace_id = self._namespace
        for item in _parse_path(self._flat_path):
            element = key.PathElement()
            element.kind = item["kind"]
            if "id" in item:
                element.id = item["id"]
            if "name" in item:
                element.name = item["name"]
            key.path.append(element)
        return key

    def __repr__(self) -> str:
        text = f"<Key{self._flat_path}, project={self._project}"
        if self._database:
            text += f", database={self._database}"
        return text + ">"

    def __copy__(self) -> Key:
        return Key._from_trusted(self._flat_path, self._project, self._namespace, self._database)

    def __deepcopy__(self, memo: dict[int, Any]) -> Key:
        return self.__copy__()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._flat_path, self._project, self._namespace, self._database))


def _rebuild(
    flat_path: tuple[Any, ...], project: str, namespace: str | None, database: str | None
) -> Key:
    return Key(*flat_path, project=project, namespace=namespace, database=database)


def _parse_path(path_args: tuple[Any, ...]) -> list[PathElement]:
    """Turn ``(kind, id_or_name, ...)`` into path dicts, with the official error texts."""
    if len(path_args) == 0:
        raise ValueError("Key path must not be empty.")
    result: list[PathElement] = []
    n = len(path_args)
    for i in range(0, n, 2):
        kind = path_args[i]
        if not isinstance(kind, str):
            raise ValueError(kind, "Kind was not a string.")
        part: PathElement = {"kind": kind}
        if i + 1 < n:
            id_or_name = path_args[i + 1]
            if isinstance(id_or_name, str):
                part["name"] = id_or_name
            elif isinstance(id_or_name, int):
                part["id"] = id_or_name
            else:
                raise ValueError(id_or_name, "ID/name was not a string or integer.")
        result.append(part)
    return result


# -- hand-written proto2 ``Reference`` codec (SEMANTICS.md §1.5) --------------------------------
#
#   Reference: 6a <len> app | 72 <len> Path | a2 01 <len> name_space | ba 01 <len> database_id
#   Path:      per element: 0b (group start, field 1) 12 <len> type
#              [18 <varint id> | 22 <len> name] 0c


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # proto int64: negative numbers are ten-byte varints
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _encode_reference(app: str, path: list[PathElement], namespace: str | None) -> bytes:
    elements = bytearray()
    for part in path:
        elements += b"\x0b" + _length_delimited(b"\x12", part["kind"].encode("utf-8"))
        if "id" in part:
            elements += b"\x18" + _varint(part["id"])
        elif "name" in part:
            elements += _length_delimited(b"\x22", part["name"].encode("utf-8"))
        elements += b"\x0c"
    raw = _length_delimited(b"\x6a", app.encode("utf-8"))
    raw += _length_delimited(b"\x72", bytes(elements))
    if namespace is not None:
        # The official client emits name_space whenever it is not None, even "" (§1.5 quirk).
        raw += _length_delimited(b"\xa2\x01", namespace.encode("utf-8"))
    return raw


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def varint(self) -> int:
        shift = result = 0
        while True:
            if self.pos >= len(self.data):
                raise ValueError("Truncated urlsafe key.")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def bytes_field(self) -> bytes:
        length = self.varint()
        end = self.pos + length
        if end > len(self.data):
            raise ValueError("Truncated urlsafe key.")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def skip(self, wire_type: int) -> None:
        if wire_type == 0:
            self.varint()
        elif wire_type == 2:
            self.bytes_field()
        elif wire_type == 1:
            self.pos += 8
        elif wire_type == 5:
            self.pos += 4
        else:
            raise ValueError("Unsupported field in urlsafe key.")


def _decode_reference(raw: bytes) -> tuple[str, str, str, list[tuple[str, int, str]]]:
    reader = _Reader(raw)
    app = name_space = database_id = ""
    elements: list[tuple[str, int, str]] = []
    while reader.pos < len(raw):
        tag = reader.varint()
        field, wire = tag >> 3, tag & 7
        if field == 13 and wire == 2:
            app = reader.bytes_field().decode("utf-8")
        elif field == 14 and wire == 2:
            elements = _decode_path(reader.bytes_field())
        elif field == 20 and wire == 2:
            name_space = reader.bytes_field().decode("utf-8")
        elif field == 23 and wire == 2:
            database_id = reader.bytes_field().decode("utf-8")
        else:
            reader.skip(wire)
    return app, name_space, database_id, elements


def _decode_path(raw: bytes) -> list[tuple[str, int, str]]:
    reader = _Reader(raw)
    elements: list[tuple[str, int, str]] = []
    while reader.pos < len(raw):
        tag = reader.varint()
        if tag != 0x0B:  # group start, field 1
            reader.skip(tag & 7)
            continue
        kind, id_, name = "", 0, ""
        while True:
            inner = reader.varint()
            if inner == 0x0C:  # group end
                break
            field, wire = inner >> 3, inner & 7
            if field == 2 and wire == 2:
                kind = reader.bytes_field().decode("utf-8")
            elif field == 3 and wire == 0:
                id_ = reader.varint()
                if id_ >= 1 << 63:
                    id_ -= 1 << 64
            elif field == 4 and wire == 2:
                name = reader.bytes_field().decode("utf-8")
            else:
                reader.skip(wire)
        elements.append((kind, id_, name))
    return elements
