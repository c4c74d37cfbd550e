"""The stale-read demo (``make demo`` = ``datastore-lite demo stale-reads``) keeps its promises.

With a fixed seed the demo is deterministic (simulated clock, seeded delays), so its output
is checked line by line for what it promises: round A's global reads (photos as root
entities) are stale right after each post and fresh a second later; round B's ancestor reads
(photos under a ``User``) are always fresh; part 2's write-limit numbers; the seed; the
same output for the same seed; ``--help``; colour only when asked for or on a terminal.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from datastore_lite.demo import stale_reads

CLI = Path(sys.executable).with_name("datastore-lite")
OPTIONS = ["--seed", "--url", "--photos", "--consistency", "--gap", "--part", "--writes", "--color"]


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "DATASTORE_LITE_CONSISTENCY", "DATASTORE_LITE_SEED"):
        monkeypatch.delenv(name, raising=False)


def run_demo(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert stale_reads.main(list(argv)) == 0
    out: str = capsys.readouterr().out
    return out


def without_store(text: str) -> str:
    """The output without the temporary database path (the only part that varies)."""
    return re.sub(r"store \S+", "store <tmp>", text)


def section(text: str, title: str) -> list[str]:
    """The lines of one round, from its title to the next blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = lines.index("", start)
    return lines[start:end]


def post_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if re.match(r"\s+#\d+\s", line)]


@pytest.fixture(scope="module")
def seven() -> str:
    """The full demo with seed 7, run in-process (no colour)."""
    out = io.StringIO()
    parser = argparse.ArgumentParser()
    stale_reads.add_arguments(parser)
    assert stale_reads.run(parser.parse_args(["--seed", "7", "--color", "never"]), out) == 0
    return out.getvalue()


def test_round_a_global_reads_are_stale_then_fresh_a_second_later(seven: str) -> None:
    lines = section(seven, "Round A")
    posts = post_lines(lines)
    assert len(posts) == 5
    for n, line in enumerate(posts, 1):
        # the photo just posted is missing from the global query, the earlier ones are there
        assert f"STALE  {n - 1}/{n} (missing #{n})" in line, line
    later = next(line for line in lines if "(one second later)" in line)
    assert "fresh  5/5" in later
    assert any("no ancestor query" in line for line in lines)


def test_round_b_ancestor_reads_are_always_fresh(seven: str) -> None:
    posts = post_lines(section(seven, "Round B"))
    assert len(posts) == 5
    for n, line in enumerate(posts, 1):
        assert line.rstrip().endswith(f"fresh  {n}/{n}"), line  # the ancestor column
        assert f"STALE  {n - 1}/{n} (missing #{n})" in line  # the global column
    assert "ancestor query" in section(seven, "Round B")[1]  # the column header


def test_part_two_write_limit_numbers(seven: str) -> None:
    lines = section(seven, "Part 2")
    assert "100 photos under a per-entity-group limit of 1 write/s" in lines[0]
    raise_one, raise_many, delay_one, delay_many = lines[1:5]
    assert re.search(r"on_exceed=raise\s+one group\s+1 of 100 accepted; 99 rejected", raise_one)
    assert "409 too much contention" in raise_one
    assert re.search(
        r"on_exceed=raise\s+100 groups\s+100 of 100 accepted; all accepted", raise_many
    )
    assert re.search(r"on_exceed=delay\s+one group\s+all 100 stored, taking 99\.0 s", delay_one)
    assert re.search(r"on_exceed=delay\s+100 groups\s+all 100 stored, taking 1\.0 s", delay_many)


def test_summary_and_seed(seven: str) -> None:
    lines = seven.splitlines()
    assert "seed 7" in lines[1] and "datastore-lite demo stale-reads --seed 7" in lines[1]
    assert "consistency Eventual(lag='hrd')" in lines[1]
    summary = next(line for line in lines if line.startswith("Summary: "))
    assert "global queries right after a post: 10 of 10 stale" in summary
    assert "ancestor queries: 0 of 5 stale" in summary
    assert "one group accepted 1/100, 100 groups accepted 100/100" in summary
    assert lines[-1] == "seed 7"


def test_same_seed_same_output_in_process_and_through_the_cli(
    seven: str, capsys: pytest.CaptureFixture[str]
) -> None:
    again = run_demo(capsys, "--seed", "7", "--color", "never")
    assert without_store(again) == without_store(seven)
    if not CLI.exists():
        pytest.skip(f"no {CLI} console script (package not installed)")
    cli = subprocess.run(
        [str(CLI), "demo", "stale-reads", "--seed", "7", "--color", "never"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert without_store(cli.stdout) == without_store(seven)


def test_other_policies(capsys: pytest.CaptureFixture[str]) -> None:
    short = ["--part", "1", "--photos", "2", "--color", "never", "--seed", "3"]
    strong = run_demo(capsys, *short, "--consistency", "strong")
    assert "STALE" not in strong
    assert "global queries right after a post: 0 of 4 stale" in strong
    never = run_demo(capsys, *short, "--consistency", "probability=0.0")
    # probability 0: round A's global query never catches up, not even a second later
    later = next(line for line in section(never, "Round A") if "(one second later)" in line)
    assert "STALE  0/2" in later
    assert "ancestor queries: 0 of 2 stale" in never


def test_a_random_seed_is_printed_so_the_run_can_be_replayed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = run_demo(capsys, "--part", "1", "--photos", "1", "--color", "never")
    seed = re.search(r"--seed (\d+)\)", out)
    assert seed is not None
    assert out.splitlines()[-1] == f"seed {seed.group(1)}"
    replay = run_demo(capsys, "--part", "1", "--photos", "1", "--color", "never", "--seed", seed[1])
    assert without_store(replay) == without_store(out)


def test_help_explains_each_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        stale_reads.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "photo" in text.lower() and "stale" in text.lower()
    for option in OPTIONS:
        # each option is listed with an explanation after it
        assert re.search(rf"^\s+{option}\b.*\S", text, re.MULTILINE), option
    assert "replays" in text  # --seed
    assert "'hrd'" in text and "probability=P" in text  # --consistency
    if CLI.exists():
        cli = subprocess.run(
            [str(CLI), "demo", "stale-reads", "--help"], capture_output=True, text=True, timeout=60
        )
        assert cli.returncode == 0, cli.stderr
        for option in OPTIONS:
            assert option in cli.stdout


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run_to(stream: io.StringIO, *argv: str) -> str:
    parser = argparse.ArgumentParser()
    stale_reads.add_arguments(parser)
    stale_reads.run(
        parser.parse_args(["--part", "1", "--photos", "1", "--seed", "1", *argv]), stream
    )
    return stream.getvalue()


def test_colour_codes_only_when_asked_for_or_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    escape = "\x1b["
    assert escape in _run_to(io.StringIO(), "--color", "always")
    assert escape not in _run_to(io.StringIO(), "--color", "never")
    assert escape not in _run_to(io.StringIO(), "--color", "auto")  # not a terminal
    assert escape not in _run_to(_Terminal(), "--color", "never")
    monkeypatch.setenv("TERM", "xterm")
    assert escape in _run_to(_Terminal(), "--color", "auto")
    monkeypatch.setenv("NO_COLOR", "1")
    assert escape not in _run_to(_Terminal(), "--color", "auto")
