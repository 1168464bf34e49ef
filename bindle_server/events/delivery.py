"""Webhook delivery: a background task that moves journaled events to the outbox and
POSTs them, retrying with backoff; never part of a request.

A change is journaled in its request, after it is durable. This task reads the journal
from each webhook's cursor (in order: a missing id is waited for, see GapWait), queues a
delivery per matching event, and sends due deliveries a few at a time, each under a
timeout: a dead or slow endpoint delays only its own deliveries.

`bindle-server serve` runs it in a process of its own (cli/server/webhook_process.py), so
that sending never takes an interpreter lock or event loop from the requests; it then
`watch`es the journal's newest id to send new events at once. An app that delivers from
its own process instead (embedded, or in-memory storage) has each request set a flag
(`Deliverer.sink`) for the same purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bindle_server import __version__
from bindle_server.events.journal import GAP_WAIT, RETENTION, EventJournal, GapWait
from bindle_server.events.model import PUBLIC, Event
from bindle_server.events.outbox import Delivery, Outbox, Outcome, State, open_outbox
from bindle_server.events.sender import Sender, SendError
from bindle_server.events.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    Webhook,
    payload,
)

log = logging.getLogger(__name__)

# Other processes and nodes journal too; their events are found within this many seconds.
POLL_INTERVAL = 1.0
# How often a watching deliverer reads the journal's newest id (one indexed query):
# the delay of a delivery after its change, when nothing else wakes the deliverer.
WATCH_INTERVAL = 0.2
# Deliveries in flight at once per process, across all webhooks.
CONCURRENCY = 8
# Journal events read per query, and queries per webhook per round (then sending goes on).
_BATCH = 200
_BATCHES_PER_ROUND = 10
_PRUNE_INTERVAL = 3600.0
_PAUSE = 0.05


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again: `first_delay` after the first failure, twice as long after each
    further one up to `max_delay`, until `give_up` seconds after the event was queued."""

    first_delay: float = 10.0
    max_delay: float = 600.0
    give_up: float = 24 * 3600.0
    timeout: float = 10.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt."""
        return float(min(self.first_delay * 2 ** min(attempts - 1, 32), self.max_delay))

    @property
    def lease(self) -> float:
        """How long a claimed delivery stays hidden from other claims: longer than any
        attempt lasts, so that only a sender that died leaves it to be claimed again."""
        return 2 * self.timeout + 30.0


class _Wakeup:
    """The EventSink a request records to: it only wakes the deliverer up."""

    def __init__(self, flag: asyncio.Event) -> None:
        self._flag = flag

    async def ready(self) -> None:
        return None

    async def record(self, event: Event) -> None:
        if event.action in PUBLIC:
            self._flag.set()

    async def close(self) -> None:
        return None


class Deliverer:
    def __init__(
        self,
        journal: EventJournal,
        outbox: Outbox,
        webhooks: Sequence[Webhook],
        policy: RetryPolicy,
        *,
        gap_wait: float = GAP_WAIT,
        watch: bool = False,
    ) -> None:
        self._journal = journal
        self._watch = watch
        self._latest = 0  # the journal's newest id when last watched
        self._outbox = outbox
        self._webhooks = {hook.name: hook for hook in webhooks}
        self._policy = policy
        # Each webhook's cursor may stop at a different missing id.
        self._gaps = {name: GapWait(gap_wait) for name in self._webhooks}
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        # Outcomes of finished attempts, recorded together at the next round: one outbox
        # transaction per round, not one per delivery beside the requests' own.
        self._outcomes: list[Outcome] = []
        self._pruned_at = 0.0
        self.sink = _Wakeup(self._wake)

    async def run(self, sender: Sender) -> None:
        """Queue and send until cancelled; a failed round is logged and tried again."""
        try:
            while True:
                self._wake.clear()
                try:
                    await self._settle()
                    await self.queue_new_events()
                    await self._send_due(sender)
                    await self._prune()
                except Exception:
                    log.exception("webhook delivery round failed")
                # Under a burst of pushes, one round per pause takes all that arrived in
                # it, rather than one round per event competing with the pushes.
                await asyncio.sleep(_PAUSE)
                await self._wait_for_news()
        finally:
            for task in self._in_flight:
                task.cancel()
            # A cancelled attempt is claimed again once its lease runs out.
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.shield(self._settle())

    async def _wait_for_news(self) -> None:
        """Until woken (a request recorded an event, an attempt ended), something new is
        journaled (when watching), or POLL_INTERVAL has passed: retries come due then."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + POLL_INTERVAL
        while (left := deadline - loop.time()) > 0:
            wait = min(WATCH_INTERVAL, left) if self._watch else left
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
                return
            if self._watch:
                try:
                    latest = await self._journal.latest()
                except Exception:  # the round after the poll interval says what failed
                    return
                if latest != self._latest:
                    self._latest = latest
                    return

    async def queue_new_events(self) -> None:
        """Queue a delivery for each journaled event past each webhook's cursor, up to
        the first id that is missing (not committed yet) for less than the gap wait."""
        cursors = await self._outbox.cursors()
        for hook in self._webhooks.values():
            position = cursors.get(hook.name, 0)
            for _ in range(_BATCHES_PER_ROUND):
                events = await self._journal.after(position, _BATCH)
                taken = self._gaps[hook.name].in_order(position, events)
                if not taken:
                    break
                now = time.time()
                queued = [_delivery(hook, event, now) for event in taken if hook.wants(event)]
                position = taken[-1].id
                await self._outbox.enqueue(hook.name, queued, position)
                if len(taken) < _BATCH:
                    break

    async def _send_due(self, sender: Sender) -> None:
        free = CONCURRENCY - len(self._in_flight)
        now = time.time()
        claimed = await self._outbox.claim(
            list(self._webhooks), now, now + self._policy.lease, free
        )
        for delivery in claimed:
            task = asyncio.create_task(self._attempt(sender, delivery))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()  # a slot is free: claim what else is due

    async def _attempt(self, sender: Sender, delivery: Delivery) -> None:
        hook = self._webhooks[delivery.webhook]
        status, error = await self._post(sender, hook, delivery)
        now = time.time()
        if not error:
            state, next_attempt = State.DELIVERED, 0.0
        elif now - delivery.created >= self._policy.give_up:
            state, next_attempt = State.FAILED, 0.0
            log.warning(
                "webhook %s: gave up on delivery %s (%s %s) after %d attempts: %s",
                hook.name, delivery.id, delivery.action, delivery.bindle, delivery.attempts,
                error,
            )  # fmt: skip
        else:
            state, next_attempt = State.PENDING, now + self._policy.delay(delivery.attempts)
            log.info(
                "webhook %s: delivery %s failed (attempt %d): %s",
                hook.name, delivery.id, delivery.attempts, error,
            )  # fmt: skip
        self._outcomes.append(Outcome(delivery.id, state, now, next_attempt, status, error))

    async def _settle(self) -> None:
        outcomes, self._outcomes = self._outcomes, []
        try:
            await self._outbox.settle(outcomes)
        except Exception:  # their leases run out and they are sent again: at least once
            log.exception("could not record the outcomes of %d webhook deliveries", len(outcomes))

    async def _post(
        self, sender: Sender, hook: Webhook, delivery: Delivery
    ) -> tuple[int | None, str]:
        """(status, "") when the endpoint took it, else (status or None, what went wrong)."""
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: delivery.id,
            EVENT_HEADER: delivery.action,
        }
        signature = hook.signature(body)
        if signature:
            headers[SIGNATURE_HEADER] = signature
        try:
            # The sender's timeout bounds each wait; this bounds an endpoint that trickles.
            async with asyncio.timeout(2 * self._policy.timeout):
                status = await sender.post(hook.url, body, headers)
        except TimeoutError:
            return None, "timed out"
        except SendError as exc:
            return None, str(exc)
        return status, "" if 200 <= status < 300 else f"HTTP {status}"

    async def _prune(self) -> None:
        if time.monotonic() - self._pruned_at < _PRUNE_INTERVAL and self._pruned_at:
            return
        self._pruned_at = time.monotonic()
        await self._outbox.prune(time.time() - RETENTION)


def _delivery(hook: Webhook, event: Event, now: float) -> Delivery:
    return Delivery(
        id=str(uuid.uuid4()),
        webhook=hook.name,
        event_id=event.id,
        action=event.action.value,
        bindle=event.bindle,
        body=payload(event).decode(),
        created=now,
        next_attempt=now,
        updated=now,
    )


@asynccontextmanager
async def deliver_webhooks(
    journal: EventJournal,
    webhooks: Sequence[Webhook],
    policy: RetryPolicy,
    *,
    watch: bool = False,
) -> AsyncIterator[Deliverer]:
    """Deliver to `webhooks` in the background for as long as the context lasts.

    The cursors of new webhooks are set before it yields, so that every event recorded
    afterwards is delivered. New events go out at once when recorded to the deliverer's
    `sink` (in this process) or, with `watch`, when the journal's newest id moves (any
    process); else at the next poll.
    """
    outbox = await open_outbox(journal)
    await outbox.start([hook.name for hook in webhooks], await journal.latest())
    deliverer = Deliverer(journal, outbox, webhooks, policy, watch=watch)
    sender = Sender(policy.timeout, f"bindle-server/{__version__}")
    task = asyncio.create_task(deliverer.run(sender))
    try:
        yield deliverer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sender.aclose()
        await outbox.close()
