"""The live feed of journaled events, for this process's event streams.

One poller per process reads the journal every `interval` seconds and wakes every
stream waiting for news. Because each process polls the shared journal (an SQLite file
of the data directory, or a PostgreSQL table of all nodes), a stream sees what any
worker or node recorded, without a message bus. Recent events are kept in memory, so
that a thousand open streams cost one query per poll; a stream that resumes from
further back (`Last-Event-ID`) reads the journal itself until it catches up.

A shutdown signal ends every stream at once: uvicorn waits for open connections before
it runs the lifespan's shutdown, so a stream that waited for that would never end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from types import FrameType
from typing import Any

from bindle_server.events.journal import EventJournal, GapWait
from bindle_server.events.model import Event

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.5
BATCH = 200
RECENT = 2000

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_Handler = Callable[[int, FrameType | None], Any] | int | None


class EventFeed:
    """Polls `journal` and hands each waiting stream the events after its cursor."""

    def __init__(self, journal: EventJournal, interval: float = POLL_INTERVAL) -> None:
        self.journal = journal
        self.interval = interval
        self.closed = False
        self._recent: deque[Event] = deque()
        self._floor = 0  # `_recent` holds every event above this id up to `_last`
        self._last = 0
        self._changed = asyncio.Event()
        self._gaps = GapWait()  # a missing id is waited for before it is skipped
        self._task: asyncio.Task[None] | None = None
        self._previous: dict[int, _Handler] = {}

    @property
    def last(self) -> int:
        """The newest event this process has seen: where a new live stream starts."""
        return self._last

    async def start(self) -> None:
        self._last = self._floor = await self.journal.latest()
        self._task = asyncio.create_task(self._poll())
        self._hook_signals()

    async def close(self) -> None:
        self.shut()
        self._unhook_signals()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def shut(self) -> None:
        """End every stream (they return from `wait_after`), now and from now on."""
        self.closed = True
        self._wake()

    async def resume_point(self, last_id: int) -> int:
        """Where a stream resuming after `last_id` starts. An id beyond the journal's
        newest (a journal that was reset) starts at its newest instead."""
        latest = await self.journal.latest()
        return min(last_id, latest)

    async def wait_after(self, cursor: int, patience: float) -> list[Event]:
        """The events after `cursor`, waiting up to `patience` seconds for some; [] when
        none came (time for a heartbeat) or the feed is shut."""
        deadline = time.monotonic() + patience
        while not self.closed:
            if self._last > cursor:
                if cursor >= self._floor:
                    return [event for event in self._recent if event.id > cursor]
                replay = await self.journal.after(cursor, BATCH)
                return [event for event in replay if event.id <= self._last]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
        return []

    async def _poll(self) -> None:
        while not self.closed:
            try:
                full = await self._poll_once()
            except Exception:  # the journal is down for a moment: the streams wait
                log.exception("could not read the event journal")
                full = False
            if not full:
                await asyncio.sleep(self.interval)

    async def _poll_once(self) -> bool:
        """Take in what was journaled since the last poll; True if there may be more."""
        events = await self.journal.after(self._last, BATCH)
        taken = self._gaps.in_order(self._last, events)
        if taken:
            self._recent.extend(taken)
            self._last = taken[-1].id
            while len(self._recent) > RECENT:
                self._floor = self._recent.popleft().id
            self._wake()
        return len(events) == BATCH and len(taken) == len(events)

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _hook_signals(self) -> None:
        """Shut the feed on SIGINT/SIGTERM, then let the server's own handler run.

        Only a handler the server installed is wrapped: without one, a signal ends the
        process anyway, streams included."""
        if threading.current_thread() is not threading.main_thread():
            return  # an app run in a thread (tests) gets no signals
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue
            self._previous[sig] = previous

            def handler(number: int, frame: FrameType | None, chained: _Handler = previous) -> None:
                loop.call_soon_threadsafe(self.shut)
                if callable(chained):
                    chained(number, frame)

            signal.signal(sig, handler)

    def _unhook_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
