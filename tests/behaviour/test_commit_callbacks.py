"""Storage scopes: what a write scope learns reaches the process's caches only on commit.

``Txn`` objects are reused per thread, so callbacks registered by one scope must never run
after a later scope's commit (a rolled-back scope's would teach caches uncommitted state),
and the index generation a backend remembers must be the committed one.
"""

from __future__ import annotations

import pytest

from datastore_lite import Client
from datastore_lite.backends.sql import SQLBackend


class _Boom(Exception):
    pass


def _backend(client: Client) -> SQLBackend:
    return client._datastore_api.backend


def test_a_rolled_back_scope_callbacks_never_run(client: Client) -> None:
    backend = _backend(client)
    ran: list[str] = []
    with pytest.raises(_Boom), backend.write() as w:
        w._after_commit(lambda: ran.append("rolled back"))
        raise _Boom()
    with backend.write() as w:
        w._after_commit(lambda: ran.append("committed"))
    with backend.write():
        pass
    assert ran == ["committed"]


def _stored_generation(backend: SQLBackend) -> int:
    with backend.read() as r:
        return int(r.meta_values()["index_generation"])


def test_index_generation_read_in_a_write_is_the_committed_one(client: Client) -> None:
    backend = _backend(client)
    with backend.write() as w:
        before = w.index_generation(lock=True)
    assert before == _stored_generation(backend)
    # a bump that rolls back leaves the committed generation
    with pytest.raises(_Boom), backend.write() as w:
        w.bump_index_generation()
        assert w.index_generation() == before + 1  # its own write, inside the scope
        raise _Boom()
    with backend.write() as w:
        assert w.index_generation(lock=True) == before
    # a committed bump is seen by the next write
    with backend.write() as w:
        w.bump_index_generation()
    with backend.write() as w:
        assert w.index_generation(lock=True) == before + 1
    assert _stored_generation(backend) == before + 1
