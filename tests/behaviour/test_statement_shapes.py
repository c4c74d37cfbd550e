"""Statements with a length (IN lists, multi-row VALUES) come in a few compiled shapes.

A backlog of deferred writes is applied in one go: thousands of groups locked and
thousands of entities read at once. Compiling a new statement for every length cost 87 ms
of SQLAlchemy compile for 2,000 groups (benchmarks W11.W2), the compiled-statement cache
grew with every new length, and one statement per list would pass SQLite's 32,766 and
PostgreSQL's 65,535 bind-parameter limits. So lists are padded to a few lengths and long
ones are split (``backends/_statements.py``). Every test that stores data runs on SQLite
(memory and file) and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from datastore_lite import Client, Entity, Eventual
from datastore_lite._ordering import encode_path
from datastore_lite.backends._statements import IN_CHUNK, chunk_sizes, in_list_size, padded
from datastore_lite.backends.sql import SQLBackend
from datastore_lite.testing import FakeClock

MakeClient = Callable[..., Client]


def _backend(client: Client) -> SQLBackend:
    return client._datastore_api.backend


def _shapes(backend: SQLBackend, name: str) -> set[Any]:
    return {key for key in backend._compiled if key[0] == name}


# -- the sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 31, 32, 255, 256, 257, 300, 2000, 4097])
def test_chunk_sizes_cover_every_row_once(n: int) -> None:
    sizes = chunk_sizes(n)
    assert sum(sizes) == n
    assert all(s <= 16 or s in (32, 64, 128, 256) for s in sizes)


def test_chunk_sizes_have_few_shapes() -> None:
    shapes = {s for n in range(1, 3000) for s in chunk_sizes(n)}
    assert len(shapes) <= 20
    assert chunk_sizes(2000) == [256] * 7 + [128, 64, 16]
    assert chunk_sizes(7) == [7]  # a commit to a few groups stays one statement


def test_in_lists_up_to_128_keep_their_length_and_longer_ones_are_padded() -> None:
    assert [in_list_size(n) for n in (1, 100, 128)] == [1, 100, 128]
    assert [in_list_size(n) for n in (129, 256, 257, IN_CHUNK)] == [256, 256, 384, IN_CHUNK]
    assert len({in_list_size(n) for n in range(1, IN_CHUNK + 1)}) <= 128 + 8
    values = [b"a", b"b", b"c"] * 50  # 150 values
    out = padded(values)
    assert len(out) == 256 and list(out[:150]) == values and set(out[150:]) == {b"c"}
    short = [b"x"] * 5
    assert padded(short) is short


# -- the statements ----------------------------------------------------------------------------


def test_lock_groups_in_pieces_returns_every_group(client: Client) -> None:
    backend = _backend(client)
    pid = backend.partition_id("test-proj", "", "")
    groups = sorted(f"g{i:05d}".encode() for i in range(700))
    with backend.write() as w:
        first = w.lock_groups(pid, groups, bump=set(groups[::2]))
    assert set(first) == set(groups)
    assert all(state[:2] == (0, 0) for state in first.values())  # as before the statement
    with backend.write() as w:
        second = w.lock_groups(pid, groups)
    for i, group in enumerate(groups):
        assert second[group][:2] == ((1, 1) if i % 2 == 0 else (0, 0)), group
    # 700 = 256 + 256 + 128 + 32 + 16 + 8 + 4: sizes 256, 128, 32, 16, 8, 4 at most
    assert len(_shapes(backend, "lock_groups")) <= 6


def test_read_entities_longer_than_one_chunk(client: Client) -> None:
    n = IN_CHUNK + 300
    client.put_multi([Entity(client.key("K", i + 1)) for i in range(500)])
    client.put_multi([Entity(client.key("K", i + 501)) for i in range(500)])
    backend = _backend(client)
    pid = backend.partition_id("test-proj", "", "")
    wanted = sorted(encode_path(("K", i + 1)) for i in range(n))
    with backend.read() as r:
        rows = r.read_entities(pid, wanted)
    assert len(rows) == 1000  # ids 1..1000 exist, 1001..1324 do not


def test_many_lengths_share_few_compiled_statements(client: Client) -> None:
    backend = _backend(client)
    pid = backend.partition_id("test-proj", "", "")
    keys = [f"k{i:05d}".encode() for i in range(1100)]
    with backend.read() as r:
        for n in range(129, IN_CHUNK + 1, 7):  # 128 different lengths
            r.read_entities(pid, keys[:n])
    assert len(_shapes(backend, "read_entities")) <= 8


# -- end to end: a backlog bigger than every chunk -------------------------------------------


def test_apply_all_of_a_large_backlog(make_client: MakeClient) -> None:
    """1,300 groups with deferred writes (more than IN_CHUNK keys, more than 256 groups)."""
    clock = FakeClock()
    client = make_client(consistency=Eventual(probability=0.0), clock=clock.time, sleep=clock.sleep)
    for start in range(0, 1300, 500):
        client.put_multi(
            [Entity(client.key("Photo", i + 1)) for i in range(start, min(start + 500, 1300))]
        )
    assert len(client.consistency.pending()) == 1300
    assert list(client.query(kind="Photo").fetch()) == []  # probability 0: nothing visible
    assert client.consistency.apply_all() == 1300
    assert client.consistency.pending() == []
    ids = sorted(e.key.id for e in client.query(kind="Photo").fetch())
    assert ids == list(range(1, 1301))
