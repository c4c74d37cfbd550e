"""``client.consistency``: look at and steer the eventual-consistency simulation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._convert import ref_to_key
from ._ordering import decode_path
from ._values import KeyRef
from .key import Key

if TYPE_CHECKING:
    from .client import Client

__all__ = ["ConsistencyControls", "PendingWrite"]


@dataclass(frozen=True)
class PendingWrite:
    """A committed write that global queries do not see yet.

    Attributes:
        group: The root key of the entity group.
        version: The group version the write committed as.
        due: When it becomes visible (epoch seconds; for ``Eventual(probability=)`` the
            commit time: it becomes visible by chance at a later global query).
        puts: Keys written (inserted or updated).
        deletes: Keys deleted.
    """

    group: Key
    version: int
    due: float
    puts: tuple[Key, ...]
    deletes: tuple[Key, ...]


def _key(partition: tuple[str, str, str], raw: bytes) -> Key:
    project, database, namespace = partition
    return ref_to_key(KeyRef(project, database, namespace, decode_path(bytes(raw))))


class ConsistencyControls:
    """Controls for tests and demos; every process on the database sees the same state.

    Example:
        >>> from datastore_lite import Client, Entity, Eventual
        >>> client = Client(project="doc", url="sqlite://", consistency=Eventual(probability=0.0))
        >>> client.put(Entity(client.key("Photo", 1)))
        >>> [w.puts for w in client.consistency.pending()]
        [(<Key('Photo', 1), project=doc>,)]
        >>> client.consistency.apply_all()
        1
        >>> client.consistency.pending()
        []
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self._controller = client._datastore_api.consistency

    @property
    def policy(self) -> Any:
        """The policy in force (``Strong()`` or an ``Eventual``)."""
        return self._controller.policy

    @property
    def seed(self) -> int:
        """The seed of the simulation (pass ``seed=`` to ``Client`` to replay a run)."""
        return self._client.seed

    @property
    def frozen(self) -> bool:
        return self._controller.frozen

    def pending(self) -> list[PendingWrite]:
        """Every write not yet visible to global queries, per entity group, oldest first."""
        backend = self._client._datastore_api.backend
        partitions = {pid: (p, d, n) for pid, p, d, n in backend.partitions()}
        out = []
        for pid, group, version, due, mutations in self._controller.pending_rows():
            part = partitions[pid]
            puts = tuple(_key(part, k) for k, _kind, body in mutations if body is not None)
            deletes = tuple(_key(part, k) for k, _kind, body in mutations if body is None)
            out.append(PendingWrite(_key(part, group), version, due, puts, deletes))
        return out

    def apply_all(self) -> int:
        """Make every pending write visible now; returns the number of groups rolled forward."""
        return self._controller.apply_all()

    def freeze(self) -> None:
        """Stop applying pending writes before global queries (strong reads still roll forward)."""
        self._controller.frozen = True

    def thaw(self) -> None:
        """Resume applying due pending writes before global queries."""
        self._controller.frozen = False
