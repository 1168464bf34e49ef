"""The query index: what `_q` searches, persistent and derived from the invoice store.

The embedded default is SQLite (standard library) in the data directory, so start-up does
not read every invoice (the reference does) and a query does not scan the invoice files.
The invoice files stay the source of truth: `bindle-server reindex` rebuilds the index
from them, and writes mark their key as pending first, so that a crash between writing an
invoice and indexing it is repaired at the next start (BindleService.recover).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import anyio

from bindle_server.model.version import Version
from bindle_server.search.query import Query, QueryPage

T = TypeVar("T")

SCHEMA_VERSION = 3
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
"""


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
    """True when the index was created empty by this process (so it must be rebuilt)."""

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
        """Remove every entry and mark (before a rebuild)."""
        ...

    async def count(self) -> int:
        """How many invoices are indexed."""
        ...

    async def yanked_by_key(self) -> dict[str, bool]:
        """Every indexed invoice's key and whether the index has it as yanked."""
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
            self.is_new = found_version != SCHEMA_VERSION
            if self.is_new:
                self._db.execute("DROP TABLE IF EXISTS invoices")
                self._db.execute("DROP TABLE IF EXISTS pending")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
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
        stale: dict[str, list[str]] = {}
        live: set[str] = set()
        for key, token, since, owner in rows:
            if _owner_gone(owner, now - since):
                stale.setdefault(key, []).append(token)
            else:
                live.add(key)
        return {key: tokens for key, tokens in sorted(stale.items()) if key not in live}

    async def query(self, query: Query) -> QueryPage:
        return await self._run(lambda db: _run_query(db, query))

    async def clear(self) -> None:
        def work(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.execute("DELETE FROM invoices")
                db.execute("DELETE FROM pending")

        await self._run(work)

    async def count(self) -> int:
        row = await self._run(lambda db: db.execute("SELECT count(*) FROM invoices").fetchone())
        return int(row[0])

    async def yanked_by_key(self) -> dict[str, bool]:
        rows = await self._run(lambda db: db.execute("SELECT key, yanked FROM invoices").fetchall())
        return {key: bool(yanked) for key, yanked in rows}

    async def close(self) -> None:
        await self._run(lambda db: db.close())


# A mark from another host cannot be checked for liveness; no write takes this long.
_FOREIGN_MARK_STALE_AFTER = 600.0


def process_identity() -> str:
    """host:pid:start-time: a pid alone is reused after the process dies."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # Field 22 (start time in clock ticks), counted after the parenthesised name.
            return stat.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "?"


def _owner_gone(owner: str, age: float) -> bool:
    host, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return age > _FOREIGN_MARK_STALE_AFTER
    return _start_time(int(pid_text)) != started


def _upsert(db: sqlite3.Connection, entry: IndexEntry) -> None:
    version = Version.parse(entry.version)
    db.execute(
        "INSERT INTO invoices (key, bindle_id, name, yanked, vkey, vcore, vpre, vbuild, document) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
        "yanked = excluded.yanked, document = excluded.document",
        (
            entry.key,
            f"{entry.name}/{entry.version}",
            entry.name,
            int(entry.yanked),
            version.ordinal,
            version.core_text,
            int(bool(version.pre)),
            version.build,
            entry.document,
        ),
    )


def _run_query(db: sqlite3.Connection, query: Query) -> QueryPage:
    clauses = [] if query.yanked else ["yanked = 0"]
    args: list[str | int] = []
    for term in query.terms:
        clauses.append("instr(name, ?) > 0")
        args.append(term)
    if query.version_filter is not None:
        condition, params = query.version_filter.sql()
        clauses.append(condition)
        args.extend(params)
    if query.name_prefixes is not None:
        # substr rather than LIKE: prefixes are literal, `_` and `%` included.
        alternatives = ["substr(name, 1, ?) = ?"] * len(query.name_prefixes)
        clauses.append(f"({' OR '.join(alternatives)})" if alternatives else "0")
        for prefix in query.name_prefixes:
            args.extend((len(prefix), prefix))
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    total = db.execute(f"SELECT count(*) FROM invoices {where}", args).fetchone()[0]
    documents: list[str] = []
    if query.limit and query.offset < total:
        rows = db.execute(
            f"SELECT document FROM invoices {where} ORDER BY bindle_id LIMIT ? OFFSET ?",
            [*args, query.limit, query.offset],
        )
        documents = [row[0] for row in rows]
    return QueryPage(total=int(total), documents=documents)
