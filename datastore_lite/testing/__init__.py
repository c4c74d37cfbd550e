"""Testing kit for applications built on datastore_lite (strategies, pytest plugin)."""

from __future__ import annotations

__all__: list[str] = []
