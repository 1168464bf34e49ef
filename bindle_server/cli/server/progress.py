"""How the commands that copy bindles (mirror, migrate-storage) show their work: a byte
progress bar (size, speed, time left) while they copy, then their report."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from bindle_server.migrate import CopyReport


class BarProgress:
    """A copy's progress on a rich progress bar: told the bytes to come, then each chunk."""

    def __init__(self, bar: Any, task: Any) -> None:
        self._bar = bar
        self._task = task
        self._total = 0

    def expect(self, size: int) -> None:
        self._total += size
        self._bar.update(self._task, total=self._total)

    def advance(self, size: int) -> None:
        self._bar.advance(self._task, size)


@contextmanager
def byte_progress(description: str, show: bool) -> Iterator[BarProgress]:
    """A progress bar for the block's transfer; drawn only when `show`."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        "{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        disable=not show,
        transient=False,
    )
    with bar:
        yield BarProgress(bar, bar.add_task(description, total=0))


def finish(report: CopyReport) -> None:
    """Print what could not be copied (stderr) and the summary; exit 1 unless clean."""
    for problem in report.problems:
        typer.echo(problem, err=True)
    typer.echo(report.summary())
    if not report.clean:
        raise typer.Exit(1)
