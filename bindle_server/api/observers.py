"""Who learns of each change: open the event sinks a server process records to.

The journal (event stream and webhooks) and the audit log are required: a change that
cannot be recorded there fails. Metrics are counted on a best-effort basis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bindle_server.backend import Backend
from bindle_server.config import Settings
from bindle_server.events import Recorder
from bindle_server.events.journal import EventJournal, JournalSink, open_journal


@asynccontextmanager
async def open_observers(settings: Settings, backend: Backend) -> AsyncIterator[Observers]:
    journal = await open_journal(settings.index, backend.directory)
    recorder = Recorder(required=[JournalSink(journal)])
    try:
        yield Observers(recorder, journal)
    finally:
        await recorder.close()


class Observers:
    """The recorder the service writes to, and the journal readers replay."""

    def __init__(self, recorder: Recorder, journal: EventJournal) -> None:
        self.recorder = recorder
        self.journal = journal
