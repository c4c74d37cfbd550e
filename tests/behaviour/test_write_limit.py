"""The per-entity-group write limit (DESIGN.md §9, SEMANTICS.md §6.3 "Write rate").

A token bucket per entity group, kept in ``dl_groups``: ``"raise"`` fails a commit with the
contention error and writes nothing, ``"delay"`` waits for a token (at most ``max_delay``).
A batch or transaction takes one token per group it writes. Time is a fake clock: the
client's ``clock``/``sleep`` hooks, so nothing here really sleeps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datastore_lite import Client, Entity, GroupWriteLimit
from datastore_lite import exceptions as exc
from datastore_lite.key import Key

CONTENTION = "409 too much contention on these datastore entities. please try again."
WORKER = Path(__file__).with_name("_txn_worker.py")


class FakeClock:
    """A clock that only moves when told to, or when something sleeps on it."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.start = self.now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @property
    def elapsed(self) -> float:
        return self.now - self.start


def limited_client(make_client: Callable[..., Client], clock: FakeClock, **limit: Any) -> Client:
    return make_client(write_limit=GroupWriteLimit(**limit), clock=clock.time, sleep=clock.sleep)


def entry(client: Client, group: str, n: int) -> Entity:
    """Entry ``e<n>`` in entity group ``("Log", group)``."""
    entity = Entity(client.key("Log", group, "Entry", f"e{n}"))
    entity["n"] = n
    return entity


def names(entities: list[Entity]) -> list[str]:
    """The sorted key names of ``entities``."""
    return sorted(str(e.key.name) for e in entities if e.key is not None)


def keys_of(entities: list[Entity]) -> list[Key]:
    return [e.key for e in entities if e.key is not None]


def try_put(client: Client, entity: Entity) -> bool:
    """True if the put went through, False if the write limit refused it."""
    try:
        client.put(entity)
    except exc.Aborted as error:
        assert str(error) == CONTENTION
        return False
    return True


# -- "raise" ------------------------------------------------------------------------------------


def test_raise_lets_the_burst_through_and_refuses_the_rest(
    make_client: Callable[..., Client],
) -> None:
    clock = FakeClock()
    client = limited_client(make_client, clock, rate=1.0, burst=3, on_exceed="raise")
    entities = [entry(client, "g", i) for i in range(20)]
    outcomes = [try_put(client, e) for e in entities]
    assert outcomes == [True] * 3 + [False] * 17
    assert names(client.get_multi(keys_of(entities))) == ["e0", "e1", "e2"]
    assert clock.sleeps == []


def test_raise_refills_at_the_rate(make_client: Callable[..., Client]) -> None:
    clock = FakeClock()
    client = limited_client(make_client, clock, rate=1.0, burst=2, on_exceed="raise")
    assert [try_put(client, entry(client, "g", i)) for i in range(3)] == [True, True, False]
    clock.advance(1.0)  # one token back
    assert [try_put(client, entry(client, "g", i)) for i in range(3, 5)] == [True, False]
    clock.advance(0.5)
    assert not try_put(client, entry(client, "g", 5))
    clock.advance(0.5)
    assert try_put(client, entry(client, "g", 6))
    clock.advance(100.0)  # the bucket never holds more than the burst
    assert [try_put(client, entry(client, "g", i)) for i in range(7, 10)] == [True, True, False]


def test_raise_in_a_transaction_aborts_and_writes_nothing(
    make_client: Callable[..., Client],
) -> None:
    clock = FakeClock()
    client = limited_client(make_client, clock, rate=1.0, burst=1, on_exceed="raise")
    client.put(entry(client, "g", 1))
    other = Entity(client.key("Other", 1))
    with pytest.raises(exc.Aborted) as info, client.transaction():
        client.put_multi([entry(client, "g", 2), other])
    assert str(info.value) == CONTENTION
    assert client.get(other.key) is None  # type: ignore[arg-type]
    assert client.get(client.key("Log", "g", "Entry", "e2")) is None
    # the refused commit did not spend the other group's token
    assert try_put(client, Entity(client.key("Other", 2)))


def test_run_in_transaction_waits_out_the_limit(make_client: Callable[..., Client]) -> None:
    clock = FakeClock()
    client = limited_client(make_client, clock, rate=1.0, burst=1, on_exceed="raise")
    key = client.key("Log", "g")
    client.put(Entity(key))

    def touch() -> None:
        entity = client.get(key)
        assert entity is not None
        entity["touched"] = True
        client.put(entity)

    client.run_in_transaction(touch, retries=10)  # retries sleep on the fake clock
    assert client.get(key)["touched"] is True  # type: ignore[index]
    assert len(clock.sleeps) >= 2 and clock.elapsed >= 1.0 - 1e-9  # waited for a token


# -- tokens are per group, once per commit ------------------------------------------------------


def test_different_groups_do_not_share_a_bucket(make_client: Callable[..., Client]) -> None:
    clock = FakeClock()
    client = limited_client(make_client, clock, rate=1.0, burst=1, on_exceed="raise")
    assert all(try_put(client, entry(client, f"g{i}", 1)) for i in range(10))
    assert not any(try_put(client, entry(client, f"g{i}", 2)) for i in range(10))
    # a child and its root share the root's group (and bucket)
    assert not try_put(client, Entity(client.key("Log", "g0")))


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_a_commit_takes_one_token_per_group_it_writes(
    make_client: Callable[..., Client], kind: str
) -> None:
    clock = FakeClock()
    client = limited_client(make_client, clock, rate=1.0, burst=1, on_exceed="raise")
    context = client.batch() if kind == "batch" else client.transaction()
    with context:
        # three groups; two entities in "a" still take one token from "a"
        client.put_multi(
            [entry(client, "a", 1), entry(client, "a", 2), entry(client, "b", 1)]
            + [entry(client, "c", 1)]
        )
    assert len(client.get_multi([client.key("Log", g, "Entry", "e1") for g in "abc"])) == 3
    for group in "abc":  # each of the three buckets is now empty
        assert not try_put(client, entry(client, group, 3))
    assert try_put(client, entry(client, "d", 1))  # an untouched group still has its token


def test_a_delete_spends_a_token_too(make_client: Callable[..., Client]) -> None:
    clock = FakeClock()
    client = limited_client(make_client, clock, rate=1.0, burst=1, on_exceed="raise")
    doomed = entry(client, "g", 1)
    client.put(doomed)
    clock.advance(1.0)
    client.delete(doomed.key)  # type: ignore[arg-type]
    assert not try_put(client, entry(client, "g", 2))


# -- "delay" -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "burst", "expected"),
    [(1.0, 1, 19.0), (2.0, 4, 8.0), (0.5, 5, 30.0)],
    ids=["1/s-burst1", "2/s-burst4", "0.5/s-burst5"],
)
def test_delay_lands_every_commit_and_takes_the_expected_time(
    make_client: Callable[..., Client], rate: float, burst: int, expected: float
) -> None:
    clock = FakeClock()
    limit = {"rate": rate, "burst": burst, "on_exceed": "delay", "max_delay": 60.0}
    client = limited_client(make_client, clock, **limit)
    entities = [entry(client, "g", i) for i in range(20)]
    for entity in entities:
        client.put(entity)
    assert len(client.get_multi(keys_of(entities))) == 20
    # the first `burst` commits go at once, then one every 1/rate seconds
    assert clock.elapsed == pytest.approx(expected)
    assert len([s for s in clock.sleeps if s > 1e-6]) == 20 - burst


def test_delay_fails_with_deadline_exceeded_beyond_max_delay(
    make_client: Callable[..., Client],
) -> None:
    clock = FakeClock()
    client = limited_client(make_client, clock, rate=0.1, burst=1, on_exceed="delay", max_delay=5.0)
    client.put(entry(client, "g", 1))
    with pytest.raises(exc.DeadlineExceeded) as info:
        client.put(entry(client, "g", 2))  # needs a 10 s wait
    message = str(info.value)
    assert message.startswith("504 ") and "max_delay" in message and "5 s" in message
    assert clock.sleeps == []  # failed at once instead of sleeping for nothing
    assert client.get(client.key("Log", "g", "Entry", "e2")) is None
    clock.advance(10.0)
    client.put(entry(client, "g", 3))  # within max_delay again
    assert client.get(client.key("Log", "g", "Entry", "e3")) is not None


def test_delay_within_max_delay_waits(make_client: Callable[..., Client]) -> None:
    clock = FakeClock()
    client = limited_client(
        make_client, clock, rate=0.25, burst=1, on_exceed="delay", max_delay=4.0
    )
    client.put(entry(client, "g", 1))
    client.put(entry(client, "g", 2))  # exactly the 4 s max_delay
    assert clock.elapsed == pytest.approx(4.0)


# -- configuration ------------------------------------------------------------------------------


def test_group_write_limit_validates_and_parses() -> None:
    assert GroupWriteLimit.parse("2:5:delay") == GroupWriteLimit(2.0, 5, "delay")
    assert GroupWriteLimit.parse("1") == GroupWriteLimit(1.0, 1, "raise")
    with pytest.raises(ValueError, match="on_exceed must be 'raise' or 'delay'"):
        GroupWriteLimit(on_exceed="wait")
    with pytest.raises(ValueError, match="rate must be > 0"):
        GroupWriteLimit(rate=0)
    with pytest.raises(ValueError, match="burst must be an int >= 1"):
        GroupWriteLimit(burst=0)
    with pytest.raises(ValueError, match="rate\\[:burst"):
        GroupWriteLimit.parse("fast")


def test_write_limit_from_the_environment(
    make_client: Callable[..., Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATASTORE_LITE_WRITE_LIMIT", "1:2:raise")
    clock = FakeClock()
    client = make_client(clock=clock.time, sleep=clock.sleep)
    assert client.write_limit == GroupWriteLimit(1.0, 2, "raise")
    assert [try_put(client, entry(client, "g", i)) for i in range(3)] == [True, True, False]


def test_no_limit_by_default(make_client: Callable[..., Client]) -> None:
    client = make_client()
    assert client.write_limit is None
    for i in range(30):
        client.put(entry(client, "g", i))
    assert (
        len(client.get_multi([client.key("Log", "g", "Entry", f"e{i}") for i in range(30)])) == 30
    )


# -- across processes (the bucket lives in the database) -----------------------------------------


@pytest.mark.slow
def test_raise_holds_across_two_processes(shared_url: str, tmp_path: Path) -> None:
    burst = 5
    go = tmp_path / "go"
    # Both processes open the fresh store at once (its first open is serialised) and use
    # the same frozen clock, so no token is refilled during the run: exactly `burst` of the
    # 20 commits may land, whichever process makes them.
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                "write_limit",
                json.dumps(
                    {
                        "url": shared_url,
                        "rate": 1.0,
                        "burst": burst,
                        "now": 1_000_000.0,
                        "commits": 10,
                        "name": f"p{p}",
                        "go": str(go),
                    }
                ),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(2)
    ]
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["errors"] for r in results] == [[], []]
    landed = sorted(name for r in results for name in r["ok"])
    assert len(landed) == burst
    assert sum(len(r["aborted"]) for r in results) == 20 - burst

    client = Client(project="test-proj", url=shared_url, consistency="strong")
    try:
        keys = [
            Key("Log", "shared", "Entry", f"p{p}-{i}", project="test-proj")
            for p in range(2)
            for i in range(10)
        ]
        assert names(client.get_multi(keys)) == landed  # refused commits wrote nothing
    finally:
        client.close()
