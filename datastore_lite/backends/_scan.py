"""Query scans in storage terms: :class:`ScanSpec` and the SELECT built from it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from . import _schema as S
from ._statements import _Compiled

__all__ = ["ScanSpec", "build_scan"]


class ScanSpec:
    """One range scan, in storage terms (bytes and ints)."""

    __slots__ = (
        "pid",
        "table",
        "kind",
        "index_id",
        "value_eq",
        "value_lo",
        "value_lo_incl",
        "value_hi",
        "value_hi_incl",
        "key_lo",
        "key_lo_incl",
        "key_hi",
        "key_hi_incl",
        "descending",
        "after",
        "seek",
        "joins",
        "body",
        "limit",
        "_params",
        "_sql",
    )

    def __init__(
        self,
        pid: int,
        table: str,
        *,
        kind: str | None = None,
        index_id: int | None = None,
        value_eq: bytes | None = None,
        value_lo: bytes | None = None,
        value_lo_incl: bool = True,
        value_hi: bytes | None = None,
        value_hi_incl: bool = True,
        key_lo: bytes | None = None,
        key_lo_incl: bool = True,
        key_hi: bytes | None = None,
        key_hi_incl: bool = True,
        descending: bool = False,
        after: tuple[bytes | None, bytes] | None = None,
        seek: bytes | None = None,
        joins: tuple[tuple[int, bytes], ...] = (),
        body: bool = True,
        limit: int = 100,
    ) -> None:
        self.pid = pid
        self.table = table
        self.kind = kind
        self.index_id = index_id
        self.value_eq = value_eq
        self.value_lo = value_lo
        self.value_lo_incl = value_lo_incl
        self.value_hi = value_hi
        self.value_hi_incl = value_hi_incl
        self.key_lo = key_lo
        self.key_lo_incl = key_lo_incl
        self.key_hi = key_hi
        self.key_hi_incl = key_hi_incl
        self.descending = descending
        self.after = after
        self.seek = seek
        self.joins = joins
        self.body = body
        self.limit = limit
        # bound values that do not change between the chunks of one scan
        params: dict[str, Any] = {"pid": pid}
        if kind is not None:
            params["kind"] = kind.encode("utf-8")
        if index_id is not None:
            params["iid"] = index_id
        for name, value in (
            ("value_eq", value_eq),
            ("value_lo", value_lo),
            ("value_hi", value_hi),
            ("key_lo", key_lo),
            ("key_hi", key_hi),
        ):
            if value is not None:
                params[name] = value
        for i, (iid, value) in enumerate(joins):
            params[f"j{i}i"] = iid
            params[f"j{i}v"] = value
        self._params = params
        self._sql: dict[tuple[int, bool], _Compiled] = {}

    def rebound(
        self,
        *,
        value: tuple[bytes | None, bool, bytes | None, bool],
        key: tuple[bytes | None, bool, bytes | None, bool],
    ) -> ScanSpec:
        """This index range scan with other value and key bounds, each (lo, lo inclusive,
        hi, hi inclusive).

        A query re-run under another ancestor scans the same index with other bounds:
        copying the scan (and its compiled SQL, when the shape is the same) is cheaper
        than building it again.
        """
        assert self.table == "index" and self.value_eq is None
        out = ScanSpec.__new__(ScanSpec)
        # every slot, written out (a getattr/setattr loop over __slots__ cost 3x as much)
        out.pid, out.table, out.kind, out.index_id = self.pid, self.table, self.kind, self.index_id
        out.value_eq = None
        out.value_lo, out.value_lo_incl, out.value_hi, out.value_hi_incl = value
        out.key_lo, out.key_lo_incl, out.key_hi, out.key_hi_incl = key
        out.descending, out.after, out.seek = self.descending, self.after, self.seek
        out.joins, out.body, out.limit = self.joins, self.body, self.limit
        params = dict(self._params)
        for name, bound in (
            ("value_lo", value[0]),
            ("value_hi", value[2]),
            ("key_lo", key[0]),
            ("key_hi", key[2]),
        ):
            if bound is None:
                params.pop(name, None)
            else:
                params[name] = bound
        out._params = params
        out._sql = self._sql if out.shape() == self.shape() else {}
        return out

    def shape(self) -> tuple[Any, ...]:
        """Everything that changes the SQL text (not the bound values)."""
        return (
            self.table,
            self.kind is not None,
            self.value_eq is not None,
            self.value_lo is not None and (self.value_lo_incl or 2),
            self.value_hi is not None and (self.value_hi_incl or 2),
            self.key_lo is not None and (self.key_lo_incl or 2),
            self.key_hi is not None and (self.key_hi_incl or 2),
            self.descending,
            self.after is not None and (self.after[0] is not None or 2),
            self.seek is not None,
            len(self.joins),
            self.body,
        )


def _bound(column: Any, name: str, lower: bool, inclusive: bool) -> Any:
    param: Any = sa.bindparam(name)
    if lower:
        return column >= param if inclusive else column > param
    return column <= param if inclusive else column < param


def build_scan(spec: ScanSpec, count: bool = False, distinct: bool = True) -> Any:
    e = S.entities
    if spec.table == "entities":
        conds = [e.c.partition == sa.bindparam("pid")]
        if spec.kind is not None:
            conds.append(e.c.kind == sa.bindparam("kind"))
        key_col: Any = e.c.key
        value_col: Any = sa.null()
        source: Any = e
    else:
        x = S.index_entries.alias("x")
        # counting needs only the index: every entry belongs to a stored entity
        source = (
            x if count else x.join(e, sa.and_(e.c.partition == x.c.partition, e.c.key == x.c.key))
        )
        for i in range(len(spec.joins)):
            j = S.index_entries.alias(f"j{i}")
            source = source.join(
                j,
                sa.and_(
                    j.c.index_id == sa.bindparam(f"j{i}i"),
                    j.c.partition == x.c.partition,
                    j.c.value == sa.bindparam(f"j{i}v"),
                    j.c.key == x.c.key,
                ),
            )
        conds = [x.c.index_id == sa.bindparam("iid"), x.c.partition == sa.bindparam("pid")]
        key_col = x.c.key
        value_col = x.c.value
        if spec.value_eq is not None:
            conds.append(value_col == sa.bindparam("value_eq"))
        if spec.value_lo is not None:
            conds.append(_bound(value_col, "value_lo", True, spec.value_lo_incl))
        if spec.value_hi is not None:
            conds.append(_bound(value_col, "value_hi", False, spec.value_hi_incl))
    if spec.key_lo is not None:
        conds.append(_bound(key_col, "key_lo", True, spec.key_lo_incl))
    if spec.key_hi is not None:
        conds.append(_bound(key_col, "key_hi", False, spec.key_hi_incl))
    if not count:
        if spec.seek is not None and spec.table != "entities":
            conds.append(
                value_col <= sa.bindparam("seek")
                if spec.descending
                else value_col >= sa.bindparam("seek")
            )
        if spec.after is not None:
            if spec.after[0] is None or spec.table == "entities" or spec.value_eq is not None:
                conds.append(key_col > sa.bindparam("ak"))
            elif spec.descending:
                av: Any = sa.bindparam("av")
                conds.append(value_col <= av)
                conds.append(sa.or_(value_col < av, key_col > sa.bindparam("ak")))
            else:
                conds.append(
                    sa.tuple_(value_col, key_col)
                    > sa.tuple_(sa.bindparam("av"), sa.bindparam("ak"))
                )
    if count:
        stmt = sa.select(key_col).select_from(source).where(*conds)
        return stmt.distinct() if distinct else stmt
    body_col = e.c.body if spec.body else sa.null()
    stmt = sa.select(value_col, key_col, body_col, e.c.multi).select_from(source).where(*conds)
    if spec.table == "entities":
        stmt = stmt.order_by(key_col)
    elif spec.descending:
        stmt = stmt.order_by(value_col.desc(), key_col)
    else:
        stmt = stmt.order_by(value_col, key_col)
    return stmt.limit(sa.bindparam("lim"))
