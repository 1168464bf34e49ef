"""The journal as a PostgreSQL table beside the index, so every node streams and delivers
what any node recorded; implements EventJournal."""

from __future__ import annotations

import json
from dataclasses import replace

from bindle_server.events.model import Event
from bindle_server.pgpool import Pool

# Applied at open; CREATE ... IF NOT EXISTS keeps it idempotent across nodes starting at once.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id     BIGSERIAL PRIMARY KEY,
    time   DOUBLE PRECISION NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (time);
"""
# Serialises schema creation across nodes (any constant shared by them).
_SCHEMA_LOCK = 0x62696E646C650002


class PostgresJournal:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, conninfo: str) -> PostgresJournal:
        journal = cls(Pool(conninfo, size=4))
        try:
            await journal.pool.apply_schema(_SCHEMA, _SCHEMA_LOCK)
        except BaseException:
            await journal.close()
            raise
        return journal

    async def append(self, event: Event) -> Event:
        async with self.pool.connection() as db:
            cursor = await db.execute(
                "INSERT INTO events (time, record) VALUES (%s, %s) RETURNING id",
                (event.time, event.to_json()),
            )
            row = await cursor.fetchone()
        assert row is not None
        return replace(event, id=int(row[0]))

    async def after(self, last_id: int, limit: int = 100) -> list[Event]:
        async with self.pool.connection() as db:
            cursor = await db.execute(
                "SELECT id, record FROM events WHERE id > %s ORDER BY id LIMIT %s",
                (last_id, limit),
            )
            rows = await cursor.fetchall()
        return [replace(Event.from_dict(json.loads(record)), id=int(seq)) for seq, record in rows]

    async def latest(self) -> int:
        async with self.pool.connection() as db:
            cursor = await db.execute("SELECT COALESCE(MAX(id), 0) FROM events")
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def prune(self, older_than: float) -> int:
        async with self.pool.connection() as db:
            cursor = await db.execute("DELETE FROM events WHERE time < %s", (older_than,))
            return cursor.rowcount

    async def close(self) -> None:
        await self.pool.close()
