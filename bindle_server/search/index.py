"""The query index: what `_q` searches, persistent and derived from the invoice store.

The embedded default is SQLite (standard library) in the data directory, so start-up does
not read every invoice (the reference does) and a query does not scan the invoice files.
The invoice files stay the source of truth: `bindle-server reindex` rebuilds the index
from them, and writes mark their key as pending first, so that a crash between writing an
invoice and indexing it is repaired at the next start (BindleService.recover).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import anyio

from bindle_server.search.marks import process_identity, stale_marks
from bindle_server.search.query import Query, QueryPage
from bindle_server.search.sql import SQLITE, build_query, upsert_args, upsert_sql

T = TypeVar("T")

SCHEMA_VERSION = 5
_SCHEMA = """
CREATE TABLE IF NOT EXISTS invoices (
    key       TEXT PRIMARY KEY,
    bindle_id TEXT NOT NULL,  -- NAME/VERSION: results come in its byte order
    name      TEXT NOT NULL,
    yanked    INTEGER NOT NULL,
    vkey      TEXT NOT NULL,  -- Version.ordinal: SemVer precedence as string order
    vcore     TEXT NOT NULL,  -- MAJOR.MINOR.PATCH
    vpre      INTEGER NOT NULL,
    vbuild    TEXT NOT NULL,
    document  TEXT NOT NULL
);
-- Covers every filter and the ordering, so queries scan this narrow index rather than
-- the table rows with their documents.
CREATE INDEX IF NOT EXISTS invoices_by_id
    ON invoices (bindle_id, yanked, name, vkey, vcore, vpre, vbuild);
CREATE TABLE IF NOT EXISTS pending (
    token TEXT PRIMARY KEY,
    key   TEXT NOT NULL,
    since REAL NOT NULL,
    owner TEXT NOT NULL     -- host:pid:start-time of the process doing the write
);
-- Which parcels a remote store holds, so that `missing` is one query, not a request per
-- parcel (see backend.IndexedParcels). Unused on local disk, where a stat is cheaper.
CREATE TABLE IF NOT EXISTS parcels (
    sha256 TEXT PRIMARY KEY,
    size   INTEGER NOT NULL
);
-- Which parts ("invoices", "parcels") were filled from the store by a rebuild that ran to
-- its end: an index missing one is rebuilt at start-up, even after a crash mid-rebuild.
CREATE TABLE IF NOT EXISTS filled (
    part TEXT PRIMARY KEY
);
"""
# Digests per statement when looking up many parcels (SQLite's variable limit is higher).
_PARCEL_BATCH = 500


@dataclass(frozen=True)
class IndexEntry:
    """What the index keeps of one invoice; `document` is the invoice as JSON."""

    key: str
    name: str
    version: str
    yanked: bool
    document: str


class Index(Protocol):
    """Query index over invoices, with crash-recovery marks for writes in flight."""

    is_new: bool
    """True when, at open, no rebuild had filled the invoice entries from the store yet."""

    parcels_unknown: bool
    """True when, at open, no refill had recorded the store's parcels yet."""

    async def begin(self, key: str) -> str:
        """Durably mark `key` as being written; return a token for `put` or `end`."""
        ...

    async def end(self, token: str) -> None:
        """Drop a pending mark whose write did not happen."""
        ...

    async def put(self, entry: IndexEntry, token: str | None = None) -> None:
        """Insert or update an entry and drop the pending mark `token`, in one transaction."""
        ...

    async def settle(self, key: str, entry: IndexEntry | None, tokens: Sequence[str] = ()) -> None:
        """Make the index agree with the store for `key` and drop the pending marks `tokens`.

        `entry` is what the store holds now, or None when it holds no such invoice.
        """
        ...

    async def stale_marks(self) -> dict[str, list[str]]:
        """Pending marks left by writers that died: key -> their tokens.

        Keys that a live process is still writing are left out, so that a process
        starting beside running ones (another worker) never settles their writes.
        """
        ...

    async def query(self, query: Query) -> QueryPage:
        """The page of non-yanked (or all, with `yanked`) matches in NAME/VERSION byte order."""
        ...

    async def clear(self) -> None:
        """Remove every invoice entry and mark (before a rebuild), and the "invoices" fill."""
        ...

    async def mark_filled(self, part: str) -> None:
        """Record that a rebuild filled `part` ("invoices" or "parcels") from the store."""
        ...

    async def count(self) -> int:
        """How many invoices are indexed."""
        ...

    async def yanked_by_key(self) -> dict[str, bool]:
        """Every indexed invoice's key and whether the index has it as yanked."""
        ...

    async def parcel_sizes(self, digests: Sequence[str]) -> dict[str, int]:
        """The recorded size of each of `digests` that is recorded as stored."""
        ...

    async def add_parcels(self, sizes: Sequence[tuple[str, int]]) -> None:
        """Record parcels as stored, with their sizes (recording one twice changes nothing)."""
        ...

    async def remove_parcel(self, sha256: str) -> None:
        """Record a parcel as no longer stored (quarantined)."""
        ...

    async def close(self) -> None:
        """Close the index."""
        ...


class SqliteIndex:
    """The embedded index: one SQLite database file (or ":memory:"); implements Index.

    One connection serialised by a lock and used from worker threads. WAL mode lets other
    server processes on the same data directory read while one writes; `busy_timeout`
    makes concurrent writers across processes wait instead of failing.
    """

    def __init__(self, location: str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            location, check_same_thread=False, isolation_level=None, timeout=30.0
        )
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
                self._db.execute("DROP TABLE IF EXISTS invoices")
                self._db.execute("DROP TABLE IF EXISTS pending")
                self._db.execute("DROP TABLE IF EXISTS parcels")
                self._db.execute("DROP TABLE IF EXISTS filled")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            filled = {row[0] for row in self._db.execute("SELECT part FROM filled")}
            self.is_new = "invoices" not in filled
            self.parcels_unknown = "parcels" not in filled
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return work(self._db)

        return await anyio.to_thread.run_sync(locked)

    async def begin(self, key: str) -> str:
        token = uuid.uuid4().hex
        await self._run(
            lambda db: db.execute(
                "INSERT INTO pending (token, key, since, owner) VALUES (?, ?, ?, ?)",
                (token, key, time.time(), process_identity()),
            )
        )
        return token

    async def end(self, token: str) -> None:
        await self._run(lambda db: db.execute("DELETE FROM pending WHERE token = ?", (token,)))

    async def put(self, entry: IndexEntry, token: str | None = None) -> None:
        def work(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                _upsert(db, entry)
                if token is not None:
                    db.execute("DELETE FROM pending WHERE token = ?", (token,))

        await self._run(work)

    async def settle(self, key: str, entry: IndexEntry | None, tokens: Sequence[str] = ()) -> None:
        def work(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                if entry is None:
                    db.execute("DELETE FROM invoices WHERE key = ?", (key,))
                else:
                    _upsert(db, entry)
                db.executemany("DELETE FROM pending WHERE token = ?", [(t,) for t in tokens])

        await self._run(work)

    async def stale_marks(self) -> dict[str, list[str]]:
        rows = await self._run(
            lambda db: db.execute("SELECT key, token, since, owner FROM pending").fetchall()
        )
        now = time.time()
        return stale_marks((key, token, now - since, owner) for key, token, since, owner in rows)

    async def query(self, query: Query) -> QueryPage:
        return await self._run(lambda db: _run_query(db, query))

    async def clear(self) -> None:
        def work(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.execute("DELETE FROM invoices")
                db.execute("DELETE FROM pending")
                db.execute("DELETE FROM filled WHERE part = 'invoices'")

        await self._run(work)

    async def mark_filled(self, part: str) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO filled (part) VALUES (?) ON CONFLICT (part) DO NOTHING", (part,)
            )
        )

    async def count(self) -> int:
        row = await self._run(lambda db: db.execute("SELECT count(*) FROM invoices").fetchone())
        return int(row[0])

    async def yanked_by_key(self) -> dict[str, bool]:
        rows = await self._run(lambda db: db.execute("SELECT key, yanked FROM invoices").fetchall())
        return {key: bool(yanked) for key, yanked in rows}

    async def parcel_sizes(self, digests: Sequence[str]) -> dict[str, int]:
        wanted = list(dict.fromkeys(digests))

        def work(db: sqlite3.Connection) -> dict[str, int]:
            sizes: dict[str, int] = {}
            for start in range(0, len(wanted), _PARCEL_BATCH):
                batch = wanted[start : start + _PARCEL_BATCH]
                marks = ",".join("?" * len(batch))
                rows = db.execute(
                    f"SELECT sha256, size FROM parcels WHERE sha256 IN ({marks})", batch
                )
                sizes.update((sha256, int(size)) for sha256, size in rows)
            return sizes

        return await self._run(work)

    async def add_parcels(self, sizes: Sequence[tuple[str, int]]) -> None:
        def work(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "INSERT INTO parcels (sha256, size) VALUES (?, ?) "
                    "ON CONFLICT (sha256) DO UPDATE SET size = excluded.size",
                    sizes,
                )

        await self._run(work)

    async def remove_parcel(self, sha256: str) -> None:
        await self._run(lambda db: db.execute("DELETE FROM parcels WHERE sha256 = ?", (sha256,)))

    async def close(self) -> None:
        await self._run(lambda db: db.close())


def _upsert(db: sqlite3.Connection, entry: IndexEntry) -> None:
    db.execute(upsert_sql(SQLITE), upsert_args(entry))


def _run_query(db: sqlite3.Connection, query: Query) -> QueryPage:
    statements = build_query(query, SQLITE)
    total = int(db.execute(statements.count, statements.count_args).fetchone()[0])
    documents: list[str] = []
    if statements.page is not None and query.offset < total:
        documents = [row[0] for row in db.execute(statements.page, statements.page_args)]
    return QueryPage(total=total, documents=documents)
