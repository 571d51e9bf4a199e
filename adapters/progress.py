"""Progress of an import on stderr: a bar on a terminal, a plain line every few seconds
otherwise (a log file or a scheduler's capture would fill up with redrawn bars)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 30


def render_bar(label: str, done: int, total: int, rate: float) -> str:
    """``label [#######-------] 4,200/10,000  42%  1,234 rows/s  ETA 5s``."""
    filled = BAR_WIDTH * done // total if total else BAR_WIDTH
    return f"{label} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {_counts(done, total, rate)}"


def render_line(label: str, done: int, total: int, rate: float) -> str:
    """``label: 4,200/10,000  42%  1,234 rows/s  ETA 5s``."""
    return f"{label}: {_counts(done, total, rate)}"


def _counts(done: int, total: int, rate: float) -> str:
    percent = 100 * done // total if total else 100
    eta = f"  ETA {(total - done) / rate:.0f}s" if rate > 0 and done < total else ""
    return f"{done:,}/{total:,} {percent:3d}%  {rate:,.0f} rows/s{eta}"


class Progress:
    """Counts rows done; a resumed import starts at the rows already recorded."""

    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO,
        *,
        done: int = 0,
        line_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._total = total
        self._stream = stream
        self._tty = stream.isatty()
        self._interval = 0.1 if self._tty else line_interval_s
        self._clock = clock
        self._started = self._shown_at = clock()
        self._done_before = done
        self.done = done

    def advance(self, rows: int) -> None:
        self.done += rows
        if self._clock() - self._shown_at >= self._interval:
            self._show()

    def finish(self) -> None:
        self._show()
        if self._tty:
            self._stream.write("\n")
        self._stream.flush()

    def _show(self) -> None:
        now = self._shown_at = self._clock()
        elapsed = now - self._started
        # The rate counts this run's rows only: rows recorded by an earlier run took no time.
        rate = (self.done - self._done_before) / elapsed if elapsed > 0 else 0.0
        if self._tty:
            self._stream.write(f"\r{render_bar(self._label, self.done, self._total, rate)}\x1b[K")
        else:
            self._stream.write(render_line(self._label, self.done, self._total, rate) + "\n")
        self._stream.flush()
