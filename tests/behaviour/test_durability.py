"""Nothing lost: a writer killed with SIGKILL mid-commit leaves every commit whole or absent.

DESIGN.md §6: "A commit is atomic and durable on both databases: a crash at any point leaves
all of it or none." A child process loops over 500-entity ``put_multi`` calls (~2 KB bodies)
on a shared store (SQLite file, PostgreSQL); it is killed at a random moment several times.
Afterwards a new client must find each commit complete or absent, every commit the child
reported finished intact, and a new writer must not be blocked by the dead one's locks.
"""

from __future__ import annotations

import hashlib
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from datastore_lite import Client, Entity

pytestmark = pytest.mark.slow

ENTITIES_PER_COMMIT = 500
KILLS = 4
REPO_ROOT = Path(__file__).resolve().parents[2]

# The writer: imports, then waits for its first commit number on stdin (so the next writer
# can warm up while the current one runs); announces each commit before and after it, so
# the parent knows which commits finished (must be there) and which one was in flight (all
# or nothing).
CHILD = r"""
import hashlib, os, sys
from datastore_lite import Client, Entity

url = sys.argv[1]
start = int(sys.stdin.readline())
client = Client(project="test-proj", url=url, consistency="strong", index_yaml=os.devnull)
commit = start
while True:
    entities = []
    for j in range(500):
        entity = Entity(client.key("Durable", f"c{commit}-{j}"), exclude_from_indexes=("body",))
        entity["commit"] = commit
        entity["j"] = j
        entity["body"] = hashlib.sha256(f"{commit}-{j}".encode()).digest() * 64  # 2 KiB
        entities.append(entity)
    print(f"begin {commit}", flush=True)
    client.put_multi(entities)
    print(f"done {commit}", flush=True)
    commit += 1
"""


def _body(commit: int, j: int) -> bytes:
    return hashlib.sha256(f"{commit}-{j}".encode()).digest() * 64


class _Writer:
    """The child process and a thread collecting its progress lines."""

    def __init__(self, url: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO_ROOT,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.begun: list[int] = []
        self.done: list[int] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def start(self, first_commit: int) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{first_commit}\n")
        self.proc.stdin.close()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def wait_for_begin(self, commit: int, timeout: float) -> None:
        """Block until the child announced ``begin <commit>``."""
        deadline = time.monotonic() + timeout
        while commit not in self.begun:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                assert self.proc.stderr is not None
                stderr = self.proc.stderr.read() if self.proc.poll() is not None else ""
                raise AssertionError(f"writer did not reach commit {commit}: {stderr}")
            try:
                self._record(self.lines.get(timeout=min(remaining, 0.5)))
            except queue.Empty:
                continue

    def _record(self, line: str) -> None:
        word, _, number = line.partition(" ")
        if not number.isdigit():  # a line cut short by the kill
            return
        if word == "begin":
            self.begun.append(int(number))
        elif word == "done":
            self.done.append(int(number))

    def kill(self) -> None:
        """SIGKILL the child (a no-op once it is gone) and collect its last lines."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        while True:  # lines written before the kill
            try:
                self._record(self.lines.get_nowait())
            except queue.Empty:
                break
        assert self.proc.stdout is not None and self.proc.stderr is not None
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.proc.stdout.close()
        self.proc.stderr.close()


def _put_promptly(url: str, value: int, timeout: float = 20.0) -> float:
    """A fresh writer's put; fails if the dead writer's locks block it."""
    outcome: list[BaseException | float] = []

    def put() -> None:
        started = time.monotonic()
        try:
            with Client(
                project="test-proj", url=url, consistency="strong", index_yaml=os.devnull
            ) as client:
                entity = Entity(client.key("Probe", value))
                entity["v"] = value
                client.put(entity)
                got = client.get(client.key("Probe", value))
                assert got is not None and got["v"] == value
            outcome.append(time.monotonic() - started)
        except BaseException as exc:  # reported to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=put, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"a new writer was blocked for {timeout} s after the kill"
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def test_killed_writer_loses_nothing(shared_url: str) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    start = 1
    begun: set[int] = set()
    done: set[int] = set()
    writers = [_Writer(shared_url)]
    try:
        for kill in range(KILLS):
            writer = writers[-1]
            writer.start(start)
            writers.append(_Writer(shared_url))  # warms up (imports) while this one writes
            # let at least one commit finish, then kill during a later one
            writer.wait_for_begin(start + 1, timeout=120)
            time.sleep(rng.uniform(0.0, 0.3))
            writer.kill()
            begun.update(writer.begun)
            done.update(writer.done)
            assert writer.done, f"kill {kill}: no commit finished (seed {seed})"
            _put_promptly(shared_url, kill + 1)
            start = max(writer.begun) + 1
    finally:
        for writer in writers:  # the last one only warmed up; any other left by a failure
            writer.kill()

    with Client(
        project="test-proj", url=shared_url, consistency="strong", index_yaml=os.devnull
    ) as client:
        complete = 0
        for commit in sorted(begun | {start}):
            keys = [client.key("Durable", f"c{commit}-{j}") for j in range(ENTITIES_PER_COMMIT)]
            found = client.get_multi(keys)
            # all of the commit or none of it
            assert len(found) in (0, ENTITIES_PER_COMMIT), (commit, len(found), seed)
            if commit in done:
                assert len(found) == ENTITIES_PER_COMMIT, f"finished commit {commit} lost ({seed})"
            for entity in found:
                assert entity.key is not None
                j = entity["j"]
                assert entity.key.name == f"c{commit}-{j}"
                assert entity["commit"] == commit
                assert entity["body"] == _body(commit, j)
            complete += bool(found)
        # every commit before the last one of each writer finished; nothing invented
        assert complete >= len(done)
        assert client.get(client.key("Durable", f"c{start}-0")) is None
        # the store still accepts writes of the very keys a killed commit may have touched
        for commit in begun - done:
            entity = Entity(client.key("Durable", f"c{commit}-0"))
            entity["rewritten"] = True
            client.put(entity)
            got = client.get(entity.key)  # type: ignore[arg-type]
            assert got is not None and dict(got) == {"rewritten": True}
        assert len(client.get_multi([client.key("Probe", k + 1) for k in range(KILLS)])) == KILLS
