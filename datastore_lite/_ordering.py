"""Order-preserving byte encodings of keys and index values. Pure functions, no I/O.

Byte order of the encodings is Datastore order, so SQL compares them with plain
``BLOB``/``bytea`` comparison and every query is a range scan.

Value encoding (DESIGN.md §5, SEMANTICS.md §2.1) — a rank byte in Datastore's cross-type
order, then the value::

    null       10
    int / ts   20 <8 bytes: int64 + 2**63, big-endian>   (timestamps as µs: one class)
    bool       30 <00|01>
    str/bytes  40 <escaped raw bytes> 00 01               (str as UTF-8: one class)
    double     50 <8 bytes: sortable IEEE-754>            (-inf < -0.0 < 0.0 < inf < NaN)
    geo point  60 <double lat> <double lng>
    key        70 <esc project> <esc database> <esc namespace> <path> 00 00

    escaping:  00 -> 00 ff, then 00 01 terminates, so "a" < "a\\0" < "ab"

Path (a stored key; an ancestor's encoding is a prefix of its descendants')::

    element := <escaped kind> 00 01 ( 01 <int64 id> | 02 <escaped name> 00 01 )

so ids sort before names, kinds byte-wise, ancestors before descendants (SEMANTICS.md §1.3).
Every encoding is self-delimiting (hence prefix-free), so concatenated components of a
composite index compare component by component, and a descending component is stored
bitwise inverted.
"""

from __future__ import annotations

import datetime as _dt
import math
import struct
from typing import Any

from ._values import GeoValue, KeyRef, to_micros

__all__ = [
    "PATH_END",
    "RANK_BOOL",
    "RANK_DOUBLE",
    "RANK_GEO",
    "RANK_INT",
    "RANK_KEY",
    "RANK_NULL",
    "RANK_STR",
    "StrOrBytes",
    "ancestor_leads",
    "component_end",
    "decode_path",
    "decode_value",
    "encode_key_group",
    "encode_plain_key_group",
    "encode_path",
    "encode_path_value",
    "encode_value",
    "invert",
    "prefix_end",
]

RANK_NULL = 0x10
RANK_INT = 0x20
RANK_BOOL = 0x30
RANK_STR = 0x40
RANK_DOUBLE = 0x50
RANK_GEO = 0x60
RANK_KEY = 0x70

_NULL = bytes([RANK_NULL])
_FALSE = bytes([RANK_BOOL, 0])
_TRUE = bytes([RANK_BOOL, 1])
_TERM = b"\x00\x01"
_PATH_END = b"\x00\x00"
PATH_END = _PATH_END  # ends encode_path_value (the planner rebinds ancestors with it)
_ID = b"\x01"
_NAME = b"\x02"
_SIGN = 1 << 63
_MASK = (1 << 64) - 1
_CANONICAL_NAN = 0x7FF8000000000000
_pack_q = struct.Struct(">Q").pack
_unpack_q = struct.Struct(">Q").unpack_from
_pack_d = struct.Struct(">d").pack
_unpack_d = struct.Struct(">d").unpack


class StrOrBytes(bytes):
    """A decoded str/bytes index value: the two share one class (SEMANTICS.md §2.1)."""


def _esc(raw: bytes) -> bytes:
    return raw.replace(b"\x00", b"\x00\xff") + _TERM


def _int64(value: int) -> bytes:
    return _pack_q(value + _SIGN)


def _double(value: float) -> bytes:
    if value != value:  # NaN: one canonical bit pattern, the largest double
        bits = _CANONICAL_NAN
    else:
        bits = _unpack_q(_pack_d(value))[0]
    # sortable IEEE-754: negative -> flip all bits; non-negative -> flip the sign bit
    bits = bits ^ _MASK if bits & _SIGN else bits ^ _SIGN
    return _pack_q(bits)


def encode_path(path: tuple[Any, ...]) -> bytes:
    """Encode a complete flat path ``(kind, id_or_name, ...)`` as a stored key."""
    return encode_key_group(path)[0]


_KIND_CACHE: dict[str, bytes] = {}


def _kind_bytes(kind: str) -> bytes:
    """A kind's escaped, terminated encoding (kinds are few: cached)."""
    encoded = _KIND_CACHE.get(kind)
    if encoded is None:
        encoded = _esc(kind.encode("utf-8"))
        if len(_KIND_CACHE) < 4096:
            _KIND_CACHE[kind] = encoded
    return encoded


def _ident_bytes(ident: Any) -> bytes:
    if type(ident) is str:
        name = ident.encode("utf-8")
        if b"\x00" in name:
            name = name.replace(b"\x00", b"\x00\xff")
        return _NAME + name + _TERM
    return _ID + _pack_q(ident + _SIGN)


def encode_key_group(path: tuple[Any, ...]) -> tuple[bytes, bytes]:
    """A stored key and its entity group's key (the root element), encoded in one pass."""
    root = _kind_bytes(path[0]) + _ident_bytes(path[1])
    if len(path) == 2:
        return root, root
    if len(path) == 4:
        return root + _kind_bytes(path[2]) + _ident_bytes(path[3]), root
    rest = [root]
    for i in range(2, len(path), 2):
        rest.append(_kind_bytes(path[i]))
        rest.append(_ident_bytes(path[i + 1]))
    return b"".join(rest), root


# The plain-key rule of ``_limits.plainly_valid_path`` for reads, checked while encoding
# (the hot path of ``client.get`` walks the path once): kinds and names of 1 to 375
# characters (375 x 4 <= 1500 UTF-8 bytes), ids non-zero int64s.
_PLAIN_NAME_CHARS = 375
_PLAIN_KINDS: dict[str, bytes] = {}  # kinds already seen plain, with their encoding


def _plain_element(kind: Any, ident: Any) -> bytes | None:
    encoded = _PLAIN_KINDS.get(kind) if type(kind) is str else None
    if encoded is None:
        if type(kind) is not str or not kind or len(kind) > _PLAIN_NAME_CHARS:
            return None
        encoded = _kind_bytes(kind)
        if len(_PLAIN_KINDS) < 4096:
            _PLAIN_KINDS[kind] = encoded
    kind_of_ident = type(ident)
    if kind_of_ident is int:
        if not ident or not -_SIGN <= ident < _SIGN:
            return None
        return encoded + _ID + _pack_q(ident + _SIGN)
    if kind_of_ident is str:
        if not ident or len(ident) > _PLAIN_NAME_CHARS:
            return None
        name: bytes = ident.encode("utf-8")
        if b"\x00" in name:
            name = name.replace(b"\x00", b"\x00\xff")
        return encoded + _NAME + name + _TERM
    return None


def encode_plain_key_group(path: tuple[Any, ...]) -> tuple[bytes, bytes] | None:
    """``encode_key_group(path)`` if the path is plainly valid for a read, else None.

    Same answer as ``_limits.plainly_valid_path(..., path, write=False)`` followed by
    ``encode_key_group`` (the partition strings are the caller's to check), in one pass:
    on None the caller validates in full and raises the precise error.
    """
    n = len(path)
    if n == 4:  # the common entity under a root (a photo under its user)
        root = _plain_element(path[0], path[1])
        if root is None:
            return None
        leaf = _plain_element(path[2], path[3])
        return None if leaf is None else (root + leaf, root)
    if n == 2:
        root = _plain_element(path[0], path[1])
        return None if root is None else (root, root)
    if n == 0 or n % 2 or n > 200:  # 200: _limits.MAX_PATH_ELEMENTS elements
        return None
    parts = []
    for i in range(0, n, 2):
        element = _plain_element(path[i], path[i + 1])
        if element is None:
            return None
        parts.append(element)
    return b"".join(parts), parts[0]


def ancestor_leads(path: tuple[Any, ...]) -> list[bytes]:
    """``encode_path_value`` of every ancestor of a complete path, root first, the path
    itself last, in one pass (the leads of an ancestor composite index's entries)."""
    leads = []
    encoded = b""
    for i in range(0, len(path), 2):
        encoded += _kind_bytes(path[i]) + _ident_bytes(path[i + 1])
        leads.append(encoded + _PATH_END)
    return leads


def encode_path_value(path: tuple[Any, ...]) -> bytes:
    """A self-delimiting path encoding (for keys inside index values)."""
    return encode_path(path) + _PATH_END


def encode_value(value: Any) -> bytes:
    """Encode one indexable value (never a list or an embedded entity)."""
    kind = type(value)
    if kind is str:
        return b"\x40" + _esc(value.encode("utf-8"))
    if kind is int:
        return b"\x20" + _int64(value)
    if value is None:
        return _NULL
    if kind is bool:
        return _TRUE if value else _FALSE
    if kind is float:
        return b"\x50" + _double(value)
    if kind is bytes:
        return b"\x40" + _esc(value)
    if isinstance(value, _dt.datetime):
        return b"\x20" + _int64(to_micros(value))
    if kind is KeyRef:
        return (
            b"\x70"
            + _esc(value.project.encode("utf-8"))
            + _esc(value.database.encode("utf-8"))
            + _esc(value.namespace.encode("utf-8"))
            + encode_path_value(value.path)
        )
    if kind is GeoValue:
        return b"\x60" + _double(value.latitude) + _double(value.longitude)
    if isinstance(value, int):  # int subclasses (bool handled above)
        return b"\x20" + _int64(int(value))
    if isinstance(value, float):
        return b"\x50" + _double(float(value))
    if isinstance(value, str):
        return b"\x40" + _esc(value.encode("utf-8"))  # the content, even of a str Enum
    if isinstance(value, bytes):
        return b"\x40" + _esc(bytes(value))
    raise TypeError(f"value of type {kind.__name__} has no index encoding")


def invert(data: bytes) -> bytes:
    """Bitwise inversion: the encoding of a descending component."""
    return data.translate(_INVERT)


_INVERT = bytes(range(255, -1, -1))


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with ``prefix``.

    ``None`` when there is none (the prefix is all ``ff``).
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


# -- decoding ----------------------------------------------------------------------------------


def _unesc(data: bytes, pos: int) -> tuple[bytes, int]:
    """Read an escaped, terminated byte string starting at ``pos``."""
    end = data.index(b"\x00", pos)
    if data[end + 1] == 0x01:  # no escaped NUL inside: the common case, one slice
        return data[pos:end], end + 2
    out = bytearray()
    while True:
        end = data.index(b"\x00", pos)
        out += data[pos:end]
        marker = data[end + 1]
        if marker == 0x01:
            return bytes(out), end + 2
        if marker == 0xFF:
            out.append(0)
            pos = end + 2
        else:
            raise ValueError("corrupt escaped string in index value")


def _read_double(data: bytes, pos: int) -> float:
    bits = _unpack_q(data, pos)[0]
    bits = bits ^ _SIGN if bits & _SIGN else bits ^ _MASK
    value: float = _unpack_d(_pack_q(bits))[0]
    return value


def decode_path(data: bytes, pos: int = 0, end: int | None = None) -> tuple[Any, ...]:
    """Decode a stored key (or the path part of a key value, up to ``end``)."""
    if pos == 0 and end is None:
        fast = _decode_plain_path(data)
        if fast is not None:
            return fast
    return _decode_path(data, pos, end)


def _decode_plain_path(data: bytes) -> tuple[Any, ...] | None:
    """Decode a stored key with no escaped NUL bytes (nearly all keys), or return None."""
    out: list[Any] = []
    append = out.append
    find = data.find
    pos = 0
    n = len(data)
    while pos < n:
        end = find(b"\x00", pos)
        if end < 0 or data[end + 1] != 0x01:
            return None
        append(data[pos:end].decode())
        pos = end + 2
        marker = data[pos]
        if marker == 0x01:
            append(_unpack_q(data, pos + 1)[0] - _SIGN)
            pos += 9
        elif marker == 0x02:
            end = find(b"\x00", pos + 1)
            if end < 0 or data[end + 1] != 0x01:
                return None
            append(data[pos + 1 : end].decode())
            pos = end + 2
        else:
            return None
    return tuple(out)


def _decode_path(data: bytes, pos: int = 0, end: int | None = None) -> tuple[Any, ...]:
    limit = len(data) if end is None else end
    out: list[Any] = []
    while pos < limit:
        if data[pos : pos + 2] == _PATH_END:
            break
        kind, pos = _unesc(data, pos)
        out.append(kind.decode("utf-8"))
        marker = data[pos]
        if marker == 0x01:
            out.append(_unpack_q(data, pos + 1)[0] - _SIGN)
            pos += 9
        elif marker == 0x02:
            name, pos = _unesc(data, pos + 1)
            out.append(name.decode("utf-8"))
        else:
            raise ValueError("corrupt key encoding")
    return tuple(out)


def _path_value_end(data: bytes, pos: int) -> int:
    """Position just after the ``00 00`` terminator of a path value starting at ``pos``."""
    while True:
        if data[pos : pos + 2] == _PATH_END:
            return pos + 2
        _, pos = _unesc(data, pos)
        if data[pos] == 0x01:
            pos += 9
        else:
            _, pos = _unesc(data, pos + 1)


def decode_value(data: bytes, pos: int = 0) -> tuple[Any, int]:
    """Decode one value at ``pos``; return it and the position after it.

    Timestamps come back as int microseconds (as projections return them, SEMANTICS.md
    §2.2); strings and bytes as :class:`StrOrBytes`, since the encoding cannot tell them apart.
    """
    rank = data[pos]
    if rank == RANK_NULL:
        return None, pos + 1
    if rank == RANK_INT:
        return _unpack_q(data, pos + 1)[0] - _SIGN, pos + 9
    if rank == RANK_BOOL:
        return data[pos + 1] == 1, pos + 2
    if rank == RANK_STR:
        raw, end = _unesc(data, pos + 1)
        return StrOrBytes(raw), end
    if rank == RANK_DOUBLE:
        return _read_double(data, pos + 1), pos + 9
    if rank == RANK_GEO:
        return GeoValue(_read_double(data, pos + 1), _read_double(data, pos + 9)), pos + 17
    if rank == RANK_KEY:
        project, p = _unesc(data, pos + 1)
        database, p = _unesc(data, p)
        namespace, p = _unesc(data, p)
        end = _path_value_end(data, p)
        path = decode_path(data, p, end - 2)
        ref = KeyRef(project.decode(), database.decode(), namespace.decode(), path)
        return ref, end
    raise ValueError(f"corrupt index value (rank byte {rank:#x})")


def value_end(data: bytes, pos: int) -> int:
    """Position just after the value encoded at ``pos`` (without decoding it)."""
    return decode_value(data, pos)[1]


def component_end(data: bytes, pos: int, is_key: bool) -> int:
    """Position just after one composite index component starting at ``pos``.

    ``__key__`` components are bare path encodings (no rank byte, see
    ``indexes.composite_values``); every other component is a value encoding.
    """
    return _path_value_end(data, pos) if is_key else decode_value(data, pos)[1]


def is_nan(value: Any) -> bool:
    return type(value) is float and math.isnan(value)
