"""Several processes on one database share one consistency state (DESIGN.md §7).

Pending writes, their due times and every roll-forward live in the database
(``dl_pending``, ``dl_groups``), so a second process sees exactly what the first left
pending, and a strong read in one process makes the write visible to global queries in all
of them. Runs on the stores several processes can open (SQLite file, PostgreSQL).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datastore_lite import Client, Entity, Eventual
from tests.behaviour._consistency_worker import PROJECT, describe_pending

WORKER = Path(__file__).with_name("_consistency_worker.py")
P0 = "probability=0.0"


class Worker:
    """The second process: runs its phases, one JSON line each, on our "go"."""

    def __init__(self, url: str, consistency: str, phases: list[list[list[Any]]]) -> None:
        arguments = json.dumps({"url": url, "consistency": consistency, "phases": phases})
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started = False

    def next_phase(self) -> list[Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        if self.started:
            self.process.stdin.write("go\n")
            self.process.stdin.flush()
        self.started = True
        line = self.process.stdout.readline()
        if not line:
            _, err = self.process.communicate(timeout=60)
            raise AssertionError(f"the worker failed:\n{err}")
        result: list[Any] = json.loads(line)
        return result

    def finish(self) -> None:
        _, err = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, err


@pytest.fixture
def first(shared_url: str) -> Iterator[Client]:
    """Process A's client (this process): every write pending until a strong read."""
    client = Client(project=PROJECT, url=shared_url, consistency=P0, index_yaml=os.devnull)
    yield client
    client.close()


def put(client: Client, path: tuple[Any, ...], v: int) -> None:
    entity = Entity(client.key(*path))
    entity["v"] = v
    client.put(entity)


def global_ids(client: Client, kind: str = "Photo") -> dict[str, Any]:
    return {str(e.key.id_or_name): e.get("v") for e in client.query(kind=kind).fetch()}


def test_two_processes_share_pending_writes_and_roll_forward(
    shared_url: str, first: Client
) -> None:
    put(first, ("Photo", 1), 1)  # new entity, pending
    put(first, ("Photo", 3), 1)
    first.get(first.key("Photo", 3))  # applied at v = 1 ...
    put(first, ("Photo", 3), 2)  # ... and updated: v = 2 pending
    put(first, ("User", "a", "Photo", 2), 2)
    mine = describe_pending(first)
    assert [w["group"] for w in mine] == [["Photo", 1], ["Photo", 3], ["User", "a"]]

    worker = Worker(
        shared_url,
        P0,
        [
            [
                ["pending"],
                ["global", "Photo"],
                ["eventual_get", ["Photo", 1]],
                ["get", ["Photo", 1]],  # B's strong get rolls Photo 1 forward
                ["pending"],
            ],
            [["global", "Photo"], ["pending"], ["put", ["Photo", 9], 9], ["pending"]],
        ],
    )
    pending_b, global_b, eventual_b, strong_b, after_b = worker.next_phase()
    assert pending_b == mine  # same groups, versions, due times, puts and deletes
    assert global_b == {"3": 1}  # B's global query: the same stale view
    assert eventual_b is None and strong_b == 1
    assert [w["group"] for w in after_b] == [["Photo", 3], ["User", "a"]]
    # A sees B's roll-forward: Photo 1 is visible to A's global queries now
    assert describe_pending(first) == after_b
    assert global_ids(first) == {"1": 1, "3": 1}

    # A's ancestor query rolls alice's group forward: B's next global query sees it
    assert [e["v"] for e in first.query(ancestor=first.key("User", "a")).fetch()] == [2]
    global_b, pending_b, _, written_b = worker.next_phase()
    worker.finish()
    assert global_b == {"1": 1, "2": 2, "3": 1}
    assert [w["group"] for w in pending_b] == [["Photo", 3]]
    # B's own write is pending for A too
    assert [w["group"] for w in written_b] == [["Photo", 3], ["Photo", 9]]
    assert describe_pending(first) == written_b
    assert "9" not in global_ids(first)
    assert first.consistency.apply_all() == 2
    assert global_ids(first) == {"1": 1, "2": 2, "3": 2, "9": 9}


def test_lag_due_times_are_the_same_in_every_process(shared_url: str) -> None:
    client = Client(
        project=PROJECT, url=shared_url, consistency=Eventual(lag=3600.0), index_yaml=os.devnull
    )
    try:
        put(client, ("Photo", 1), 1)
        mine = describe_pending(client)
        worker = Worker(shared_url, "lag=3600", [[["pending"], ["global", "Photo"]]])
        theirs, seen = worker.next_phase()
        worker.finish()
        assert theirs == mine and seen == {}
    finally:
        client.close()


def test_strong_client_sees_writes_left_pending_once_it_noticed_them(
    shared_url: str, first: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A "strong" client checks (at most once a second) whether any client deferred writes;
    from then on its strong reads roll groups forward and its global queries apply all."""
    strong = Client(project=PROJECT, url=shared_url, consistency="strong", index_yaml=os.devnull)
    try:
        put(first, ("Photo", 1), 1)
        put(first, ("User", "a", "Photo", 2), 2)
        put(first, ("Photo", 3), 3)
        real = time.monotonic
        monkeypatch.setattr(time, "monotonic", lambda: real() + 5.0)  # its next check is due
        got = strong.get(strong.key("Photo", 1))
        assert got is not None and got["v"] == 1
        assert [e["v"] for e in strong.query(ancestor=strong.key("User", "a")).fetch()] == [2]
        assert global_ids(strong) == {"1": 1, "2": 2, "3": 3}
        assert first.consistency.pending() == []
    finally:
        strong.close()


@pytest.mark.xfail(
    strict=True,
    reason="LIMITATION (docs/compatibility.md): a 'strong' client notices writes deferred by "
    "other clients only at its once-a-second check, so a strong get or ancestor query right "
    "after an eventual client's first deferred write misses it (DESIGN.md §7: strong reads "
    "see every committed write; checking on every read would double a get's round trips)",
)
def test_strong_client_reads_writes_left_pending_by_an_eventual_client(
    shared_url: str, first: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now)  # however slow the machine: < 1 s
    strong = Client(project=PROJECT, url=shared_url, consistency="strong", index_yaml=os.devnull)
    try:
        put(first, ("Photo", 1), 1)
        put(first, ("User", "a", "Photo", 2), 2)
        assert [e["v"] for e in strong.query(ancestor=strong.key("User", "a")).fetch()] == [2]
        got = strong.get(strong.key("Photo", 1))
        assert got is not None and got["v"] == 1
    finally:
        strong.close()
