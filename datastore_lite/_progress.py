"""A hand-written progress bar for long command-line operations (no dependency).

One line, redrawn in place with ``\\r`` on the stream (stderr by default)::

    [#############.................] 45% Photo(tags, date desc) 4500/10000

It stays silent when the stream is not a terminal, so piped or logged output is not
littered with redraws; ``force=True`` turns it on anyway (tests, ``--progress``) and
``force=False`` turns it off. With an unknown total it shows the running count only.

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> bar = Progress(4, "Photo", stream=out, force=True, width=4)
    >>> bar.update(3)
    >>> out.getvalue()
    '\\r[###.]  75% Photo 3/4'
    >>> bar.update()
    >>> bar.close()
    >>> out.getvalue().split("\\r")[-1]
    '[####] 100% Photo 4/4\\n'
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """A progress bar drawn on ``stream``.

    Args:
        total: The number of units expected, or ``None`` when unknown.
        label: Text shown after the bar (e.g. the index or the file being processed).
        stream: Where to draw (default ``sys.stderr``).
        force: ``True`` draws even when ``stream`` is not a TTY; ``False`` never draws;
            ``None`` (default) draws only on a TTY.
        width: Characters inside the brackets.
        interval: Minimum seconds between redraws (the final state is always drawn).
        clock: Time source for the redraw throttle (tests pass a fake one).
    """

    def __init__(
        self,
        total: int | None,
        label: str = "",
        stream: TextIO | None = None,
        *,
        force: bool | None = None,
        width: int = 30,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.width = max(1, width)
        self.interval = interval
        self._clock = clock
        self._last_draw: float | None = None
        self._last_len = 0
        self._drawn: tuple[int, int | None] | None = None
        self._closed = False
        if force is None:
            isatty = getattr(self.stream, "isatty", None)
            try:
                force = bool(isatty()) if isatty is not None else False
            except (OSError, ValueError):  # a closed or detached stream
                force = False
        self.enabled = force

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` units."""
        self.set(self.done + n)

    def set(self, done: int, total: int | None = None) -> None:
        """Set the absolute position (and, optionally, a newly learnt total)."""
        self.done = done
        if total is not None:
            self.total = total
        if not self.enabled or self._closed:
            return
        now = self._clock()
        finished = self.total is not None and done >= self.total
        if self._last_draw is not None and now - self._last_draw < self.interval and not finished:
            return
        self._last_draw = now
        self._draw()

    def render(self) -> str:
        """The current line, without the leading ``\\r``."""
        label = f" {self.label}" if self.label else ""
        if self.total is None:
            return f"[{'?' * self.width}]{label} {self.done}"
        total = max(self.total, 0)
        fraction = 1.0 if total == 0 else min(1.0, self.done / total)
        filled = int(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        return f"[{bar}] {int(fraction * 100):3d}%{label} {self.done}/{total}"

    def _draw(self) -> None:
        self._drawn = (self.done, self.total)
        line = self.render()
        # pad with spaces so a shorter line fully covers the previous one
        pad = " " * max(0, self._last_len - len(line))
        self._last_len = len(line)
        try:
            self.stream.write("\r" + line + pad)
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed under us: drawing is best effort
            self.enabled = False

    def close(self) -> None:
        """Draw the final state and end the line (idempotent)."""
        if self._closed:
            return
        if self.enabled:
            if self._drawn != (self.done, self.total):
                self._draw()
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass
        self._closed = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
