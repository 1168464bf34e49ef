"""The webhook outbox as tables beside the journal's in PostgreSQL; implements Outbox.

Every node shares it: a claim is one UPDATE over rows picked `FOR UPDATE SKIP LOCKED`,
so nodes claiming at once take different deliveries without waiting for each other.
"""

from __future__ import annotations

from collections.abc import Sequence

from bindle_server.events.outbox import COLUMNS, SCHEMA, Delivery, Outcome, delivery_row, from_row
from bindle_server.pgpool import Pool

# Serialises schema creation across nodes; the journal's lock is ...0002.
_SCHEMA_LOCK = 0x62696E646C650003


class PostgresOutbox:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, pool: Pool) -> PostgresOutbox:
        await pool.apply_schema(SCHEMA, _SCHEMA_LOCK)
        return cls(pool)

    async def start(self, webhooks: Sequence[str], position: int) -> None:
        async with self._pool.connection() as db, db.transaction():
            for name in webhooks:
                await db.execute(
                    "INSERT INTO webhook_cursors (webhook, position) VALUES (%s, %s) "
                    "ON CONFLICT (webhook) DO NOTHING",
                    (name, position),
                )

    async def cursors(self) -> dict[str, int]:
        async with self._pool.connection() as db:
            cursor = await db.execute("SELECT webhook, position FROM webhook_cursors")
            rows = await cursor.fetchall()
        return {str(name): int(position) for name, position in rows}

    async def enqueue(self, webhook: str, deliveries: Sequence[Delivery], position: int) -> None:
        async with self._pool.connection() as db, db.transaction():
            async with db.cursor() as cursor:
                await cursor.executemany(
                    f"INSERT INTO webhook_deliveries ({COLUMNS}) VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (webhook, event_id) DO NOTHING",
                    [delivery_row(item) for item in deliveries],
                )
            await db.execute(
                "UPDATE webhook_cursors SET position = GREATEST(position, %s) WHERE webhook = %s",
                (position, webhook),
            )

    async def claim(
        self, webhooks: Sequence[str], now: float, lease_until: float, limit: int
    ) -> list[Delivery]:
        if not webhooks or limit <= 0:
            return []
        async with self._pool.connection() as db:
            cursor = await db.execute(
                "UPDATE webhook_deliveries SET next_attempt = %s, attempts = attempts + 1 "
                "WHERE id IN (SELECT id FROM webhook_deliveries WHERE state = 'pending' "
                "AND next_attempt <= %s AND webhook = ANY(%s) "
                "ORDER BY next_attempt, event_id LIMIT %s FOR UPDATE SKIP LOCKED) "
                f"RETURNING {COLUMNS}",
                (lease_until, now, list(webhooks), limit),
            )
            rows = await cursor.fetchall()
        return sorted((from_row(row) for row in rows), key=lambda item: item.event_id)

    async def settle(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        async with self._pool.connection() as db, db.cursor() as cursor:
            await cursor.executemany(
                "UPDATE webhook_deliveries SET state = %s, next_attempt = %s, status = %s, "
                "error = %s, updated = %s WHERE id = %s",
                [outcome.row() for outcome in outcomes],
            )

    async def recent(self, limit: int, failures_only: bool = False) -> list[Delivery]:
        where = "WHERE state = 'failed' OR error != ''" if failures_only else ""
        async with self._pool.connection() as db:
            cursor = await db.execute(
                f"SELECT {COLUMNS} FROM webhook_deliveries {where} "
                "ORDER BY updated DESC, event_id DESC LIMIT %s",
                (limit,),
            )
            rows = await cursor.fetchall()
        return [from_row(row) for row in rows]

    async def prune(self, older_than: float) -> int:
        async with self._pool.connection() as db:
            cursor = await db.execute(
                "DELETE FROM webhook_deliveries WHERE state != 'pending' AND updated < %s",
                (older_than,),
            )
            return cursor.rowcount

    async def close(self) -> None:
        return None  # the pool is the journal's
