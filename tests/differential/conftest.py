"""Differential tests: the same operation through datastore_lite and Google's emulator.

Every test here runs an operation once through the official ``google.cloud.datastore``
client against Google's Cloud Datastore emulator and once through a datastore_lite
client, and compares what came back (values, or exception class name and ``str(exc)``).
The datastore_lite side runs on each store of ``backend_url`` (SQLite memory, SQLite file,
PostgreSQL), so each test runs three times against one emulator. Tests skip, with the
reason shown, when the emulator (or Java, or google-cloud-datastore) is not installed.

Fixtures
--------
``emulator`` (session)
    One emulator started with ``--consistency=1.0``; reused by the whole session.
``official`` (function)
    An official client (project :data:`PROJECT`) on ``emulator``, after ``reset()``: each
    test starts from an empty emulator (ids restart too).
``lite`` (function)
    A datastore_lite client, project :data:`PROJECT`, ``consistency="strong"``, on the
    store under test.
``sides`` (function)
    ``(official side, lite side)``: the two :class:`Side` objects, for tests that need the
    exception objects or interleave the sides themselves.
``both`` (function)
    ``both(op)`` runs ``op(side)`` for the official side and then the lite side and returns
    ``(official_outcome, lite_outcome)``; an outcome is the value returned, or a
    :class:`Raised` ``(exception class name, str(exc))``. A :class:`Side` carries the client
    and that library's ``Entity``/``Key``/``GeoPoint`` classes, so one function serves both.
``emulator_factory`` (session)
    For tests that need other emulator flags. ``emulator_factory(**kwargs)`` takes the
    keyword arguments of :class:`~datastore_lite.testing.emulator.Emulator`
    (``consistency``, ``require_indexes``, ``index_file``, ``auto_id_policy``,
    ``extra_args``), starts one emulator per distinct set of flags (about 2 s, once per
    session), and returns it **reset** (empty) on every call. Example::

        @pytest.fixture
        def eventual_official(emulator_factory: EmulatorFactory) -> Any:
            return emulator_factory(consistency=0.0).client(project=PROJECT)

        def test_unapplied_put_is_invisible(eventual_official: Any, lite: Client) -> None:
            ...

    Use a module- or test-specific fixture like this rather than ``official`` (which is
    bound to the default emulator). With ``index_file``, pass a path that stays valid for
    the session (e.g. from ``tmp_path_factory``). The host has two cores: prefer reusing a
    flag set over starting many emulators.

Helpers live in ``tests/differential/harness.py`` (import them from there): :data:`PROJECT`,
:class:`EmulatorFactory`, :class:`Side` and :func:`side_of` (a Side for any client),
:func:`outcome` (runs one callable, captures its result or exception) and :func:`plain`
(entities, keys, geo points, datetimes and floats of either library as comparable plain
Python).

Every test in this directory gets the ``emulator`` marker (``-m "not emulator"`` skips
them); modules also set ``pytestmark = pytest.mark.emulator`` explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from datastore_lite import Client
from datastore_lite.testing.emulator import EMULATOR_BINARY, Emulator, emulator_installed

# Helpers live in harness.py; they are re-exported here for modules importing them from conftest.
from tests.differential.harness import (
    PROJECT,
    Both,
    EmulatorFactory,
    Raised,
    Side,
    outcome,
    plain,
    side_of,
)

__all__ = ["PROJECT", "EmulatorFactory", "Raised", "Side", "outcome", "plain", "side_of"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every test in this directory the ``emulator`` marker, even if a module forgets."""
    for item in items:
        if "/tests/differential/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.emulator)


# -- emulators ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def emulator_factory() -> Iterator[EmulatorFactory]:
    """Start emulators with any flags (see the module docstring); skip if not installed."""
    if not emulator_installed():
        pytest.skip(
            "Google's Cloud Datastore emulator is not installed "
            f"(need {EMULATOR_BINARY} and a Java runtime on PATH); differential tests skipped"
        )
    pytest.importorskip(
        "google.cloud.datastore", reason="differential tests need google-cloud-datastore"
    )
    factory = EmulatorFactory()
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def emulator(emulator_factory: EmulatorFactory) -> Emulator:
    """The session's default emulator: ``--consistency=1.0`` (every job applied at once)."""
    return emulator_factory(consistency=1.0)


@pytest.fixture
def official(emulator: Emulator) -> Any:
    """An official ``google.cloud.datastore.Client`` on the emulator, emptied first."""
    emulator.reset()
    return emulator.client(project=PROJECT)


@pytest.fixture
def lite(make_client: Callable[..., Client]) -> Client:
    """A strongly consistent datastore_lite client on the store under test."""
    return make_client(project=PROJECT, consistency="strong")


# -- running one operation on both sides ----------------------------------------------------


@pytest.fixture
def sides(official: Any, lite: Client) -> tuple[Side, Side]:
    """``(official side, lite side)`` for tests that drive each side themselves."""
    return side_of(official), side_of(lite)


@pytest.fixture
def both(official: Any, lite: Client) -> Both:
    """``both(op) -> (official outcome, lite outcome)``; see :func:`outcome`."""
    official_side, lite_side = side_of(official), side_of(lite)

    def run(op: Callable[[Side], Any]) -> tuple[Any, Any]:
        return outcome(lambda: op(official_side)), outcome(lambda: op(lite_side))

    return run
