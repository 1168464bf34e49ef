"""The query index on PostgreSQL (psycopg 3, async): the same Index as SqliteIndex, shared
by every server node that points at one database.

The schema is versioned: `schema_migrations` lists the migrations applied, and start-up
applies the missing ones under a transaction-scoped advisory lock, so that nodes starting
together neither race nor apply one twice. Every compared or ordered text column is
`COLLATE "C"`: results and SemVer bounds need byte order, not the database's locale.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus

from bindle_server.search.index import IndexEntry
from bindle_server.search.marks import process_identity, stale_marks
from bindle_server.search.query import Query, QueryPage
from bindle_server.search.sql import POSTGRES, build_query, upsert_args, upsert_sql

Connection = AsyncConnection[tuple[Any, ...]]

# Any constant shared by every node; names the lock that serialises migrations.
_MIGRATION_LOCK = 0x62696E646C65  # "bindle"

MIGRATIONS: tuple[str, ...] = (
    # 1: the invoices and the pending marks, as in the SQLite index.
    """
    CREATE TABLE invoices (
        key       TEXT COLLATE "C" PRIMARY KEY,
        bindle_id TEXT COLLATE "C" NOT NULL,
        name      TEXT COLLATE "C" NOT NULL,
        yanked    INTEGER NOT NULL,
        vkey      TEXT COLLATE "C" NOT NULL,
        vcore     TEXT COLLATE "C" NOT NULL,
        vpre      INTEGER NOT NULL,
        vbuild    TEXT COLLATE "C" NOT NULL,
        document  TEXT NOT NULL
    );
    CREATE INDEX invoices_by_id
        ON invoices (bindle_id, yanked, name, vkey, vcore, vpre, vbuild);
    CREATE TABLE pending (
        token TEXT PRIMARY KEY,
        key   TEXT COLLATE "C" NOT NULL,
        since DOUBLE PRECISION NOT NULL,  -- the database's clock, shared by every node
        owner TEXT NOT NULL
    );
    """,
    # 2: which parcels the (remote) store holds: `missing` is one query (backend.py).
    """
    CREATE TABLE parcels (
        sha256 TEXT COLLATE "C" PRIMARY KEY,
        size   BIGINT NOT NULL
    );
    """,
    # 3: which parts a rebuild filled to its end (see index.py): rebuilt at start otherwise.
    """
    CREATE TABLE filled (
        part TEXT PRIMARY KEY
    );
    """,
)

_NOW = "extract(epoch FROM clock_timestamp())"


class PostgresIndex:
    """Index on a PostgreSQL database; implements Index. Open it with `PostgresIndex.open`."""

    def __init__(self, conninfo: str, pool_size: int = 8) -> None:
        self._conninfo = conninfo
        self._slots = anyio.Semaphore(pool_size)
        self._idle: list[Connection] = []
        self.is_new = False
        self.parcels_unknown = False

    @classmethod
    async def open(cls, conninfo: str, pool_size: int = 8) -> PostgresIndex:
        """Connect, bring the schema up to date and read which parts are filled."""
        index = cls(conninfo, pool_size)
        await index.migrate()
        async with index._connection() as db:
            cursor = await db.execute("SELECT part FROM filled")
            filled = {part for (part,) in await cursor.fetchall()}
        index.is_new = "invoices" not in filled
        index.parcels_unknown = "parcels" not in filled
        return index

    async def migrate(self) -> list[int]:
        """Apply the migrations the database lacks; return the versions applied."""
        applied: list[int] = []
        async with self._connection() as db, db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            cursor = await db.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cursor.fetchall()}
            for version, script in enumerate(MIGRATIONS, start=1):
                if version in done:
                    continue
                await db.execute(script)
                await db.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                applied.append(version)
        return applied

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
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

    async def _connect(self) -> Connection:
        return await AsyncConnection.connect(self._conninfo, autocommit=True)

    async def begin(self, key: str) -> str:
        token = uuid.uuid4().hex
        async with self._connection() as db:
            await db.execute(
                f"INSERT INTO pending (token, key, since, owner) VALUES (%s, %s, {_NOW}, %s)",
                (token, key, process_identity()),
            )
        return token

    async def end(self, token: str) -> None:
        async with self._connection() as db:
            await db.execute("DELETE FROM pending WHERE token = %s", (token,))

    async def put(self, entry: IndexEntry, token: str | None = None) -> None:
        async with self._connection() as db, db.transaction():
            await db.execute(upsert_sql(POSTGRES), upsert_args(entry))
            if token is not None:
                await db.execute("DELETE FROM pending WHERE token = %s", (token,))

    async def settle(self, key: str, entry: IndexEntry | None, tokens: Sequence[str] = ()) -> None:
        async with self._connection() as db, db.transaction():
            if entry is None:
                await db.execute("DELETE FROM invoices WHERE key = %s", (key,))
            else:
                await db.execute(upsert_sql(POSTGRES), upsert_args(entry))
            await db.execute("DELETE FROM pending WHERE token = ANY(%s)", (list(tokens),))

    async def stale_marks(self) -> dict[str, list[str]]:
        async with self._connection() as db:
            cursor = await db.execute(f"SELECT key, token, {_NOW} - since, owner FROM pending")
            rows = await cursor.fetchall()
        return stale_marks((key, token, float(age), owner) for key, token, age, owner in rows)

    async def query(self, query: Query) -> QueryPage:
        statements = build_query(query, POSTGRES)
        if statements.page is None:
            sql, args = statements.count, statements.count_args
        else:
            # Count and page in one statement: one snapshot for both without a transaction,
            # and one round trip instead of five. The LEFT JOIN keeps the total when the
            # page is empty (an offset past the end).
            sql = (
                f"SELECT counted.total, page.document FROM ({statements.count}) AS "
                f"counted(total) LEFT JOIN LATERAL ({statements.page}) AS page ON true "
                'ORDER BY page.bindle_id COLLATE "C"'
            )
            args = [*statements.count_args, *statements.page_args]
        async with self._connection() as db:
            cursor = await db.execute(sql, args)
            rows = await cursor.fetchall()
        total = int(rows[0][0]) if rows else 0
        documents = [row[1] for row in rows if len(row) > 1 and row[1] is not None]
        return QueryPage(total=total, documents=documents)

    async def clear(self) -> None:
        async with self._connection() as db, db.transaction():
            await db.execute("DELETE FROM invoices")
            await db.execute("DELETE FROM pending")
            await db.execute("DELETE FROM filled WHERE part = 'invoices'")

    async def mark_filled(self, part: str) -> None:
        async with self._connection() as db:
            await db.execute(
                "INSERT INTO filled (part) VALUES (%s) ON CONFLICT (part) DO NOTHING", (part,)
            )

    async def count(self) -> int:
        async with self._connection() as db:
            cursor = await db.execute("SELECT count(*) FROM invoices")
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def yanked_by_key(self) -> dict[str, bool]:
        async with self._connection() as db:
            cursor = await db.execute("SELECT key, yanked FROM invoices")
            rows = await cursor.fetchall()
        return {key: bool(yanked) for key, yanked in rows}

    async def parcel_sizes(self, digests: Sequence[str]) -> dict[str, int]:
        wanted = list(dict.fromkeys(digests))
        if not wanted:
            return {}
        async with self._connection() as db:
            cursor = await db.execute(
                "SELECT sha256, size FROM parcels WHERE sha256 = ANY(%s)", (wanted,)
            )
            rows = await cursor.fetchall()
        return {sha256: int(size) for sha256, size in rows}

    async def add_parcels(self, sizes: Sequence[tuple[str, int]]) -> None:
        if not sizes:
            return
        async with self._connection() as db, db.transaction(), db.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO parcels (sha256, size) VALUES (%s, %s) "
                "ON CONFLICT (sha256) DO UPDATE SET size = excluded.size",
                list(sizes),
            )

    async def remove_parcel(self, sha256: str) -> None:
        async with self._connection() as db:
            await db.execute("DELETE FROM parcels WHERE sha256 = %s", (sha256,))

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for db in idle:
            await db.close()
