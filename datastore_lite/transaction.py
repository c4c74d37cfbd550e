"""Transactions, with the API of ``google.cloud.datastore.transaction.Transaction``.

Optimistic concurrency per entity group (DESIGN.md §8): each group's version is
snapshotted at the transaction's first read of it; the commit fails with
:class:`~datastore_lite.exceptions.Aborted` if any group it read or wrote moved since.
Reads inside a transaction do not see its own writes. The context manager commits on
exit and rolls back on an exception; it never retries — use
:meth:`Client.run_in_transaction` for that.
"""

from __future__ import annotations

import datetime as _dt
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .batch import Batch
from .entity import Entity

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Transaction"]

NOT_IN_PROGRESS = (
    "Transaction is not in progress: it was committed, rolled back or aborted. "
    "Start a new transaction (or use client.run_in_transaction, which retries)."
)


class Transaction(Batch):
    """An atomic unit of reads and writes across up to 25 entity groups (legacy).

    Args:
        client: The client to run on.
        read_only: Reads only; ``put`` raises ``RuntimeError('Transaction is read only')``.
        read_time: Accepted for API parity (read-only transactions only); datastore_lite
            keeps no history, so reads are always of the current data.
        begin_later: Begin at the first read or at commit instead of on ``with``.

    Example:
        >>> from datastore_lite import Client, Entity
        >>> client = Client(project="doc", url="sqlite://")
        >>> with client.transaction():
        ...     key = client.key("Counter", "hits")
        ...     counter = client.get(key) or Entity(key)
        ...     counter["n"] = counter.get("n", 0) + 1
        ...     client.put(counter)
    """

    def __init__(
        self,
        client: Client,
        read_only: bool = False,
        read_time: _dt.datetime | None = None,
        begin_later: bool = False,
    ) -> None:
        super().__init__(client)
        self._id = None
        self._begin_later = begin_later
        if read_time is not None and not read_only:
            raise ValueError("read_time is only allowed in read only transaction.")
        self._read_only = read_only
        self._read_time = read_time

    @property
    def id(self) -> bytes | None:
        """The transaction id while in progress, else None."""
        return self._id

    def current(self) -> Transaction | None:
        """The topmost transaction of the client (None if the top is a plain batch)."""
        top = super().current()
        return top if isinstance(top, Transaction) else None

    def begin(self, retry: Any = None, timeout: Any = None) -> None:
        """Start the transaction (done by ``with`` unless ``begin_later``)."""
        super().begin()
        try:
            self._id = self._client._datastore_api.begin_transaction(read_only=self._read_only)
        except BaseException:
            self._status = self._ABORTED
            raise

    def _read_id(self) -> bytes:
        """The id to read with, beginning now if ``begin_later`` deferred it."""
        if self._status == self._INITIAL and self._begin_later:
            self.begin()
        if self._status != self._IN_PROGRESS or self._id is None:
            raise ValueError(NOT_IN_PROGRESS)
        return self._id

    def rollback(self, retry: Any = None, timeout: Any = None) -> None:
        """Abandon the transaction; nothing it queued is written."""
        if self._status == self._INITIAL:
            self._status = self._ABORTED
            self._id = None
            return
        try:
            if self._id is not None:
                self._client._datastore_api.rollback(self._id)
        finally:
            super().rollback()
            self._id = None

    def commit(self, retry: Any = None, timeout: Any = None) -> None:
        """Commit; raises :class:`~datastore_lite.exceptions.Aborted` on contention."""
        if self._status == self._INITIAL:
            if not self._mutations:
                self._status = self._ABORTED
                self._id = None
                return
            self.begin()
        try:
            super().commit(retry=retry, timeout=timeout)
        finally:
            self._id = None

    def put(self, entity: Entity) -> None:
        """Queue ``entity`` to be saved at commit."""
        if self._read_only:
            raise RuntimeError("Transaction is read only")
        super().put(entity)

    def __enter__(self) -> Transaction:
        if not self._begin_later:
            self.begin()
        self._client._push_batch(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        super().__exit__(exc_type, exc_val, exc_tb)

    def _allow_mutations(self) -> bool:
        return self._status == self._IN_PROGRESS or (
            self._begin_later and self._status == self._INITIAL
        )
