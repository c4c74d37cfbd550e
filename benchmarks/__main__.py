"""``python -m benchmarks [--quick] [--backends …] [--workloads …] [--no-emulator] [--sizes …]``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .config import ALL_WORKLOADS, Config
from .progress import Progress
from .report import format_summary, format_table, notes_text, write_reports
from .runner import run
from .stores import BACKENDS

_DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _size(text: str) -> int:
    text = text.strip().lower().replace("_", "").replace(",", "")
    for suffix, factor in (("k", 1_000), ("m", 1_000_000)):
        if text.endswith(suffix):
            return int(float(text[:-1]) * factor)
    return int(text)


def _names(text: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    by_upper = {a.upper(): a for a in allowed}
    out = []
    for name in names:
        if name.upper() not in by_upper:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {name!r} (choose from {', '.join(allowed)})"
            )
        out.append(by_upper[name.upper()])
    return tuple(out)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="datastore_lite benchmarks (BENCHMARKS.md): lite vs raw SQL vs emulator.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, under two minutes")
    parser.add_argument(
        "--backends",
        type=lambda t: _names(t, BACKENDS, "backend"),
        help=f"comma-separated, default all: {','.join(BACKENDS)}",
    )
    parser.add_argument(
        "--workloads",
        type=lambda t: _names(t, ALL_WORKLOADS, "workload"),
        help="comma-separated, e.g. W1,W4 (default all)",
    )
    parser.add_argument("--no-emulator", action="store_true", help="skip Google's emulator")
    parser.add_argument(
        "--sizes",
        type=lambda t: tuple(_size(s) for s in t.split(",")),
        help="W10 data sizes, e.g. 10k,100k,1M",
    )
    parser.add_argument("--photos", type=_size, help="photos of the W1 data set")
    parser.add_argument(
        "--consistency",
        default="strong",
        help="datastore_lite consistency for W1-W10 (default strong; W11 compares)",
    )
    parser.add_argument("--budget", type=float, help="seconds per measured loop (cap)")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("DATASTORE_LITE_BENCH_POSTGRES_URL")
        or os.environ.get("DATASTORE_LITE_TEST_POSTGRES_URL")
        or Config.pg_admin_url,
        help="PostgreSQL server to create benchmark databases on",
    )
    parser.add_argument("--output", default=_DEFAULT_OUTPUT, help="directory for latest.*")
    parser.add_argument("--tmp-dir", help="where SQLite files go (default: the system temp)")
    parser.add_argument("--in-process", action="store_true", help="W10 without child processes")
    parser.add_argument("--no-chart", action="store_true")
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {
        "emulator": not args.no_emulator,
        "consistency": args.consistency,
        "pg_admin_url": args.pg_url,
        "output_dir": args.output,
        "tmp_dir": args.tmp_dir,
        "chart": not args.no_chart,
    }
    if args.backends:
        overrides["backends"] = args.backends
    if args.workloads:
        overrides["workloads"] = tuple(w for w in ALL_WORKLOADS if w in args.workloads)
    if args.sizes:
        overrides["w10_sizes"] = tuple(sorted(args.sizes))
    if args.photos:
        overrides["photos"] = args.photos
    if args.budget:
        overrides["budget"] = args.budget
        overrides["emulator_budget"] = args.budget
    if args.in_process:
        overrides["isolate"] = False
    return Config.quick(**overrides) if args.quick else Config.full(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    result = run(config, Progress(0))
    rows, written = write_reports(result, config.output_dir)
    print(format_table(rows))
    print()
    notes = notes_text(rows)
    if notes:
        print("Notes:\n" + "\n".join(f"  {line}" for line in notes.splitlines()))
        print()
    print(f"{format_summary(rows)} in {result.seconds:.0f} s ({config.mode} run)")
    for path in written:
        print(f"wrote {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
