"""The query index on PostgreSQL (psycopg 3, async): the same Index as SqliteIndex, shared
by every server node that points at one database.

The schema is versioned: `schema_migrations` lists the migrations applied, and start-up
applies the missing ones under a transaction-scoped advisory lock, so that nodes starting
together neither race nor apply one twice. Every compared or ordered text column is
`COLLATE "C"`: results and SemVer bounds need byte order, not the database's locale.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from bindle_server.pgpool import Connection, Pool
from bindle_server.search.index import (
    IndexEntry,
    IndexTotals,
    InvoiceState,
    InvoiceStatus,
    LifecycleRow,
)
from bindle_server.search.marks import owner_gone, process_identity, stale_marks
from bindle_server.search.postgres_schema import MIGRATIONS
from bindle_server.search.query import Query, QueryPage
from bindle_server.search.sql import (
    LIFECYCLE_SQL,
    POSTGRES,
    TOTALS_SQL,
    build_query,
    index_totals,
    lifecycle_row,
    upsert_args,
    upsert_sql,
)

# Any constant shared by every node; names the lock that serialises migrations.
_MIGRATION_LOCK = 0x62696E646C65  # "bindle"
# Recording references takes it shared, condemning parcels exclusive: under READ
# COMMITTED the two would otherwise each miss the other's uncommitted rows (write skew).
_REFERENCE_LOCK = 0x62696E646C66

_NOW = "extract(epoch FROM clock_timestamp())"


class PostgresIndex:
    """Index on a PostgreSQL database; implements Index. Open it with `PostgresIndex.open`."""

    def __init__(self, conninfo: str, pool_size: int = 8) -> None:
        # Recorded on write marks, condemnations and leases: host:pid:start-time.
        self.owner = process_identity()
        self._pool = Pool(conninfo, pool_size)
        self._connection = self._pool.connection
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

    async def begin(self, key: str) -> str:
        token = uuid.uuid4().hex
        async with self._connection() as db:
            await db.execute(
                f"INSERT INTO pending (token, key, since, owner) VALUES (%s, %s, {_NOW}, %s)",
                (token, key, self.owner),
            )
        return token

    async def begin_many(self, keys: Sequence[str]) -> list[str]:
        tokens = [uuid.uuid4().hex for _ in keys]
        async with self._connection() as db:
            await db.execute(
                "INSERT INTO pending (token, key, since, owner) "
                f"SELECT unnest(%s::text[]), unnest(%s::text[]), {_NOW}, %s",
                (tokens, list(keys), self.owner),
            )
        return tokens

    async def end(self, token: str) -> None:
        async with self._connection() as db:
            await db.execute("DELETE FROM pending WHERE token = %s", (token,))

    async def put(self, entry: IndexEntry, token: str | None = None) -> set[str]:
        async with self._connection() as db, db.transaction():
            condemned = await self._upsert(db, entry)
            if token is not None:
                await db.execute("DELETE FROM pending WHERE token = %s", (token,))
        return condemned

    async def settle(self, key: str, entry: IndexEntry | None, tokens: Sequence[str] = ()) -> None:
        async with self._connection() as db, db.transaction():
            if entry is None:
                await _delete(db, key)
            else:
                await self._upsert(db, entry)
            await db.execute("DELETE FROM pending WHERE token = ANY(%s)", (list(tokens),))

    async def _upsert(self, db: Connection, entry: IndexEntry) -> set[str]:
        await db.execute(upsert_sql(POSTGRES, _NOW), upsert_args(entry))
        if entry.parcels is None:
            return set()
        await db.execute("SELECT pg_advisory_xact_lock_shared(%s)", (_REFERENCE_LOCK,))
        parcels = list(dict.fromkeys(entry.parcels))
        await db.execute("DELETE FROM refs WHERE key = %s", (entry.key,))
        await db.execute(
            "INSERT INTO refs (key, sha256) SELECT %s, unnest(%s::text[]) ON CONFLICT DO NOTHING",
            (entry.key, parcels),
        )
        await db.execute("DELETE FROM awaiting WHERE key = %s", (entry.key,))
        await db.execute(
            "INSERT INTO awaiting (key, sha256) SELECT %s, unnest(%s::text[]) "
            "ON CONFLICT DO NOTHING",
            (entry.key, list(dict.fromkeys(entry.awaiting))),
        )
        return await _live_condemned(db, parcels)

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
                "SELECT counted.total, page.document, page.toml_entry "
                f"FROM ({statements.count}) AS counted(total) "
                f"LEFT JOIN LATERAL ({statements.page}) AS page ON true "
                'ORDER BY page.bindle_id COLLATE "C"'
            )
            args = [*statements.count_args, *statements.page_args]
        async with self._connection() as db:
            cursor = await db.execute(sql, args)
            rows = await cursor.fetchall()
        total = int(rows[0][0]) if rows else 0
        page = [row for row in rows if len(row) > 1 and row[1] is not None]
        return QueryPage(
            total=total, documents=[row[1] for row in page], toml_entries=[row[2] for row in page]
        )

    async def clear(self) -> None:
        async with self._connection() as db, db.transaction():
            for table in ("invoices", "pending", "refs", "awaiting"):
                await db.execute(f"DELETE FROM {table}")
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

    async def totals(self) -> IndexTotals:
        async with self._connection() as db:
            states = await (await db.execute(TOTALS_SQL[0])).fetchall()
            parcels = await (await db.execute(TOTALS_SQL[1])).fetchone()
        return index_totals([(s, n) for s, n in states], parcels)

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

    async def status(self, key: str) -> InvoiceStatus | None:
        async with self._connection() as db:
            cursor = await db.execute(
                "SELECT state, (SELECT count(*) FROM awaiting a WHERE a.key = i.key) "
                "FROM invoices i WHERE key = %s",
                (key,),
            )
            row = await cursor.fetchone()
        return None if row is None else InvoiceStatus(InvoiceState(row[0]), int(row[1]))

    async def await_parcels(self, key: str, digests: Sequence[str]) -> None:
        async with self._connection() as db:
            await db.execute(
                "INSERT INTO awaiting (key, sha256) SELECT %s, unnest(%s::text[]) WHERE EXISTS "
                "(SELECT 1 FROM invoices WHERE key = %s AND state <> 'removing') "
                "ON CONFLICT DO NOTHING",
                (key, list(dict.fromkeys(digests)), key),
            )

    async def arrived(self, digests: Sequence[str]) -> list[str]:
        wanted = list(dict.fromkeys(digests))
        async with self._connection() as db:
            cursor = await db.execute(
                "SELECT 1 FROM awaiting WHERE sha256 = ANY(%s) LIMIT 1", (wanted,)
            )
            if await cursor.fetchone() is None:
                return []
            async with db.transaction():
                # Uploads of an invoice's last two parcels run at once: each deletes its own
                # row, and under READ COMMITTED each would still see the other's. Locking
                # the invoices first serialises them, and the statements below then see
                # what the first committed: the second learns the invoice is complete.
                await db.execute(
                    "SELECT key FROM invoices WHERE key IN "
                    "(SELECT key FROM awaiting WHERE sha256 = ANY(%s)) ORDER BY key FOR UPDATE",
                    (wanted,),
                )
                cursor = await db.execute(
                    "DELETE FROM awaiting WHERE sha256 = ANY(%s) RETURNING key", (wanted,)
                )
                keys = sorted({key for (key,) in await cursor.fetchall()})
                cursor = await db.execute(
                    f"UPDATE invoices i SET touched = {_NOW}, state = 'committed' "
                    "WHERE key = ANY(%s) AND state <> 'removing' AND NOT EXISTS "
                    "(SELECT 1 FROM awaiting a WHERE a.key = i.key) RETURNING key",
                    (keys,),
                )
                rows = await cursor.fetchall()
        return sorted(key for (key,) in rows)

    async def commit(self, key: str) -> bool:
        async with self._connection() as db, db.transaction():
            cursor = await db.execute(
                f"UPDATE invoices SET state = 'committed', touched = {_NOW} "
                "WHERE key = %s AND state = 'pending'",
                (key,),
            )
            await db.execute("DELETE FROM awaiting WHERE key = %s", (key,))
            return cursor.rowcount > 0

    async def touch(self, key: str) -> None:
        async with self._connection() as db:
            await db.execute(
                f"UPDATE invoices SET touched = {_NOW} WHERE key = %s AND state = 'pending'",
                (key,),
            )

    async def claim_expired(self, idle: float) -> list[tuple[str, str]]:
        async with self._connection() as db, db.transaction():
            cursor = await db.execute(
                "UPDATE invoices SET state = 'removing' WHERE state = 'pending' "
                f"AND touched <= {_NOW} - %s RETURNING key",
                (idle,),
            )
            claimed = [(key, uuid.uuid4().hex) for (key,) in await cursor.fetchall()]
            for key, token in sorted(claimed):
                await db.execute(
                    f"INSERT INTO pending (token, key, since, owner) VALUES (%s, %s, {_NOW}, %s)",
                    (token, key, self.owner),
                )
        return sorted(claimed)

    async def remove(self, removals: Sequence[tuple[str, str | None]]) -> None:
        keys = [key for key, _ in removals]
        tokens = [token for _, token in removals if token is not None]
        async with self._connection() as db, db.transaction():
            for table in ("invoices", "refs", "awaiting"):
                await db.execute(f"DELETE FROM {table} WHERE key = ANY(%s)", (keys,))
            await db.execute("DELETE FROM pending WHERE token = ANY(%s)", (tokens,))

    async def lifecycle_rows(self) -> list[LifecycleRow]:
        async with self._connection() as db:
            cursor = await db.execute(LIFECYCLE_SQL.format(now=_NOW))
            rows = await cursor.fetchall()
        return [lifecycle_row(row) for row in rows]

    async def unreferenced(self, digests: Sequence[str]) -> set[str]:
        wanted = list(dict.fromkeys(digests))
        async with self._connection() as db:
            referenced = await _referenced(db, wanted)
        return set(wanted) - referenced

    async def condemn(self, digests: Sequence[str]) -> list[str]:
        wanted = list(dict.fromkeys(digests))
        async with self._connection() as db, db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock(%s)", (_REFERENCE_LOCK,))
            referenced = await _referenced(db, wanted)
            doomed = [sha256 for sha256 in wanted if sha256 not in referenced]
            await db.execute(
                "INSERT INTO condemned (sha256, since, owner) "
                f"SELECT unnest(%s::text[]), {_NOW}, %s "
                "ON CONFLICT (sha256) DO UPDATE SET since = excluded.since, owner = excluded.owner",
                (doomed, self.owner),
            )
        return doomed

    async def condemned(self, digests: Sequence[str]) -> set[str]:
        async with self._connection() as db:
            return await _live_condemned(db, list(dict.fromkeys(digests)))

    async def release(self, digests: Sequence[str]) -> None:
        async with self._connection() as db:
            await db.execute("DELETE FROM condemned WHERE sha256 = ANY(%s)", (list(digests),))

    async def stale_condemned(self) -> list[str]:
        async with self._connection() as db:
            cursor = await db.execute(f"SELECT sha256, {_NOW} - since, owner FROM condemned")
            rows = await cursor.fetchall()
        return sorted(sha for sha, age, owner in rows if owner_gone(owner, float(age)))

    async def acquire_lease(self, name: str) -> str | None:
        async with self._connection() as db, db.transaction():
            await db.execute(
                f"INSERT INTO leases (name, owner, since) VALUES (%s, %s, {_NOW}) "
                "ON CONFLICT (name) DO NOTHING",
                (name, self.owner),
            )
            cursor = await db.execute(
                f"SELECT owner, {_NOW} - since FROM leases WHERE name = %s FOR UPDATE", (name,)
            )
            row = await cursor.fetchone()
            if row is not None and row[0] != self.owner and not owner_gone(row[0], row[1]):
                return str(row[0])
            await db.execute(
                f"UPDATE leases SET owner = %s, since = {_NOW} WHERE name = %s",
                (self.owner, name),
            )
        return None

    async def renew_lease(self, name: str) -> None:
        async with self._connection() as db:
            await db.execute(
                f"UPDATE leases SET since = {_NOW} WHERE name = %s AND owner = %s",
                (name, self.owner),
            )

    async def release_lease(self, name: str) -> None:
        async with self._connection() as db:
            await db.execute(
                "DELETE FROM leases WHERE name = %s AND owner = %s", (name, self.owner)
            )

    async def close(self) -> None:
        await self._pool.close()


async def _delete(db: Connection, key: str) -> None:
    for table in ("invoices", "refs", "awaiting"):
        await db.execute(f"DELETE FROM {table} WHERE key = %s", (key,))


async def _referenced(db: Connection, digests: list[str]) -> set[str]:
    cursor = await db.execute("SELECT DISTINCT sha256 FROM refs WHERE sha256 = ANY(%s)", (digests,))
    return {sha256 for (sha256,) in await cursor.fetchall()}


async def _live_condemned(db: Connection, digests: list[str]) -> set[str]:
    if not digests:
        return set()
    cursor = await db.execute(
        f"SELECT sha256, {_NOW} - since, owner FROM condemned WHERE sha256 = ANY(%s)",
        (digests,),
    )
    rows = await cursor.fetchall()
    return {sha for sha, age, owner in rows if not owner_gone(owner, float(age))}
