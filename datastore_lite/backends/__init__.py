"""Storage backends: ``open_backend(url)`` picks the class from the URL scheme."""

from __future__ import annotations

import importlib

from .sql import SQLBackend

__all__ = ["SQLBackend", "normalize_url", "open_backend"]

# scheme -> "module:Class", imported lazily so SQLite users never import psycopg.
_BACKENDS = {
    "sqlite": "datastore_lite.backends.sqlite:SQLiteBackend",
    "postgresql": "datastore_lite.backends.postgresql:PostgreSQLBackend",
}


def normalize_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` and route them to psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _masked(url: str) -> str:
    """The URL with any password replaced by ***."""
    import re

    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def open_backend(url: str) -> SQLBackend:
    """Open (creating tables on first use) the store at ``url``.

    Raises:
        ValueError: The URL names a database datastore_lite does not support.
    """
    url = normalize_url(url)
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    target = _BACKENDS.get(scheme)
    if target is None:
        raise ValueError(
            f"unsupported database URL {_masked(url)!r}: use sqlite:///path.db, sqlite:// "
            "(memory) or postgresql://user@host/dbname"
        )
    module_name, class_name = target.split(":")
    cls: type[SQLBackend] = getattr(importlib.import_module(module_name), class_name)
    try:
        return cls(url)
    except Exception as exc:
        if type(exc).__module__.startswith("sqlalchemy"):
            # e.g. a malformed URL: never let SQLAlchemy's own exception escape
            raise ValueError(f"invalid database URL {_masked(url)!r}: {exc}") from None
        raise
