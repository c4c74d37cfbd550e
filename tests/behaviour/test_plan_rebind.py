"""An ancestor query is planned once per shape and rebound for each ancestor.

Which index serves a query, its layout, merge key and checks depend on whether the query
has an ancestor, not on which one; only the key range, the ancestor lead of an ancestor
index (and the prefix and value range built on it) and the cursor fingerprint do. So the
plan of ``Photo`` under ``User u0`` serves ``User u1`` with those parts redone
(``_planner.rebind_ancestor``): an app querying many users' streams plans once, not once
per user (benchmarks W10: 10,000 users at 1M photos re-planned at every query, 35 µs each).
Every query here is checked against a freshly planned one. Every test runs on SQLite
(memory and file) and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from datastore_lite import Client, Entity, exceptions
from datastore_lite._convert import key_to_ref
from datastore_lite.query import And, Or, PropertyFilter, Query

INDEX_YAML = """indexes:
- kind: Photo
  ancestor: yes
  properties:
  - name: date
    direction: desc
- kind: Photo
  ancestor: yes
  properties:
  - name: likes
  - name: date
- kind: Photo
  ancestor: yes
  properties:
  - name: tags
  - name: date
    direction: desc
"""
USERS = [f"u{u}" for u in range(6)]


@pytest.fixture
def photos(tmp_path: Any, make_client: Callable[..., Client]) -> Client:
    path = tmp_path / "index.yaml"
    path.write_text(INDEX_YAML)
    client = make_client(index_yaml=str(path))
    entities = []
    for u, user in enumerate(USERS):
        client.put(Entity(client.key("User", user)))
        for i in range(12):
            photo = Entity(client.key("User", user, "Photo", i + 1))
            photo.update(
                date=dt.datetime(2026, 1, 1) + dt.timedelta(hours=(i * 7 + u * 3) % 30),
                likes=(i * 5 + u) % 9,
                tags=[f"t{i % 3}", f"t{(i + u) % 4}"],
            )
            entities.append(photo)
    client.put_multi(entities)
    # a kind under another root: a kindless ancestor query must not see it
    client.put(Entity(client.key("Album", "a1")))
    return client


def _queries(client: Client, user: str) -> dict[str, Query]:
    ancestor = client.key("User", user)
    q = client.query
    return {
        "date desc": q(kind="Photo", ancestor=ancestor, order=["-date"]),
        "likes range": q(
            kind="Photo",
            ancestor=ancestor,
            filters=[PropertyFilter("likes", ">=", 3), PropertyFilter("likes", "<", 7)],
            order=["likes", "date"],
        ),
        "tag equality": q(
            kind="Photo",
            ancestor=ancestor,
            filters=[PropertyFilter("tags", "=", "t1")],
            order=["-date"],
        ),
        "kind only": q(kind="Photo", ancestor=ancestor),
        # empty whatever the ancestor (the plan says so without a statement)
        "contradiction": q(
            kind="Photo",
            ancestor=ancestor,
            filters=[PropertyFilter("likes", ">", 5), PropertyFilter("likes", "<", 3)],
            order=["likes", "date"],
        ),
        # one filter for every user: empty for u0 and u1 (their keys sort before User u2)
        "key range": q(
            kind="Photo",
            ancestor=ancestor,
            filters=[PropertyFilter("__key__", ">", client.key("User", "u2"))],
        ),
        "kindless": q(ancestor=ancestor),
        "equalities": q(
            kind="Photo",
            ancestor=ancestor,
            filters=[And([PropertyFilter("likes", "=", 4), PropertyFilter("tags", "=", "t2")])],
        ),
        "or": q(
            kind="Photo",
            ancestor=ancestor,
            filters=[Or([PropertyFilter("likes", "=", 1), PropertyFilter("likes", "=", 5)])],
        ),
    }


def _keys(query: Query, **kwargs: Any) -> list[Any]:
    return [e.key for e in query.fetch(**kwargs)]


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    import datastore_lite._api as api_module

    planned: list[Any] = []
    real = api_module.plan_query

    def counting(spec: Any, *args: Any, **kwargs: Any) -> Any:
        planned.append(spec)
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(api_module, "plan_query", counting)
    return planned


@pytest.mark.parametrize(
    "shape",
    [
        "date desc",
        "likes range",
        "tag equality",
        "kind only",
        "contradiction",
        "key range",
        "kindless",
        "equalities",
        "or",
    ],
)
def test_rebound_plans_return_what_fresh_plans_return(
    photos: Client, shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = photos._datastore_api
    fresh = {}
    for user in USERS:
        api._plans.clear()  # planned afresh for this user
        fresh[user] = _keys(_queries(photos, user)[shape])
    assert any(fresh.values()) or shape == "contradiction"
    if shape == "key range":
        assert fresh["u0"] == fresh["u1"] == [] and all(fresh[u] for u in USERS[2:])
    api._plans.clear()
    planned = _counting(monkeypatch)
    for user in USERS:
        assert _keys(_queries(photos, user)[shape]) == fresh[user], user
    assert len(planned) == 1  # planned for the first user, rebound for the other five
    for user in USERS:  # and again from the per-ancestor entries
        assert _keys(_queries(photos, user)[shape]) == fresh[user], user
    assert len(planned) == 1


def test_rebound_plan_fields_equal_a_fresh_plan(photos: Client) -> None:
    from datastore_lite._planner import plan_query

    api = photos._datastore_api
    pid = api.backend.partition_id("test-proj", "", "")
    for shape in ("date desc", "likes range", "key range", "or", "contradiction"):
        api._plans.clear()
        api._plan(_queries(photos, "u0")[shape]._to_spec(), pid, False)  # the template
        spec = _queries(photos, "u3")[shape]._to_spec()
        rebound = api._plan(spec, pid, False)
        fresh = plan_query(spec, pid, api.profile, api.registry, False)
        assert rebound.fingerprint == fresh.fingerprint, shape
        assert rebound.ancestor == fresh.ancestor
        assert len(rebound.branches) == len(fresh.branches)
        for got, want in zip(rebound.branches, fresh.branches):
            assert (got.source, got.index_id, got.lead, got.prefix) == (
                want.source,
                want.index_id,
                want.lead,
                want.prefix,
            ), shape
            assert got.interval == want.interval, shape
            assert got.key_interval == want.key_interval, shape
            assert got.empty == want.empty, shape


def test_cursors_of_rebound_and_fresh_plans_are_interchangeable(photos: Client) -> None:
    api = photos._datastore_api
    api._plans.clear()
    _keys(_queries(photos, "u0")["date desc"], limit=2)  # the template
    everything = _keys(_queries(photos, "u3")["date desc"])
    iterator = _queries(photos, "u3")["date desc"].fetch(limit=5)  # a rebound plan
    first = [e.key for e in iterator]
    cursor = iterator.next_page_token
    api._plans.clear()  # the next page from a freshly planned query
    rest = _keys(_queries(photos, "u3")["date desc"], start_cursor=cursor)
    assert first + rest == everything
    # a cursor belongs to its ancestor's query: another user's is refused
    with pytest.raises(exceptions.InvalidArgument):
        _keys(_queries(photos, "u4")["date desc"], start_cursor=cursor)


def test_a_bad_ancestor_is_refused_on_a_rebound_plan_too(photos: Client) -> None:
    _keys(_queries(photos, "u0")["date desc"])  # the template is cached
    other_namespace = photos.key("User", "u1", namespace="elsewhere")
    query = photos.query(kind="Photo", ancestor=other_namespace, order=["-date"])
    with pytest.raises(exceptions.InvalidArgument, match="namespace"):
        _keys(query)


def test_an_ancestor_enters_the_plan_cache_when_it_comes_back(photos: Client) -> None:
    """Many users' first queries do not churn the cache; a returning user gets a hit."""
    api = photos._datastore_api
    api._plans.clear()
    api._seen_ancestors.clear()
    _keys(_queries(photos, "u0")["date desc"])  # planned: the shape's template and u0's plan
    cached = len(api._plans)
    for user in USERS[1:]:
        _keys(_queries(photos, user)["date desc"])  # rebound, not kept
    assert len(api._plans) == cached
    plan = api._plans.copy()
    assert _keys(_queries(photos, "u3")["date desc"])  # back again: kept
    assert len(api._plans) == cached + 1
    (added,) = set(api._plans) - set(plan)
    assert api._plans[added].ancestor == key_to_ref(photos.key("User", "u3"))
