"""Worker processes for the multi-process transaction tests (run as a script, not collected).

Usage: ``python tests/behaviour/_txn_worker.py <command> <json arguments>``. Each command
opens its own :class:`~datastore_lite.Client` on the shared store, optionally waits for a
"go" file so that all workers start contending at once, and prints one JSON line with what
it saw. Exceptions other than the expected ones are reported, never swallowed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from datastore_lite import Client, Entity, GroupWriteLimit  # noqa: E402
from datastore_lite import exceptions as dl_exceptions  # noqa: E402

PROJECT = "test-proj"


def _client(url: str, **kwargs: Any) -> Client:
    return Client(project=PROJECT, url=url, consistency="strong", index_yaml=os.devnull, **kwargs)


def _wait_for(go_file: str | None) -> None:
    """Block until the parent creates ``go_file`` (a start barrier across processes)."""
    if not go_file:
        return
    deadline = time.monotonic() + 60
    while not os.path.exists(go_file):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no go file {go_file}")
        time.sleep(0.005)


def increment(args: dict[str, Any]) -> dict[str, Any]:
    """``per`` run_in_transaction increments of counters ``(offset + j) % counters``."""
    client = _client(args["url"])
    calls = 0

    def bump(name: str) -> int:
        nonlocal calls
        calls += 1
        key = client.key("Counter", name)
        entity = client.get(key) or Entity(key)
        entity["n"] = entity.get("n", 0) + 1
        client.put(entity)
        return int(entity["n"])

    errors: list[str] = []
    _wait_for(args.get("go"))
    for j in range(args["per"]):
        name = f"c{(args['offset'] + j) % args['counters']}"
        try:
            client.run_in_transaction(bump, name, retries=args["retries"])
        except BaseException as exc:  # report every escaping type to the parent
            errors.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
    client.close()
    return {"calls": calls, "errors": errors}


def _group_keys(client: Client, groups: int) -> list[Any]:
    return [client.key("Account", f"a{g}") for g in range(groups)]


def crash_in_commit(args: dict[str, Any]) -> dict[str, Any]:
    """A transaction over several groups that SIGKILLs itself inside its commit.

    The kill comes after every row of the commit was written (entities, index rows and
    group versions), but before the database COMMIT: the database must keep none of it.
    """
    from datastore_lite.backends import sql

    client = _client(args["url"])
    original = sql.Txn.update_groups

    def update_then_die(self: sql.Txn, *a: Any, **kw: Any) -> None:
        original(self, *a, **kw)
        os.kill(os.getpid(), signal.SIGKILL)

    sql.Txn.update_groups = update_then_die  # type: ignore[method-assign]
    keys = _group_keys(client, args["groups"])
    with client.transaction():
        accounts = client.get_multi(keys)
        assert len(accounts) == len(keys)
        for account in accounts:
            account["round"] = 1
        children = [Entity(client.key("Entry", "crash", parent=key)) for key in keys]
        for child in children:
            child["round"] = 1
        client.put_multi(accounts + children)
    return {"error": "the commit returned instead of dying"}  # pragma: no cover


def rounds(args: dict[str, Any]) -> dict[str, Any]:
    """Loop: each transaction sets ``round = i`` on one entity in each of ``groups`` groups.

    Prints ``committed <i>`` after each commit, so the parent knows the last round that
    must have survived when it kills this process at a random moment.
    """
    client = _client(args["url"])
    keys = _group_keys(client, args["groups"])
    i = 0
    while True:
        i += 1
        with client.transaction():
            accounts = client.get_multi(keys)
            for account in accounts:
                account["round"] = i
            client.put_multi(accounts)
        print(f"committed {i}", flush=True)


def write_limit(args: dict[str, Any]) -> dict[str, Any]:
    """``commits`` puts into one entity group under a "raise" limit and a frozen clock."""
    limit = GroupWriteLimit(rate=args["rate"], burst=args["burst"], on_exceed="raise")
    frozen = args["now"]
    client = _client(args["url"], write_limit=limit, clock=lambda: frozen)
    ok: list[str] = []
    aborted: list[str] = []
    errors: list[str] = []
    _wait_for(args.get("go"))
    for i in range(args["commits"]):
        name = f"{args['name']}-{i}"
        entity = Entity(client.key("Log", "shared", "Entry", name))
        entity["i"] = i
        try:
            client.put(entity)
            ok.append(name)
        except dl_exceptions.Aborted as exc:
            if str(exc) != "409 " + dl_exceptions.CONTENTION_MESSAGE:
                errors.append(f"Aborted with another message: {exc}")
            aborted.append(name)
        except BaseException as exc:
            errors.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
    client.close()
    return {"ok": ok, "aborted": aborted, "errors": errors}


COMMANDS = {
    "increment": increment,
    "crash_in_commit": crash_in_commit,
    "rounds": rounds,
    "write_limit": write_limit,
}

if __name__ == "__main__":
    result = COMMANDS[sys.argv[1]](json.loads(sys.argv[2]))
    print(json.dumps(result), flush=True)
