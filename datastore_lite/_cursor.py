"""Query cursors: a signed position (DESIGN.md §10). Pure functions, no I/O.

Layout (before the client's URL-safe base64)::

    01 | varint len | merge key | varint len | entity key | 8-byte query fingerprint
       | 16-byte keyed BLAKE2b MAC of everything before, keyed with the database secret

The position is the last result's encoded sort values and key, not an offset, so resuming
finds the first result strictly after it even if that entity was deleted (SEMANTICS.md
§4.6). A cursor that was altered, or that belongs to another query, is InvalidArgument.
"""

from __future__ import annotations

import hashlib
import hmac

from . import exceptions

__all__ = ["decode_cursor", "encode_cursor"]

_VERSION = 1
_MAC_BYTES = 16
_FINGERPRINT_BYTES = 8


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        bits = n & 0x7F
        n >>= 7
        if n:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if pos >= len(data) or shift > 35:
            raise ValueError("truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _mac(secret: bytes, payload: bytes) -> bytes:
    # keyed BLAKE2b is a MAC (RFC 7693) and one C call: cheaper than HMAC-SHA256 per page
    return hashlib.blake2b(payload, key=secret[:64], digest_size=_MAC_BYTES).digest()


def encode_cursor(secret: bytes, fingerprint: bytes, merge_key: bytes, key: bytes) -> bytes:
    """The cursor for a position in the query identified by ``fingerprint``."""
    payload = (
        bytes([_VERSION])
        + _varint(len(merge_key))
        + merge_key
        + _varint(len(key))
        + key
        + fingerprint
    )
    return payload + _mac(secret, payload)


def decode_cursor(secret: bytes, fingerprint: bytes, cursor: bytes) -> tuple[bytes, bytes]:
    """Return ``(merge_key, key)``.

    Raises:
        InvalidArgument: Tampered, truncated, foreign, or from a different query.
    """
    if len(cursor) < 1 + 2 + _FINGERPRINT_BYTES + _MAC_BYTES or cursor[0] != _VERSION:
        raise exceptions.InvalidArgument("Invalid cursor: not a datastore_lite cursor.")
    payload, mac = cursor[:-_MAC_BYTES], cursor[-_MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise exceptions.InvalidArgument(
            "Invalid cursor: it was altered or comes from another database."
        )
    try:
        size, pos = _read_varint(payload, 1)
        merge_key = payload[pos : pos + size]
        pos += size
        size, pos = _read_varint(payload, pos)
        key = payload[pos : pos + size]
        pos += size
    except ValueError:
        raise exceptions.InvalidArgument("Invalid cursor: truncated.") from None
    if payload[pos:] != fingerprint:
        raise exceptions.InvalidArgument(
            "Invalid cursor: it belongs to a different query (cursors only work with the "
            "query that produced them: same kind, ancestor, filters, orders and projection)."
        )
    return merge_key, key
