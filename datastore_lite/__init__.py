"""datastore_lite: Google Cloud Datastore semantics on SQLite or PostgreSQL.

Replace ``from google.cloud import datastore`` with ``import datastore_lite as datastore``
(or ``from datastore_lite import Client``) and keep the rest of the code.
"""

from __future__ import annotations

from ._consistency import Eventual, Strong
from ._throttle import GroupWriteLimit
from .batch import Batch
from .client import Client
from .entity import Entity
from .helpers import GeoPoint
from .key import Key
from .query import Query
from .query_profile import ExplainOptions
from .version import __version__

__all__ = [
    "__version__",
    "Batch",
    "Client",
    "Entity",
    "Eventual",
    "ExplainOptions",
    "GeoPoint",
    "GroupWriteLimit",
    "Key",
    "Query",
    "Strong",
    "Transaction",
]

from .transaction import Transaction  # noqa: E402  (after Batch, which it subclasses)
