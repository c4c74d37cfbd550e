"""Exceptions raised by datastore_lite.

The names and parents mirror ``google.api_core.exceptions`` (SEMANTICS.md §7.2), so code
written for google-cloud-datastore keeps catching what it caught before. Every class also
derives from :class:`DatastoreLiteError`, the one base of this library::

    DatastoreLiteError
    └── GoogleAPICallError                 (str(exc) == "<http code> <message>")
        ├── ClientError
        │   ├── BadRequest (400)
        │   │   ├── InvalidArgument        bad key / value / limit, closed transaction, bad cursor
        │   │   ├── FailedPrecondition     no matching composite index (NeedIndex)
        │   │   └── OutOfRange
        │   ├── Unauthenticated (401)
        │   ├── PermissionDenied (403)
        │   ├── NotFound (404)             update of a missing entity
        │   ├── Conflict (409)
        │   │   ├── Aborted                contention: retry the whole transaction
        │   │   └── AlreadyExists          insert of an existing entity
        │   ├── ResourceExhausted (429)
        │   └── Cancelled (499)
        └── ServerError
            ├── InternalServerError (500)
            ├── MethodNotImplemented (501)
            ├── ServiceUnavailable (503)
            └── GatewayTimeout (504)
                └── DeadlineExceeded

When ``google-api-core`` is importable each class additionally subclasses the api_core
class of the same name, so ``except google.api_core.exceptions.Conflict`` works unchanged
(see docs/compatibility.md).
"""

from __future__ import annotations

from typing import Any, cast

__all__ = [
    "Aborted",
    "AlreadyExists",
    "BadRequest",
    "Cancelled",
    "ClientError",
    "Conflict",
    "DatastoreLiteError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "GatewayTimeout",
    "GoogleAPICallError",
    "InternalServerError",
    "InvalidArgument",
    "MethodNotImplemented",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "ServerError",
    "ServiceUnavailable",
    "Unauthenticated",
    "Unknown",
]

_api_core: Any
try:  # pragma: no cover - exercised when google-api-core is installed (the test extra)
    from google.api_core import exceptions as _api_core
except ImportError:  # pragma: no cover
    _api_core = None


class DatastoreLiteError(Exception):
    """Base class of every exception raised by datastore_lite."""

    message: str = ""


def _api_base(name: str) -> tuple[type, ...]:
    """The api_core class of the same name, when google-api-core is importable."""
    if _api_core is None:
        return ()
    cls = getattr(_api_core, name, None)
    return (cls,) if isinstance(cls, type) else ()


class _CallErrorBase(DatastoreLiteError):
    """``code``/``message`` and the api_core string form ``"<code> <message>"``."""

    code: int | None = None

    def __init__(self, message: str = "", *args: Any, **kwargs: Any) -> None:
        api = [b for b in type(self).__mro__ if b.__module__ == "google.api_core.exceptions"]
        if api:
            # api_core's GoogleAPICallError.__init__(message, errors=(), details=(), ...)
            cast(Any, api[-1]).__init__(self, message, *args, **kwargs)
        else:
            Exception.__init__(self, message, *args)
        self.message = message

    def __str__(self) -> str:
        if self.code is None:
            return self.message
        return f"{self.code} {self.message}"


class GoogleAPICallError(_CallErrorBase, *_api_base("GoogleAPICallError")):  # type: ignore[misc]
    """api_core ``GoogleAPICallError``."""

    code: int | None = None


class ClientError(GoogleAPICallError, *_api_base("ClientError")):  # type: ignore[misc]
    """api_core ``ClientError``."""

    code: int | None = None


class BadRequest(ClientError, *_api_base("BadRequest")):  # type: ignore[misc]
    """api_core ``BadRequest`` (HTTP 400)."""

    code: int | None = 400


class InvalidArgument(BadRequest, *_api_base("InvalidArgument")):  # type: ignore[misc]
    """api_core ``InvalidArgument`` (HTTP 400)."""

    code: int | None = 400


class FailedPrecondition(BadRequest, *_api_base("FailedPrecondition")):  # type: ignore[misc]
    """api_core ``FailedPrecondition`` (HTTP 400)."""

    code: int | None = 400


class OutOfRange(BadRequest, *_api_base("OutOfRange")):  # type: ignore[misc]
    """api_core ``OutOfRange`` (HTTP 400)."""

    code: int | None = 400


class Unauthenticated(ClientError, *_api_base("Unauthenticated")):  # type: ignore[misc]
    """api_core ``Unauthenticated`` (HTTP 401)."""

    code: int | None = 401


class PermissionDenied(ClientError, *_api_base("PermissionDenied")):  # type: ignore[misc]
    """api_core ``PermissionDenied`` (HTTP 403)."""

    code: int | None = 403


class NotFound(ClientError, *_api_base("NotFound")):  # type: ignore[misc]
    """api_core ``NotFound`` (HTTP 404)."""

    code: int | None = 404


class Conflict(ClientError, *_api_base("Conflict")):  # type: ignore[misc]
    """api_core ``Conflict`` (HTTP 409)."""

    code: int | None = 409


class Aborted(Conflict, *_api_base("Aborted")):  # type: ignore[misc]
    """api_core ``Aborted`` (HTTP 409)."""

    code: int | None = 409


class AlreadyExists(Conflict, *_api_base("AlreadyExists")):  # type: ignore[misc]
    """api_core ``AlreadyExists`` (HTTP 409)."""

    code: int | None = 409


class ResourceExhausted(ClientError, *_api_base("ResourceExhausted")):  # type: ignore[misc]
    """api_core ``ResourceExhausted`` (HTTP 429)."""

    code: int | None = 429


class Cancelled(ClientError, *_api_base("Cancelled")):  # type: ignore[misc]
    """api_core ``Cancelled`` (HTTP 499)."""

    code: int | None = 499


class ServerError(GoogleAPICallError, *_api_base("ServerError")):  # type: ignore[misc]
    """api_core ``ServerError``."""

    code: int | None = None


class InternalServerError(ServerError, *_api_base("InternalServerError")):  # type: ignore[misc]
    """api_core ``InternalServerError`` (HTTP 500)."""

    code: int | None = 500


class MethodNotImplemented(ServerError, *_api_base("MethodNotImplemented")):  # type: ignore[misc]
    """api_core ``MethodNotImplemented`` (HTTP 501)."""

    code: int | None = 501


class ServiceUnavailable(ServerError, *_api_base("ServiceUnavailable")):  # type: ignore[misc]
    """api_core ``ServiceUnavailable`` (HTTP 503)."""

    code: int | None = 503


class GatewayTimeout(ServerError, *_api_base("GatewayTimeout")):  # type: ignore[misc]
    """api_core ``GatewayTimeout`` (HTTP 504)."""

    code: int | None = 504


class DeadlineExceeded(GatewayTimeout, *_api_base("DeadlineExceeded")):  # type: ignore[misc]
    """api_core ``DeadlineExceeded`` (HTTP 504)."""

    code: int | None = 504


class Unknown(ServerError, *_api_base("Unknown")):  # type: ignore[misc]
    """api_core ``Unknown``."""

    code: int | None = None


# SEMANTICS.md §6.1: the legacy contention message, used by Aborted everywhere.
CONTENTION_MESSAGE = "too much contention on these datastore entities. please try again."
