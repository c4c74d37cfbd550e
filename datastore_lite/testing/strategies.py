"""Hypothesis strategies for keys, values, entities and queries (docs/testing.md).

Everything drawn is valid for Datastore and stores without error: kinds and names are not
reserved (``__x__``), ids are positive int64, indexed strings stay far below 1500 bytes,
datetimes are UTC with microsecond precision (so they round-trip equal), lists are never
nested. Queries need only the built-in indexes under both profiles, so they run on a
client without ``index.yaml``.

Needs Hypothesis (``pip install hypothesis``, or the ``test`` extra); the rest of
datastore_lite does not.

Example:
    >>> from hypothesis import given, settings
    >>> from datastore_lite.testing import strategies as dls, temporary_client
    >>> @settings(max_examples=5)
    ... @given(dls.entities(properties={"likes": dls.integers()}))
    ... def test_round_trip(entity):
    ...     with temporary_client(url="sqlite://", consistency="strong") as client:
    ...         client.put(entity)
    ...         assert client.get(entity.key) == entity
    >>> test_round_trip()
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "datastore_lite.testing.strategies needs Hypothesis: pip install hypothesis "
        "(or datastore-lite[test])"
    ) from exc

from ..entity import Entity
from ..helpers import GeoPoint
from ..key import Key
from ..query import PropertyFilter, Query

if TYPE_CHECKING:
    from ..client import Client

__all__ = [
    "booleans",
    "bytestrings",
    "datetimes",
    "entities",
    "floats",
    "geo_points",
    "ids",
    "integers",
    "key_names",
    "keys",
    "kinds",
    "property_names",
    "queries",
    "texts",
    "values",
]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

EQUALITY_OPERATORS = ("=", "IN")
INEQUALITY_OPERATORS = ("<", "<=", ">", ">=", "!=", "NOT_IN")

_IDENTIFIER = r"\A[A-Za-z][A-Za-z0-9_]{0,11}\Z"


def _not_reserved(name: str) -> bool:
    # SEMANTICS.md §1.1: names matching __.*__ belong to Datastore itself
    return not (name.startswith("__") and name.endswith("__"))


def _strategy(value: Any) -> st.SearchStrategy[Any]:
    """``value`` if it is a strategy, a list/tuple as ``sampled_from``, else ``just``."""
    if isinstance(value, st.SearchStrategy):
        return value
    if isinstance(value, (list, tuple)):
        return st.sampled_from(value)
    return st.just(value)


# -- names and keys ---------------------------------------------------------------------------


def kinds() -> st.SearchStrategy[str]:
    """Kind names: ASCII identifiers such as ``"Photo"`` (never reserved)."""
    return st.from_regex(_IDENTIFIER).filter(_not_reserved)


_any_kind = kinds  # ``keys(kinds=...)`` shadows the name


def property_names() -> st.SearchStrategy[str]:
    """Property names: ASCII identifiers (never reserved)."""
    return st.from_regex(_IDENTIFIER).filter(_not_reserved)


def key_names() -> st.SearchStrategy[str]:
    """Key names: 1-20 printable characters, non-ASCII included (never reserved)."""
    alphabet = st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"))
    return st.text(alphabet=alphabet, min_size=1, max_size=20).filter(_not_reserved)


def ids() -> st.SearchStrategy[int]:
    """Numeric ids: positive int64, small ones drawn often."""
    return st.one_of(st.integers(1, 1000), st.integers(1, INT64_MAX))


def keys(
    *,
    client: Client | None = None,
    project: str | None = None,
    namespace: str | None = None,
    kinds: str | Sequence[str] | st.SearchStrategy[str] | None = None,
    parent: Key | st.SearchStrategy[Key | None] | None = None,
    max_depth: int = 2,
    identifiers: st.SearchStrategy[int | str] | None = None,
) -> st.SearchStrategy[Key]:
    """Complete keys.

    Args:
        client: Take the project and namespace from this client.
        project: The project (default: the client's, else ``"test"``).
        namespace: The namespace (default: the client's, else the default namespace).
        kinds: A kind, a list of kinds to choose from, or a strategy (default: any kind).
        parent: A parent key for every key (or a strategy of parent keys or None); without
            it keys get 0 to ``max_depth - 1`` random ancestors.
        max_depth: The longest path drawn (when no ``parent`` is given).
        identifiers: Strategy of the last path element's id or name (default: both).

    Example::

        photos = keys(kinds="Photo", parent=client.key("User", "alice"))
    """
    if client is not None:
        project = project if project is not None else client.project
        namespace = namespace if namespace is not None else client.namespace
    project = project if project is not None else "test"
    kind_strategy = _strategy(kinds) if kinds is not None else _any_kind()
    ident_strategy = identifiers if identifiers is not None else st.one_of(ids(), key_names())
    any_kind = _any_kind()

    @st.composite
    def build(draw: st.DrawFn) -> Key:
        if parent is not None:
            above = draw(_strategy(parent))
            flat: list[Any] = list(above.flat_path) if above is not None else []
        else:
            flat = []
            for _ in range(draw(st.integers(0, max(0, max_depth - 1)))):
                flat += [draw(any_kind), draw(st.one_of(ids(), key_names()))]
        flat += [draw(kind_strategy), draw(ident_strategy)]
        return Key(*flat, project=project, namespace=namespace)

    return build()


_any_key = keys  # ``entities(keys=...)`` shadows the name


# -- values -----------------------------------------------------------------------------------


def integers(min_value: int = INT64_MIN, max_value: int = INT64_MAX) -> st.SearchStrategy[int]:
    """int64 values (Datastore integers), the extremes and small values drawn often."""
    edges = [v for v in (INT64_MIN, -1, 0, 1, INT64_MAX) if min_value <= v <= max_value]
    plain = st.integers(min_value, max_value)
    return st.one_of(st.sampled_from(edges), plain) if edges else plain


def floats(allow_nan: bool = False, allow_infinity: bool = True) -> st.SearchStrategy[float]:
    """Doubles. NaN is off by default: it is a valid value but never equal to itself."""
    return st.floats(allow_nan=allow_nan, allow_infinity=allow_infinity)


def booleans() -> st.SearchStrategy[bool]:
    """True or False."""
    return st.booleans()


def texts(max_size: int = 30) -> st.SearchStrategy[str]:
    """Unicode strings (any code point that encodes as UTF-8)."""
    return st.text(alphabet=st.characters(codec="utf-8"), max_size=max_size)


def bytestrings(max_size: int = 30) -> st.SearchStrategy[bytes]:
    """Byte strings."""
    return st.binary(max_size=max_size)


def datetimes() -> st.SearchStrategy[_dt.datetime]:
    """UTC datetimes with microseconds, years 1-9999 (what the store gives back)."""
    return st.datetimes(
        min_value=_dt.datetime(1, 1, 1), max_value=_dt.datetime(9999, 12, 31, 23, 59, 59)
    ).map(lambda moment: moment.replace(tzinfo=_dt.UTC))


def geo_points() -> st.SearchStrategy[GeoPoint]:
    """Geographical points: latitude -90..90, longitude -180..180."""
    return st.builds(GeoPoint, st.floats(-90, 90), st.floats(-180, 180))


def values(
    *,
    allow_nan: bool = False,
    lists: bool = True,
    embedded: bool = True,
    key_values: st.SearchStrategy[Key] | None = None,
) -> st.SearchStrategy[Any]:
    """Any property value of SEMANTICS.md §2.1.

    Args:
        allow_nan: Draw NaN floats too.
        lists: Draw lists of scalars (never nested lists, as Datastore requires).
        embedded: Draw embedded entities (plain dicts of scalars).
        key_values: Strategy of key-valued properties (default: keys in project ``test``).
    """
    scalars = st.one_of(
        st.none(),
        booleans(),
        integers(),
        floats(allow_nan=allow_nan),
        texts(),
        bytestrings(),
        datetimes(),
        geo_points(),
        key_values if key_values is not None else keys(),
    )
    options = [scalars]
    if lists:
        options.append(st.lists(scalars, max_size=4))
    if embedded:
        options.append(st.dictionaries(property_names(), scalars, max_size=3))
    return st.one_of(*options)


def entities(
    *,
    keys: st.SearchStrategy[Key] | None = None,
    properties: Mapping[str, st.SearchStrategy[Any]] | None = None,
    client: Client | None = None,
    optional: bool = False,
    exclude_from_indexes: Sequence[str] = (),
    max_properties: int = 5,
) -> st.SearchStrategy[Entity]:
    """Entities with a complete key.

    Args:
        keys: Strategy of their keys (default: :func:`keys`, from ``client`` if given).
        properties: ``{name: strategy}`` of the properties to set (the app's schema);
            default: up to ``max_properties`` random names with any :func:`values`.
        client: Build default keys in this client's project and namespace.
        optional: With ``properties``, leave each property out at random.
        exclude_from_indexes: Property names excluded from indexes.
        max_properties: Upper bound of random properties (without ``properties``).

    Example::

        photos = entities(keys=keys(kinds="Photo"), properties={"likes": integers(0, 9)})
    """
    key_strategy = keys if keys is not None else _any_key(client=client)

    @st.composite
    def build(draw: st.DrawFn) -> Entity:
        entity = Entity(draw(key_strategy), exclude_from_indexes=tuple(exclude_from_indexes))
        if properties is None:
            entity.update(
                draw(st.dictionaries(property_names(), values(), max_size=max_properties))
            )
        else:
            for name, strategy in properties.items():
                if not optional or draw(st.booleans()):
                    entity[name] = draw(strategy)
        return entity

    return build()


# -- queries ----------------------------------------------------------------------------------


def queries(
    client: Client,
    *,
    kind: str | Sequence[str] | st.SearchStrategy[str],
    properties: Mapping[str, st.SearchStrategy[Any]],
    ancestors: st.SearchStrategy[Key | None] | None = None,
    keys_only: bool | None = None,
) -> st.SearchStrategy[Query]:
    """Queries of ``client`` that the built-in indexes serve (no ``index.yaml`` needed).

    Each query is one of these shapes (the ones Datastore answers without a composite
    index, under the legacy rules too): a kind scan, optionally ordered by one property or
    by key; equality filters (``=``, ``IN``) on one or two properties; a range or
    inequality (``<``, ``<=``, ``>``, ``>=``, ``!=``, ``NOT_IN``) on one property, optionally
    ordered by it; with an ancestor, equality filters only.

    Args:
        client: The client the queries run on.
        kind: The kind queried (or a list / strategy of kinds).
        properties: ``{name: strategy of scalar values}`` to filter and order on; use the
            same strategies as the entities so that filters match some of them.
        ancestors: Strategy of ancestor keys (or None) to add to some queries.
        keys_only: Force keys-only (True) or full entities (False); default: either.

    Example::

        @given(queries(client, kind="Photo", properties={"likes": integers(0, 9)}))
        def test_any_photo_query_runs(query):
            list(query.fetch())
    """
    if not properties:
        raise ValueError("queries() needs at least one property to filter or order on")
    names = sorted(properties)
    kind_strategy = _strategy(kind)

    def scalar(name: str) -> st.SearchStrategy[Any]:
        return properties[name]

    @st.composite
    def build(draw: st.DrawFn) -> Query:
        ancestor = draw(ancestors) if ancestors is not None else None
        query = client.query(kind=draw(kind_strategy), ancestor=ancestor)
        shapes = ["scan", "equality"] if ancestor is not None else ["scan", "equality", "range"]
        shape = draw(st.sampled_from(shapes))
        if shape == "equality":
            chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))
            for name in chosen:
                operator = draw(st.sampled_from(EQUALITY_OPERATORS))
                if operator == "IN":
                    value: Any = draw(st.lists(scalar(name), min_size=1, max_size=3))
                else:
                    value = draw(scalar(name))
                query.add_filter(filter=PropertyFilter(name, operator, value))
        elif shape == "range":
            name = draw(st.sampled_from(names))
            operator = draw(st.sampled_from(INEQUALITY_OPERATORS))
            if operator == "NOT_IN":
                value = draw(st.lists(scalar(name), min_size=1, max_size=3))
            else:
                value = draw(scalar(name))
            query.add_filter(filter=PropertyFilter(name, operator, value))
            if operator in ("<", "<=", ">", ">=") and draw(st.booleans()):
                # a second bound on the same property: still one inequality property
                other = ">=" if operator in ("<", "<=") else "<="
                query.add_filter(filter=PropertyFilter(name, other, draw(scalar(name))))
            if draw(st.booleans()):
                query.order = [draw(st.sampled_from([name, "-" + name]))]
        elif ancestor is None and draw(st.booleans()):
            # descending key order needs a composite index (SEMANTICS.md §3.1)
            orders = [*names, *("-" + name for name in names), "__key__"]
            query.order = [draw(st.sampled_from(orders))]
        only_keys = keys_only if keys_only is not None else draw(st.booleans())
        if only_keys:
            query.keys_only()
        return query

    return build()
