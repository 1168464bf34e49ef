"""Who learns of each change: open the event sinks a server process records to.

The journal (event stream and webhooks) and the audit log are required: a change that
cannot be recorded there fails. Metrics are counted on a best-effort basis.

Webhooks are delivered from the journal by one process per node that `serve` starts
(cli/server/webhook_process.py); an app started any other way (embedded, or by uvicorn
itself) delivers from its own process, as does one whose journal is in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from bindle_server.api.feed import EventFeed
from bindle_server.backend import Backend
from bindle_server.config import Settings
from bindle_server.events import Recorder
from bindle_server.events.audit import open_audit
from bindle_server.events.delivery import Deliverer, RetryPolicy, deliver_webhooks
from bindle_server.events.journal import RETENTION, EventJournal, JournalSink, open_journal
from bindle_server.events.webhooks import Webhook, load_webhooks

log = logging.getLogger(__name__)

_PRUNE_INTERVAL = 3600.0

# Set by `serve` for its uvicorn worker processes (app.app_from_environment): a delivery
# process of the node sends the webhooks, so the workers do not.
WEBHOOKS_ELSEWHERE = "_BINDLE_WEBHOOKS_ELSEWHERE"


@asynccontextmanager
async def open_observers(
    settings: Settings, backend: Backend, *, deliver: bool = True
) -> AsyncIterator[Observers]:
    """`deliver=False`: another process of the node delivers webhooks from the journal
    (unless none could: see `journal_is_shared`)."""
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
        if deliver or not journal_is_shared(settings, backend.directory):
            deliverer = await stack.enter_async_context(webhook_delivery(settings, journal))
            if deliverer is not None:
                recorder.add(deliverer.sink, required=False)  # wakes it; never awaits a delivery
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


def webhooks_to_deliver(settings: Settings) -> list[Webhook]:
    """The webhooks this server delivers to: none in read-only mode, which writes nothing,
    the outbox included (what is queued waits)."""
    if settings.read_only:
        return []
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    return load_webhooks(settings.webhook, secret, settings.webhooks_file)


def journal_is_shared(settings: Settings, directory: Path | None) -> bool:
    """Whether other processes see this server's journal (a file of the data directory or
    a PostgreSQL table), so that one of them can deliver its webhooks."""
    return bool(settings.index) or directory is not None


@asynccontextmanager
async def webhook_delivery(
    settings: Settings, journal: EventJournal, *, watch: bool = False
) -> AsyncIterator[Deliverer | None]:
    """Deliver webhooks (events/delivery.py) in the background while the context lasts;
    None when there are none to deliver. `watch`: see `deliver_webhooks`."""
    hooks = webhooks_to_deliver(settings)
    if not hooks:
        yield None
        return
    policy = RetryPolicy(
        first_delay=settings.webhook_retry_delay,
        give_up=settings.webhook_give_up,
        timeout=settings.webhook_timeout,
    )
    async with deliver_webhooks(journal, hooks, policy, watch=watch) as deliverer:
        yield deliverer
