"""Progress bars that show on a terminal and stay silent in pipes.

``--progress/--no-progress`` on any command sets :data:`settings.enabled`; the default (``None``)
means "only when stderr is a terminal", so scripts and CI logs stay clean. ``--progress`` with
stderr in a pipe or log file writes plain lines instead (one every few seconds and one at the
end): a bar drawn with cursor movements is unreadable there.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


@dataclass
class ProgressSettings:
    enabled: bool | None = None

    def active(self) -> bool:
        if self.enabled is None:
            return sys.stderr.isatty()
        return self.enabled


settings = ProgressSettings()


class Tracker:
    """Minimal interface the library reports to; a no-op when progress is off."""

    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._progress = progress
        self._task = task

    def advance(self, amount: float = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, amount)

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total, description=description)


class LineTracker(Tracker):
    """Progress as plain lines on stderr, for logs: at most one per ``every`` seconds."""

    def __init__(self, description: str, total: float | None, unit: str,
                 every: float = 5.0) -> None:
        super().__init__(None, None)
        self._description, self._total, self._unit, self._every = description, total, unit, every
        self._done = 0.0
        self._started = self._last = time.monotonic()

    def advance(self, amount: float = 1) -> None:
        self._done += amount
        if time.monotonic() - self._last >= self._every:
            self.emit()

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        self._total = total if total is not None else self._total
        self._description = description or self._description

    def emit(self, final: bool = False) -> None:
        self._last = time.monotonic()
        parts = []
        if self._done or self._total:
            parts.append(_amount(self._done, self._unit))
        if self._total:
            parts[-1] += f" of {_amount(self._total, self._unit)} ({self._done / self._total:.0%})"
        parts += [f"{self._last - self._started:.1f} s", "done" if final else "running"]
        print(f"{self._description}: {', '.join(parts)}", file=sys.stderr, flush=True)


def _amount(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value / 1e6:,.1f} MB"
    return f"{value:,.0f} {unit}"


@contextmanager
def track(description: str, total: float | None = None, unit: str = "items") -> Iterator[Tracker]:
    """Show one progress bar for the duration of the block (``unit="bytes"`` for data sizes)."""
    if not settings.active():
        yield Tracker(None, None)
        return
    if not sys.stderr.isatty():
        lines = LineTracker(description, total, unit)
        yield lines
        lines.emit(final=True)
        return
    count_columns = (
        (DownloadColumn(), TransferSpeedColumn()) if unit == "bytes" else (MofNCompleteColumn(),)
    )
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        *count_columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with progress:
        yield Tracker(progress, progress.add_task(description, total=total))
