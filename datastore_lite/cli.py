"""The ``datastore-lite`` command."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``datastore-lite`` command."""
    parser = argparse.ArgumentParser(prog="datastore-lite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a demonstration")
    demo.add_argument("name", choices=["stale-reads"])
    demo.add_argument("--url", default="sqlite:///datastore_lite_demo.db")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from datastore_lite import Client, Entity

        client = Client(project="demo", url=args.url, consistency="strong")
        photo = Entity(client.key("User", "alice", "Photo"))
        photo["caption"] = "first photo"
        client.put(photo)
        assert photo.key is not None
        print("stored", photo.key, "->", client.get(photo.key))
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
