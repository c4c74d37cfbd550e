"""Queries through Google's Datastore emulator and through datastore_lite, compared.

The emulator runs legacy Datastore rules (SEMANTICS.md §0), so the queries here use only
what it supports: ``= < <= > >=``, ``And``, orders, projection, ``distinct_on``, ancestor,
kindless, keys-only, limit/offset — no ``IN``/``NOT_IN``/``!=``/``Or``/aggregations.

* ``test_emulator_agrees_with_reference`` checks the oracle itself (tests/reference.py)
  against the emulator, so the property tests stand on verified ground;
* ``test_lite_agrees_with_emulator`` runs the same data and query through both;
* with ``--require_indexes --index_file=…`` the emulator tells which queries need a
  composite index; datastore_lite (same index.yaml) and the reference must agree.

Known, deliberate differences (docs/compatibility.md) that the comparisons normalise:
a projected ``bytes`` value comes back from the emulator as ``str`` (datastore_lite keeps
the type), so projected values are compared by their index order position. The emulator's
cursors may repeat an entity with array values (§3.3, §4.6); datastore_lite does not, so
cursor paging is compared only on array-free data. Two projection quirks are left out of
the property tests and pinned on their own (``emulator_projection_quirk``,
``emulator_projection_repeats``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import datastore_lite
from datastore_lite import Client, Entity, GeoPoint, Key
from datastore_lite.exceptions import FailedPrecondition
from tests import reference as ref
from tests.differential.conftest import PROJECT, EmulatorFactory
from tests.query_strategies import EntitySpec, Example, QuerySpec, describe, examples

pytestmark = pytest.mark.emulator

DIFF_SETTINGS = settings(
    # DATASTORE_LITE_DIFF_EXAMPLES=500 for a longer hunt
    max_examples=int(os.environ.get("DATASTORE_LITE_DIFF_EXAMPLES", "25")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    deadline=None,
)

_namespaces = itertools.count()


def _fresh_namespace() -> str:
    return f"dq{next(_namespaces)}"


# -- converting values between the libraries ----------------------------------------------------


def to_official(value: Any) -> Any:
    """A datastore_lite value as the official client's value."""
    from google.cloud import datastore
    from google.cloud.datastore.helpers import GeoPoint as OfficialGeoPoint

    if isinstance(value, Key):
        return datastore.Key(*value.flat_path, project=value.project, namespace=value.namespace)
    if isinstance(value, GeoPoint):
        return OfficialGeoPoint(value.latitude, value.longitude)
    if isinstance(value, list):
        return [to_official(v) for v in value]
    return value


def from_official(value: Any) -> Any:
    """An official client's value as the datastore_lite value."""
    from google.cloud import datastore
    from google.cloud.datastore.helpers import GeoPoint as OfficialGeoPoint

    if isinstance(value, datastore.Key):
        return Key(*value.flat_path, project=value.project, namespace=value.namespace or None)
    if isinstance(value, OfficialGeoPoint):
        return GeoPoint(value.latitude, value.longitude)
    if isinstance(value, dt.datetime):
        moment = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        return dt.datetime(*moment.timetuple()[:6], moment.microsecond, tzinfo=dt.UTC)
    if isinstance(value, datastore.Entity):
        key = from_official(value.key) if value.key is not None else None
        entity = Entity(key, exclude_from_indexes=tuple(value.exclude_from_indexes))
        entity.update({k: from_official(v) for k, v in value.items()})
        return entity
    if isinstance(value, list):
        return [from_official(v) for v in value]
    return value


def build_official(spec: EntitySpec, client: Any) -> Any:
    from google.cloud import datastore

    lite_entity = spec.build(client)  # materialises KeyPath values with the official client
    entity = datastore.Entity(client.key(*spec.path), exclude_from_indexes=spec.exclude)
    entity.update({k: to_official(v) for k, v in lite_entity.items()})
    return entity


def official_filters() -> tuple[Any, Any, Any]:
    from google.cloud.datastore.query import And, Or, PropertyFilter

    return (PropertyFilter, And, Or)


def lite_filters() -> tuple[Any, Any, Any]:
    from datastore_lite.query import And, Or, PropertyFilter

    return (PropertyFilter, And, Or)


# -- comparable results ---------------------------------------------------------------------------


def comparable(entity: Entity, spec: QuerySpec) -> Any:
    """Key path and values; projected values by index position (str and bytes alike)."""
    assert entity.key is not None
    if spec.projection and not spec.keys_only:
        values = {k: ref.sort_key(v) for k, v in entity.items()}
    else:
        values = {k: _plain(v) for k, v in entity.items()}
    return (entity.key.flat_path, sorted(values.items()))


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return ("list", tuple(_plain(v) for v in value))
    return (
        type(value).__name__ if not isinstance(value, dt.datetime) else "ts",
        ref.sort_key(value),
    )


def expected_from_reference(stored: list[Entity], spec: QuerySpec, client: Any) -> list[Any]:
    out = []
    for item in ref.evaluate(stored, spec.reference(client), "legacy"):
        if item.projection is not None:
            entity = Entity(item.key)
            entity.update(item.projection)
        elif item.keys_only:
            entity = Entity(item.key)
        else:
            entity = item.entity
        out.append(comparable(entity, spec))
    return out


def run_official(client: Any, spec: QuerySpec) -> list[Any]:
    query = spec.build(client, official_filters(), to_official)
    results = query.fetch(limit=spec.limit, offset=spec.offset)
    return [comparable(from_official(e), spec) for e in results]


def run_lite(client: Client, spec: QuerySpec) -> list[Any]:
    query = spec.build(client, lite_filters())
    results = query.fetch(limit=spec.limit, offset=spec.offset)
    return [comparable(e, spec) for e in results]


def store_official(client: Any, example: Example) -> list[Entity]:
    """Store the example in the emulator; return the entities as datastore_lite objects."""
    entities = [build_official(spec, client) for spec in example.entities]
    if entities:
        client.put_multi(entities)
    return [from_official(e) for e in entities]


def emulator_projection_quirk(spec: QuerySpec) -> bool:
    """The emulator drops the orders after a ``__key__`` order and then no longer omits
    entities lacking a projected property: projection ``x`` ordered by ``__key__, x``
    returns them with no properties. Production omits them (SEMANTICS.md §4.5), as
    datastore_lite does; ``test_projection_after_a_key_order_omits_entities_lacking_it``
    pins both sides and docs/compatibility.md records it."""
    if not spec.projection or "__key__" not in spec.order:
        return False
    return spec.order.index("__key__") < len(spec.order) - 1


def emulator_projection_repeats(example: Example) -> bool:
    """The emulator returns a projection query's result once per *index entry*: an entity
    whose sort or filter property (not projected) holds several values comes back once
    per value with the same projected values. Production returns "a separate entity for
    each unique combination of projected values" (SEMANTICS.md §3.3, [d-queries]
    "Projections and array-valued properties"), as datastore_lite and the reference do;
    ``test_projection_repeats_only_distinct_projected_values`` pins both sides and
    docs/compatibility.md records it."""
    spec = example.query
    if not spec.projection:
        return False
    used = {name.lstrip("-") for name in spec.order}
    used.update(cond.prop for cond in ref.walk(spec.filters))
    others = {name.split(".")[0] for name in used - set(spec.projection) - {"__key__"}}
    return any(
        isinstance(entity.props.get(name), list) and len(entity.props[name]) > 1
        for entity in example.entities
        for name in others
    )


# -- the emulator checks the reference -----------------------------------------------------------


@pytest.fixture(scope="module")
def emulator_client(emulator_factory: EmulatorFactory) -> Any:
    """An official client on a --consistency=1.0 emulator (namespaces isolate examples)."""
    return emulator_factory(consistency=1.0).client(project=PROJECT)


@DIFF_SETTINGS
@given(example=examples(profile="legacy", modern=False))
def test_emulator_agrees_with_reference(emulator_client: Any, example: Example) -> None:
    assume(not emulator_projection_quirk(example.query))
    assume(not emulator_projection_repeats(example))
    emulator_client.namespace = _fresh_namespace()
    stored = store_official(emulator_client, example)
    spec = example.query
    expected = expected_from_reference(stored, spec, datastore_lite_keys(emulator_client))
    assert run_official(emulator_client, spec) == expected, describe(example)


class _KeyMaker:
    """``client.key`` for datastore_lite keys in a given partition."""

    def __init__(self, project: str, namespace: str | None) -> None:
        self.project = project
        self.namespace = namespace

    def key(self, *path: Any) -> Key:
        return Key(*path, project=self.project, namespace=self.namespace)


def datastore_lite_keys(client: Any) -> _KeyMaker:
    """Builds datastore_lite keys in an official client's project and namespace."""
    return _KeyMaker(client.project, client.namespace)


# -- datastore_lite against the emulator --------------------------------------------------------


@DIFF_SETTINGS
@given(example=examples(profile="legacy", modern=False))
def test_lite_agrees_with_emulator(
    emulator_client: Any, lite_pool: LitePool, example: Example
) -> None:
    """Same data, same query: same results in the same order (the datastore_lite client
    gets the composite index the query needs; see the require_indexes tests for those)."""
    assume(not emulator_projection_quirk(example.query))
    assume(not emulator_projection_repeats(example))
    emulator_client.namespace = _fresh_namespace()
    store_official(emulator_client, example)
    lite = lite_pool.for_query(example.query)
    lite.namespace = emulator_client.namespace
    stored = [e.build(lite) for e in example.entities]
    if stored:
        lite.put_multi(stored)
    official = run_official(emulator_client, example.query)
    assert run_lite(lite, example.query) == official, describe(example)


class LitePool:
    """datastore_lite clients of one test, by index.yaml text (created on first use)."""

    def __init__(self, make_client: Callable[..., Client], directory: Path) -> None:
        self.make_client = make_client
        self.directory = directory
        self.clients: dict[str, Client] = {}

    def get(self, index_text: str) -> Client:
        if index_text not in self.clients:
            path = self.directory / f"index_{len(self.clients)}.yaml"
            path.write_text("indexes:\n" + index_text)
            self.clients[index_text] = self.make_client(project=PROJECT, index_yaml=str(path))
        return self.clients[index_text]

    def for_query(self, spec: QuerySpec) -> Client:
        """A legacy client with the composite index the query needs, if any."""
        index = ref.required_index(spec.reference(_KeyMaker(PROJECT, None)))
        return self.get(ref.index_yaml(index) if index is not None else "")


@pytest.fixture
def lite_pool(make_client: Callable[..., Client], tmp_path: Path) -> LitePool:
    return LitePool(make_client, tmp_path)


# -- cursors, on array-free data (the emulator may repeat array entities after a cursor) --------


@DIFF_SETTINGS
@given(
    example=examples(profile="legacy", modern=False),
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=4),
)
def test_emulator_cursor_pages_agree_with_reference(
    emulator_client: Any, example: Example, sizes: list[int]
) -> None:
    for entity_spec in example.entities:
        for name, value in list(entity_spec.props.items()):
            if isinstance(value, list):
                entity_spec.props[name] = value[0] if value else None
    emulator_client.namespace = _fresh_namespace()
    stored = store_official(emulator_client, example)
    spec = QuerySpec(**{**example.query.__dict__, "limit": None, "offset": 0})
    expected = expected_from_reference(stored, spec, datastore_lite_keys(emulator_client))
    query = spec.build(emulator_client, official_filters(), to_official)
    paged: list[Any] = []
    token = None
    for size in itertools.islice(itertools.cycle(sizes), len(expected) + 2):
        iterator = query.fetch(limit=size, start_cursor=token)
        paged.extend(comparable(from_official(e), spec) for e in iterator)
        token = iterator.next_page_token
        if len(paged) >= len(expected):
            break
    assert paged == expected, describe(example)


# -- which queries need a composite index ----------------------------------------------------------


@pytest.fixture(scope="module")
def strict_index_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """index.yaml for the require_indexes emulator: one composite index, used by a test."""
    path = tmp_path_factory.mktemp("strict") / "index.yaml"
    path.write_text(
        "indexes:\n"
        "- kind: Task\n"
        "  properties:\n"
        "  - name: done\n"
        "  - name: priority\n"
        "    direction: desc\n"
    )
    return path


@pytest.fixture(scope="module")
def strict_emulator_client(emulator_factory: EmulatorFactory, strict_index_file: Path) -> Any:
    emu = emulator_factory(consistency=1.0, require_indexes=True, index_file=str(strict_index_file))
    return emu.client(project=PROJECT)


def _needs_index_official(client: Any, spec: QuerySpec) -> bool:
    from google.api_core.exceptions import FailedPrecondition as OfficialFailedPrecondition

    try:
        list(spec.build(client, official_filters(), to_official).fetch(limit=1))
    except OfficialFailedPrecondition:
        return True
    return False


def _needs_index_lite(client: Client, spec: QuerySpec) -> bool:
    try:
        list(spec.build(client, lite_filters()).fetch(limit=1))
    except FailedPrecondition:
        return True
    return False


@DIFF_SETTINGS
@given(example=examples(profile="legacy", modern=False, max_entities=0))
def test_emulator_index_requirement_agrees_with_reference(
    strict_emulator_client: Any, example: Example
) -> None:
    strict_emulator_client.namespace = _fresh_namespace()
    spec = example.query
    needed = ref.required_index(spec.reference(datastore_lite_keys(strict_emulator_client)))
    assert _needs_index_official(strict_emulator_client, spec) == (needed is not None), (
        f"reference recommends {needed}\n{describe(example)}"
    )


@DIFF_SETTINGS
@given(example=examples(profile="legacy", modern=False, max_entities=0))
def test_lite_index_requirement_agrees_with_emulator(
    strict_emulator_client: Any, lite_pool: LitePool, strict_index_file: Path, example: Example
) -> None:
    strict_emulator_client.namespace = _fresh_namespace()
    lite = lite_pool.get(strict_index_file.read_text().split("indexes:\n", 1)[1])
    spec = example.query
    assert _needs_index_lite(lite, spec) == _needs_index_official(strict_emulator_client, spec), (
        describe(example)
    )


TASK_QUERIES: list[tuple[str, dict[str, Any]]] = [
    # §3.5: index (done asc, priority desc) serves both of these...
    (
        "done = False ORDER BY -priority",
        {"filters": [("done", "=", False)], "order": ["-priority"]},
    ),
    ("done = False AND priority > 1", {"filters": [("done", "=", False), ("priority", ">", 1)]}),
    # ...and not these
    ("done = False ORDER BY priority", {"filters": [("done", "=", False)], "order": ["priority"]}),
    ("ORDER BY done, -priority", {"order": ["done", "-priority"]}),
    ("done = False ORDER BY title", {"filters": [("done", "=", False)], "order": ["title"]}),
    # built-in indexes
    ("done = False AND title = 'a'", {"filters": [("done", "=", False), ("title", "=", "a")]}),
    ("priority > 1", {"filters": [("priority", ">", 1)]}),
    ("ORDER BY -priority", {"order": ["-priority"]}),
    ("ORDER BY -__key__", {"order": ["-__key__"]}),
]


@pytest.mark.parametrize(("name", "parts"), TASK_QUERIES, ids=[q[0] for q in TASK_QUERIES])
def test_index_file_serves_the_same_queries(
    strict_emulator_client: Any,
    make_client: Callable[..., Client],
    strict_index_file: Path,
    name: str,
    parts: dict[str, Any],
) -> None:
    """§3.4 postfix matching: an index.yaml index serves exactly the same queries."""
    from google.api_core.exceptions import FailedPrecondition as OfficialFailedPrecondition
    from google.cloud.datastore.query import PropertyFilter as OfficialPropertyFilter

    from datastore_lite.query import PropertyFilter

    lite = make_client(project=PROJECT, index_yaml=str(strict_index_file))
    outcomes = []
    for client, property_filter, error in (
        (strict_emulator_client, OfficialPropertyFilter, OfficialFailedPrecondition),
        (lite, PropertyFilter, FailedPrecondition),
    ):
        query = client.query(kind="Task", order=parts.get("order", ()))
        for flt in parts.get("filters", ()):
            query.add_filter(filter=property_filter(*flt))
        try:
            list(query.fetch())
            outcomes.append("served")
        except error:
            outcomes.append("needs index")
    assert outcomes[1] == outcomes[0], (
        f"{name}: emulator {outcomes[0]}, datastore_lite {outcomes[1]}"
    )


def test_emulator_and_lite_task_results_agree(
    emulator_client: Any, make_client: Callable[..., Client], strict_index_file: Path
) -> None:
    """The composite index (done asc, priority desc) gives the same results on both sides,
    including ``done = False AND priority > 1`` with no explicit order."""
    from google.cloud import datastore
    from google.cloud.datastore.query import PropertyFilter as OfficialPropertyFilter

    from datastore_lite.query import PropertyFilter

    emulator_client.namespace = _fresh_namespace()
    lite = make_client(project=PROJECT, index_yaml=str(strict_index_file))
    rows = [(1, False, 3), (2, False, 1), (3, True, 5), (4, False, 5), (5, False, 3)]
    for ident, done, priority in rows:
        entity = datastore.Entity(emulator_client.key("Task", ident))
        entity.update(done=done, priority=priority)
        emulator_client.put(entity)
        mine = datastore_lite.Entity(lite.key("Task", ident))
        mine.update(done=done, priority=priority)
        lite.put(mine)
    for filters, order in (
        ([("done", "=", False)], ["-priority"]),
        ([("done", "=", False), ("priority", ">", 1)], []),
    ):
        official_query = emulator_client.query(kind="Task", order=order)
        lite_query = lite.query(kind="Task", order=order)
        for flt in filters:
            official_query.add_filter(filter=OfficialPropertyFilter(*flt))
            lite_query.add_filter(filter=PropertyFilter(*flt))
        official_ids = [e.key.id for e in official_query.fetch()]
        lite_ids = [e.key.id for e in lite_query.fetch()]
        assert lite_ids == official_ids, (filters, order)


def test_projection_after_a_key_order_omits_entities_lacking_it(
    emulator_client: Any, lite_pool: LitePool
) -> None:
    """The one projection difference (see :func:`emulator_projection_quirk`), pinned."""
    example = Example(
        entities=[EntitySpec(("K", 1), {}, ()), EntitySpec(("K", 2), {"x": 5}, ())],
        query=QuerySpec(kind="K", projection=("x",), order=("__key__", "x")),
        page_sizes=[],
    )
    assert emulator_projection_quirk(example.query)
    emulator_client.namespace = _fresh_namespace()
    store_official(emulator_client, example)
    lite = lite_pool.for_query(example.query)
    lite.namespace = emulator_client.namespace
    lite.put_multi([e.build(lite) for e in example.entities])
    official = run_official(emulator_client, example.query)
    assert [item[0] for item in official] == [("K", 1), ("K", 2)]  # the emulator's quirk
    assert [item[0] for item in run_lite(lite, example.query)] == [("K", 2)]  # production's


def test_projection_repeats_only_distinct_projected_values(
    emulator_client: Any, lite_pool: LitePool
) -> None:
    """The second projection difference (see :func:`emulator_projection_repeats`), pinned."""
    example = Example(
        entities=[
            EntitySpec(("K", 1), {"x": 1, "y": [1, 2, 3]}, ()),
            EntitySpec(("K", 2), {"x": 1, "y": [2]}, ()),
        ],
        query=QuerySpec(kind="K", projection=("x",), order=("y",)),
        page_sizes=[],
    )
    assert emulator_projection_repeats(example)
    emulator_client.namespace = _fresh_namespace()
    stored = store_official(emulator_client, example)
    lite = lite_pool.for_query(example.query)
    lite.namespace = emulator_client.namespace
    lite.put_multi([e.build(lite) for e in example.entities])
    official = run_official(emulator_client, example.query)
    # the emulator: one result per (x, y) index entry, in y order (1, 2, 2, 3)
    assert [item[0] for item in official] == [("K", 1), ("K", 1), ("K", 2), ("K", 1)]
    # production's rule: one per key and distinct projected values, at its first position
    produced = run_lite(lite, example.query)
    assert [item[0] for item in produced] == [("K", 1), ("K", 2)]
    keys = datastore_lite_keys(emulator_client)
    assert expected_from_reference(stored, example.query, keys) == produced
