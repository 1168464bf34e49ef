"""The journal in an SQLite file beside the embedded index; implements EventJournal."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from bindle_server.events.model import Event
from bindle_server.sqlitedb import SharedConnection

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after a prune
    time   REAL NOT NULL,
    record TEXT NOT NULL  -- Event.to_json(), without the id
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (time);
"""


class SqliteJournal:
    """One connection serialised by a lock, used from worker threads; WAL lets the other
    workers on the data directory read while one appends."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._db = sqlite3.connect(
            location, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        self._connection = SharedConnection(self._db)
        self._db.execute("PRAGMA journal_mode = WAL")
        # NORMAL: a commit survives a crash of the server (the WAL is written before the
        # answer), not a power cut, which may lose the last few events, as it may the
        # last audit lines; FULL would cost an fsync per event (two per push). The
        # invoices and parcels themselves are fsynced by the stores either way.
        self._db.execute("PRAGMA synchronous = NORMAL")
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)

    @property
    def connection(self) -> sqlite3.Connection:
        """The shared connection, for the tables that live beside the journal (webhooks);
        use it only through `run`."""
        return self._db

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._connection.run(work)

    async def append(self, event: Event) -> Event:
        def work(db: sqlite3.Connection) -> int:
            with db:
                cursor = db.execute(
                    "INSERT INTO events (time, record) VALUES (?, ?)", (event.time, event.to_json())
                )
                return int(cursor.lastrowid or 0)

        return replace(event, id=await self.run(work))

    async def after(self, last_id: int, limit: int = 100) -> list[Event]:
        rows = await self.run(
            lambda db: db.execute(
                "SELECT id, record FROM events WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit)
            ).fetchall()
        )
        return [replace(Event.from_dict(json.loads(record)), id=seq) for seq, record in rows]

    async def latest(self) -> int:
        row = await self.run(
            lambda db: db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
            ).fetchone()
        )
        return int(row[0]) if row else 0

    async def prune(self, older_than: float) -> int:
        def work(db: sqlite3.Connection) -> int:
            with db:
                return db.execute("DELETE FROM events WHERE time < ?", (older_than,)).rowcount

        return await self.run(work)

    async def close(self) -> None:
        await self.run(lambda db: db.close())
