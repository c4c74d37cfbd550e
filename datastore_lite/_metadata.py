"""Metadata kinds ``__namespace__``, ``__kind__``, ``__property__`` (SEMANTICS.md §4.9).

They are computed from the store when queried:

* ``__namespace__``: one entity per namespace holding entities; key name = the namespace,
  the default namespace is key id 1. Queried from the default namespace.
* ``__kind__``: key name = kind, in the query's namespace.
* ``__property__``: key ``(__kind__, K, __property__, P)`` per indexed property; full
  entities carry ``property_representation``, the sorted representation names of the
  values stored (timestamps are INT64, bytes are STRING). An ancestor ``__kind__`` key
  restricts the query to one kind.

``__key__`` filters and key order apply as to any query; limit, offset and cursors too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._codec import encode_body
from ._cursor import decode_cursor, encode_cursor
from ._ordering import (
    RANK_BOOL,
    RANK_DOUBLE,
    RANK_GEO,
    RANK_INT,
    RANK_KEY,
    RANK_NULL,
    RANK_STR,
    encode_path,
)
from ._queryspec import ResultBatch, ResultItem
from ._values import KeyRef

if TYPE_CHECKING:
    from ._api import LocalDatastoreAPI
    from ._planner import Plan

__all__ = ["METADATA_KINDS", "is_metadata_kind", "run"]

METADATA_KINDS = frozenset({"__namespace__", "__kind__", "__property__"})
# SEMANTICS.md §4.9 / [sdk-dsu] _PROPERTY_TYPE_NAMES, by index rank
_REPRESENTATIONS = {
    RANK_NULL: "NULL",
    RANK_INT: "INT64",
    RANK_BOOL: "BOOLEAN",
    RANK_STR: "STRING",
    RANK_DOUBLE: "DOUBLE",
    RANK_GEO: "POINT",
    RANK_KEY: "REFERENCE",
}


def is_metadata_kind(kind: str | None) -> bool:
    return kind in METADATA_KINDS


def _rows(
    api: LocalDatastoreAPI, plan: Plan
) -> list[tuple[tuple[Any, ...], dict[str, Any] | None]]:
    """(path, properties or None) of every metadata entity the query's kind describes."""
    spec = plan.spec
    backend = api.backend
    out: list[tuple[tuple[Any, ...], dict[str, Any] | None]] = []
    if spec.kind == "__namespace__":
        with backend.read() as r:
            for pid, project, database, namespace in backend.partitions():
                if project != spec.project or database != spec.database or not r.kinds(pid):
                    continue
                out.append((("__namespace__", namespace if namespace else 1), None))
        return out
    pid = backend.partition_id(spec.project, spec.database, spec.namespace, create=False)
    if pid < 0:
        return out
    with backend.read() as r:
        kinds = r.kinds(pid)
        if spec.kind == "__kind__":
            return [(("__kind__", kind), None) for kind in kinds]
        api.registry.reload()
        for (kind, prop), iid in sorted(api.registry.builtin.items()):
            if kind not in kinds:
                continue
            ranks = r.value_ranks(pid, iid, sorted(_REPRESENTATIONS))
            if not ranks:
                continue
            names = sorted(_REPRESENTATIONS[rank] for rank in ranks)
            out.append(
                (("__kind__", kind, "__property__", prop), {"property_representation": names})
            )
    return out


def run(
    api: LocalDatastoreAPI,
    plan: Plan,
    limit: int | None,
    offset: int,
    start_cursor: bytes | None,
    end_cursor: bytes | None,
) -> ResultBatch:
    """Answer a metadata query in one batch."""
    secret = api.backend.secret
    after = decode_cursor(secret, plan.fingerprint, start_cursor)[1] if start_cursor else None
    stop = decode_cursor(secret, plan.fingerprint, end_cursor)[1] if end_cursor else None
    spec = plan.spec
    rows = []
    for path, props in _rows(api, plan):
        key = encode_path(path)
        if not any(not b.empty and b.key_interval.contains(key) for b in plan.branches):
            continue
        rows.append((key, path, props))
    rows.sort(key=lambda row: row[0])
    batch = ResultBatch()
    skipped = 0
    last = after or b""
    partition = (
        spec.project,
        spec.database,
        "" if spec.kind == "__namespace__" else spec.namespace,
    )
    for key, path, props in rows:
        if after is not None and key <= after:
            continue
        if stop is not None and key >= stop:
            batch.more_results = ResultBatch.MORE_RESULTS_AFTER_CURSOR
            break
        if limit is not None and len(batch.results) >= limit:
            batch.more_results = ResultBatch.MORE_RESULTS_AFTER_LIMIT
            break
        last = key
        if skipped < offset:
            skipped += 1
            continue
        ref = KeyRef(*partition, path)
        if plan.keys_only:
            batch.results.append(ResultItem(ref))
        elif plan.projection:
            values = {p: v for p, v in (props or {}).items() if p in plan.projection}
            batch.results.append(ResultItem(ref, None, values))
        else:
            batch.results.append(ResultItem(ref, encode_body(props or {}, frozenset())))
    batch.skipped_results = skipped
    batch.end_cursor = encode_cursor(secret, plan.fingerprint, b"", last)
    return batch
