"""Who learns of each change: open the event sinks a server process records to.

The journal (event stream and webhooks) and the audit log are required: a change that
cannot be recorded there fails. Metrics are counted on a best-effort basis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from bindle_server.api.feed import EventFeed
from bindle_server.backend import Backend
from bindle_server.config import Settings
from bindle_server.events import Recorder
from bindle_server.events.audit import open_audit
from bindle_server.events.delivery import RetryPolicy, deliver_webhooks
from bindle_server.events.journal import RETENTION, EventJournal, JournalSink, open_journal
from bindle_server.events.webhooks import load_webhooks

log = logging.getLogger(__name__)

_PRUNE_INTERVAL = 3600.0


@asynccontextmanager
async def open_observers(settings: Settings, backend: Backend) -> AsyncIterator[Observers]:
    async with AsyncExitStack() as stack:
        recorder = Recorder()
        stack.push_async_callback(recorder.close)  # closes every sink added below
        if settings.audit_log:
            # Before the journal: a change whose audit record fails is then neither
            # streamed nor sent to webhooks.
            audit = await open_audit(
                settings.index, settings.directory, settings.audit_rotate_bytes
            )
            recorder.add(audit, required=True)
        journal = await open_journal(settings.index, backend.directory)
        recorder.add(JournalSink(journal), required=True)
        observers = Observers(recorder, journal)
        await observers.feed.start()
        stack.push_async_callback(observers.feed.close)
        await _start_webhooks(stack, settings, journal, recorder)
        if not settings.read_only:
            pruning = asyncio.create_task(_prune_periodically(journal))
            stack.push_async_callback(_cancel, pruning)
        yield observers


async def _prune_periodically(journal: EventJournal) -> None:
    """Drop journaled events older than RETENTION, at start and hourly: the journal is
    for resuming streams and retrying webhooks, not a history (the audit log is)."""
    while True:
        try:
            pruned = await journal.prune(time.time() - RETENTION)
            if pruned:
                log.info("pruned %d journaled event(s) older than the retention", pruned)
        except Exception:  # retried at the next round; serving goes on
            log.exception("pruning the event journal failed")
        await asyncio.sleep(_PRUNE_INTERVAL)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class Observers:
    """The recorder the service writes to, and the journal readers replay."""

    def __init__(self, recorder: Recorder, journal: EventJournal) -> None:
        self.recorder = recorder
        self.journal = journal
        # The event stream's journal poller, one per process (api/feed.py).
        self.feed = EventFeed(journal)


async def _start_webhooks(
    stack: AsyncExitStack, settings: Settings, journal: EventJournal, recorder: Recorder
) -> None:
    """Deliver webhooks (events/delivery.py) in the background until `stack` closes. Not
    in read-only mode, which writes nothing, the outbox included: what is queued waits."""
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    hooks = load_webhooks(settings.webhook, secret, settings.webhooks_file)
    if not hooks or settings.read_only:
        return
    policy = RetryPolicy(
        first_delay=settings.webhook_retry_delay,
        give_up=settings.webhook_give_up,
        timeout=settings.webhook_timeout,
    )
    deliverer = await stack.enter_async_context(deliver_webhooks(journal, hooks, policy))
    recorder.add(deliverer.sink, required=False)  # wakes it up; never awaits a delivery
