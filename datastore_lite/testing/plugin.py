"""pytest plugin of datastore_lite (registered through the ``pytest11`` entry point).

Installed with the package, so every pytest run in the environment has:

Fixtures
    ``datastore_client``: a :class:`~datastore_lite.Client` on a fresh SQLite file in the
    test's ``tmp_path``, closed afterwards. Its consistency and seed come from, first to
    last: an indirect parametrisation (``request.param``: a policy, its text form, or a
    dict of ``Client`` arguments), the markers below, the environment
    (``DATASTORE_LITE_CONSISTENCY``, ``DATASTORE_LITE_SEED``), then the defaults (the
    profile's policy; a seed derived from the test's node id, so every run of a test
    replays the same simulation). When the test also asks for ``datastore_clock``, the
    client runs on that fake clock.

    ``datastore_clock``: a :class:`~datastore_lite.testing.FakeClock`.

Markers
    ``@pytest.mark.datastore_consistency(policy)``: ``"strong"``, ``"hrd"``,
    ``"lag=0.5"``, ``"probability=0.0"`` or a ``Strong``/``Eventual`` object.
    ``@pytest.mark.datastore_seed(n)``: the simulation seed.
    ``@pytest.mark.datastore_options(**kwargs)``: more ``Client`` arguments (``profile=``,
    ``namespace=``, ``index_yaml=``, ``write_limit=``, ``project=``).

When a test using ``datastore_client`` fails, its report gets a "datastore_lite" section
with the policy and seed, so the run can be replayed with ``datastore_seed``.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..client import Client
from ._helpers import FakeClock

__all__ = ["datastore_client", "datastore_clock"]

_SETTINGS = pytest.StashKey[str]()

MARKERS = (
    "datastore_consistency(policy): consistency of the datastore_client fixture "
    "('strong', 'hrd', 'lag=SECONDS', 'probability=P' or a Strong/Eventual object)",
    "datastore_seed(seed): seed of the datastore_client fixture's consistency simulation",
    "datastore_options(**kwargs): more Client arguments for the datastore_client fixture "
    "(profile=, namespace=, index_yaml=, write_limit=, project=)",
)


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers (so ``--strict-markers`` accepts them)."""
    for line in MARKERS:
        config.addinivalue_line("markers", line)


def _client_arguments(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ``Client`` arguments for this test: param > markers > environment > defaults."""
    arguments: dict[str, Any] = {"project": "test"}
    for mark in reversed(list(request.node.iter_markers("datastore_options"))):
        arguments.update(mark.kwargs)
    mark = request.node.get_closest_marker("datastore_consistency")
    if mark is not None:
        arguments["consistency"] = mark.args[0] if mark.args else mark.kwargs["policy"]
    mark = request.node.get_closest_marker("datastore_seed")
    if mark is not None:
        arguments["seed"] = int(mark.args[0] if mark.args else mark.kwargs["seed"])
    param = getattr(request, "param", None)
    if isinstance(param, dict):
        arguments.update(param)
    elif param is not None:
        arguments["consistency"] = param
    if arguments.get("seed") is None and not _seed_from_environment():
        # stable per test: every run of this test replays the same simulation
        arguments["seed"] = zlib.crc32(request.node.nodeid.encode("utf-8"))
    return arguments


def _seed_from_environment() -> bool:
    return bool(os.environ.get("DATASTORE_LITE_SEED"))


@pytest.fixture
def datastore_clock() -> FakeClock:
    """A :class:`~datastore_lite.testing.FakeClock`; ``datastore_client`` runs on it when
    the test asks for both."""
    return FakeClock()


@pytest.fixture
def datastore_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    """A client on a temporary SQLite file, with the consistency and seed the test chose."""
    arguments = _client_arguments(request)
    arguments.setdefault("url", f"sqlite:///{tmp_path / 'datastore_lite.db'}")
    if "datastore_clock" in request.fixturenames:
        clock: FakeClock = request.getfixturevalue("datastore_clock")
        arguments.setdefault("clock", clock.time)
        arguments.setdefault("sleep", clock.sleep)
    client = Client(**arguments)
    request.node.stash[_SETTINGS] = (
        f"datastore_client: consistency {client.consistency.policy!r}, seed {client.seed} "
        f"(replay with @pytest.mark.datastore_seed({client.seed}))"
    )
    try:
        yield client
    finally:
        client.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add the policy and seed to the report of a failed test that used the fixture."""
    report = yield
    settings = item.stash.get(_SETTINGS, None)
    if settings is not None and report.failed:
        report.sections.append(("datastore_lite", settings))
    return report
