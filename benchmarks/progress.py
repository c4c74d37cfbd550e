"""A one-line progress bar on stderr, hand-written (the core stays free of dependencies).

On a terminal: ``\\r[#########...........]  45%  W3 get · sqlite · lite  60%`` redrawn at
most ten times a second. Elsewhere (CI logs): one line per finished unit.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Overall progress over ``total`` weighted units, plus the current unit's own."""

    def __init__(self, total: float, stream: TextIO | None = sys.stderr, width: int = 24) -> None:
        self.total = max(total, 1e-9)
        self.stream = stream
        self.width = width
        self.tty = bool(stream is not None and stream.isatty())
        self.done = 0.0
        self.label = ""
        self.weight = 1.0
        self.fraction = 0.0
        self.detail = ""
        self._drawn = 0.0
        self._started = self._unit_started = time.monotonic()

    def start(self, label: str, weight: float = 1.0) -> None:
        self.label, self.weight, self.fraction, self.detail = label, weight, 0.0, ""
        self._unit_started = time.monotonic()
        self._draw(force=True)

    def tick(self, fraction: float, detail: str = "") -> None:
        self.fraction = min(max(fraction, 0.0), 1.0)
        if detail:
            self.detail = detail
        self._draw()

    def finish(self, summary: str = "") -> None:
        self.done += self.weight
        self.fraction = 0.0
        if self.stream is None:
            return
        if not self.tty:
            overall = min(self.done / self.total, 1.0)
            took = time.monotonic() - self._unit_started
            print(
                f"[{overall:4.0%}] {self.label}: {summary} [{took:.1f} s]",
                file=self.stream,
                flush=True,
            )
        else:
            self._draw(force=True)

    def close(self) -> None:
        if self.stream is not None and self.tty:
            columns = shutil.get_terminal_size((100, 20)).columns
            self.stream.write("\r" + " " * (columns - 1) + "\r")
            self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        if self.stream is None or not self.tty:
            return
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        overall = min((self.done + self.weight * self.fraction) / self.total, 1.0)
        filled = int(overall * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = int(now - self._started)
        detail = f" {self.detail}" if self.detail else ""
        line = (
            f"\r[{bar}] {overall:4.0%} {elapsed // 60}:{elapsed % 60:02d}  "
            f"{self.label}{detail} {self.fraction:4.0%}"
        )
        columns = shutil.get_terminal_size((100, 20)).columns
        self.stream.write(line[: columns - 1].ljust(columns - 1))
        self.stream.flush()
