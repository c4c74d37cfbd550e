"""Driver errors -> datastore_lite exceptions, at the backend edge (STYLE.md rule 7).

No ``sqlite3``, ``psycopg`` or ``sqlalchemy`` exception escapes the package: contention
becomes :class:`~datastore_lite.exceptions.Aborted` (which ``run_in_transaction`` retries),
a lost server becomes ``ServiceUnavailable``, anything else ``InternalServerError`` — always
raised ``from`` the original so the cause stays visible.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from .. import exceptions

__all__ = ["translate", "translating"]

_SQLITE_CONTENTION = ("database is locked", "database table is locked", "database is busy")
# PostgreSQL SQLSTATEs that mean "another transaction got in the way": retry the whole thing.
_PG_CONTENTION = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available
}
_PG_TIMEOUT = {"57014"}  # query_canceled (statement_timeout / lock_timeout)


def translate(exc: BaseException) -> exceptions.DatastoreLiteError:
    """Map one driver exception to the matching datastore_lite exception."""
    if isinstance(exc, exceptions.DatastoreLiteError):
        return exc
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's exception
    if isinstance(orig, BaseException) and orig is not exc:
        return translate(orig)
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if any(marker in text for marker in _SQLITE_CONTENTION):
            return exceptions.Aborted(exceptions.CONTENTION_MESSAGE)
        return exceptions.InternalServerError(f"SQLite error: {text}")
    if isinstance(exc, sqlite3.Error):
        return exceptions.InternalServerError(f"SQLite error: {exc}")
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate is not None:
        if sqlstate in _PG_CONTENTION:
            return exceptions.Aborted(exceptions.CONTENTION_MESSAGE)
        if sqlstate in _PG_TIMEOUT:
            return exceptions.DeadlineExceeded(f"PostgreSQL statement timed out: {exc}")
        if sqlstate.startswith("08"):
            return exceptions.ServiceUnavailable(f"PostgreSQL connection failed: {exc}")
        return exceptions.InternalServerError(f"PostgreSQL error {sqlstate}: {exc}")
    name = type(exc).__module__
    if name.startswith("psycopg"):
        kind = type(exc).__name__
        if kind == "DataError":  # refused client-side, e.g. a NUL byte in a text value
            return exceptions.InvalidArgument(f"PostgreSQL cannot store this value: {exc}")
        if kind in ("OperationalError", "InterfaceError"):
            # no SQLSTATE: the connection is gone
            return exceptions.ServiceUnavailable(f"PostgreSQL unavailable: {exc}")
        return exceptions.InternalServerError(f"PostgreSQL error: {exc}")
    if name.startswith("sqlalchemy"):
        return exceptions.InternalServerError(f"database error: {exc}")
    return exceptions.InternalServerError(f"database error: {type(exc).__name__}: {exc}")


def is_driver_error(exc: BaseException) -> bool:
    """True for exceptions raised by a database driver or by SQLAlchemy."""
    module = type(exc).__module__
    return isinstance(exc, sqlite3.Error) or module.startswith(("psycopg", "sqlalchemy"))


@contextmanager
def translating() -> Iterator[None]:
    """Re-raise driver errors inside the block as datastore_lite exceptions."""
    try:
        yield
    except Exception as exc:
        if is_driver_error(exc):
            raise translate(exc) from exc
        raise
