"""A small pool of autocommit PostgreSQL connections, shared by the index and the journal.

psycopg_pool would be one more dependency for the dozen lines this needs: a bounded set
of connections, and a connection interrupted mid-statement is closed rather than reused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus

Connection = AsyncConnection[tuple[Any, ...]]


class Pool:
    def __init__(self, conninfo: str, size: int = 8) -> None:
        self.conninfo = conninfo
        self._slots = anyio.Semaphore(size)
        self._idle: list[Connection] = []

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection of the pool (autocommit; use `transaction()` for several statements)."""
        async with self._slots:
            db = self._idle.pop() if self._idle else await self._connect()
            try:
                yield db
            finally:
                if db.closed or db.info.transaction_status != TransactionStatus.IDLE:
                    # Interrupted mid-statement or broken: not safe to hand out again.
                    with anyio.CancelScope(shield=True):
                        await db.close()
                else:
                    self._idle.append(db)

    async def apply_schema(self, schema: str, lock: int) -> None:
        """Run `schema` (idempotent statements) in one transaction under the advisory lock
        `lock`, so that processes and nodes starting at once do not race to create it."""
        async with self.connection() as db, db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            await db.execute(schema.encode())

    async def _connect(self) -> Connection:
        return await AsyncConnection.connect(self.conninfo, autocommit=True)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for db in idle:
            await db.close()
