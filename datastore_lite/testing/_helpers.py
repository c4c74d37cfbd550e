"""Plain helpers of the testing kit: a fake clock, ``eventually()``, throwaway clients.

Nothing here imports pytest or Hypothesis, so ``datastore_lite.testing`` stays importable
with only the library's own dependencies installed.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .._consistency import Policy
    from ..client import Client

__all__ = ["FakeClock", "eventually", "temporary_client"]

T = TypeVar("T")

#: Where a :class:`FakeClock` starts: 2027-01-15 08:00 UTC, a round, recognisable number.
FAKE_EPOCH = 1_800_000_000.0


class FakeClock:
    """Simulated time for ``Client(clock=..., sleep=...)``: it moves only when told to.

    ``time()`` is the clock; ``sleep(s)`` and ``advance(s)`` move it forward at once (nothing
    really waits). With ``Eventual(lag=...)`` this makes "visible after the lag" exact and
    instant to test; :func:`eventually` polling a client on a fake clock advances it by its
    ``interval`` between attempts.

    Args:
        start: The initial time, in epoch seconds.

    Example:
        >>> from datastore_lite import Client, Entity, Eventual
        >>> clock = FakeClock()
        >>> client = Client(url="sqlite://", consistency=Eventual(lag=2.0),
        ...                 clock=clock.time, sleep=clock.sleep)
        >>> client.put(Entity(client.key("Photo", 1)))
        >>> len(list(client.query(kind="Photo").fetch()))
        0
        >>> clock.advance(2.0)
        >>> len(list(client.query(kind="Photo").fetch()))
        1
    """

    def __init__(self, start: float = FAKE_EPOCH) -> None:
        self.start = start
        self.now = start
        #: every ``sleep()`` call, in seconds (the write limit's "delay" mode sleeps)
        self.sleeps: list[float] = []

    def time(self) -> float:
        """The current simulated time (epoch seconds)."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` instead of waiting (recorded in :attr:`sleeps`)."""
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        if seconds < 0:
            raise ValueError(f"a FakeClock only moves forward, not by {seconds!r} s")
        self.now += seconds

    @property
    def elapsed(self) -> float:
        """Seconds since the clock started."""
        return self.now - self.start

    def __repr__(self) -> str:
        return f"FakeClock(elapsed={self.elapsed:g})"


def eventually(
    fn: Callable[[], T],
    *,
    timeout: float = 5.0,
    interval: float = 0.05,
    client: Client | None = None,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
    predicate: Callable[[T], object] | None = None,
) -> T:
    """Call ``fn`` until it stops failing; return what it returned.

    ``fn`` fails by raising :class:`AssertionError` (write it as a block of asserts) or, when
    ``predicate`` is given, by returning a value for which ``predicate(value)`` is false.
    Other exceptions propagate at once. Between attempts it sleeps ``interval``; after
    ``timeout`` seconds it re-raises the last failure, saying how long it tried.

    It never calls ``client.consistency.apply_all()`` and never reads strongly on its own:
    the write has to become visible the way the policy makes it visible (a lag that passes,
    a chance per global query), which is what an app's code would wait for.

    Time comes from ``clock``/``sleep``; by default from ``client``'s (the ``clock=`` and
    ``sleep=`` it was built with), else the real clock. **Under a fake clock** (a client
    built with ``clock=fake.time, sleep=fake.sleep``) each pause advances simulated time by
    ``interval`` at once, so ``eventually(fn, client=client, timeout=300, interval=1)``
    covers the High-Replication model's worst case (240 s) in a few milliseconds of real
    time. If the clock never moves (a fake clock whose ``sleep`` does not advance it), at
    most ``ceil(timeout / interval) + 1`` attempts are made, so it still ends. Under
    ``Eventual(probability=p)`` every attempt's global query is one more chance ``p``;
    with ``p = 0.0`` only a strong read of the group shows the write, so ``eventually``
    times out - as the emulator's ``--consistency=0.0`` would.

    Args:
        fn: The check, called with no arguments.
        timeout: Give up after this many seconds (of ``clock``).
        interval: Seconds between attempts.
        client: A datastore_lite client whose clock and sleep to use.
        clock: Overrides the time source.
        sleep: Overrides the pause between attempts.
        predicate: Success test of ``fn``'s return value (default: not raising).

    Returns:
        The value of the first successful call.

    Raises:
        AssertionError: Still failing at the timeout (chained to the last failure).

    Example:
        >>> calls = []
        >>> def check():
        ...     calls.append(1)
        ...     assert len(calls) >= 3, "not yet"
        ...     return len(calls)
        >>> eventually(check, interval=0.0)
        3
    """
    if timeout < 0 or interval < 0:
        raise ValueError("timeout and interval must be >= 0")
    if client is not None:
        api = client._datastore_api
        clock = clock or api.clock
        sleep = sleep or api.sleep
    now = clock or time.monotonic
    pause = sleep or time.sleep
    max_attempts = (math.ceil(timeout / interval) if interval > 0 else 1000) + 1
    start = now()
    attempts = 0
    while True:
        attempts += 1
        try:
            value = fn()
        except AssertionError as failure:
            last: AssertionError = failure
        else:
            if predicate is None or predicate(value):
                return value
            last = AssertionError(f"predicate not satisfied by {value!r}")
        elapsed = now() - start
        if elapsed >= timeout or attempts >= max_attempts:
            raise AssertionError(
                f"still failing after {attempts} attempts over {elapsed:.3g} s "
                f"(timeout {timeout:g} s): {last}"
            ) from last
        pause(interval)


@contextmanager
def temporary_client(
    *,
    consistency: str | Policy | None = None,
    seed: int | None = None,
    url: str | None = None,
    project: str = "test",
    clock: FakeClock | None = None,
    **kwargs: Any,
) -> Iterator[Client]:
    """A client on a throwaway SQLite file, closed and deleted afterwards.

    The plain-Python form of the pytest fixture ``datastore_client`` (for scripts, doctests
    and Hypothesis tests, where a function-scoped fixture would be shared by examples).

    Args:
        consistency: The policy (default: ``$DATASTORE_LITE_CONSISTENCY``, else the
            profile's default).
        seed: The simulation seed (default: ``$DATASTORE_LITE_SEED``, else random).
        url: Use this store instead of a temporary SQLite file (e.g. ``"sqlite://"``).
        project: The project id.
        clock: A :class:`FakeClock` to drive the client's ``clock`` and ``sleep``.
        **kwargs: More :class:`~datastore_lite.Client` arguments (``profile=``,
            ``namespace=``, ``index_yaml=``, ``write_limit=``, ...).

    Example:
        >>> from datastore_lite import Entity
        >>> with temporary_client(consistency="probability=0.0", seed=7) as client:
        ...     client.put(Entity(client.key("Photo", 1)))
        ...     len(client.consistency.pending())
        1
    """
    from ..client import Client

    directory = None
    if url is None:
        directory = tempfile.mkdtemp(prefix="datastore-lite-test-")
        url = f"sqlite:///{os.path.join(directory, 'datastore_lite.db')}"
    if clock is not None:
        kwargs.setdefault("clock", clock.time)
        kwargs.setdefault("sleep", clock.sleep)
    try:
        client = Client(project=project, url=url, consistency=consistency, seed=seed, **kwargs)
        try:
            yield client
        finally:
            client.close()
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
