"""Progress bars that show on a terminal and stay silent in pipes.

``--progress/--no-progress`` on any command sets :data:`settings.enabled`; the default (``None``)
means "only when stderr is a terminal", so scripts and CI logs stay clean.
"""

from __future__ import annotations

import sys
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


@contextmanager
def track(description: str, total: float | None = None, unit: str = "items") -> Iterator[Tracker]:
    """Show one progress bar for the duration of the block (``unit="bytes"`` for data sizes)."""
    if not settings.active():
        yield Tracker(None, None)
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
