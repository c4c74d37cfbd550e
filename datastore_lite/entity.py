"""Entities: ``dict`` subclasses with a key, as in ``google.cloud.datastore.entity``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .key import Key

__all__ = ["Entity"]


class Entity(dict[str, Any]):
    """A Datastore entity: a ``dict`` of property values plus a :class:`Key`.

    Args:
        key: The entity's key; ``None`` for an embedded entity.
        exclude_from_indexes: Names of properties that are not indexed (for a list
            property the exclusion applies to each element).

    Example:
        >>> from datastore_lite import Entity, Key
        >>> photo = Entity(Key("Photo", 1, project="p"), exclude_from_indexes=("image",))
        >>> photo.update(caption="sunset", image=b"...")
        >>> photo.kind, sorted(photo.exclude_from_indexes)
        ('Photo', ['image'])
    """

    def __init__(self, key: Key | None = None, exclude_from_indexes: Iterable[str] = ()) -> None:
        super().__init__()
        self.key = key
        # The official client accepts only tuples and lists here (same TypeError text);
        # sets are allowed too so an entity's own ``exclude_from_indexes`` can be passed on.
        if not isinstance(exclude_from_indexes, (tuple, list, set, frozenset)):
            raise TypeError(
                "Expected exclude_from_indexes to be a tuple or list. "
                f"Received {exclude_from_indexes!r}"
            )
        self.exclude_from_indexes: set[str] = set(exclude_from_indexes)
        # Kept for parity with the official client; datastore_lite records no meanings.
        self._meanings: dict[str, Any] = {}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entity):
            return NotImplemented
        return (
            self.key == other.key
            and self.exclude_from_indexes == other.exclude_from_indexes
            and self._meanings == other._meanings
            and super().__eq__(other)
        )

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # dicts are unhashable

    @property
    def kind(self) -> str | None:
        """The kind of the entity's key, or ``None`` without a key."""
        if self.key:
            return self.key.kind
        return None

    @property
    def id(self) -> int | None:
        """The numeric id of the entity's key, or ``None``."""
        if self.key is None:
            return None
        return self.key.id

    def __repr__(self) -> str:
        if self.key:
            return f"<Entity{self.key._flat_path} {dict.__repr__(self)}>"
        return f"<Entity {dict.__repr__(self)}>"
