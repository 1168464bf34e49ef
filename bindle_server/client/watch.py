"""Follow a bindle name: act on the newest complete, non-yanked version in a SemVer range.

The loop behind `bindle watch`. It subscribes to the server's event stream for the name
and, once subscribed, looks up the newest match (`_q`, then `_r/missing` to skip
versions whose parcels are not all uploaded yet) and hands it to `act`. After each
completion, yank or purge of the name it looks again, and calls `act` whenever the
answer changed: a newer version landed, or the one it acted on was yanked (then the
newest remaining match is the answer, a rollback; `None` when no match is left).

A broken connection is retried with backoff, resuming the stream from the last event
seen (`Last-Event-ID`), so events that happened meanwhile are not missed.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bindle_server.client.client import BindleClient
from bindle_server.client.config import ClientConfig
from bindle_server.client.errors import ConnectionFailed, ServerError
from bindle_server.client.events import EventStream, ServerEvent
from bindle_server.model import Invoice, Version

log = logging.getLogger(__name__)

# What makes the watcher look for the newest match again.
RELEVANT = frozenset({"invoice.completed", "invoice.yanked", "invoice.purged"})
# Failures worth waiting out: the server is restarting, unreachable, or overloaded.
TRANSIENT = (httpx.TransportError, ConnectionFailed, ServerError)


@dataclass(frozen=True)
class Backoff:
    """Pauses between reconnection attempts: doubling from `first` up to `longest`."""

    first: float = 0.5
    longest: float = 5.0

    def delay(self, failures: int) -> float:
        base: float = min(self.longest, self.first * 2.0 ** min(failures, 16))
        return base * random.uniform(0.5, 1.0)


class Watcher:
    """Calls `act(invoice)` each time the newest match of `name` and `version_range`
    changes, and `act(None)` when no match is left. `run` blocks until `stop`."""

    def __init__(
        self,
        config: ClientConfig,
        name: str,
        version_range: str,
        act: Callable[[Invoice | None], object],
        *,
        backoff: Backoff | None = None,
        report: Callable[[str], object] = log.info,
    ) -> None:
        self.config = config
        self.name = name
        self.version_range = version_range
        self.act = act
        self.backoff = backoff or Backoff()
        self.report = report
        self.current: Invoice | None = None
        self.last_event_id: int | None = None
        self._stale = True  # look for the newest match at the next occasion
        self._stopped = threading.Event()
        self._stream: EventStream | None = None
        self._lock = threading.Lock()

    def newest(self) -> Invoice | None:
        """The newest non-yanked version of the name in the range whose parcels are all
        on the server, or None."""
        with BindleClient.from_config(self.config) as client:
            matches = [
                invoice
                for invoice in client.iter_query(self.name, self.version_range)
                if invoice.bindle.name == self.name  # `_q` terms match within names
            ]
            matches.sort(key=lambda invoice: Version.parse(invoice.bindle.version), reverse=True)
            for invoice in matches:
                if not client.missing_parcels(invoice.bindle_id):
                    return invoice
        return None

    def run(self) -> None:
        """Watch until `stop()`; errors other than connection failures end it."""
        failures = 0
        while not self._stopped.is_set():
            try:
                self._follow()
                failures = 0  # the server ended the stream (it is stopping): reconnect
                reason = "the server ended the event stream"
            except TRANSIENT as exc:
                if self._stopped.is_set():
                    break
                reason = f"{type(exc).__name__}: {exc}"
                failures += 1
            delay = self.backoff.delay(failures)
            self.report(f"{reason}; reconnecting in {delay:.1f}s")
            self._stopped.wait(delay)

    def stop(self) -> None:
        """End `run` (from another thread, e.g. a signal handler's)."""
        self._stopped.set()
        with self._lock:
            if self._stream is not None:
                self._stream.close()

    def _follow(self) -> None:
        stream = EventStream(
            self.config,
            query=self.name,
            version=self.version_range,
            last_event_id=self.last_event_id,
            on_connect=self._refresh_if_stale,
        )
        with self._lock:
            if self._stopped.is_set():
                stream.close()
                return
            self._stream = stream
        try:
            for event in stream:
                self.last_event_id = stream.last_event_id
                if self._stopped.is_set():
                    return
                if self._concerns(event):
                    self._stale = True
                    self._refresh_if_stale()
        finally:
            # Also the position the server sent as the stream started, if no event came.
            self.last_event_id = stream.last_event_id
            with self._lock:
                self._stream = None
            stream.close()

    def _concerns(self, event: ServerEvent) -> bool:
        return event.action in RELEVANT and event.name == self.name

    def _refresh_if_stale(self) -> None:
        """Act on the newest match if it changed. Stays stale when this fails, so that
        the next connection tries again."""
        if not self._stale:
            return
        newest = self.newest()
        if _id(newest) != _id(self.current):
            self.act(newest)
            self.current = newest
        self._stale = False


def _id(invoice: Invoice | None) -> str | None:
    return None if invoice is None else str(invoice.bindle_id)
