"""One SQLite connection shared by the tasks of a process.

SQLite blocks, so its work runs in worker threads, one use at a time. Under load many
tasks want the connection at once (every invoice GET asks the index whether the invoice
is visible, every create writes to it twice), and a worker-thread hop per use cost more
than the SQL: about 0.3 ms of CPU each in thread wake-ups and GIL hand-offs. So the uses
queued while one batch runs go to the thread together, as the next batch: one hop for
all of them, each still in its own statement or transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from bindle_server.threads import run_sync, settled

T = TypeVar("T")

# Uses per hop at most, so that one batch never holds the connection for long.
BATCH_LIMIT = 256


class _Use(Generic[T]):
    __slots__ = ("future", "work", "writes")

    def __init__(
        self,
        work: Callable[[sqlite3.Connection], T],
        loop: asyncio.AbstractEventLoop,
        writes: bool,
    ) -> None:
        self.work = work
        self.future: asyncio.Future[T] = loop.create_future()
        self.writes = writes


class _Queue:
    """The uses waiting for the connection from one event loop, and the task sending
    them to a worker thread batch by batch."""

    __slots__ = ("drainer", "uses")

    def __init__(self) -> None:
        self.uses: list[_Use[Any]] = []
        self.drainer: asyncio.Task[None] | None = None


class SharedConnection:
    """A connection used from worker threads by the tasks of a process's event loops."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        # Held by the thread running a batch: batches of two event loops never overlap.
        self._lock = threading.Lock()
        # Per loop: a process normally has one, but tests and commands may run several.
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = (
            weakref.WeakKeyDictionary()
        )

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(db)` in a worker thread, alone on the connection; a cursor it returns is
        closed. A caller cancelled before its work started drops it; one cancelled while
        it runs waits for it, as threads.run_sync does."""
        return await self._queued(work, writes=False)

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(db)` as `run` does, inside a `BEGIN IMMEDIATE` transaction that is
        committed before this returns. Writes queued together share one transaction (a
        group commit: one lock of the database file and one flush to disk for all), each
        in a savepoint of its own, so one that raises leaves no trace and spoils no other.
        `work` must not begin or end transactions itself."""
        return await self._queued(work, writes=True)

    async def _queued(self, work: Callable[[sqlite3.Connection], T], writes: bool) -> T:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues.setdefault(loop, _Queue())
        use = _Use(work, loop, writes)
        queue.uses.append(use)
        if queue.drainer is None:
            # Kept: the loop holds only a weak reference to its tasks.
            queue.drainer = loop.create_task(self._drain(queue))
        try:
            return await asyncio.shield(use.future)
        except asyncio.CancelledError:
            if any(waiting is use for waiting in queue.uses):
                queue.uses = [waiting for waiting in queue.uses if waiting is not use]
                use.future.cancel()
            else:
                await settled(use.future)
            raise

    async def _drain(self, queue: _Queue) -> None:
        batch: list[_Use[Any]] = []
        try:
            while queue.uses:
                batch, queue.uses = queue.uses[:BATCH_LIMIT], queue.uses[BATCH_LIMIT:]
                try:
                    outcomes = await run_sync(self._run_batch, batch)
                except Exception as exc:  # the connection itself failed (closed, broken)
                    outcomes = [(False, exc)] * len(batch)
                for use, (ok, value) in zip(batch, outcomes, strict=True):
                    if ok:
                        use.future.set_result(value)
                    else:
                        use.future.set_exception(value)
                batch = []
        finally:
            queue.drainer = None
            # Only when this task itself is cancelled (its loop is closing): then no
            # caller may wait for ever.
            for use in [*batch, *queue.uses]:
                if not use.future.done():
                    use.future.cancel()
            queue.uses = []

    def _run_batch(self, batch: list[_Use[Any]]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        with self._lock:
            start = 0
            while start < len(batch):
                end = start + 1
                if batch[start].writes:
                    while end < len(batch) and batch[end].writes:
                        end += 1
                    outcomes += self._transaction(batch[start:end])
                else:
                    outcomes.append(self._use(batch[start]))
                start = end
        return outcomes

    def _use(self, use: _Use[Any]) -> _Outcome:
        try:
            result = use.work(self.db)
        except Exception as exc:  # the caller's to handle
            return (False, exc)
        if isinstance(result, sqlite3.Cursor):
            # Closed here, under the lock: a cursor finalised later, in another thread,
            # resets its statement while this connection runs it again for someone else
            # (sqlite3.InterfaceError, "API misuse").
            result.close()
        return (True, result)

    def _transaction(self, uses: list[_Use[Any]]) -> list[_Outcome]:
        """The writes `uses` in one transaction, each in a savepoint."""
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:  # busy for longer than the timeout, or worse
            return [(False, exc)] * len(uses)
        outcomes: list[_Outcome] = []
        for done, use in enumerate(uses):
            db.execute("SAVEPOINT bindle_use")
            outcome = self._use(use)
            if not db.in_transaction:
                # An error (a full disk, I/O) made SQLite roll the whole transaction back:
                # the writes before this one are undone too. The rest go in a new one.
                failure = (False, outcome[1] if not outcome[0] else _rolled_back())
                return [failure] * (done + 1) + self._transaction(uses[done + 1 :])
            if outcome[0]:
                db.execute("RELEASE bindle_use")
            else:
                db.execute("ROLLBACK TO bindle_use")
                db.execute("RELEASE bindle_use")
            outcomes.append(outcome)
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            return [(False, exc)] * len(uses)  # nothing of it was written
        return outcomes


_Outcome = tuple[bool, Any]


def _rolled_back() -> sqlite3.OperationalError:
    return sqlite3.OperationalError("the transaction was rolled back by a later write's error")
