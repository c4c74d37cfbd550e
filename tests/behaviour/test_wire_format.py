"""Query results reach the client in the driver's cheapest form.

PostgreSQL sends ``bytea`` hex-encoded (twice its size, encoded by the server and
decoded by the client) unless the results are asked for in binary format, which the
PostgreSQL backend does for every statement it runs (``cursor_options``; BENCHMARKS.md
W4: 0.79-1.17 ms per 20-photo query in text format, 0.50-0.54 ms in binary). On every
backend the bytes read back are the bytes written.
"""

from __future__ import annotations

import datetime as dt

from datastore_lite import Client, Entity
from datastore_lite.backends.sql import SQLBackend


def _backend(client: Client) -> SQLBackend:
    return client._datastore_api.backend


def test_results_are_binary_on_postgresql_and_round_trip(client: Client) -> None:
    blob = bytes(range(256)) * 9  # ~2.3 KB: every byte value, above TOAST's threshold
    for i in range(3):
        entity = Entity(client.key("User", "u", "Photo", i + 1), exclude_from_indexes=("raw",))
        entity.update({"raw": blob[i:], "date": dt.datetime(2026, 1, 1 + i), "n": i - 1})
        client.put(entity)
    query = client.query(kind="Photo", ancestor=client.key("User", "u"))
    got = list(query.fetch())
    assert [e.key.id for e in got] == [1, 2, 3]
    assert [e["raw"] for e in got] == [blob[0:], blob[1:], blob[2:]]
    assert [e["date"].day for e in got] == [1, 2, 3]
    assert [e["n"] for e in got] == [-1, 0, 1]
    assert client.get(client.key("User", "u", "Photo", 2))["raw"] == blob[1:]

    backend = _backend(client)
    cur = backend._txn().cur
    if backend.name == "postgresql":
        from psycopg import pq

        assert backend.cursor_options == {"binary": True}
        assert cur.format == pq.Format.BINARY
        result = cur.pgresult  # the last statement: the get above
        assert result is not None and result.nfields > 0
        assert all(result.fformat(i) == pq.Format.BINARY for i in range(result.nfields))
    else:
        assert backend.cursor_options == {}
