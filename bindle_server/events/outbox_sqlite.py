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

T = TypeVar("T")


class SqliteOutbox:
    def __init__(self, journal: SqliteJournal) -> None:
        self._journal = journal

    @classmethod
    async def open(cls, journal: SqliteJournal) -> SqliteOutbox:
        def create(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)

        await journal.run(create)
        return cls(journal)

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def relaxed(db: sqlite3.Connection) -> T:
            # The outbox need not wait for the disk as the journal does: a power cut loses
            # the last transactions whole, so a queueing goes with its cursor move (and is
            # queued again from the journal) and a lost outcome means one more attempt.
            db.execute("PRAGMA synchronous = NORMAL")
            try:
                return work(db)
            finally:
                db.execute("PRAGMA synchronous = FULL")

        return await self._journal.run(relaxed)

    async def start(self, webhooks: Sequence[str], position: int) -> None:
        def work(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "INSERT OR IGNORE INTO webhook_cursors (webhook, position) VALUES (?, ?)",
                    [(name, position) for name in webhooks],
                )

        await self._write(work)

    async def cursors(self) -> dict[str, int]:
        rows = await self._journal.run(
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

        await self._write(work)

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

        return [_claimed(item, lease_until) for item in await self._write(work)]

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

        await self._write(work)

    async def recent(self, limit: int, failures_only: bool = False) -> list[Delivery]:
        where = "WHERE state = 'failed' OR error != ''" if failures_only else ""
        rows = await self._journal.run(
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

        return await self._write(work)


def _claimed(item: Delivery, lease_until: float) -> Delivery:
    return replace(item, attempts=item.attempts + 1, next_attempt=lease_until)
