"""Batches of writes, with the state machine of ``google.cloud.datastore.batch.Batch``.

``put`` snapshots the entity at call time (as the official client serialises it into a
protobuf), so later changes to the dict do not leak into the commit.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._commit import Mutation
from ._convert import entity_to_value, key_to_ref
from .entity import Entity
from .key import Key

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Batch"]


class Batch:
    """A group of puts and deletes sent to the store in one commit.

    Example:
        >>> from datastore_lite import Client, Entity
        >>> client = Client(project="doc", url="sqlite://")
        >>> with client.batch() as batch:
        ...     batch.put(Entity(client.key("Task", 1)))
        ...     batch.delete(client.key("Task", 2))
    """

    _id: bytes | None = None  # always None for non-transactional batches

    _INITIAL = 0
    _IN_PROGRESS = 1
    _ABORTED = 2
    _FINISHED = 3

    def __init__(self, client: Client) -> None:
        self._client = client
        self._mutations: list[Mutation] = []
        self._partial_key_entities: list[Entity] = []
        self._status = self._INITIAL

    def current(self) -> Batch | None:
        """The topmost batch or transaction of the client, or None."""
        return self._client.current_batch

    @property
    def project(self) -> str:
        return self._client.project

    @property
    def database(self) -> str | None:
        return self._client.database

    @property
    def namespace(self) -> str | None:
        return self._client.namespace

    @property
    def mutations(self) -> list[Mutation]:
        """The mutations queued so far (engine ``Mutation`` objects)."""
        return self._mutations

    def _allow_mutations(self) -> bool:
        return self._status == self._IN_PROGRESS

    def put(self, entity: Entity) -> None:
        """Queue ``entity`` to be saved; a partial key is completed on commit.

        Raises:
            ValueError: Not in progress, no key, or a key from another project/database.
        """
        if not self._allow_mutations():
            raise ValueError("Batch must be in progress to put()")
        key = entity.key
        if key is None:
            raise ValueError("Entity must have a key")
        client = self._client
        if client.project != key.project:
            raise ValueError("Key must be from same project as batch")
        if client.database != key.database:
            raise ValueError("Key must be from same database as batch")
        value = entity_to_value(entity)
        assert value.key is not None
        if key.is_partial:
            self._mutations.append(Mutation("insert", value.key, value))
            self._partial_key_entities.append(entity)
        else:
            # SEMANTICS.md §6.2: put of a complete key is an upsert
            self._mutations.append(Mutation("upsert", value.key, value))

    def delete(self, key: Key) -> None:
        """Queue ``key`` for deletion (deleting a missing entity is not an error)."""
        if not self._allow_mutations():
            raise ValueError("Batch must be in progress to delete()")
        if key.is_partial:
            raise ValueError("Key must be complete")
        if self.project != key.project:
            raise ValueError("Key must be from same project as batch")
        if self.database != key.database:
            raise ValueError("Key must be from same database as batch")
        self._mutations.append(Mutation("delete", key_to_ref(key)))

    def begin(self) -> None:
        """Start the batch (done by ``with``)."""
        if self._status != self._INITIAL:
            raise ValueError("Batch already started previously.")
        self._status = self._IN_PROGRESS

    def _commit(self, retry: Any = None, timeout: Any = None) -> None:
        results = self._client._datastore_api.commit(self._mutations, self._id)
        partial = iter(self._partial_key_entities)
        for mutation, result in zip(self._mutations, results):
            if mutation.op == "insert" and mutation.key.is_partial:
                entity = next(partial)
                assert entity.key is not None
                entity.key = entity.key.completed_key(result.key.path[-1])

    def commit(self, retry: Any = None, timeout: Any = None) -> None:
        """Send the queued mutations in one atomic commit.

        Raises:
            ValueError: The batch is not in progress.
        """
        if self._status != self._IN_PROGRESS:
            raise ValueError("Batch must be in progress to commit()")
        try:
            self._commit(retry=retry, timeout=timeout)
        finally:
            self._status = self._FINISHED

    def rollback(self) -> None:
        """Discard the queued mutations; the batch cannot be used again."""
        if self._status != self._IN_PROGRESS:
            raise ValueError("Batch must be in progress to rollback()")
        self._status = self._ABORTED

    def __enter__(self) -> Batch:
        self.begin()
        self._client._push_batch(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        try:
            if self._status not in (self._ABORTED, self._FINISHED):
                if exc_type is None:
                    self.commit()
                else:
                    self.rollback()
        finally:
            self._client._pop_batch()
