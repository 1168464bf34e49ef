"""Progress on a console for scripts and the `bindle` CLI: rich bars with size and speed
when the console is a terminal, one plain line per finished transfer otherwise."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as Bars

from bindle_server.client.progress import Transfer
from bindle_server.model.units import format_size


class ConsoleProgress:
    """A Progress (see `progress`) drawn on a console, stderr unless told otherwise.

    Use it as a context manager around the operation: on a terminal it shows a bar per
    running transfer plus a total, with sizes, speed and time left.
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.bars: Bars | None = None
        self._grand_total = 0
        if self.console.is_terminal:
            self.bars = Bars(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._total = self.bars.add_task("total", total=0, visible=False)

    def __enter__(self) -> ConsoleProgress:
        if self.bars is not None:
            self.bars.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bars is not None:
            self.bars.stop()

    def transfer(self, description: str, total: int) -> Transfer:
        """A bar for one transfer (a line when it ends, off a terminal)."""
        if self.bars is None:
            return _LineTransfer(self.console, description, total)
        task = self.bars.add_task(description, total=total)
        self._grand_total += total
        self.bars.update(self._total, total=self._grand_total, visible=True)
        return _BarTransfer(self.bars, task, self._total)

    def note(self, message: str) -> None:
        """Print a message above the bars."""
        self.console.print(message, markup=False, highlight=False)


class _BarTransfer:
    def __init__(self, bars: Bars, task: TaskID, total: TaskID) -> None:
        self._bars = bars
        self._task = task
        self._overall = total
        self._done = 0

    def advance(self, amount: int) -> None:
        self._done += amount
        self._bars.advance(self._task, amount)
        self._bars.advance(self._overall, amount)

    def restart(self) -> None:
        self._bars.advance(self._overall, -self._done)
        self._bars.reset(self._task)
        self._done = 0

    def close(self) -> None:
        self._bars.remove_task(self._task)


class _LineTransfer:
    def __init__(self, console: Console, description: str, total: int) -> None:
        self._console = console
        self._description = description
        self._total = total
        self._done = 0
        self._started = time.monotonic()

    def advance(self, amount: int) -> None:
        self._done += amount

    def restart(self) -> None:
        self._done = 0

    def close(self) -> None:
        seconds = max(time.monotonic() - self._started, 1e-6)
        self._console.print(
            f"{self._description}: {format_size(self._done)} of {format_size(self._total)} in "
            f"{seconds:.1f} s ({format_size(int(self._done / seconds))}/s)",
            markup=False,
            highlight=False,
        )
