"""Second process of the cross-process consistency tests (run as a script, not collected).

Usage: ``python tests/behaviour/_consistency_worker.py <json arguments>`` with
``{"url": ..., "consistency": ..., "phases": [[step, ...], ...]}``. The worker opens its own
:class:`~datastore_lite.Client` on the shared store and runs the phases in order; after each
phase it prints one JSON line with what each step saw, then waits for a line on stdin before
the next phase (so the parent can act in between).

Steps: ``["pending"]``, ``["global", kind]`` (``{id or name: v}``), ``["get", path]`` and
``["eventual_get", path]`` (``v`` or None), ``["put", path, v]``, ``["apply_all"]``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from datastore_lite import Client, Entity  # noqa: E402

PROJECT = "test-proj"


def describe_pending(client: Client) -> list[dict[str, Any]]:
    """``pending()`` as plain JSON data (shared with the test module)."""
    return [
        {
            "group": list(w.group.flat_path),
            "version": w.version,
            "due": w.due,
            "puts": sorted(list(k.flat_path) for k in w.puts),
            "deletes": sorted(list(k.flat_path) for k in w.deletes),
        }
        for w in client.consistency.pending()
    ]


def run_step(client: Client, step: list[Any]) -> Any:
    name, *args = step
    if name == "pending":
        return describe_pending(client)
    if name == "global":
        return {str(e.key.id_or_name): e.get("v") for e in client.query(kind=args[0]).fetch()}
    if name in ("get", "eventual_get"):
        found = client.get(client.key(*args[0]), eventual=name == "eventual_get")
        return None if found is None else found.get("v")
    if name == "put":
        entity = Entity(client.key(*args[0]))
        entity["v"] = args[1]
        client.put(entity)
        return None
    if name == "apply_all":
        return client.consistency.apply_all()
    raise ValueError(f"unknown step {name!r}")


def main() -> None:
    args = json.loads(sys.argv[1])
    client = Client(
        project=PROJECT, url=args["url"], consistency=args["consistency"], index_yaml=os.devnull
    )
    try:
        for number, phase in enumerate(args["phases"]):
            if number:
                sys.stdin.readline()  # the parent's "go"
            print(json.dumps([run_step(client, step) for step in phase]), flush=True)
    finally:
        client.close()


if __name__ == "__main__":
    main()
