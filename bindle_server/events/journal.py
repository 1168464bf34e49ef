"""The journal: public events in order, each with a sequence number, kept for a while.

The event stream replays it from a `Last-Event-ID` and webhooks deliver from it. On local
disk it is an SQLite file beside the index (events/sqlite.py), which every worker of the
data directory shares; on PostgreSQL it is a table every node writes to
(events/postgres.py), so a node streams what another node recorded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from bindle_server.events.model import PUBLIC, Event

# How long journaled events are kept for replay and for webhook retries.
RETENTION = 7 * 24 * 3600.0
# A missing sequence number is waited for this long before it is skipped. On PostgreSQL,
# ids are handed out when an insert starts and seen when it commits, so id 42 may be seen
# before 41 (another worker or node has not committed it yet); an id that stays missing
# was taken by a rolled-back insert, or pruned.
GAP_WAIT = 2.0


class EventJournal(Protocol):
    async def append(self, event: Event) -> Event:
        """Journal `event` durably; return it with its sequence number."""
        ...

    async def after(self, last_id: int, limit: int = 100) -> list[Event]:
        """Events with a sequence number above `last_id`, oldest first, at most `limit`."""
        ...

    async def latest(self) -> int:
        """The highest sequence number journaled so far (0 when none)."""
        ...

    async def prune(self, older_than: float) -> int:
        """Drop events recorded before `older_than` (unix seconds); how many."""
        ...

    async def close(self) -> None: ...


class GapWait:
    """Reads the journal in order for one cursor: a reader that moved past a missing id
    would never see the event that comes to fill it, so it stops there for `wait`
    seconds (from when the gap was first seen) before it skips it."""

    def __init__(self, wait: float = GAP_WAIT) -> None:
        self.wait = wait
        self._seen: tuple[int, float] | None = None  # (the id after the gap, first seen)

    def in_order(self, cursor: int, events: Sequence[Event]) -> list[Event]:
        """The leading `events` (read after `cursor`, oldest first) up to the first gap
        that has been missing for less than `wait`: those the cursor may move past."""
        taken: list[Event] = []
        expected = cursor + 1
        for event in events:
            if event.id != expected and not self._expired(event.id):
                break
            taken.append(event)
            expected = event.id + 1
        return taken

    def _expired(self, next_id: int) -> bool:
        now = time.monotonic()
        if self._seen is None or self._seen[0] != next_id:
            self._seen = (next_id, now)
        return now - self._seen[1] >= self.wait


class JournalSink:
    """The EventSink that journals the public events and passes over the rest."""

    def __init__(self, journal: EventJournal) -> None:
        self.journal = journal

    async def ready(self) -> None:
        return None

    async def record(self, event: Event) -> None:
        if event.action in PUBLIC:
            await self.journal.append(event)

    async def close(self) -> None:
        await self.journal.close()


async def open_journal(index_url: str | None, directory: Path | None) -> EventJournal:
    """The journal beside the index: PostgreSQL when `index_url` names it, else an SQLite
    file in `directory` (or in memory when the store has no directory)."""
    if index_url:
        from bindle_server.events.postgres import PostgresJournal

        return await PostgresJournal.open(index_url)
    from bindle_server.events.sqlite import SqliteJournal

    return SqliteJournal(str(directory / "events.sqlite3") if directory else ":memory:")
