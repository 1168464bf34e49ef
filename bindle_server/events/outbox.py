"""The webhook outbox: deliveries waiting, sent and given up, kept beside the journal.

It lives where the journal lives (the SQLite file of the data directory, or PostgreSQL),
so a restart loses nothing, and every worker process and node shares one outbox: each
delivery is claimed with a lease in one transaction, so one of them sends it at a time.
A webhook's cursor (the last journal id it has been given) moves in the same
transaction that queues its deliveries, so no event is queued twice or skipped; it moves
past a missing id only once that has been missing for `journal.GAP_WAIT`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from bindle_server.events.journal import EventJournal


class State(StrEnum):
    PENDING = "pending"
    """Waiting for its first or next attempt."""
    DELIVERED = "delivered"
    """The endpoint answered 2xx."""
    FAILED = "failed"
    """Given up: every attempt failed until the retry period ran out."""


@dataclass(frozen=True)
class Delivery:
    """One event for one webhook. `id` is the X-Bindle-Delivery header, the same on
    every attempt, so that a receiver can tell a retry from a new event."""

    id: str
    webhook: str
    event_id: int
    action: str
    bindle: str
    body: str
    created: float
    state: State = State.PENDING
    attempts: int = 0
    next_attempt: float = 0.0
    status: int | None = None
    error: str = ""
    updated: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "webhook": self.webhook,
            "event": self.event_id,
            "action": self.action,
            "bindle": self.bindle,
            "created": self.created,
            "state": self.state.value,
            "attempts": self.attempts,
            "next_attempt": self.next_attempt if self.state is State.PENDING else None,
            "status": self.status,
            "error": self.error,
            "updated": self.updated,
        }


@dataclass(frozen=True)
class Outcome:
    """What one attempt at a delivery came to, and when to try it next (if ever)."""

    delivery: str
    state: State
    now: float
    next_attempt: float
    status: int | None
    error: str

    def row(self) -> tuple[object, ...]:
        """The values of the outbox's settle statement, in its order."""
        return (
            self.state.value, self.next_attempt, self.status, self.error, self.now, self.delivery,
        )  # fmt: skip


# The tables of both outboxes; INTEGER is 64 bits in SQLite, REAL and DOUBLE PRECISION the same.
SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_cursors (
    webhook  TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id           TEXT PRIMARY KEY,
    webhook      TEXT NOT NULL,
    event_id     BIGINT NOT NULL,
    action       TEXT NOT NULL,
    bindle       TEXT NOT NULL,
    body         TEXT NOT NULL,  -- the exact bytes signed and sent, on every attempt
    created      DOUBLE PRECISION NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    next_attempt DOUBLE PRECISION NOT NULL,
    status       INTEGER,
    error        TEXT NOT NULL,
    updated      DOUBLE PRECISION NOT NULL,
    UNIQUE (webhook, event_id)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (state, next_attempt);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_update ON webhook_deliveries (updated)
"""
# The columns of webhook_deliveries, in the order of `delivery_row` and `from_row`.
COLUMNS = (
    "id, webhook, event_id, action, bindle, body, created, state, attempts, next_attempt, "
    "status, error, updated"
)


def delivery_row(item: Delivery) -> tuple[object, ...]:
    """`item` as the values of COLUMNS."""
    return (
        item.id, item.webhook, item.event_id, item.action, item.bindle, item.body,
        item.created, item.state.value, item.attempts, item.next_attempt, item.status,
        item.error, item.updated,
    )  # fmt: skip


def from_row(row: Sequence[Any]) -> Delivery:
    """The Delivery of a row selected as COLUMNS."""
    return Delivery(
        row[0], row[1], int(row[2]), row[3], row[4], row[5], float(row[6]), State(row[7]),
        int(row[8]), float(row[9]), row[10], row[11], float(row[12]),
    )  # fmt: skip


class Outbox(Protocol):
    async def start(self, webhooks: Sequence[str], position: int) -> None:
        """Give each webhook that has no cursor yet one at `position`: a new webhook
        hears of what happens from now on, not of the journal's whole past."""
        ...

    async def cursors(self) -> dict[str, int]:
        """Each webhook's cursor: the last journal id considered for it."""
        ...

    async def enqueue(self, webhook: str, deliveries: Sequence[Delivery], position: int) -> None:
        """Queue `deliveries` (those already queued are left alone) and move the webhook's
        cursor to `position` (never back), in one transaction."""
        ...

    async def claim(
        self, webhooks: Sequence[str], now: float, lease_until: float, limit: int
    ) -> list[Delivery]:
        """Take up to `limit` pending deliveries due at `now`, for these webhooks, and hide
        them from other claims until `lease_until` (their attempt counted)."""
        ...

    async def settle(self, outcomes: Sequence[Outcome]) -> None:
        """Record the outcomes of attempts, in one transaction."""
        ...

    async def recent(self, limit: int, failures_only: bool = False) -> list[Delivery]:
        """The deliveries updated most recently, newest first; with `failures_only`, those
        given up or whose last attempt failed."""
        ...

    async def prune(self, older_than: float) -> int:
        """Drop delivered and failed deliveries last updated before `older_than`; how many."""
        ...

    async def close(self) -> None:
        """Let go of what the outbox holds of its own (not the journal's)."""
        ...


async def open_outbox(journal: EventJournal) -> Outbox:
    """The outbox beside `journal`, in the same database."""
    from bindle_server.events.sqlite import SqliteJournal

    if isinstance(journal, SqliteJournal):
        from bindle_server.events.outbox_sqlite import SqliteOutbox

        return await SqliteOutbox.open(journal)
    from bindle_server.events.outbox_postgres import PostgresOutbox
    from bindle_server.events.postgres import PostgresJournal

    if isinstance(journal, PostgresJournal):
        return await PostgresOutbox.open(journal.pool)
    raise TypeError(f"no webhook outbox for {type(journal).__name__}")
