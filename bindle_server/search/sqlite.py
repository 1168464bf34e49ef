"""The embedded index: one SQLite file in the data directory; implements search.index.Index."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from bindle_server.search.index import (
    IndexEntry,
    IndexTotals,
    InvoiceState,
    InvoiceStatus,
    LifecycleRow,
)
from bindle_server.search.marks import owner_gone, process_identity, stale_marks
from bindle_server.search.query import Query, QueryPage
from bindle_server.search.sql import (
    LIFECYCLE_SQL,
    SQLITE,
    TOTALS_SQL,
    build_query,
    index_totals,
    lifecycle_row,
    upsert_args,
    upsert_sql,
)
from bindle_server.search.sqlite_schema import (
    SCHEMA,
    SCHEMA_VERSION,
    TABLES,
    TRIGRAM_CHECK,
    TRIGRAM_REBUILD,
    TRIGRAM_SCHEMA,
    TRIGRAM_TRIGGERS,
)
from bindle_server.search.trigrams import RESTRICTION, TrigramCounts
from bindle_server.sqlitedb import SharedConnection

T = TypeVar("T")

# Digests per statement when looking up many parcels (SQLite's variable limit is higher).
_BATCH = 500
log = logging.getLogger(__name__)
# SQLite 3.40 (Debian 12) has no unixepoch('subsec'): from the Julian day instead.
_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


def _batches(items: Sequence[str]) -> Iterator[tuple[list[str], str]]:
    """`items` in slices, each with its `?, ?, ...` marks."""
    for start in range(0, len(items), _BATCH):
        batch = list(items[start : start + _BATCH])
        yield batch, ",".join("?" * len(batch))


class SqliteIndex:
    """The embedded index: one SQLite database file (or ":memory:"); implements Index.

    One connection serialised by a lock and used from worker threads. WAL mode lets other
    server processes on the same data directory read while one writes; `busy_timeout`
    makes concurrent writers across processes wait instead of failing. Every write is a
    `BEGIN IMMEDIATE` transaction, so writers are serialised across processes too: that
    is what makes condemning a parcel and referencing it exclusive.
    """

    def __init__(self, location: str) -> None:
        # Recorded on write marks, condemnations and leases: host:pid:start-time.
        self.owner = process_identity()
        self._db = sqlite3.connect(
            location, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        self._connection = SharedConnection(self._db)
        self._db.execute("PRAGMA journal_mode = WAL")
        # FULL: a pending mark must be on disk before the invoice write it protects.
        self._db.execute("PRAGMA synchronous = FULL")
        # IMMEDIATE: of several processes opening a new index at once, one creates it.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            found_version = self._db.execute("PRAGMA user_version").fetchone()[0]
            # A new index over an existing store must be filled before it answers
            # queries; an index of another schema is derived data: dropped and rebuilt.
            if found_version != SCHEMA_VERSION:
                for table in TABLES:
                    # A SQLite without FTS5 cannot drop name_trigrams: it stays, unfilled
                    # (see _create_trigrams).
                    with contextlib.suppress(sqlite3.OperationalError):
                        self._db.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._trigrams = _create_trigrams(self._db)
            filled = {row[0] for row in self._db.execute("SELECT part FROM filled")}
            self.is_new = "invoices" not in filled
            self.parcels_unknown = "parcels" not in filled
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._connection.run(work)

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in a `BEGIN IMMEDIATE` transaction, committed on return (shared with
        the writes queued alongside it: SharedConnection.write)."""
        return await self._connection.write(work)

    async def begin(self, key: str) -> str:
        token = uuid.uuid4().hex
        await self._write(
            lambda db: db.execute(
                "INSERT INTO pending (token, key, since, owner) VALUES (?, ?, ?, ?)",
                (token, key, time.time(), self.owner),
            )
        )
        return token

    async def begin_many(self, keys: Sequence[str]) -> list[str]:
        tokens = [uuid.uuid4().hex for _ in keys]
        await self._write(
            lambda db: db.executemany(
                "INSERT INTO pending (token, key, since, owner) VALUES (?, ?, ?, ?)",
                [(t, k, time.time(), self.owner) for t, k in zip(tokens, keys, strict=True)],
            )
        )
        return tokens

    async def end(self, token: str) -> None:
        await self._write(lambda db: db.execute("DELETE FROM pending WHERE token = ?", (token,)))

    async def put(self, entry: IndexEntry, token: str | None = None) -> set[str]:
        def work(db: sqlite3.Connection) -> set[str]:
            condemned = _upsert(db, entry)
            if token is not None:
                db.execute("DELETE FROM pending WHERE token = ?", (token,))
            return condemned

        return await self._write(work)

    async def settle(self, key: str, entry: IndexEntry | None, tokens: Sequence[str] = ()) -> None:
        def work(db: sqlite3.Connection) -> None:
            if entry is None:
                _delete(db, key)
            else:
                _upsert(db, entry)
            db.executemany("DELETE FROM pending WHERE token = ?", [(t,) for t in tokens])

        await self._write(work)

    async def stale_marks(self) -> dict[str, list[str]]:
        rows = await self._run(
            lambda db: db.execute("SELECT key, token, since, owner FROM pending").fetchall()
        )
        now = time.time()
        return stale_marks((key, token, now - since, owner) for key, token, since, owner in rows)

    async def query(self, query: Query) -> QueryPage:
        return await self._run(lambda db: _run_query(db, query, self._trigrams))

    async def clear(self) -> None:
        def work(db: sqlite3.Connection) -> None:
            for table in ("invoices", "pending", "refs", "awaiting"):
                db.execute(f"DELETE FROM {table}")
            db.execute("DELETE FROM filled WHERE part = 'invoices'")

        await self._write(work)

    async def mark_filled(self, part: str) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO filled (part) VALUES (?) ON CONFLICT (part) DO NOTHING", (part,)
            )
        )

    async def count(self) -> int:
        row = await self._run(lambda db: db.execute("SELECT count(*) FROM invoices").fetchone())
        return int(row[0])

    async def totals(self) -> IndexTotals:
        def work(db: sqlite3.Connection) -> IndexTotals:
            states = db.execute(TOTALS_SQL[0]).fetchall()
            return index_totals(states, db.execute(TOTALS_SQL[1]).fetchone())

        return await self._run(work)

    async def yanked_by_key(self) -> dict[str, bool]:
        rows = await self._run(lambda db: db.execute("SELECT key, yanked FROM invoices").fetchall())
        return {key: bool(yanked) for key, yanked in rows}

    async def parcel_sizes(self, digests: Sequence[str]) -> dict[str, int]:
        wanted = list(dict.fromkeys(digests))

        def work(db: sqlite3.Connection) -> dict[str, int]:
            sizes: dict[str, int] = {}
            for batch, marks in _batches(wanted):
                rows = db.execute(
                    f"SELECT sha256, size FROM parcels WHERE sha256 IN ({marks})", batch
                )
                sizes.update((sha256, int(size)) for sha256, size in rows)
            return sizes

        return await self._run(work)

    async def add_parcels(self, sizes: Sequence[tuple[str, int]]) -> None:
        await self._write(
            lambda db: db.executemany(
                "INSERT INTO parcels (sha256, size) VALUES (?, ?) "
                "ON CONFLICT (sha256) DO UPDATE SET size = excluded.size",
                sizes,
            )
        )

    async def remove_parcel(self, sha256: str) -> None:
        await self._run(lambda db: db.execute("DELETE FROM parcels WHERE sha256 = ?", (sha256,)))

    async def status(self, key: str) -> InvoiceStatus | None:
        def work(db: sqlite3.Connection) -> InvoiceStatus | None:
            row = db.execute("SELECT state FROM invoices WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            state = InvoiceState(row[0])
            if state is InvoiceState.COMMITTED:
                return InvoiceStatus(state, 0)
            count = db.execute("SELECT count(*) FROM awaiting WHERE key = ?", (key,)).fetchone()
            return InvoiceStatus(state, int(count[0]))

        return await self._run(work)

    async def await_parcels(self, key: str, digests: Sequence[str]) -> None:
        await self._write(
            lambda db: db.executemany(
                "INSERT INTO awaiting (key, sha256) SELECT ?, ? WHERE EXISTS "
                "(SELECT 1 FROM invoices WHERE key = ? AND state <> 'removing') "
                "ON CONFLICT DO NOTHING",
                [(key, sha256, key) for sha256 in digests],
            )
        )

    async def arrived(self, digests: Sequence[str]) -> list[str]:
        wanted = list(dict.fromkeys(digests))

        def awaited(db: sqlite3.Connection) -> bool:
            return any(
                db.execute(
                    f"SELECT 1 FROM awaiting WHERE sha256 IN ({marks}) LIMIT 1", batch
                ).fetchone()
                for batch, marks in _batches(wanted)
            )

        # Most uploads complete nothing pending: answer those without a write transaction.
        if not await self._run(awaited):
            return []

        def work(db: sqlite3.Connection) -> list[str]:
            keys: set[str] = set()
            for batch, marks in _batches(wanted):
                found = db.execute(
                    f"SELECT DISTINCT key FROM awaiting WHERE sha256 IN ({marks})", batch
                )
                keys.update(key for (key,) in found)
                db.execute(f"DELETE FROM awaiting WHERE sha256 IN ({marks})", batch)
            complete = []
            for key in sorted(keys):
                if db.execute("SELECT 1 FROM awaiting WHERE key = ?", (key,)).fetchone():
                    continue
                done = db.execute(
                    f"UPDATE invoices SET touched = {_NOW}, state = 'committed' "
                    "WHERE key = ? AND state <> 'removing' RETURNING key",
                    (key,),
                ).fetchone()
                if done is not None:
                    complete.append(key)
            return complete

        return await self._write(work)

    async def commit(self, key: str) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            changed = db.execute(
                f"UPDATE invoices SET state = 'committed', touched = {_NOW} "
                "WHERE key = ? AND state = 'pending'",
                (key,),
            ).rowcount
            db.execute("DELETE FROM awaiting WHERE key = ?", (key,))
            return changed > 0

        return await self._write(work)

    async def touch(self, key: str) -> None:
        await self._write(
            lambda db: db.execute(
                f"UPDATE invoices SET touched = {_NOW} WHERE key = ? AND state = 'pending'",
                (key,),
            )
        )

    async def claim_expired(self, idle: float) -> list[tuple[str, str]]:
        def work(db: sqlite3.Connection) -> list[tuple[str, str]]:
            keys = [
                key
                for (key,) in db.execute(
                    "UPDATE invoices SET state = 'removing' WHERE state = 'pending' "
                    f"AND touched <= {_NOW} - ? RETURNING key",
                    (idle,),
                )
            ]
            claimed = [(key, uuid.uuid4().hex) for key in sorted(keys)]
            db.executemany(
                "INSERT INTO pending (token, key, since, owner) VALUES (?, ?, ?, ?)",
                [(token, key, time.time(), self.owner) for key, token in claimed],
            )
            return claimed

        return await self._write(work)

    async def remove(self, removals: Sequence[tuple[str, str | None]]) -> None:
        def work(db: sqlite3.Connection) -> None:
            for key, token in removals:
                _delete(db, key)
                if token is not None:
                    db.execute("DELETE FROM pending WHERE token = ?", (token,))

        await self._write(work)

    async def lifecycle_rows(self) -> list[LifecycleRow]:
        rows = await self._run(lambda db: db.execute(LIFECYCLE_SQL.format(now=_NOW)).fetchall())
        return [lifecycle_row(row) for row in rows]

    async def unreferenced(self, digests: Sequence[str]) -> set[str]:
        wanted = list(dict.fromkeys(digests))
        referenced = await self._run(lambda db: _referenced(db, wanted))
        return set(wanted) - referenced

    async def condemn(self, digests: Sequence[str]) -> list[str]:
        wanted = list(dict.fromkeys(digests))

        def work(db: sqlite3.Connection) -> list[str]:
            referenced = _referenced(db, wanted)
            doomed = [sha256 for sha256 in wanted if sha256 not in referenced]
            db.executemany(
                "INSERT OR REPLACE INTO condemned (sha256, since, owner) VALUES (?, ?, ?)",
                [(sha256, time.time(), self.owner) for sha256 in doomed],
            )
            return doomed

        return await self._write(work)

    async def condemned(self, digests: Sequence[str]) -> set[str]:
        wanted = list(dict.fromkeys(digests))
        return await self._run(lambda db: _live_condemned(db, wanted))

    async def release(self, digests: Sequence[str]) -> None:
        def work(db: sqlite3.Connection) -> None:
            for batch, marks in _batches(list(digests)):
                db.execute(f"DELETE FROM condemned WHERE sha256 IN ({marks})", batch)

        await self._write(work)

    async def stale_condemned(self) -> list[str]:
        rows = await self._run(
            lambda db: db.execute("SELECT sha256, since, owner FROM condemned").fetchall()
        )
        now = time.time()
        return sorted(sha for sha, since, owner in rows if owner_gone(owner, now - since))

    async def acquire_lease(self, name: str) -> str | None:
        def work(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT owner, since FROM leases WHERE name = ?", (name,)).fetchone()
            now = time.time()
            if row is not None and row[0] != self.owner and not owner_gone(row[0], now - row[1]):
                return str(row[0])
            db.execute(
                "INSERT OR REPLACE INTO leases (name, owner, since) VALUES (?, ?, ?)",
                (name, self.owner, now),
            )
            return None

        return await self._write(work)

    async def renew_lease(self, name: str) -> None:
        await self._write(
            lambda db: db.execute(
                "UPDATE leases SET since = ? WHERE name = ? AND owner = ?",
                (time.time(), name, self.owner),
            )
        )

    async def release_lease(self, name: str) -> None:
        await self._write(
            lambda db: db.execute(
                "DELETE FROM leases WHERE name = ? AND owner = ?", (name, self.owner)
            )
        )

    async def close(self) -> None:
        await self._run(lambda db: db.close())


def _upsert(db: sqlite3.Connection, entry: IndexEntry) -> set[str]:
    db.execute(upsert_sql(SQLITE, _NOW), upsert_args(entry))
    if entry.parcels is None:
        return set()
    db.execute("DELETE FROM refs WHERE key = ?", (entry.key,))
    db.executemany(
        "INSERT OR IGNORE INTO refs (key, sha256) VALUES (?, ?)",
        [(entry.key, sha256) for sha256 in entry.parcels],
    )
    db.execute("DELETE FROM awaiting WHERE key = ?", (entry.key,))
    db.executemany(
        "INSERT OR IGNORE INTO awaiting (key, sha256) VALUES (?, ?)",
        [(entry.key, sha256) for sha256 in entry.awaiting],
    )
    return _live_condemned(db, list(dict.fromkeys(entry.parcels)))


def _delete(db: sqlite3.Connection, key: str) -> None:
    for table in ("invoices", "refs", "awaiting"):
        db.execute(f"DELETE FROM {table} WHERE key = ?", (key,))


def _referenced(db: sqlite3.Connection, digests: list[str]) -> set[str]:
    found: set[str] = set()
    for batch, marks in _batches(digests):
        rows = db.execute(f"SELECT DISTINCT sha256 FROM refs WHERE sha256 IN ({marks})", batch)
        found.update(sha256 for (sha256,) in rows)
    return found


def _live_condemned(db: sqlite3.Connection, digests: list[str]) -> set[str]:
    if not digests or db.execute("SELECT 1 FROM condemned LIMIT 1").fetchone() is None:
        return set()
    now = time.time()
    found: set[str] = set()
    for batch, marks in _batches(digests):
        rows = db.execute(
            f"SELECT sha256, since, owner FROM condemned WHERE sha256 IN ({marks})", batch
        )
        found.update(sha for sha, since, owner in rows if not owner_gone(owner, now - since))
    return found


def _create_trigrams(db: sqlite3.Connection) -> TrigramCounts | None:
    """Create the name trigram table and its triggers, fill it unless `filled` says it is
    in step, and return its counts; None where this SQLite cannot use it: queries scan."""
    db.execute("SAVEPOINT trigrams")
    try:
        for statement in TRIGRAM_SCHEMA:
            db.execute(statement)
        db.execute(TRIGRAM_CHECK).fetchall()
    except sqlite3.OperationalError as error:
        db.execute("ROLLBACK TO trigrams")
        db.execute("RELEASE trigrams")
        # A table that another SQLite made stays, without the triggers that would fail
        # every write here; the next SQLite that can read it refills it.
        for trigger in TRIGRAM_TRIGGERS:
            db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        db.execute("DELETE FROM filled WHERE part = 'trigrams'")
        log.warning("name search scans every invoice: no FTS5 trigram tokenizer (%s)", error)
        return None
    db.execute("RELEASE trigrams")
    if db.execute("SELECT 1 FROM filled WHERE part = 'trigrams'").fetchone() is None:
        db.execute(TRIGRAM_REBUILD)
        db.execute("INSERT INTO filled (part) VALUES ('trigrams')")
    return TrigramCounts()


def _run_query(db: sqlite3.Connection, query: Query, trigrams: TrigramCounts | None) -> QueryPage:
    match = None if trigrams is None else trigrams.match(db, query.terms)
    statements = build_query(query, SQLITE, None if match is None else (RESTRICTION, match))
    if statements.page is None:
        total = _count(db, statements.count, statements.count_args)
        return QueryPage(total=total, documents=[], toml_entries=[])
    # The page first: a page that is not full and not empty, or the first page when it is
    # not full, says how many match without counting them. Counting scans every candidate
    # row, as a page with few matches does too: a query of one match scanned twice.
    rows = db.execute(statements.page, statements.page_args).fetchall()
    documents = [row[0] for row in rows]
    toml_entries = [row[1] for row in rows]
    if len(rows) < query.limit and (rows or query.offset == 0):
        total = query.offset + len(rows)
    else:
        total = _count(db, statements.count, statements.count_args)
    return QueryPage(total=total, documents=documents, toml_entries=toml_entries)


def _count(db: sqlite3.Connection, sql: str, args: Sequence[str | int]) -> int:
    return int(db.execute(sql, args).fetchone()[0])
