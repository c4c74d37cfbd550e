"""Time-based lags on the real clock (DESIGN.md §7, SEMANTICS.md §5.2).

On the real clock a client with ``Eventual(lag=...)`` (the default ``"hrd"`` included)
applies due writes in a background thread, and a global query checks for due writes
first. That check is a statement (a round trip on PostgreSQL), so it is skipped while
nothing can be due: the earliest due time known from the last check, lowered by the
client's own deferred writes since, is ahead, and the last check is under
``_RECHECK`` (50 ms) old. These tests really wait (well under a second each). Every test
runs on SQLite (memory and file) and PostgreSQL; the two-client ones on the stores two
clients can share.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from datastore_lite import Client, Entity, Eventual
from datastore_lite._consistency import _RECHECK, ConsistencyController
from datastore_lite.backends.sql import Txn

MakeClient = Callable[..., Client]


def _controller(client: Client) -> ConsistencyController:
    return client._datastore_api.consistency


def _visible(client: Client) -> set[Any]:
    return {e.key.id_or_name for e in client.query(kind="Photo").fetch() if e.key is not None}


def _put(client: Client, ident: int) -> None:
    entity = Entity(client.key("Photo", ident))
    entity["v"] = ident
    client.put(entity)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The due checks run by this (the main) thread, not by background appliers."""
    seen: list[str] = []
    original = Txn.first_pending_due

    def counted(self: Txn) -> float | None:
        if threading.current_thread() is threading.main_thread():
            seen.append("check")
        return original(self)

    monkeypatch.setattr(Txn, "first_pending_due", counted)
    yield seen


def test_the_background_applier_makes_a_write_visible_without_any_query(
    make_client: MakeClient,
) -> None:
    client = make_client(consistency=Eventual(lag=0.1))
    _put(client, 1)
    assert len(client.consistency.pending()) == 1
    deadline = time.monotonic() + 5.0
    while client.consistency.pending() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.consistency.pending() == []  # applied by the thread, not by a query
    assert _visible(client) == {1}


def test_back_to_back_global_queries_check_for_due_writes_at_most_every_recheck(
    make_client: MakeClient, checks: list[str]
) -> None:
    client = make_client(consistency=Eventual(lag="hrd"))
    # no background applier: its checks would make the main thread's skip more (racy)
    _controller(client).stop()
    _put(client, 1)
    client.consistency.apply_all()
    started = time.monotonic()
    for _ in range(200):
        assert _visible(client) == {1}
    elapsed = time.monotonic() - started
    assert 1 <= len(checks) <= 2 + elapsed / _RECHECK, (len(checks), elapsed)
    assert len(checks) < 100  # without the skip: one check per query


def test_a_query_after_its_own_writes_lag_sees_it_at_once(
    make_client: MakeClient, checks: list[str]
) -> None:
    """The client's own deferred write lowers the horizon: no wait for the next recheck."""
    client = make_client(consistency=Eventual(lag=0.01))
    _controller(client).stop()  # no background applier: only the query can apply it
    _put(client, 1)
    client.consistency.apply_all()
    assert _visible(client) == {1}  # a check: nothing pending
    _put(client, 2)
    time.sleep(0.015)  # due, while the last check is (normally) under _RECHECK old
    checks.clear()
    assert _visible(client) == {1, 2}
    assert checks == ["check"]


def test_writes_another_client_deferred_are_found_within_the_recheck_interval(
    shared_url: str, checks: list[str]
) -> None:
    def open_client() -> Client:
        return Client(
            project="p", url=shared_url, consistency=Eventual(lag=0.01), index_yaml=os.devnull
        )

    reader, writer = open_client(), open_client()
    try:
        _controller(reader).stop()
        _controller(writer).stop()  # neither applies in the background
        _put(writer, 1)
        writer.consistency.apply_all()
        assert _visible(reader) == {1}  # a check: nothing pending, nothing known to come
        _put(writer, 2)
        time.sleep(_RECHECK + 0.02)  # due, and the reader's last check is old
        assert _visible(reader) == {1, 2}
        assert reader.consistency.pending() == []
    finally:
        reader.close()
        writer.close()


def test_a_frozen_client_applies_nothing_and_checks_after_thaw(make_client: MakeClient) -> None:
    client = make_client(consistency=Eventual(lag=0.05))
    _controller(client).stop()
    _put(client, 1)
    client.consistency.apply_all()
    client.consistency.freeze()
    _put(client, 2)
    time.sleep(0.1)
    assert _visible(client) == {1}
    client.consistency.thaw()
    assert _visible(client) == {1, 2}
