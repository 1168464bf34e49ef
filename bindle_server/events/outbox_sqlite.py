"""The webhook outbox as tables in the journal's SQLite file; implements Outbox.

The file is shared by every worker of the data directory: `BEGIN IMMEDIATE` makes each
claim a write transaction, so two workers never take the same delivery.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from bindle_server.events.outbox import (
    COLUMNS,
    SCHEMA,
    Delivery,
    Outcome,
    delivery_row,
    from_row,
)
from bindle_server.events.sqlite import SqliteJournal
from bindle_server.sqlitedb import SharedConnection

T = TypeVar("T")


class SqliteOutbox:
    """A connection of its own to the journal's file: the deliverer's queries never wait
    for the lock that the requests' journal appends take, nor the other way round."""

    def __init__(self, location: str) -> None:
        self._db = sqlite3.connect(
            location, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        self._connection = SharedConnection(self._db)
        # NORMAL (the journal file is in WAL mode): the outbox need not wait for the disk.
        # A power cut loses the last transactions whole, so a queueing goes with its
        # cursor move (and is queued again from the journal), and a lost outcome means
        # one more attempt.
        self._db.execute("PRAGMA synchronous = NORMAL")

    @classmethod
    async def open(cls, journal: SqliteJournal) -> SqliteOutbox:
        def create(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)

        outbox = cls(journal.location)
        try:
            await outbox._run(create)
        except BaseException:
            await outbox.close()
            raise
        return outbox

    async def close(self) -> None:
        self._db.close()

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._connection.run(work)

    async def start(self, webhooks: Sequence[str], position: int) -> None:
        def work(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "INSERT OR IGNORE INTO webhook_cursors (webhook, position) VALUES (?, ?)",
                    [(name, position) for name in webhooks],
                )

        await self._run(work)

    async def cursors(self) -> dict[str, int]:
        rows = await self._run(
            lambda db: db.execute("SELECT webhook, position FROM webhook_cursors").fetchall()
        )
        return {name: int(position) for name, position in rows}

    async def enqueue(self, webhook: str, deliveries: Sequence[Delivery], position: int) -> None:
        def work(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    f"INSERT OR IGNORE INTO webhook_deliveries ({COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [delivery_row(item) for item in deliveries],
                )
                db.execute(
                    "UPDATE webhook_cursors SET position = MAX(position, ?) WHERE webhook = ?",
                    (position, webhook),
                )

        await self._run(work)

    async def claim(
        self, webhooks: Sequence[str], now: float, lease_until: float, limit: int
    ) -> list[Delivery]:
        if not webhooks or limit <= 0:
            return []
        marks = ", ".join("?" for _ in webhooks)

        due = (
            f"SELECT {COLUMNS} FROM webhook_deliveries WHERE state = 'pending' "
            f"AND next_attempt <= ? AND webhook IN ({marks}) "
            "ORDER BY next_attempt, event_id LIMIT ?"
        )

        def work(db: sqlite3.Connection) -> list[Delivery]:
            # Most polls find nothing due: they need not take the file's write lock.
            if not db.execute(due, (now, *webhooks, 1)).fetchone():
                return []
            with db:
                db.execute("BEGIN IMMEDIATE")
                rows = db.execute(due, (now, *webhooks, limit)).fetchall()
                db.executemany(
                    "UPDATE webhook_deliveries SET next_attempt = ?, attempts = attempts + 1 "
                    "WHERE id = ?",
                    [(lease_until, row[0]) for row in rows],
                )
            return [from_row(row) for row in rows]

        return [_claimed(item, lease_until) for item in await self._run(work)]

    async def settle(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return

        def work(db: sqlite3.Connection) -> None:
            with db:
                db.executemany(
                    "UPDATE webhook_deliveries SET state = ?, next_attempt = ?, status = ?, "
                    "error = ?, updated = ? WHERE id = ?",
                    [outcome.row() for outcome in outcomes],
                )

        await self._run(work)

    async def recent(self, limit: int, failures_only: bool = False) -> list[Delivery]:
        where = "WHERE state = 'failed' OR error != ''" if failures_only else ""
        rows = await self._run(
            lambda db: db.execute(
                f"SELECT {COLUMNS} FROM webhook_deliveries {where} "
                "ORDER BY updated DESC, event_id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [from_row(row) for row in rows]

    async def prune(self, older_than: float) -> int:
        def work(db: sqlite3.Connection) -> int:
            with db:
                return db.execute(
                    "DELETE FROM webhook_deliveries WHERE state != 'pending' AND updated < ?",
                    (older_than,),
                ).rowcount

        return await self._run(work)


def _claimed(item: Delivery, lease_until: float) -> Delivery:
    return replace(item, attempts=item.attempts + 1, next_attempt=lease_until)
