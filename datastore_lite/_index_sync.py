"""Bring the database's composite indexes in line with ``index.yaml``.

New definitions are registered as ``building``, built over the existing data (in chunks,
each its own write transaction, with a progress callback), then switched to ``serving``.
Writers maintain entries of building indexes too, so nothing written during the build is
missed (DESIGN.md §10). Definitions no longer in the file are left for
``datastore-lite indexes vacuum``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ._codec import decode_body
from ._ordering import decode_path
from ._registry import BUILDING, SERVING, CompositeIndex
from .indexes import Index, composite_values, index_values, load_index_yaml

if TYPE_CHECKING:
    from ._api import LocalDatastoreAPI

__all__ = ["build_index", "register_indexes", "sync_index_yaml"]

Progress = Callable[[int, int], None]
_CHUNK = 500


def register_indexes(api: LocalDatastoreAPI, indexes: tuple[Index, ...]) -> list[CompositeIndex]:
    """Register definitions not yet in the database; return the ones that need building."""
    api.registry.reload()
    new = [ix for ix in indexes if api.registry.find(ix) is None]
    if new:
        api.backend.register_indexes(
            (
                ix.definition,
                ix.kind,
                ix.ancestor,
                [[p.name, p.direction] for p in ix.properties],
                False,
                BUILDING,
            )
            for ix in new
        )
        api.registry.reload()
    wanted = {ix.definition for ix in indexes}
    return [
        entry
        for entries in api.registry.composites.values()
        for entry in entries
        if entry.state == BUILDING and entry.index.definition in wanted
    ]


def build_index(
    api: LocalDatastoreAPI, entry: CompositeIndex, progress: Progress | None = None
) -> int:
    """Fill a building index from the existing entities, then mark it serving.

    Returns the number of entities scanned.
    """
    backend = api.backend
    kind = entry.index.kind
    partitions = [p[0] for p in backend.partitions()]
    total = 0
    with backend.read() as r:
        for pid in partitions:
            total += r.count_entities(pid, kind)
    done = 0
    empty_null = api.profile.empty_list_is_null
    for pid in partitions:
        after: bytes | None = None
        while True:
            with backend.write() as w:
                rows = w.entities_of_kind(pid, kind, after, _CHUNK)
                if not rows:
                    break
                entries = []
                for key, body in rows:
                    props, exclude = decode_body(body)
                    values = index_values(props, exclude, empty_null)
                    for value in composite_values(entry.index, values, decode_path(key)):
                        entries.append((entry.id, value, key))
                # writers may already have added some of these: keep theirs
                w.insert_index_entries(pid, entries, ignore_existing=True)
            after = rows[-1][0]
            done += len(rows)
            if progress is not None:
                progress(done, total)
    backend.set_index_state(entry.id, SERVING)
    api.registry.reload()
    return done


def sync_index_yaml(
    api: LocalDatastoreAPI, path: str, progress: Progress | None = None, build: bool = True
) -> list[CompositeIndex]:
    """Register the indexes of ``path`` and (by default) build the new ones."""
    indexes = load_index_yaml(path)
    pending = register_indexes(api, indexes)
    if build:
        for entry in pending:
            build_index(api, entry, progress)
    return pending
