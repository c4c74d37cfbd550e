"""``datastore-lite demo stale-reads``: watch eventual consistency happen.

The photo-timeline lesson of the Datastore teaching material, replayed on the embedded
SQLite store with a simulated clock (so a seed replays it exactly):

Part 1 — a user posts photos and, right after each post, the app lists the user's
stream. Stored as root entities (no common ancestor) the stream can only be read with a
global query, which is eventually consistent: the new photo is missing. Stored under a
``User`` ancestor, an ancestor query is strongly consistent: the new photo is there.

Part 2 — 100 photos posted into ONE entity group under a 1 write/s per-group limit, then
spread over 100 groups: why entity groups should be small.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import random
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from typing import TextIO

from .. import exceptions
from .._consistency import Eventual, parse_policy
from .._throttle import GroupWriteLimit
from ..client import Client
from ..entity import Entity
from ..key import Key
from ..query import PropertyFilter

__all__ = ["add_arguments", "main", "run"]

_CAPTIONS = [
    "beach at dawn",
    "my cat judging me",
    "first snow",
    "birthday cake",
    "city lights",
    "mountain lake",
    "coffee art",
    "street market",
    "old bridge",
    "sunset ride",
]
_EPOCH = _dt.datetime(2026, 11, 23, 9, 0, tzinfo=_dt.UTC)


class SimClock:
    """Simulated seconds; ``sleep`` advances it instead of waiting."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Style:
    """ANSI colours, or nothing when the output is not a colour terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def red(self, text: str) -> str:
        return self._wrap("1;31", text)

    def green(self, text: str) -> str:
        return self._wrap("1;32", text)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)


def _use_colour(stream: TextIO, choice: str) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return stream.isatty() and os.environ.get("TERM", "") != "dumb"


@dataclass
class Read:
    """One read of the user's stream right after a post."""

    seen: int
    expected: int
    missing: list[int] = field(default_factory=list)

    @property
    def stale(self) -> bool:
        return self.seen < self.expected


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options (shared by ``datastore-lite demo stale-reads`` and ``main``)."""
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the consistency simulation; the same seed replays the same run "
        "(default: random, printed at the start)",
    )
    parser.add_argument(
        "--url",
        default=None,
        help="database URL (default: a fresh SQLite file in a temporary directory, removed "
        "afterwards); e.g. sqlite:///demo.db or postgresql://postgres@127.0.0.1/test",
    )
    parser.add_argument(
        "--photos",
        type=int,
        default=5,
        metavar="N",
        help="photos the user posts in each round of part 1 (default 5)",
    )
    parser.add_argument(
        "--consistency",
        default="hrd",
        help="global-query consistency: 'hrd' (App Engine's High-Replication lag model, the "
        "legacy default), 'lag=SECONDS' or 'probability=P' (the emulator's --consistency); "
        "default hrd",
    )
    parser.add_argument(
        "--gap",
        type=float,
        default=0.005,
        metavar="SECONDS",
        help="simulated time between a post and the app reading the stream (default 0.005)",
    )
    parser.add_argument(
        "--part",
        choices=["1", "2", "all"],
        default="all",
        help="1 = stale reads, 2 = the per-group write limit, all = both (default)",
    )
    parser.add_argument(
        "--writes",
        type=int,
        default=100,
        metavar="N",
        help="photos posted in part 2 (default 100)",
    )
    parser.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="colour the output (default: when writing to a terminal; NO_COLOR disables)",
    )


def _photo(client: Client, user: str, n: int, parent: Key | None, when: _dt.datetime) -> Entity:
    key = client.key("Photo", parent=parent) if parent is not None else client.key("Photo")
    photo = Entity(key, exclude_from_indexes=("image",))
    photo.update(
        user=user,
        number=n,
        caption=_CAPTIONS[(n - 1) % len(_CAPTIONS)],
        date=when,
        image=b"\x89PNG" + bytes(60),
    )
    return photo


def _numbers(entities: list[Entity]) -> set[int]:
    return {int(e["number"]) for e in entities}


def _part_one(
    client: Client, clock: SimClock, args: argparse.Namespace, s: Style, out: TextIO
) -> tuple[int, int]:
    """Two rounds of posts; returns (stale global reads, stale ancestor reads)."""
    stale_global = stale_ancestor = 0
    rounds = [
        ("Round A: photos stored as ROOT entities (no common ancestor)", "alice", False),
        ("Round B: photos stored under a User ancestor (one entity group per user)", "bob", True),
    ]
    for title, user, with_parent in rounds:
        print(s.bold(title), file=out)
        parent = client.key("User", user) if with_parent else None
        if parent is not None:
            client.put(Entity(parent))
        header = (
            f"  {'post':<5} {'time':>9}  {'photo':<24} {'global query (user = ' + user + ')':<34}"
            f" {'ancestor query' if with_parent else ''}"
        )
        print(s.dim(header), file=out)
        posted: list[int] = []
        for n in range(1, args.photos + 1):
            clock.advance(1.0)
            when = _EPOCH + _dt.timedelta(seconds=clock.time() - 1_800_000_000.0)
            client.put(_photo(client, user, n, parent, when))
            posted.append(n)
            clock.advance(args.gap)
            # the app shows the user's stream right away: first the global query...
            query = client.query(kind="Photo")
            query.add_filter(filter=_user_filter(user))
            seen = _numbers(list(query.fetch()))
            g = Read(len(seen & set(posted)), len(posted), sorted(set(posted) - seen))
            stale_global += g.stale
            text = _describe(g, s)
            line = f"  #{n:<4} {_ms(clock, n):>9}  {_CAPTIONS[(n - 1) % len(_CAPTIONS)]:<24} {text}"
            if parent is not None:
                # ...then the ancestor query: strongly consistent (it also rolls the
                # group forward, so later global queries see this write too)
                aq = client.query(kind="Photo", ancestor=parent)
                a_seen = _numbers(list(aq.fetch()))
                a = Read(len(a_seen & set(posted)), len(posted), sorted(set(posted) - a_seen))
                stale_ancestor += a.stale
                line += " " + _describe(a, s, width=0)
            print(line, file=out)
        # eventually: a second after the last post the global query has caught up
        clock.advance(1.0)
        query = client.query(kind="Photo")
        query.add_filter(filter=_user_filter(user))
        seen = _numbers(list(query.fetch()))
        later = Read(len(seen & set(posted)), len(posted), sorted(set(posted) - seen))
        print(
            f"  {'':<5} {_ms(clock, 0):>9}  {'(one second later)':<24} {_describe(later, s)}",
            file=out,
        )
        if parent is None:
            print(
                s.dim("  no ancestor query: these photos share no ancestor to query by"), file=out
            )
        print(file=out)
    return stale_global, stale_ancestor


def _user_filter(user: str) -> PropertyFilter:
    from ..query import PropertyFilter

    return PropertyFilter("user", "=", user)


def _ms(clock: SimClock, n: int) -> str:
    return f"{(clock.time() - 1_800_000_000.0) * 1000:,.0f} ms"


def _describe(read: Read, s: Style, width: int = 34) -> str:
    if read.stale:
        missing = ", ".join(f"#{m}" for m in read.missing)
        text = f"STALE  {read.seen}/{read.expected} (missing {missing})"
        return s.red(text.ljust(width)) if width else s.red(text)
    text = f"fresh  {read.seen}/{read.expected}"
    return s.green(text.ljust(width)) if width else s.green(text)


def _part_two(
    url: str, seed: int, args: argparse.Namespace, s: Style, out: TextIO
) -> dict[str, tuple[int, float]]:
    """100 posts into one group vs 100 groups, under a 1 write/s limit."""
    results: dict[str, tuple[int, float]] = {}
    print(
        s.bold(f"Part 2: {args.writes} photos under a per-entity-group limit of 1 write/s"),
        file=out,
    )
    for mode in ("raise", "delay"):
        for layout in ("one group", f"{args.writes} groups"):
            clock = SimClock()
            client = Client(
                project="demo",
                url=url,
                namespace=f"part2-{mode}-{layout.split()[0]}",
                consistency="strong",
                seed=seed,
                clock=clock.time,
                sleep=clock.sleep,
                write_limit=GroupWriteLimit(rate=1.0, burst=1, on_exceed=mode, max_delay=1e9),
                index_yaml=os.devnull,
            )
            ok = 0
            start = clock.time()
            try:
                for n in range(1, args.writes + 1):
                    user = "carol" if layout == "one group" else f"user{n}"
                    parent = client.key("User", user)
                    try:
                        client.put(_photo(client, user, n, parent, _EPOCH))
                        ok += 1
                    except exceptions.Aborted:
                        pass
                    clock.advance(0.01)  # the app posts every 10 ms
            finally:
                client.close()
            elapsed = clock.time() - start
            results[f"{mode}/{layout}"] = (ok, elapsed)
            if mode == "raise":
                rejected = args.writes - ok
                verdict = (
                    s.red(f"{rejected} rejected with 409 too much contention")
                    if rejected
                    else s.green("all accepted")
                )
                print(
                    f"  on_exceed=raise  {layout:<11} {ok:>4} of {args.writes} accepted; {verdict}",
                    file=out,
                )
            else:
                colour = s.red if elapsed > 10 else s.green
                print(
                    f"  on_exceed=delay  {layout:<11} all {ok} stored, taking "
                    + colour(f"{elapsed:,.1f} s")
                    + " of simulated time",
                    file=out,
                )
    print(file=out)
    return results


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the demo; returns the process exit status."""
    out = out or sys.stdout
    s = Style(_use_colour(out, args.color))
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
    policy = parse_policy(args.consistency)
    tmpdir = None
    url = args.url
    if url is None:
        tmpdir = tempfile.mkdtemp(prefix="datastore-lite-demo-")
        url = f"sqlite:///{os.path.join(tmpdir, 'demo.db')}"
    try:
        print(s.bold("datastore_lite — stale reads in the photo timeline"), file=out)
        print(
            f"store {url}   consistency {policy!r}   seed {seed}   "
            f"(replay with: datastore-lite demo stale-reads --seed {seed})",
            file=out,
        )
        print(file=out)
        summary = []
        if args.part in ("1", "all"):
            clock = SimClock()
            client = Client(
                project="demo",
                url=url,
                namespace="part1",
                consistency=policy,
                seed=seed,
                clock=clock.time,
                sleep=clock.sleep,
                index_yaml=os.devnull,
            )
            try:
                stale_global, stale_ancestor = _part_one(client, clock, args, s, out)
            finally:
                client.close()
            summary.append(
                f"global queries right after a post: {stale_global} of {2 * args.photos} stale; "
                f"ancestor queries: {stale_ancestor} of {args.photos} stale"
            )
            if isinstance(policy, Eventual):
                print(
                    "Without a common ancestor the new photo is missing from the stream: a global\n"
                    "query is eventually consistent. Under a User ancestor the ancestor query\n"
                    "sees every photo at once: ancestor queries and gets are strongly "
                    "consistent.\n",
                    file=out,
                )
        if args.part in ("2", "all"):
            results = _part_two(url, seed, args, s, out)
            one = results.get("raise/one group", (0, 0.0))[0]
            many = results.get(f"raise/{args.writes} groups", (0, 0.0))[0]
            summary.append(
                f"write limit: one group accepted {one}/{args.writes}, "
                f"{args.writes} groups accepted {many}/{args.writes}"
            )
            print(
                "One entity group takes about one write per second; spread writes over many\n"
                "groups (or accept slower, batched writes) to scale.\n",
                file=out,
            )
        print(s.bold("Summary: ") + "; ".join(summary), file=out)
        print(f"seed {seed}", file=out)
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the demo as a program (``python -m datastore_lite.demo.stale_reads``)."""
    parser = argparse.ArgumentParser(
        prog="datastore-lite demo stale-reads",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
