"""Integrations with web frameworks.

Each integration lives in its own module and imports its framework only there, so the
framework stays an optional dependency. Import the one you need::

    from datastore_lite.contrib.flask import DatastoreLite   # pip install "datastore-lite[flask]"
"""

from __future__ import annotations

__all__: list[str] = []
