"""The table, ``latest.json``, ``latest.md`` and the ratio chart of a run.

Ratios are *speed* ratios, so bigger is always better for lite: lite ÷ baseline for
rates, baseline ÷ lite for latencies. The emulator bars of BENCHMARKS.md apply to the
like-for-like row (``sqlite-memory``: our in-memory store against its in-memory store);
the other rows show the ratio for information.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import sqlite3
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

from .runner import RunResult
from .workloads import WORKLOAD_TITLES, Measurement, Metric

__all__ = ["LIKE_FOR_LIKE", "Row", "build_rows", "format_table", "machine_facts", "write_reports"]

LIKE_FOR_LIKE = "sqlite-memory"


@dataclass
class Row:
    """One line of the table: a metric on one backend, beside both baselines."""

    metric: Metric
    backend: str
    lite: Measurement | None
    raw: Measurement | None
    emulator: Measurement | None
    ratio_raw: float | None = None
    ratio_emulator: float | None = None
    status: str = "n/a"
    targets: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _speed_ratio(
    metric: Metric, lite: Measurement | None, base: Measurement | None
) -> float | None:
    if lite is None or base is None or not lite.value or not base.value:
        return None
    return lite.value / base.value if metric.higher_is_better else base.value / lite.value


def _evaluate(row: Row) -> None:
    metric, lite = row.metric, row.lite
    checks: list[tuple[bool, str]] = []
    if metric.raw_target is not None:
        row.targets.append(f"÷raw≥{metric.raw_target:g}")
        if row.ratio_raw is not None:
            checks.append(
                (
                    row.ratio_raw >= metric.raw_target,
                    f"lite÷raw {row.ratio_raw:.2f} < {metric.raw_target:g}",
                )
            )
    if metric.emulator_target is not None and row.backend == LIKE_FOR_LIKE:
        row.targets.append(f"÷emu≥{metric.emulator_target:g}")
        if row.ratio_emulator is not None:
            checks.append(
                (
                    row.ratio_emulator >= metric.emulator_target,
                    f"lite÷emulator {row.ratio_emulator:.1f} < {metric.emulator_target:g}",
                )
            )
    if metric.limit is not None and not (metric.id == "W10.rss" and row.backend == LIKE_FOR_LIKE):
        row.targets.append(f"≤{metric.limit:g}")
        if lite is not None and lite.value is not None:
            checks.append((lite.value <= metric.limit, f"{lite.value:.2f} > {metric.limit:g}"))
    if metric.workload == "W8":
        row.targets.append("exact")
        for impl, m in (("lite", lite), ("raw", row.raw)):
            if m is not None and m.ok is not None:
                checks.append((m.ok, f"{impl}: {m.note}"))
    for impl, m in (("lite", lite), ("raw", row.raw)):
        if m is not None and m.ok is False and metric.workload != "W8":
            checks.append((False, f"{impl}: {m.note}"))
        if impl == "raw" and m is not None and m.note.startswith("error"):
            checks.append((False, f"raw baseline {m.note}"))
    if lite is None or lite.value is None:
        note = lite.note if lite is not None else ""
        row.status = "ERROR" if note.startswith("error") else "n/a"
        row.failures = [text for ok, text in checks if not ok]
        return
    row.failures = [text for ok, text in checks if not ok]
    if not checks:
        row.status = "info"
    else:
        row.status = "FAIL" if row.failures else "PASS"


def build_rows(result: RunResult) -> list[Row]:
    rows = []
    for metric in result.metrics:
        for backend in result.config.backends:
            lite = result.cell(metric.id, backend, "lite")
            raw = result.cell(metric.id, backend, "raw")
            emulator = result.cell(metric.id, "emulator", "emulator")
            row = Row(metric, backend, lite, raw, emulator)
            row.ratio_raw = _speed_ratio(metric, lite, raw)
            row.ratio_emulator = _speed_ratio(metric, lite, emulator)
            _evaluate(row)
            rows.append(row)
    return rows


# -- formatting ------------------------------------------------------------------------------


def _num(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def _cell(m: Measurement | None) -> str:
    if m is None:
        return "—"
    if m.value is None:
        note = m.note or "n/a"
        if note.startswith("n/a"):
            return "n/a"
        if note.startswith("error"):
            return "error"
        return note.split(" (")[0]
    return _num(m.value)


def _ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if value < 10 else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


_HEADER = (
    "metric",
    "backend",
    "unit",
    "lite",
    "raw",
    "lite÷raw",
    "emulator",
    "lite÷emu",
    "target",
    "status",
)


def _table_cells(rows: list[Row]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for row in rows:
        out.append(
            (
                row.metric.id,
                row.backend,
                row.metric.unit,
                _cell(row.lite),
                _cell(row.raw) if "raw" in row.metric.impls else "—",
                _ratio(row.ratio_raw),
                _cell(row.emulator) if "emulator" in row.metric.impls else "—",
                _ratio(row.ratio_emulator),
                " ".join(row.targets),
                row.status,
            )
        )
    return out


def format_table(rows: list[Row]) -> str:
    """The plain-text table printed at the end of a run."""
    cells = [_HEADER, *_table_cells(rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(_HEADER))]
    right = {3, 4, 5, 6, 7}
    lines = []
    previous = ""
    for n, r in enumerate(cells):
        if n > 1 and r[0].split(".")[0] != previous:
            lines.append("")
        previous = r[0].split(".")[0]
        parts = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))
        ]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _notes(rows: list[Row]) -> list[str]:
    notes = []
    seen: set[tuple[str, str, str]] = set()
    for row in rows:
        for impl, m in (("lite", row.lite), ("raw", row.raw), ("emulator", row.emulator)):
            if m is None or not m.note:
                continue
            backend = "emulator" if impl == "emulator" else row.backend
            key = (row.metric.id, backend, impl)
            if key in seen or m.note in ("not installed", "skipped (--no-emulator)"):
                continue
            seen.add(key)
            notes.append(f"{row.metric.id} {backend} {impl}: {m.note}")
        for failure in row.failures:
            notes.append(f"{row.metric.id} {row.backend} FAIL: {failure}")
    return notes


def format_summary(rows: list[Row]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def _markdown(result: RunResult, rows: list[Row], facts: dict[str, Any]) -> str:
    lines = [
        f"# Benchmark results ({result.config.mode} run, {facts['date']})",
        "",
        "Speed ratios (bigger is better for datastore_lite): lite ÷ baseline for rates, "
        "baseline ÷ lite for latencies. Emulator bars apply to the like-for-like row "
        f"(`{LIKE_FOR_LIKE}`). Only ratios within one run are comparable.",
        "",
        "| " + " | ".join(_HEADER) + " |",
        "|"
        + "|".join("---:" if i in {3, 4, 5, 6, 7} else "---" for i in range(len(_HEADER)))
        + "|",
    ]
    for cells in _table_cells(rows):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", f"Summary: {format_summary(rows)}.", "", "## Workloads", ""]
    for wid in result.config.workloads:
        lines.append(f"- **{wid}**: {WORKLOAD_TITLES[wid]}")
    notes = _notes(rows)
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += ["", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in facts.items()]
    config = result.config.as_dict()
    lines += ["", "## Configuration", "", "```json", json.dumps(config, indent=1), "```", ""]
    return "\n".join(lines)


def _measurement_json(m: Measurement | None) -> dict[str, Any] | None:
    return asdict(m) if m is not None else None


def _json(result: RunResult, rows: list[Row], facts: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": 1,
        "machine": facts,
        "config": result.config.as_dict(),
        "duration_s": round(result.seconds, 1),
        "summary": format_summary(rows),
        "rows": [
            {
                "metric": row.metric.id,
                "workload": row.metric.workload,
                "title": row.metric.title,
                "unit": row.metric.unit,
                "backend": row.backend,
                "higher_is_better": row.metric.higher_is_better,
                "lite": _measurement_json(row.lite),
                "raw": _measurement_json(row.raw),
                "emulator": _measurement_json(row.emulator),
                "ratio_raw": row.ratio_raw,
                "ratio_emulator": row.ratio_emulator,
                "targets": row.targets,
                "status": row.status,
                "failures": row.failures,
            }
            for row in rows
        ],
        "errors": result.errors,
    }


def _chart(rows: list[Row], path: str) -> bool:
    """A PNG of both ratios per metric and backend; False when matplotlib is missing."""
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    except Exception:
        return False
    charted = [r for r in rows if r.metric.raw_target or r.metric.emulator_target]
    metrics = list(dict.fromkeys(r.metric.id for r in charted if r.ratio_raw or r.ratio_emulator))
    if not metrics:
        return False
    backends = list(dict.fromkeys(r.backend for r in charted))
    by_key = {(r.metric.id, r.backend): r for r in charted}
    panels = [("ratio_raw", "lite ÷ raw (bar: 0.5)", 0.5)]
    if any(r.ratio_emulator for r in charted):
        panels.append(("ratio_emulator", "lite ÷ emulator, log scale", 1.0))
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(6.5 * len(panels), 0.3 * len(metrics) * len(backends) + 2),
        squeeze=False,
    )
    height = 0.8 / max(1, len(backends))
    for ax, (attr, title, line) in zip(axes[0], panels):
        for b, backend in enumerate(backends):
            ys, xs = [], []
            for i, metric in enumerate(metrics):
                found = by_key.get((metric, backend))
                value = getattr(found, attr) if found else None
                if value:
                    ys.append(i + b * height)
                    xs.append(value)
            ax.barh(ys, xs, height=height, label=backend)
        ax.axvline(line, color="black", linestyle="--", linewidth=1)
        ax.set_yticks([i + height * (len(backends) - 1) / 2 for i in range(len(metrics))])
        ax.set_yticklabels(metrics)
        ax.invert_yaxis()
        ax.set_title(title)
        if attr == "ratio_emulator":
            ax.set_xscale("log")
    axes[0][0].legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _first_line(path: str, prefix: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine_facts(pg_admin_url: str) -> dict[str, Any]:
    """Cores, CPU, memory, Python, SQLite, PostgreSQL, library versions, date, commit."""
    from datastore_lite.testing.emulator import EMULATOR_BINARY, emulator_installed

    pg_version = "unreachable"
    try:
        import psycopg

        with psycopg.connect(pg_admin_url, connect_timeout=5) as conn:
            settings: dict[str, str] = dict(
                conn.execute(
                    "SELECT name, setting || COALESCE(unit, '') FROM pg_settings WHERE name IN "
                    "('server_version', 'autovacuum', 'shared_buffers', 'synchronous_commit')"
                ).fetchall()
            )
            version = settings.pop("server_version", "?")
            extras = ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
            pg_version = f"{version} ({extras})"
    except Exception:
        pass
    memory = _first_line("/proc/meminfo", "MemTotal")
    commit = "unknown"
    if shutil.which("git"):
        try:
            head = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            commit = head + (" (with local changes)" if dirty else "")
        except Exception:
            pass
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": _first_line("/proc/cpuinfo", "model name"),
        "memory": memory,
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version,
        "datastore_lite": _version("datastore-lite"),
        "sqlalchemy": _version("sqlalchemy"),
        "psycopg": _version("psycopg"),
        "msgpack": _version("msgpack"),
        "google-cloud-datastore": _version("google-cloud-datastore"),
        "emulator": EMULATOR_BINARY if emulator_installed() else "not installed",
        "commit": commit,
    }


def write_reports(result: RunResult, directory: str) -> tuple[list[Row], list[str]]:
    """Write ``latest.json``, ``latest.md`` (and ``latest.png``) into ``directory``."""
    os.makedirs(directory, exist_ok=True)
    rows = build_rows(result)
    facts = machine_facts(result.config.pg_admin_url)
    written = []
    path = os.path.join(directory, "latest.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(_json(result, rows, facts), handle, indent=1, default=str)
        handle.write("\n")
    written.append(path)
    path = os.path.join(directory, "latest.md")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(_markdown(result, rows, facts))
    written.append(path)
    if result.config.chart:
        path = os.path.join(directory, "latest.png")
        if _chart(rows, path):
            written.append(path)
    return rows, written


def notes_text(rows: list[Row]) -> str:
    return "\n".join(_notes(rows))
