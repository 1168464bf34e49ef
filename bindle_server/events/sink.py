"""Where events go: the one narrow interface the service and the lifecycle tasks write to.

`ready` runs before a change and `record` after it. An audit sink that cannot write
raises from `ready`, so the change is refused before anything is stored: there are no
unaudited writes (a disk that fails between the two calls is the one gap, and `record`
raising then fails the request, which the client retries).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from bindle_server.events.model import Event

log = logging.getLogger(__name__)


class EventSink(Protocol):
    async def ready(self) -> None:
        """Raise StorageUnavailable when a record could not be written now."""
        ...

    async def record(self, event: Event) -> None:
        """Keep `event`; raise when it could not be kept (the caller's change then fails)."""
        ...

    async def close(self) -> None: ...


class NullSink:
    """Records nothing: for commands and tests that observe nothing."""

    async def ready(self) -> None:
        return None

    async def record(self, event: Event) -> None:
        return None

    async def close(self) -> None:
        return None


class Recorder:
    """Fans each event out to every sink, in order. Sinks marked `required` (the audit
    log, the journal) fail the change; the others (metrics) only log."""

    def __init__(self, required: Sequence[EventSink] = (), best_effort: Sequence[EventSink] = ()):
        self._required = list(required)
        self._best_effort = list(best_effort)

    def add(self, sink: EventSink, *, required: bool) -> None:
        (self._required if required else self._best_effort).append(sink)

    async def ready(self) -> None:
        for sink in self._required:
            await sink.ready()

    async def record(self, event: Event) -> None:
        failure: Exception | None = None
        for sink in self._required:
            try:
                await sink.record(event)
            except Exception as exc:
                failure = exc  # the sinks after it (the journal) must not have it either
                break
        for sink in self._best_effort:  # counted even when the change fails
            try:
                await sink.record(event)
            except Exception:
                log.exception("could not pass on event %s", event.action)
        if failure is not None:
            raise failure

    async def close(self) -> None:
        for sink in [*self._required, *self._best_effort]:
            await sink.close()
