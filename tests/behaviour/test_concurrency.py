"""Concurrency without loss: many threads and processes, one store (DESIGN.md §6, §8).

Increments through ``run_in_transaction`` must add up exactly, every time; the database's
own contention errors (SQLite "database is locked", PostgreSQL lock, serialization and
deadlock errors) must surface as ``Aborted`` so that ``run_in_transaction`` retries them; a
process SIGKILLed inside a commit leaves all of it or none of it, and no lock behind.

Multi-process tests run the workers of ``_txn_worker.py`` on ``shared_url`` (a SQLite file
or PostgreSQL); thread tests run on every backend.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from datastore_lite import Client, Entity
from datastore_lite import exceptions as exc
from datastore_lite.backends._errors import translate
from datastore_lite.key import Key

WORKER = Path(__file__).with_name("_txn_worker.py")
THREADS, PROCESSES, PER_WORKER = 8, 4, 50
CONTENTION = "409 too much contention on these datastore entities. please try again."


def _client(url: str, **kwargs: Any) -> Client:
    return Client(
        project="test-proj", url=url, consistency="strong", index_yaml=os.devnull, **kwargs
    )


def _counter_keys(client: Client, n: int) -> list[Key]:
    """The keys of ``n`` counters, none of them stored: the first increment of each creates
    it, in a store where nothing was written yet (a first write must conflict too)."""
    return [client.key("Counter", f"c{i}") for i in range(n)]


def _counts(client: Client, keys: list[Key]) -> dict[str, int]:
    return {str(e.key.name): e.get("n", 0) for e in client.get_multi(keys) if e.key is not None}


def spawn(command: str, **args: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), command, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result_of(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{err}"
    parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return parsed


# -- threads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("counters", [1, 100], ids=["one-counter", "100-groups"])
def test_threads_increment_exactly(make_client: Callable[..., Client], counters: int) -> None:
    client = make_client()  # one client shared by every thread, as in a threaded web app
    keys = _counter_keys(client, counters)
    errors: list[str] = []
    calls = [0]
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def bump(key: Key) -> None:
        with lock:
            calls[0] += 1
        entity = client.get(key) or Entity(key)
        entity["n"] = entity.get("n", 0) + 1
        client.put(entity)

    def worker(t: int) -> None:
        client.get(keys[0])  # open this thread's connection, then start all at once
        start.wait()
        for j in range(PER_WORKER):
            key = keys[(t * PER_WORKER + j) % counters]
            try:
                client.run_in_transaction(bump, key, retries=50)
            except BaseException as error:  # any escaping type fails the test below
                errors.append(f"{type(error).__module__}.{type(error).__name__}: {error}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    total = THREADS * PER_WORKER
    assert _counts(client, keys) == {f"c{i}": total // counters for i in range(counters)}
    assert calls[0] >= total


# -- processes --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("counters", [1, 100], ids=["one-counter", "100-groups"])
def test_processes_increment_exactly(shared_url: str, tmp_path: Path, counters: int) -> None:
    client = _client(shared_url)
    keys = _counter_keys(client, counters)
    go = tmp_path / "go"
    procs = [
        spawn(
            "increment",
            url=shared_url,
            counters=counters,
            offset=p * PER_WORKER,
            per=PER_WORKER,
            retries=50,
            go=str(go),
        )
        for p in range(PROCESSES)
    ]
    go.touch()
    results = [result_of(proc) for proc in procs]
    assert [r["errors"] for r in results] == [[]] * PROCESSES
    total = PROCESSES * PER_WORKER
    assert _counts(client, keys) == {f"c{i}": total // counters for i in range(counters)}
    assert sum(r["calls"] for r in results) >= total
    client.close()


# -- database contention errors become Aborted -------------------------------------------------


def test_sqlite_database_is_locked_becomes_aborted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    client = _client(url)
    key = client.key("Counter", "c")
    client.put(Entity(key))
    # fail fast instead of waiting the default 30 s busy timeout (this thread's connection)
    client._datastore_api.backend._connection().execute("PRAGMA busy_timeout = 50")
    holder = sqlite3.connect(f"{tmp_path}/store.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process-like writer holds the write lock
    try:
        with pytest.raises(exc.Aborted) as info:
            client.put(Entity(key))
        assert str(info.value) == CONTENTION
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert "database is locked" in str(info.value.__cause__)

        with pytest.raises(exc.Aborted), client.transaction():
            client.get(key)
            client.put(Entity(key))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    client.put(Entity(key))  # the lock is gone: writes work again
    client.close()


def test_run_in_transaction_retries_database_is_locked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    client = _client(url)
    key = client.key("Counter", "c")
    client.put(Entity(key))
    client._datastore_api.backend._connection().execute("PRAGMA busy_timeout = 20")
    holder = sqlite3.connect(f"{tmp_path}/store.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.4, lambda: holder.execute("ROLLBACK"))
    release.start()
    attempts = 0

    def bump() -> int:
        nonlocal attempts
        attempts += 1
        entity = client.get(key)
        assert entity is not None
        entity["n"] = entity.get("n", 0) + 1
        client.put(entity)
        return int(entity["n"])

    try:
        assert client.run_in_transaction(bump, retries=20) == 1
    finally:
        release.join()
        holder.close()
    assert attempts > 1  # the first commit met the lock and was retried
    assert client.get(key)["n"] == 1  # type: ignore[index]
    client.close()


def test_postgresql_lock_timeout_becomes_aborted(pg_url: str) -> None:
    client = _client(pg_url)
    key = client.key("Counter", "c")
    client.put(Entity(key))
    client._datastore_api.backend._connection().execute("SET lock_timeout = '100ms'")
    libpq_url = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(libpq_url) as holder:  # a transaction holding the group row lock
        holder.execute("SELECT * FROM dl_groups FOR UPDATE")
        with pytest.raises(exc.Aborted) as info:
            client.put(Entity(key))
        assert str(info.value) == CONTENTION
        assert isinstance(info.value.__cause__, psycopg.errors.LockNotAvailable)
        holder.rollback()
    client.put(Entity(key))
    client.close()


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.SerializationFailure("could not serialize access"),
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.LockNotAvailable("could not obtain lock"),
        sqlite3.OperationalError("database is locked"),
    ],
    ids=["pg-40001", "pg-40P01", "pg-55P03", "sqlite-locked"],
)
def test_contention_errors_translate_to_aborted(error: Exception) -> None:
    translated = translate(error)
    assert type(translated) is exc.Aborted
    assert str(translated) == CONTENTION


# -- SIGKILL in the middle of a commit ---------------------------------------------------------


def _accounts(client: Client, groups: int) -> list[Key]:
    return [client.key("Account", f"a{g}") for g in range(groups)]


def _next_writer_is_not_blocked(client: Client, keys: list[Key], value: int) -> float:
    """Commit a transaction over ``keys``; return how long it took (fails if it hangs)."""
    done: list[float] = []
    failure: list[BaseException] = []

    def write() -> None:
        started = time.monotonic()
        try:
            with client.transaction():
                entities = client.get_multi(keys)
                for entity in entities:
                    entity["round"] = value
                client.put_multi(entities)
        except BaseException as error:
            failure.append(error)
        done.append(time.monotonic() - started)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    thread.join(20)
    assert done, "the next writer is still blocked 20 s after the kill"
    assert failure == []
    return done[0]


@pytest.mark.slow
def test_sigkill_inside_commit_leaves_none_of_it(shared_url: str) -> None:
    client = _client(shared_url)
    keys = _accounts(client, 3)
    client.put_multi([Entity(key) for key in keys])
    for entity in client.get_multi(keys):
        assert "round" not in entity

    proc = spawn("crash_in_commit", url=shared_url, groups=3)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err

    assert all("round" not in e for e in client.get_multi(keys))
    entries = [Key("Entry", "crash", parent=key) for key in keys]
    assert client.get_multi(entries) == []
    assert _next_writer_is_not_blocked(client, keys, 7) < 5.0
    assert {e["round"] for e in client.get_multi(keys)} == {7}
    client.close()


@pytest.mark.slow
def test_sigkill_at_a_random_moment_is_all_or_nothing(shared_url: str) -> None:
    client = _client(shared_url)
    keys = _accounts(client, 4)
    client.put_multi([Entity(key) for key in keys])
    rng = random.Random()
    for _ in range(3):
        proc = spawn("rounds", url=shared_url, groups=4)
        assert proc.stdout is not None
        target = rng.randint(3, 15)
        last = 0
        while last < target:
            line = proc.stdout.readline()
            assert line, f"worker stopped early: {proc.stderr.read() if proc.stderr else ''}"
            last = int(line.split()[1])
        time.sleep(rng.uniform(0, 0.02))  # somewhere within one of the next commits
        proc.send_signal(signal.SIGKILL)
        rest, _err = proc.communicate(timeout=30)
        for line in rest.splitlines():
            last = int(line.split()[1])
        assert proc.returncode == -signal.SIGKILL

        rounds = {e.get("round") for e in client.get_multi(keys)}
        assert len(rounds) == 1, f"a commit was applied partially: {rounds}"
        (survivor,) = rounds
        # every reported commit survived; at most one more (killed before it could print)
        assert survivor in (last, last + 1)
        assert _next_writer_is_not_blocked(client, keys, 0) < 5.0
    client.close()


# -- regressions -------------------------------------------------------------------------------


def test_sqlite_memory_new_thread_does_not_commit_another_threads_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: on sqlite-memory every thread shares one connection; a thread's first use
    of it used to set ``isolation_level = None`` on it outside the lock, which (Python <=
    3.11) COMMITs whatever write transaction another thread has open."""
    from datastore_lite import _commit

    client = _client("sqlite://")
    key = client.key("Counter", "c")
    client.put(Entity(key))
    conn = client._datastore_api.backend._connection()
    original = _commit.apply_writes

    def apply_then_fail(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        # a first-time reader in another thread, while this commit is still open
        threading.Thread(target=client.get, args=(key,), daemon=True).start()
        deadline = time.monotonic() + 0.3
        while conn.in_transaction and time.monotonic() < deadline:
            time.sleep(0.005)
        raise RuntimeError("injected failure: this commit must roll back")

    monkeypatch.setattr(_commit, "apply_writes", apply_then_fail)
    entity = Entity(key)
    entity["n"] = 1
    with pytest.raises(RuntimeError, match="injected failure"):
        client.put(entity)
    monkeypatch.undo()
    assert client.get(key) == Entity(key)  # n=1 was rolled back


def test_concurrent_first_open_of_a_sqlite_file(tmp_path: Path) -> None:
    """Regression: two clients opening a fresh SQLite file at once (e.g. gunicorn workers
    starting together) raced in creating the schema -> 503 'table dl_meta already exists'."""
    path = tmp_path / "fresh.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode = WAL")
    # Hold the write lock so both clients find no tables and then queue up to create
    # them: this makes the race deterministic.
    holder.execute("BEGIN IMMEDIATE")
    failures: list[BaseException] = []

    def open_store() -> None:
        try:
            _client(f"sqlite:///{path}").close()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    holder.execute("ROLLBACK")
    for thread in threads:
        thread.join(30)
    holder.close()
    if failures:
        raise failures[0]
    with _client(f"sqlite:///{path}") as client:  # one schema, usable
        client.put(Entity(client.key("K", 1)))
        assert client.get(client.key("K", 1)) is not None
