"""Hypothesis strategies for datastore_lite tests: values, keys and entities.

Every value type of SEMANTICS.md §2.1 is covered, with the edge cases that matter for
encodings and storage: int64 extremes, NaN / ±inf / -0.0, NUL and non-ASCII text, naive and
tz-aware datetimes at µs precision from year 1 to 9999, negative ids, embedded entities.
Query strategies live in a separate module; this one only builds data.

``canonical(value)`` maps a public value to a plain, exactly comparable structure (NaN equal
to NaN, -0.0 distinct from 0.0, str distinct from bytes, naive datetimes as UTC) so tests can
compare what went into the store with what came back.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import struct
from typing import Any

from hypothesis import strategies as st

from datastore_lite import Entity, GeoPoint, Key

__all__ = [
    "EPOCH",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_DATETIME",
    "MIN_DATETIME",
    "binaries",
    "canonical",
    "complete_keys",
    "datetimes",
    "effective_exclusions",
    "embedded_entities",
    "entities",
    "expected_after_store",
    "floats",
    "geo_points",
    "ids",
    "int64s",
    "key_names",
    "kinds",
    "micros_of",
    "namespaces",
    "partial_keys",
    "property_names",
    "scalar_values",
    "texts",
    "values",
]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# SEMANTICS.md §2.2: year 1 is accepted; timestamps have µs precision.
MIN_DATETIME = dt.datetime(1, 1, 1)
MAX_DATETIME = dt.datetime(9999, 12, 31, 23, 59, 59, 999999)

# -- scalars -----------------------------------------------------------------------------------

#: int64, biased towards the extremes and the values around zero
int64s: st.SearchStrategy[int] = st.one_of(
    st.sampled_from([INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX]),
    st.integers(INT64_MIN, INT64_MAX),
)

#: every double, with NaN, ±inf and -0.0 drawn often
floats: st.SearchStrategy[float] = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, -5e-324, 1.0, -1.5]),
    st.floats(allow_nan=True, allow_infinity=True),
)

#: Unicode text (no surrogates: it must encode as UTF-8), with NUL and non-ASCII
texts: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(["", "\x00", "a\x00", "a", "B", "é", "日本", "\U0001f600", "\uffff"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
)

#: byte strings, with NUL and 0xff
binaries: st.SearchStrategy[bytes] = st.one_of(
    st.sampled_from([b"", b"\x00", b"\x00\x00", b"\xff", b"a", b"a\x00", b"\xff\x00"]),
    st.binary(max_size=20),
)

_offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)


def _with_zone(moment: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """``moment`` (naive UTC) shown in ``zone``, unless that leaves the datetime range."""
    aware = moment.replace(tzinfo=dt.UTC)
    try:
        return aware.astimezone(zone)
    except OverflowError:
        return aware


#: naive (meaning UTC, SEMANTICS.md §2.1) and tz-aware datetimes, µs precision, year 1..9999
datetimes: st.SearchStrategy[dt.datetime] = st.one_of(
    st.sampled_from(
        [
            MIN_DATETIME,
            MAX_DATETIME,
            dt.datetime(1970, 1, 1),
            dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
            dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        ]
    ),
    st.datetimes(min_value=MIN_DATETIME, max_value=MAX_DATETIME),
    st.builds(_with_zone, st.datetimes(min_value=MIN_DATETIME, max_value=MAX_DATETIME), _offsets),
)

#: geo points inside the permitted ranges (lat -90..90, lng -180..180)
geo_points: st.SearchStrategy[GeoPoint] = st.builds(
    GeoPoint,
    st.one_of(st.sampled_from([-90.0, -0.0, 0.0, 90.0]), st.floats(-90, 90)),
    st.one_of(st.sampled_from([-180.0, -0.0, 0.0, 180.0]), st.floats(-180, 180)),
)

# -- keys --------------------------------------------------------------------------------------


def _not_reserved(name: str) -> bool:
    # SEMANTICS.md §1.1: names matching __.*__ are reserved
    return not (len(name) >= 4 and name.startswith("__") and name.endswith("__"))


# Kinds and property names: any UTF-8 text, NUL included (stored as bytes / JSON).
_name_chars = st.characters(codec="utf-8")

#: valid kinds: non-empty, not reserved, well under 1500 bytes
kinds: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(["A", "B", "Kind", "a", "Aaa", "Child", "é", "K\x01"]),
    st.text(alphabet=_name_chars, min_size=1, max_size=8).filter(_not_reserved),
)

#: valid key names
key_names: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(["a", "B", "10", "x", "é", "a\x00", "\U0001f600"]),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8).filter(_not_reserved),
)

#: valid ids: int64 except 0, negative ones included (SEMANTICS.md §1.1: the emulator accepts them)
ids: st.SearchStrategy[int] = st.one_of(
    st.sampled_from([1, 2, 10, -5, -1, INT64_MAX, INT64_MIN]),
    st.integers(INT64_MIN, INT64_MAX).filter(bool),
)

#: valid namespaces (None = default); SEMANTICS.md §1.2: [A-Za-z\d.\-_]{1,100}, not __x__
namespaces: st.SearchStrategy[str | None] = st.one_of(
    st.none(),
    st.sampled_from(["a", "b", "ns", "Z.z-_9"]),
    st.from_regex(r"\A[A-Za-z0-9.\-_]{1,12}\Z").filter(_not_reserved),
)

_projects = st.sampled_from(["test-proj", "aaa-proj", "p"])


@st.composite
def _flat_paths(draw: st.DrawFn, min_depth: int, max_depth: int) -> tuple[Any, ...]:
    depth = draw(st.integers(min_depth, max_depth))
    flat: list[Any] = []
    for _ in range(depth):
        flat.append(draw(kinds))
        flat.append(draw(st.one_of(ids, key_names)))
    return tuple(flat)


def complete_keys(
    project: str | st.SearchStrategy[str] = "test-proj",
    namespace: str | None | st.SearchStrategy[str | None] = None,
    database: str | None | st.SearchStrategy[str | None] = None,
    max_depth: int = 3,
) -> st.SearchStrategy[Key]:
    """Complete keys of 1..``max_depth`` path elements (ids incl. negative, and names)."""

    def as_strategy(value: Any) -> st.SearchStrategy[Any]:
        return value if isinstance(value, st.SearchStrategy) else st.just(value)

    return st.builds(
        lambda flat, p, ns, db: Key(*flat, project=p, namespace=ns, database=db),
        _flat_paths(1, max_depth),
        as_strategy(project),
        as_strategy(namespace),
        as_strategy(database),
    )


def partial_keys(
    project: str = "test-proj", namespace: str | None = None, max_depth: int = 3
) -> st.SearchStrategy[Key]:
    """Partial keys: a complete parent path (possibly empty) plus a kind."""
    return st.builds(
        lambda parent, kind: Key(*parent, kind, project=project, namespace=namespace),
        _flat_paths(0, max_depth - 1),
        kinds,
    )


# -- values ------------------------------------------------------------------------------------

#: property names: valid, non-reserved (some with dots and non-ASCII)
property_names: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(["a", "b", "x", "name", "é", "with space", "d.o.t"]),
    st.text(alphabet=_name_chars, min_size=1, max_size=6).filter(_not_reserved),
)


def scalar_values(
    key_strategy: st.SearchStrategy[Key] | None = None,
) -> st.SearchStrategy[Any]:
    """One value of each indexable type of SEMANTICS.md §2.1 (no lists, no entities)."""
    return st.one_of(
        st.none(),
        int64s,
        st.booleans(),
        floats,
        texts,
        binaries,
        datetimes,
        geo_points,
        key_strategy if key_strategy is not None else complete_keys(namespace=namespaces),
    )


def embedded_entities(
    inner: st.SearchStrategy[Any], max_props: int = 3
) -> st.SearchStrategy[Entity | dict[str, Any]]:
    """Embedded entities as a plain ``dict`` or an ``Entity`` (key None or complete)."""

    @st.composite
    def build(draw: st.DrawFn) -> Entity | dict[str, Any]:
        props = draw(st.dictionaries(property_names, inner, max_size=max_props))
        if draw(st.booleans()):
            return props
        key = draw(st.one_of(st.none(), complete_keys(max_depth=2)))
        excluded = draw(st.sets(st.sampled_from(sorted(props)))) if props else set()
        entity = Entity(key, exclude_from_indexes=tuple(sorted(excluded)))
        entity.update(props)
        return entity

    return build()


def values(max_depth: int = 2) -> st.SearchStrategy[Any]:
    """Any property value: scalars, lists (never nested lists), embedded entities.

    ``max_depth`` bounds the nesting of embedded entities.
    """
    scalars = scalar_values()
    if max_depth <= 0:
        return st.one_of(scalars, st.lists(scalars, max_size=4))
    inner = values(max_depth - 1)
    embedded = embedded_entities(inner)
    # SEMANTICS.md §2.1: list elements are scalars or entities, never lists
    return st.one_of(
        scalars,
        st.lists(st.one_of(scalars, embedded), max_size=4),
        embedded,
    )


@st.composite
def entities(
    draw: st.DrawFn,
    key_strategy: st.SearchStrategy[Key] | None = None,
    value_strategy: st.SearchStrategy[Any] | None = None,
    max_props: int = 6,
) -> Entity:
    """Top-level entities with a complete key and some properties excluded from indexes."""
    key = draw(key_strategy if key_strategy is not None else complete_keys())
    props = draw(
        st.dictionaries(
            property_names,
            value_strategy if value_strategy is not None else values(),
            max_size=max_props,
        )
    )
    excluded = draw(st.sets(st.sampled_from(sorted(props)))) if props else set()
    entity = Entity(key, exclude_from_indexes=tuple(sorted(excluded)))
    entity.update(props)
    return entity


# -- comparison helpers ------------------------------------------------------------------------


def micros_of(moment: dt.datetime) -> int:
    """µs since the epoch; a naive datetime is UTC (SEMANTICS.md §2.1). Independent of the
    library's own conversion: seconds from ``calendar.timegm``."""
    if moment.tzinfo is not None:
        offset = moment.utcoffset()
        assert offset is not None
        naive_utc_seconds = calendar.timegm(moment.replace(tzinfo=None).timetuple())
        seconds = naive_utc_seconds - int(offset.total_seconds())
        return seconds * 1_000_000 + moment.microsecond
    return calendar.timegm(moment.timetuple()) * 1_000_000 + moment.microsecond


def _float_bits(value: float) -> int:
    if math.isnan(value):
        return -1  # every NaN is the same value in Datastore
    bits: int = struct.unpack(">Q", struct.pack(">d", value))[0]
    return bits


def canonical(value: Any) -> Any:
    """An exactly comparable form of a public value (type-tagged, NaN == NaN, -0.0 != 0.0)."""
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", int(value))
    if isinstance(value, float):
        return ("double", _float_bits(value))
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, bytes):
        return ("bytes", bytes(value))
    if isinstance(value, dt.datetime):
        return ("ts", micros_of(value))
    if isinstance(value, GeoPoint):
        return ("geo", _float_bits(value.latitude), _float_bits(value.longitude))
    if isinstance(value, Key):
        return ("key", value.project, value.database, value.namespace, value.flat_path)
    if isinstance(value, Entity):
        return (
            "entity",
            canonical(value.key) if value.key is not None else None,
            frozenset(value.exclude_from_indexes),
            tuple(sorted((k, canonical(v)) for k, v in value.items())),
        )
    if isinstance(value, dict):  # an embedded dict is stored as an Entity with no key
        return (
            "entity",
            None,
            frozenset(),
            tuple(sorted((k, canonical(v)) for k, v in value.items())),
        )
    if isinstance(value, list):
        return ("list", tuple(canonical(v) for v in value))
    raise TypeError(f"no canonical form for {type(value).__name__}")


def effective_exclusions(entity: Entity) -> set[str]:
    """The names still excluded after a round trip through the store.

    The official client marks exclusion on each value (each element of a list), so a name
    with no value to carry the mark - absent, or an empty list - comes back not excluded,
    and an excluded empty list is indexed like any empty list.
    """
    return {n for n in entity.exclude_from_indexes if n in entity and entity[n] != []}


def expected_after_store(value: Any) -> Any:
    """What the store gives back for ``value``: naive datetimes as tz-aware UTC, dicts as
    Entities, everything else unchanged (SEMANTICS.md §2.1)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)
    if isinstance(value, Entity):
        copy = Entity(value.key, exclude_from_indexes=tuple(effective_exclusions(value)))
        copy.update({k: expected_after_store(v) for k, v in value.items()})
        return copy
    if isinstance(value, dict):
        copy = Entity(None)
        copy.update({k: expected_after_store(v) for k, v in value.items()})
        return copy
    if isinstance(value, list):
        return [expected_after_store(v) for v in value]
    return value
