"""Testing kit for applications built on datastore_lite (docs/testing.md).

* :func:`eventually` - retry an assertion until the simulated consistency catches up;
* :class:`FakeClock` - simulated time for ``Client(clock=..., sleep=...)``;
* :func:`temporary_client` - a client on a throwaway SQLite file;
* :mod:`datastore_lite.testing.strategies` - Hypothesis strategies for keys, values,
  entities and queries (needs Hypothesis, the ``test`` extra; imported on first use);
* the pytest plugin :mod:`datastore_lite.testing.plugin` (loaded automatically): the
  ``datastore_client`` and ``datastore_clock`` fixtures and the ``datastore_consistency``,
  ``datastore_seed`` and ``datastore_options`` markers.

Neither pytest nor Hypothesis is imported by this package itself.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ._helpers import FakeClock, eventually, temporary_client

__all__ = ["FakeClock", "eventually", "temporary_client"]


def __getattr__(name: str) -> ModuleType:
    # ``datastore_lite.testing.strategies`` imports Hypothesis: load it only when asked for
    if name == "strategies":
        return importlib.import_module(f"{__name__}.strategies")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
