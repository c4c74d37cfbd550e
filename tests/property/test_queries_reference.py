"""Query results, their order and cursor paging checked against tests/reference.py.

Hypothesis draws entity sets (mixed types, arrays, missing and unindexed properties,
ancestors) and valid queries (every operator, And/Or, orders, projection, distinct,
ancestor, kindless, keys-only, limit/offset) for the legacy or the firestore profile
(STYLE.md §8 rule 13). Each example:

1. asks the engine, on an empty namespace of a client without composite indexes, whether
   the query needs one: for the queries of SEMANTICS.md §3.1's table the answer and the
   recommended index (§3.5 text) must be the reference's; for Or/IN/NOT_IN/!= queries the
   recommended indexes are collected from the errors until the query runs;
2. stores the entities through a client that has those indexes (fresh namespace), runs the
   query and compares results and order with the reference;
3. pages through the same query with cursors split at the drawn page sizes: the pages
   concatenated equal the reference, and ``next_page_token`` is None exactly when nothing
   is left (§4.6).
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings

from datastore_lite import Client, Entity
from datastore_lite.exceptions import FailedPrecondition
from datastore_lite.query import And, Or, PropertyFilter
from tests import reference as ref
from tests.query_strategies import Example, QuerySpec, describe, examples
from tests.strategies import canonical

FILTERS = (PropertyFilter, And, Or)
_MARKER = "recommended index is:\n"


class ClientPool:
    """Clients by (profile, composite indexes); every example gets a fresh namespace.

    Each index set gets its own store (its own SQLite file or PostgreSQL schema): indexes
    registered by one client stay serving in its store (until ``indexes vacuum``), so a
    client without composite indexes must not share a store with one that has them.
    """

    def __init__(
        self, make_client: Callable[..., Client], directory: Path, new_url: Callable[[], str]
    ) -> None:
        self.make_client = make_client
        self.directory = directory
        self.new_url = new_url
        self.clients: dict[tuple[str, tuple[str, ...]], Client] = {}
        self.namespaces = itertools.count()

    def get(self, profile: str, indexes: tuple[str, ...] = ()) -> Client:
        """A client with these indexes, switched to a namespace no example used before."""
        key = (profile, tuple(sorted(indexes)))
        client = self.clients.get(key)
        if client is None:
            if indexes:
                path = self.directory / f"index_{len(self.clients)}.yaml"
                path.write_text("indexes:\n" + "".join(key[1]))
                index_yaml = str(path)
            else:
                index_yaml = os.devnull
            client = self.make_client(profile=profile, index_yaml=index_yaml, url=self.new_url())
            self.clients[key] = client
        client.namespace = f"ns{next(self.namespaces)}"
        return client


@pytest.fixture
def pool(
    request: pytest.FixtureRequest,
    make_client: Callable[..., Client],
    backend_url: str,
    tmp_path: Path,
) -> Iterator[ClientPool]:
    """A pool whose stores are on the backend under test, one store per index set."""
    schemas: list[str] = []
    counter = itertools.count()
    base: str | None = None
    if backend_url.startswith("postgresql"):
        base = request.getfixturevalue("pg_database")

    def new_url() -> str:
        n = next(counter)
        if backend_url.startswith("sqlite:///"):
            return f"sqlite:///{tmp_path}/pool_{n}.db"
        if base is None:
            return backend_url  # sqlite:// (memory): every client is its own store already
        schema = f"q_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        schemas.append(schema)
        url = base.replace("postgresql://", "postgresql+psycopg://", 1)
        return f"{url}?options=-csearch_path%3D{schema}"

    pool = ClientPool(make_client, tmp_path, new_url)
    yield pool
    if base is not None and schemas:
        for client in pool.clients.values():  # release their connections before dropping
            client.close()
        with psycopg.connect(base, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _recommended(exc: FailedPrecondition) -> str:
    message = str(getattr(exc, "message", exc))
    assert _MARKER in message, message
    return message.split(_MARKER, 1)[1]


def needed_indexes(pool: ClientPool, spec: QuerySpec) -> tuple[str, ...]:
    """The composite indexes the engine asks for, checked against the reference (§3.1).

    For the operators of §3.1's table the engine must ask for exactly the reference's
    index (or none); for Or/IN/NOT_IN/!= the recommended indexes are collected from the
    errors until the query runs (an index must never be asked for twice).
    """
    client = pool.get(spec.profile)
    query = spec.build(client, FILTERS)
    checked = not spec.uses_modern_filters
    expected = ref.required_index(spec.reference(client)) if checked else None
    indexes: list[str] = []
    for _attempt in range(4):
        try:
            list(query.fetch(limit=1))
        except FailedPrecondition as exc:
            wanted = _recommended(exc)
            if checked:
                assert expected is not None, f"needs no composite index, but: {exc}"
                assert str(getattr(exc, "message", exc)) == ref.missing_index_message(expected)
            assert wanted not in indexes, f"asked twice for the same index:\n{wanted}"
            indexes.append(wanted)
            client = pool.get(spec.profile, tuple(indexes))
            query = spec.build(client, FILTERS)
            continue
        if not indexes and checked:
            assert expected is None, f"should need index:\n{expected and expected.yaml()}"
        return tuple(indexes)
    raise AssertionError(f"still no serving index after {indexes}")


def shown(result: Entity, spec: QuerySpec) -> Any:
    """A comparable form of one returned entity."""
    assert result.key is not None
    if spec.keys_only:
        assert dict(result) == {}, "keys-only results carry no properties"
    return canonical(result)


def expected_shown(item: ref.Result, spec: QuerySpec) -> Any:
    if item.projection is not None:
        projected = Entity(item.key)
        projected.update(item.projection)
        return canonical(projected)
    if item.keys_only:
        return canonical(Entity(item.key))
    return canonical(item.entity)


def _check_projection_shape(result: Entity, spec: QuerySpec) -> None:
    if spec.projection and not spec.keys_only:
        assert set(result) == set(spec.projection), "a projection returns exactly its properties"


def run_example(pool: ClientPool, example: Example) -> None:
    spec = example.query
    indexes = needed_indexes(pool, spec)
    client = pool.get(spec.profile, indexes)
    stored = [e.build(client) for e in example.entities]
    if stored:
        client.put_multi(stored)
    query_ref = spec.reference(client)
    unlimited = ref.RefQuery(**{**query_ref.__dict__, "limit": None, "offset": 0})
    everything = [expected_shown(r, spec) for r in ref.evaluate(stored, unlimited, spec.profile)]
    stop = None if spec.limit is None else spec.offset + spec.limit
    expected = everything[spec.offset : stop]

    query = spec.build(client, FILTERS)
    results = list(query.fetch(limit=spec.limit, offset=spec.offset))
    for result in results:
        _check_projection_shape(result, spec)
    got = [shown(r, spec) for r in results]
    assert got == expected, describe(example)

    # Paging with cursors split at the drawn sizes (§4.6; entities never repeat, §3.3).
    paged: list[Any] = []
    sizes = itertools.cycle(example.page_sizes)
    token: bytes | None = None
    for page_number in range(len(everything) + 10):
        size = next(sizes)
        if spec.limit is not None:
            size = min(size, spec.limit - len(paged))
        if page_number == 0:
            iterator = query.fetch(limit=size, offset=spec.offset)
        else:
            iterator = query.fetch(limit=size, start_cursor=token)
        page = [shown(r, spec) for r in iterator]
        token = iterator.next_page_token
        paged.extend(page)
        left = max(0, len(everything) - spec.offset - len(paged))
        if size == 0:  # limit 0: nothing returned, and the query is not finished (§4.6)
            assert page == [], describe(example)
            assert token is not None or left == 0, describe(example)
            break
        assert (token is None) == (left == 0), (
            f"page {page_number}: token {token!r} with {left} results left\n{describe(example)}"
        )
        if token is None or (spec.limit is not None and len(paged) >= spec.limit):
            break
    assert paged == expected, describe(example)


@settings(max_examples=40)
@given(example=examples())
def test_query_results_and_cursor_pages_match_reference(pool: ClientPool, example: Example) -> None:
    run_example(pool, example)


@settings(max_examples=15)
@given(example=examples(profile="legacy", modern=False))
def test_classic_queries_match_reference_and_index_table(
    pool: ClientPool, example: Example
) -> None:
    """Only the operators of §3.1's table (no Or/IN/NOT_IN/!=), legacy profile: the
    engine's composite-index decision and recommended index are checked every time."""
    run_example(pool, example)


@settings(max_examples=15)
@given(example=examples())
def test_count_aggregation_matches_reference(pool: ClientPool, example: Example) -> None:
    """COUNT over a full-entity query counts the reference's results (§4.7)."""
    spec = QuerySpec(
        **{**example.query.__dict__, "projection": (), "distinct_on": (), "keys_only": False}
    )
    indexes = needed_indexes(pool, spec)
    client = pool.get(spec.profile, indexes)
    stored = [e.build(client) for e in example.entities]
    if stored:
        client.put_multi(stored)
    query_ref = ref.RefQuery(**{**spec.reference(client).__dict__, "limit": None, "offset": 0})
    expected = len(ref.evaluate(stored, query_ref, spec.profile))
    aggregation = client.aggregation_query(spec.build(client, FILTERS)).count(alias="n")
    batches = list(aggregation.fetch())
    assert len(batches) == 1
    (result,) = batches[0]
    assert result.alias == "n"
    assert result.value == expected and type(result.value) is int, describe(example)
