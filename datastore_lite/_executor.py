"""Query execution: run a plan's range scans, merge them, and cut one result batch.

Each branch of a plan streams rows from bounded SQL range scans, in the order of its
index. A row's *merge key* is the encoded sort values of the query-level order; branches
are merged on (merge key, entity key) and the batch's cursors are positions in that space.

An entity with a multi-valued property can have several entries in one index, and an
entity can match several branches of an OR. SEMANTICS.md §3.3: each entity appears once,
at its first position. Rather than remember what was returned (which a cursor could not
carry), a row is kept only if it *is* the entity's first position: computed from the
entity's own values, so de-duplication also holds across cursors.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._codec import decode_body
from ._cursor import decode_cursor, encode_cursor
from ._ordering import (
    StrOrBytes,
    component_end,
    decode_path,
    decode_value,
    invert,
    prefix_end,
)
from ._planner import KEY, Branch, Plan
from ._queryspec import ResultBatch, ResultItem
from .backends.sql import ScanSpec
from .indexes import IndexValues, composite_values, index_values

if TYPE_CHECKING:
    from ._api import LocalDatastoreAPI

__all__ = ["execute", "iterate"]

UNBOUNDED_BATCH = 300  # results per batch when the query has no limit (SDK: 300 max)
MAX_BATCH = 1000
_FIRST_CHUNK_MIN = 2
_CHUNK_MAX = 2000


class Row:
    """One scanned index entry (or entity), with its place in the merged order.

    The components and the merge key are computed on first use: a plain single-branch
    query only needs them for its last row (the batch's cursor).
    """

    __slots__ = ("key", "value", "body", "multi", "runner", "branch", "_components", "_merge_key")

    def __init__(
        self, key: bytes, value: bytes | None, body: bytes | None, multi: int, runner: _Branch
    ) -> None:
        self.key = key
        self.value = value
        self.body = body
        self.multi = multi
        self.runner = runner
        self.branch = runner.branch
        self._components: list[bytes] | None = None
        self._merge_key: bytes | None = None

    @property
    def components(self) -> list[bytes] | None:
        if self._components is None and self.value is not None:
            b = self.branch
            self._components = split_components(self.value, len(b.lead), b.layout)
        return self._components

    @property
    def merge_key(self) -> bytes:
        mk = self._merge_key
        if mk is None:
            mk = self._merge_key = self.runner.merge_key(
                self.value, self.components, self.body, self.key
            )
        return mk

    def position(self) -> tuple[bytes, bytes]:
        return (self.merge_key, self.key)


# merge key of an entity lacking an ordered property: it never appears in the results
_NO_ORDER_VALUE = b"\xff\xff\xff\xff-missing"


def split_components(value: bytes, start: int, layout: list[tuple[str, bool]]) -> list[bytes]:
    """The stored component bytes of an index value, un-inverted."""
    out = []
    pos = start
    for name, inverted in layout:
        if inverted:
            rest = invert(value[pos:])
            end = component_end(rest, 0, name == KEY)
            out.append(rest[:end])
            pos += end
        else:
            end = component_end(value, pos, name == KEY)
            out.append(value[pos:end])
            pos = end
    return out


def merge_prefix(branch: Branch, merge_key: bytes, n: int) -> bytes:
    """The bytes of the first ``n`` components of a merge key of ``branch``'s plan."""
    pos = 0
    for comp in branch.merge[:n]:
        if pos >= len(merge_key):
            break
        if comp.const is not None:
            pos += len(comp.const)
        elif comp.descending:
            pos += component_end(invert(merge_key[pos:]), 0, comp.is_key)
        else:
            pos = component_end(merge_key, pos, comp.is_key)
    return merge_key[:pos]


class _Branch:
    """Runtime state of one branch: SQL chunks and the rows they yield."""

    def __init__(
        self,
        api: LocalDatastoreAPI,
        plan: Plan,
        branch: Branch,
        after: tuple[bytes, bytes] | None,
        first_chunk: int,
        need_body: bool,
    ) -> None:
        self.api = api
        self.plan = plan
        self.branch = branch
        self.after = after
        self.chunk = max(_FIRST_CHUNK_MIN, first_chunk)
        self.need_body = need_body
        self.bits = branch.multi_bits
        self.simple_merge = all(c.const is None for c in branch.merge) and (
            branch.source != "composite" or not branch.lead
        )

    def spec(self) -> ScanSpec:
        """The scan's fixed part, built once per plan branch and body need (cached)."""
        b = self.branch
        cached: ScanSpec | None = b._scans.get(self.need_body)
        if cached is not None:
            return cached
        spec = b._scans[self.need_body] = self._make_spec()
        return spec

    def _make_spec(self) -> ScanSpec:
        b = self.branch
        plan = self.plan
        keys = b.key_interval
        template: ScanSpec | None = (
            b._scan_template.get(self.need_body) if b._scan_template else None
        )
        interval = b.interval
        if (
            template is not None
            and template.table == "index"
            and template.value_eq is None
            and interval is not None
            and not (interval.lo is not None and interval.lo == interval.hi and interval.lo_incl)
        ):
            # the same query under another ancestor (rebind_ancestor): the template's scan
            # with this branch's bounds; its SQL is kept when the shape is the same
            return template.rebound(
                value=(interval.lo, interval.lo_incl, interval.hi, interval.hi_incl),
                key=(keys.lo, keys.lo_incl, keys.hi, keys.hi_incl),
            )
        common: dict[str, Any] = {
            "key_lo": keys.lo,
            "key_lo_incl": keys.lo_incl,
            "key_hi": keys.hi,
            "key_hi_incl": keys.hi_incl,
            "body": self.need_body,
        }
        if b.source == "entities":
            return ScanSpec(plan.pid, "entities", kind=plan.kind, **common)
        interval = b.interval
        value_eq = None
        lo = hi = None
        lo_incl = hi_incl = True
        if interval is not None:
            if interval.lo is not None and interval.lo == interval.hi and interval.lo_incl:
                value_eq = interval.lo
            else:
                lo, lo_incl, hi, hi_incl = (
                    interval.lo,
                    interval.lo_incl,
                    interval.hi,
                    interval.hi_incl,
                )
        return ScanSpec(
            plan.pid,
            "index",
            index_id=b.index_id,
            value_eq=value_eq,
            value_lo=lo,
            value_lo_incl=lo_incl,
            value_hi=hi,
            value_hi_incl=hi_incl,
            descending=b.scan_desc,
            joins=tuple(b.joins),
            **common,
        )

    def merge_key(
        self,
        value: bytes | None,
        components: list[bytes] | None,
        body: bytes | None = None,
        key: bytes = b"",
        values: IndexValues | None = None,
    ) -> bytes:
        parts = []
        for comp in self.branch.merge:
            if comp.const is not None:
                parts.append(comp.const)
            elif comp.is_key and comp.name is not None:
                # the entity's path as a composite index holds it (encode_path_value)
                path_value = key + b"\x00\x00"
                parts.append(invert(path_value) if comp.descending else path_value)
            elif comp.name is not None:
                # a key-equality branch: the entity's smallest (largest, descending) value
                # of the property that passes the branch's filters on it
                if values is None:
                    assert body is not None
                    values = _values_of(body, self.api.profile.empty_list_is_null)
                candidates = list(values.get(comp.name, ()))
                cond = self.branch.conds.get(comp.name)
                if cond is not None and cond.interval is not None:
                    candidates = [v for v in candidates if cond.interval.contains(v)]
                if not candidates:
                    return _NO_ORDER_VALUE
                chosen = max(candidates) if comp.descending else min(candidates)
                parts.append(invert(chosen) if comp.descending else chosen)
            else:
                assert components is not None
                raw = components[comp.position]
                parts.append(invert(raw) if comp.descending else raw)
        return b"".join(parts)

    def seek_for(
        self, cursor: tuple[bytes, bytes] | None
    ) -> tuple[tuple[bytes | None, bytes] | None, bytes | None, bool]:
        """SQL resume point for a cursor: (strict after-position, inclusive seek, skip branch)."""
        if cursor is None:
            return None, None, False
        merge_key, key = cursor
        b = self.branch
        if b.source == "entities" or not b.merge:
            return (None, key), None, False
        if b.source == "builtin" and len(b.merge) == 1 and b.merge[0].const is None:
            value = invert(merge_key) if b.scan_desc else merge_key
            return (value, key), None, False
        if b.source == "composite" and b.merge_is_tail:
            # a backward scan (free orders held descending) produces the inverted tail
            tail = invert(merge_key) if b.scan_desc else merge_key
            return (b.prefix + tail, key), None, False
        # general case: walk the merge components; constants decide the whole branch,
        # scanned components give an inclusive lower bound (exactness comes from the
        # Python filter on (merge key, key) > cursor).
        pos = 0
        seek_parts: list[tuple[int, bytes]] = []
        for comp in b.merge:
            if pos >= len(merge_key):
                break
            if comp.const is not None:
                piece = merge_key[pos : pos + len(comp.const)]
                if piece != comp.const:
                    # the branch lies wholly after (or before) the cursor
                    return None, None, piece > comp.const
                pos += len(comp.const)
                continue
            raw = merge_key[pos:]
            raw_orig = invert(raw) if comp.descending else raw
            end = component_end(raw_orig, 0, comp.is_key)
            seek_parts.append((comp.position, raw_orig[:end]))
            pos += end
        if b.source != "composite":
            return None, None, False
        # lower bound: prefix + the leading scanned components, in index order
        seek = b.prefix
        expected = b.n_prefix
        for position, raw in sorted(seek_parts):
            if position != expected:
                break
            stored_inverted = b.layout[position][1]
            seek += invert(raw) if stored_inverted else raw
            expected += 1
        if b.scan_desc:
            # backward scan: an inclusive upper bound (rows past it precede the cursor)
            return None, prefix_end(seek) if seek else None, False
        return None, seek, False

    def exact_resume(self, cursor: tuple[bytes, bytes] | None) -> bool:
        """Whether SQL alone resumes strictly after ``cursor`` (no Python filter needed)."""
        if cursor is None:
            return True
        b = self.branch
        if b.source == "entities" or not b.merge:
            return True
        if b.source == "builtin" and len(b.merge) == 1 and b.merge[0].const is None:
            return True
        return b.source == "composite" and b.merge_is_tail

    def raw_rows(
        self, cursor: tuple[bytes, bytes] | None
    ) -> Iterator[tuple[bytes | None, bytes, bytes | None, int]]:
        """SQL rows (value, key, body, multi) strictly after an exactly-resumable cursor."""
        b = self.branch
        if b.empty:
            return
        resume, seek, _skip = self.seek_for(cursor)
        backend = self.api.backend
        spec = self.spec()
        while True:
            limit = self.chunk
            with backend.read() as r:
                batch = r.scan(spec, resume, seek, limit)
            yield from batch
            if len(batch) < limit:
                return
            resume = (batch[-1][0], batch[-1][1])
            seek = None
            self.chunk = min(self.chunk * 2, _CHUNK_MAX)

    def rows(self, cursor: tuple[bytes, bytes] | None) -> Iterator[Row]:
        """Rows in this branch's order, strictly after ``cursor`` in merge order."""
        rows = self._scan_rows(cursor)
        return _by_key_within_groups(rows) if self.branch.regroup else rows

    def _scan_rows(self, cursor: tuple[bytes, bytes] | None) -> Iterator[Row]:
        b = self.branch
        if b.empty:
            return
        resume, seek, skip = self.seek_for(cursor)
        if skip:
            return
        backend = self.api.backend
        spec = self.spec()
        while True:
            limit = self.chunk
            with backend.read() as r:
                batch = r.scan(spec, resume, seek, limit)
            for value, key, body, multi in batch:
                row = Row(key, value, body, multi, self)
                if cursor is not None and (row.merge_key, key) <= cursor:
                    continue
                yield row
            if len(batch) < limit:
                return
            last_value, last_key = batch[-1][0], batch[-1][1]
            resume = (last_value, last_key)
            seek = None
            self.chunk = min(self.chunk * 2, _CHUNK_MAX)


def _by_key_within_groups(rows: Iterator[Row]) -> Iterator[Row]:
    """Rows of equal merge key, which the index holds in another order, sorted by key."""
    group: list[Row] = []
    for row in rows:
        if group and row.merge_key != group[0].merge_key:
            group.sort(key=_row_key)
            yield from group
            group = []
        group.append(row)
    group.sort(key=_row_key)
    yield from group


def _row_key(row: Row) -> bytes:
    return row.key


def _branch_entries(
    branch: Branch, values: IndexValues, key: bytes, path: tuple[Any, ...]
) -> list[bytes] | None:
    """The index values of the entity inside this branch's scan (None: it does not match)."""
    if not branch.key_interval.contains(key):
        return None
    for name, cond in branch.body_checks.items():
        if not cond.matches(values.get(name)):
            return None
    if branch.source == "entities":
        return [b""]
    if branch.source == "merge":
        for name, cond in branch.conds.items():
            if not cond.matches(values.get(name)):
                return None
        return [b""]
    if branch.source == "builtin":
        assert branch.layout
        candidates = values.get(branch.layout[0][0], [])
    else:
        assert branch.index is not None
        candidates = composite_values(branch.index, values, path)
        if branch.lead:
            candidates = [c for c in candidates if c.startswith(branch.lead)]
    interval = branch.interval
    out = []
    for value in candidates:
        if interval is not None and not interval.contains(value):
            continue
        if branch.entry_checks:
            comps = split_components(value, len(branch.lead), branch.layout)
            if not all(iv.contains(comps[pos]) for pos, iv in branch.entry_checks.items()):
                continue
        out.append(value)
    return out


class _Dedup:
    """Keeps a row only at the entity's (or projected value group's) first position."""

    def __init__(self, runners: list[_Branch], plan: Plan, api: LocalDatastoreAPI) -> None:
        self.runners = runners
        self.plan = plan
        self.empty_null = api.profile.empty_list_is_null
        self.projected = list(plan.projection)

    def group_of(self, runner: _Branch, components: list[bytes] | None) -> tuple[bytes, ...]:
        if not self.projected or components is None:
            return ()
        layout = runner.branch.layout
        names = [n for n, _ in layout]
        return tuple(components[names.index(p)] for p in self.projected if p in names)

    def first(self, row: Row, runner: _Branch, values: IndexValues) -> bool:
        path = decode_path(row.key)
        group = self.group_of(runner, row.components)
        best: tuple[bytes, bytes] | None = None
        for other in self.runners:
            entries = _branch_entries(other.branch, values, row.key, path)
            if not entries:
                continue
            for value in entries:
                comps = None
                if other.branch.source in ("builtin", "composite"):
                    comps = split_components(value, len(other.branch.lead), other.branch.layout)
                if group and self.group_of(other, comps) != group:
                    continue
                mk = other.merge_key(value, comps, key=row.key, values=values)
                if best is None or mk < best[0]:
                    best = (mk, value)
        return best is not None and best[0] == row.merge_key


def _values_of(body: bytes, empty_null: bool) -> IndexValues:
    props, exclude = decode_body(body)
    return index_values(props, exclude, empty_null)


def _projection(row: Row, plan: Plan, body_values: dict[str, Any] | None) -> dict[str, Any]:
    """Projected values from the index entry (timestamps as int µs, SEMANTICS.md §2.2)."""
    out: dict[str, Any] = {}
    if row.components is None:
        return out
    names = [n for n, _ in row.branch.layout]
    for prop in plan.projection:
        if prop not in names:
            continue
        value = decode_value(row.components[names.index(prop)], 0)[0]
        if type(value) is StrOrBytes:
            value = _str_or_bytes(value, prop, body_values)
        out[prop] = value
    return out


def _str_or_bytes(raw: bytes, prop: str, body_values: dict[str, Any] | None) -> str | bytes:
    """str and bytes share an index encoding; the stored property says which it was."""
    stored = _lookup_dotted(body_values, prop) if body_values is not None else None
    elements = stored if isinstance(stored, list) else [stored]
    for element in elements:
        if type(element) is str and element.encode("utf-8") == raw:
            return element
        if type(element) is bytes and element == raw:
            return bytes(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return bytes(raw)


def _lookup_dotted(props: dict[str, Any], dotted: str) -> Any:
    from ._values import EntityValue

    current: Any = props
    for part in dotted.split("."):
        if isinstance(current, EntityValue):
            current = current.properties
        if isinstance(current, list):
            current = [
                (c.properties.get(part) if isinstance(c, EntityValue) else None) for c in current
            ]
            flat: list[Any] = []
            for c in current:
                flat.extend(c if isinstance(c, list) else [c])
            current = flat
            continue
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def iterate(
    api: LocalDatastoreAPI,
    plan: Plan,
    cursor: tuple[bytes, bytes] | None,
    first_chunk: int,
    need_body: bool,
) -> Iterator[tuple[Row, dict[str, Any] | None]]:
    """Every qualifying row of the plan after ``cursor``, in order, de-duplicated.

    Yields (row, projection values or None).
    """
    runners = [
        _Branch(api, plan, b, cursor, first_chunk, need_body or bool(plan.projection))
        for b in plan.branches
        if not b.empty
    ]
    if not runners:
        return
    dedup = _Dedup(runners, plan, api)
    empty_null = api.profile.empty_list_is_null
    streams = [r.rows(cursor) for r in runners]
    merged: Iterator[Row]
    if len(streams) == 1:
        merged = streams[0]
    else:
        merged = heapq.merge(*streams, key=Row.position)
    # the same entry can come through two branches, or (components the order ignores)
    # twice from one: its copies are adjacent, keep the first
    check_position = len(runners) > 1 or runners[0].branch.may_repeat
    previous: tuple[bytes, bytes] | None = None
    n_distinct = len(plan.distinct_on)
    # distinct: a cursor resumes after the whole group of its last result (emulator)
    distinct_prev: bytes | None = (
        merge_prefix(runners[0].branch, cursor[0], n_distinct)
        if n_distinct and cursor is not None
        else None
    )
    for row in merged:
        runner = row.runner
        branch = row.branch
        values: IndexValues | None = None
        props: dict[str, Any] | None = None
        # an entity repeats in a scan only over a property it holds several values of
        multi = row.multi & runner.bits
        if branch.body_checks or plan.cross_branch or multi:
            if row.body is None:  # pragma: no cover - bodies are fetched for these plans
                continue
            props, exclude = decode_body(row.body)
            values = index_values(props, exclude, empty_null)
            if branch.body_checks and not all(
                c.matches(values.get(n)) for n, c in branch.body_checks.items()
            ):
                continue
        if branch.computed and row.merge_key == _NO_ORDER_VALUE:
            continue  # lacks a property the query orders by (SEMANTICS.md §3.1)
        if (
            branch.entry_checks
            and row.components is not None
            and not all(iv.contains(row.components[pos]) for pos, iv in branch.entry_checks.items())
        ):
            continue
        if check_position:
            position = row.position()
            if position == previous:
                continue
            previous = position
        if n_distinct:
            # before the entity de-duplication (emulator: p x=[1, 2], q x=[2], distinct
            # on x -> p only: q's 2 is p's second row, dropped as a repeat of p)
            marker = merge_prefix(branch, row.merge_key, n_distinct)
            if marker == distinct_prev:
                continue
            distinct_prev = marker
        if (
            values is not None
            and (plan.cross_branch or multi)
            and not dedup.first(row, runner, values)
        ):
            continue
        projection = None
        if plan.projection:
            if props is None and row.body is not None and _needs_types(row):
                props = decode_body(row.body)[0]
            projection = _projection(row, plan, props)
        yield row, projection


def _needs_types(row: Row) -> bool:
    return bool(row.components) and any(c[:1] == b"\x40" for c in row.components or ())


def execute(
    api: LocalDatastoreAPI,
    plan: Plan,
    *,
    limit: int | None,
    offset: int,
    start_cursor: bytes | None,
    end_cursor: bytes | None,
) -> ResultBatch:
    """Run one batch of the query (one RunQuery response)."""
    secret = api.backend.secret
    cursor = decode_cursor(secret, plan.fingerprint, start_cursor) if start_cursor else None
    stop = decode_cursor(secret, plan.fingerprint, end_cursor) if end_cursor else None
    batch = ResultBatch()
    if limit == 0:
        batch.more_results = ResultBatch.MORE_RESULTS_AFTER_LIMIT
        batch.end_cursor = start_cursor or encode_cursor(secret, plan.fingerprint, b"", b"")
        return batch
    size = UNBOUNDED_BATCH if limit is None else min(limit, MAX_BATCH)
    need_body = not plan.keys_only and not plan.projection
    fast = _fast_path(api, plan, cursor, stop, limit, offset, size, need_body)
    if fast is not None:
        return fast
    rows = iterate(api, plan, cursor, size + offset + 1, need_body or _dedup_needs_body(plan))
    skipped = 0
    last: tuple[bytes, bytes] | None = cursor
    last_row: Row | None = None
    results: list[ResultItem] = []
    partition = (plan.spec.project, plan.spec.database, plan.spec.namespace)
    more = ResultBatch.NO_MORE_RESULTS
    for row, projection in rows:
        # an end cursor is the position of the last result it follows: that one is included
        if stop is not None and row.position() > stop:
            more = ResultBatch.MORE_RESULTS_AFTER_CURSOR
            break
        if len(results) >= size:
            more = (
                ResultBatch.NOT_FINISHED
                if limit is None or limit > size
                else ResultBatch.MORE_RESULTS_AFTER_LIMIT
            )
            break
        last_row = row
        if skipped < offset:
            skipped += 1
            continue
        if projection is not None:
            results.append(ResultItem(row.key, None, projection))
        elif plan.keys_only:
            results.append(ResultItem(row.key))
        else:
            results.append(ResultItem(row.key, row.body))
    batch.partition = partition
    batch.results = results
    batch.skipped_results = skipped
    batch.more_results = more
    if last_row is not None:
        last = last_row.position()
    if last is None:
        last = (b"", b"")
    batch.end_cursor = encode_cursor(secret, plan.fingerprint, last[0], last[1])
    return batch


def _fast_path(
    api: LocalDatastoreAPI,
    plan: Plan,
    cursor: tuple[bytes, bytes] | None,
    stop: tuple[bytes, bytes] | None,
    limit: int | None,
    offset: int,
    size: int,
    need_body: bool,
) -> ResultBatch | None:
    """One plain branch, no projection/distinct/end cursor/row checks: tuples, not Rows.

    Rows whose entity may repeat in the scan (``multi`` meets the index's bits) still get
    the first-position check; everything else is passed straight through.
    """
    live = [b for b in plan.branches if not b.empty]
    if (
        len(live) != 1
        or plan.projection
        or plan.distinct_on
        or plan.cross_branch
        or stop is not None
        or live[0].body_checks
        or live[0].entry_checks
        or live[0].computed
        or live[0].may_repeat
    ):
        return None
    branch = live[0]
    runner = _Branch(
        api, plan, branch, cursor, size + offset + 1, need_body or branch.multi_bits != 0
    )
    if not runner.exact_resume(cursor):
        return None
    bits = runner.bits
    dedup: _Dedup | None = None
    empty_null = api.profile.empty_list_is_null
    results: list[ResultItem] = []
    skipped = 0
    last: tuple[bytes | None, bytes, bytes | None, int] | None = None
    more = ResultBatch.NO_MORE_RESULTS
    keys_only = plan.keys_only
    for item in runner.raw_rows(cursor):
        if item[3] & bits:
            row = Row(item[1], item[0], item[2], item[3], runner)
            assert item[2] is not None
            props, exclude = decode_body(item[2])
            if dedup is None:
                dedup = _Dedup([runner], plan, api)
            if not dedup.first(row, runner, index_values(props, exclude, empty_null)):
                continue
        if len(results) >= size:
            more = (
                ResultBatch.NOT_FINISHED
                if limit is None or limit > size
                else ResultBatch.MORE_RESULTS_AFTER_LIMIT
            )
            break
        last = item
        if skipped < offset:
            skipped += 1
            continue
        results.append(ResultItem(item[1]) if keys_only else ResultItem(item[1], item[2]))
    batch = ResultBatch(results=results, more_results=more, skipped_results=skipped)
    spec = plan.spec
    batch.partition = (spec.project, spec.database, spec.namespace)
    if last is not None:
        position = Row(last[1], last[0], last[2], last[3], runner).position()
    else:
        position = cursor or (b"", b"")
    batch.end_cursor = encode_cursor(api.backend.secret, plan.fingerprint, *position)
    return batch


def _dedup_needs_body(plan: Plan) -> bool:
    """Keys-only and projection scans still read bodies when rows need checking."""
    return any(b.source != "entities" or b.body_checks or b.computed for b in plan.branches)


def count(api: LocalDatastoreAPI, plan: Plan, up_to: int | None) -> int:
    """COUNT(*) / COUNT_UP_TO(n): in SQL when one plain branch serves it, else by iterating."""
    live = [b for b in plan.branches if not b.empty]
    if not live:
        return 0
    if (
        len(live) == 1
        and not live[0].body_checks
        and not live[0].entry_checks
        and not plan.distinct_on
    ):
        runner = _Branch(api, plan, live[0], None, 1, False)
        spec = runner.spec()
        with api.backend.read() as r:
            # an entity repeats in a scan only over a multi-valued scanned property
            return r.count(spec, up_to, multi_bits=live[0].multi_bits, kind=plan.kind)
    total = 0
    for _row in iterate(api, plan, None, 500, True):
        total += 1
        if up_to is not None and total >= up_to:
            break
    return total


def fetch_bodies(api: LocalDatastoreAPI, plan: Plan, up_to: int | None) -> Iterator[bytes]:
    """Bodies of every matching entity (for SUM / AVG), at most ``up_to`` entities."""
    for n, (row, _) in enumerate(iterate(api, plan, None, 500, True)):
        if up_to is not None and n >= up_to:
            return
        if row.body is not None:
            yield row.body


KEY_NAME = KEY
