"""`sqlitedb.SharedConnection`: uses queued together share a worker-thread hop, each gets
its own result or error, and cancellation keeps threads.run_sync's promises."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from bindle_server.sqlitedb import SharedConnection
from tests.hops import CountingExecutor

pytestmark = pytest.mark.anyio

WAIT = 10.0


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[SharedConnection]:
    db = sqlite3.connect(tmp_path / "t.db", check_same_thread=False, isolation_level=None)
    db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    yield SharedConnection(db)
    db.close()


def _insert(n: int) -> Callable[[sqlite3.Connection], int]:
    def work(db: sqlite3.Connection) -> int:
        with db:
            db.execute("INSERT INTO t (n) VALUES (?)", (n,))
        return n * 10

    return work


async def test_uses_queued_together_share_hops_and_each_gets_its_result(
    shared: SharedConnection, hops: CountingExecutor
) -> None:
    results = await asyncio.gather(*(shared.run(_insert(n)) for n in range(100)))
    assert results == [n * 10 for n in range(100)]
    assert hops.submitted < 10  # 100 uses, in a few batches
    count = await shared.run(lambda db: db.execute("SELECT count(*) FROM t").fetchone()[0])
    assert count == 100


async def test_an_error_reaches_only_the_use_that_raised_it(shared: SharedConnection) -> None:
    outcomes = await asyncio.gather(
        shared.run(_insert(1)),
        shared.run(_insert(1)),  # the same key again: IntegrityError, rolled back
        shared.run(_insert(2)),
        return_exceptions=True,
    )
    assert outcomes[0] == 10 and outcomes[2] == 20
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    rows = await shared.run(lambda db: db.execute("SELECT n FROM t ORDER BY n").fetchall())
    assert rows == [(1,), (2,)]


async def test_a_returned_cursor_is_closed_under_the_lock(shared: SharedConnection) -> None:
    cursor = await shared.run(lambda db: db.execute("SELECT 1"))
    with pytest.raises(sqlite3.ProgrammingError):
        cursor.fetchall()


async def test_a_use_cancelled_before_its_batch_started_never_runs(
    shared: SharedConnection,
) -> None:
    started, release = threading.Event(), threading.Event()

    def blocking(db: sqlite3.Connection) -> None:
        started.set()
        assert release.wait(WAIT)

    async with anyio.create_task_group() as group:
        group.start_soon(shared.run, blocking)
        assert await anyio.to_thread.run_sync(started.wait, WAIT)
        with anyio.move_on_after(0.05) as scope:  # queued behind the running batch
            await shared.run(_insert(7))
        release.set()
    assert scope.cancelled_caught
    assert await shared.run(lambda db: db.execute("SELECT count(*) FROM t").fetchone()[0]) == 0


async def test_a_use_cancelled_while_it_runs_waits_for_it(shared: SharedConnection) -> None:
    started, release = threading.Event(), threading.Event()
    events: list[str] = []

    def slow_insert(db: sqlite3.Connection) -> None:
        started.set()
        assert release.wait(WAIT)
        with db:
            db.execute("INSERT INTO t (n) VALUES (5)")
        events.append("inserted")

    async def caller() -> None:
        try:
            await shared.run(slow_insert)
        finally:
            events.append("caller cancelled")

    task = asyncio.create_task(caller())
    assert await anyio.to_thread.run_sync(started.wait, WAIT)
    task.cancel()
    await asyncio.sleep(0.05)
    assert events == []
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events == ["inserted", "caller cancelled"]


async def test_event_loops_in_two_threads_share_the_connection(shared: SharedConnection) -> None:
    def other_loop() -> list[int]:
        async def inserts() -> list[int]:
            return list(await asyncio.gather(*(shared.run(_insert(n)) for n in range(50, 100))))

        return asyncio.run(inserts())

    here = asyncio.gather(*(shared.run(_insert(n)) for n in range(50)))
    there = anyio.to_thread.run_sync(other_loop)
    mine, theirs = await asyncio.gather(here, there)
    assert mine == [n * 10 for n in range(50)]
    assert theirs == [n * 10 for n in range(50, 100)]
    assert await shared.run(lambda db: db.execute("SELECT count(*) FROM t").fetchone()[0]) == 100


def _plain_insert(n: int) -> Callable[[sqlite3.Connection], int]:
    def work(db: sqlite3.Connection) -> int:
        db.execute("INSERT INTO t (n) VALUES (?)", (n,))
        return n

    return work


def _count_elsewhere(tmp_path: Path) -> int:
    """Rows as another connection sees them: what is committed."""
    other = sqlite3.connect(tmp_path / "t.db")
    try:
        return int(other.execute("SELECT count(*) FROM t").fetchone()[0])
    finally:
        other.close()


async def test_writes_queued_together_commit_in_one_transaction(
    shared: SharedConnection, tmp_path: Path
) -> None:
    statements: list[str] = []
    shared.db.set_trace_callback(statements.append)
    results = await asyncio.gather(*(shared.write(_plain_insert(n)) for n in range(100)))
    assert results == list(range(100))
    begins = [s for s in statements if s.startswith("BEGIN IMMEDIATE")]
    commits = [s for s in statements if s == "COMMIT"]
    assert 1 <= len(begins) < 10 and len(commits) == len(begins)
    assert _count_elsewhere(tmp_path) == 100


async def test_a_failing_write_leaves_no_trace_and_spoils_no_other(
    shared: SharedConnection, tmp_path: Path
) -> None:
    def insert_then_fail(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO t (n) VALUES (50)")
        db.execute("INSERT INTO t (n) VALUES (1)")  # taken by the first write: it raises

    outcomes = await asyncio.gather(
        shared.write(_plain_insert(1)),
        shared.write(insert_then_fail),
        shared.write(_plain_insert(2)),
        return_exceptions=True,
    )
    assert outcomes[0] == 1 and outcomes[2] == 2
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    rows = await shared.run(lambda db: db.execute("SELECT n FROM t ORDER BY n").fetchall())
    assert rows == [(1,), (2,)]  # not 50: the failed write's first insert was undone
    assert _count_elsewhere(tmp_path) == 2


async def test_writes_after_a_rolled_back_transaction_go_in_a_new_one(
    shared: SharedConnection, tmp_path: Path
) -> None:
    def abort(db: sqlite3.Connection) -> None:
        # What SQLite does by itself on some errors (a full disk, I/O): the whole
        # transaction is gone.
        db.execute("ROLLBACK")
        raise sqlite3.OperationalError("disk I/O error")

    outcomes = await asyncio.gather(
        shared.write(_plain_insert(1)),
        shared.write(abort),
        shared.write(_plain_insert(2)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], sqlite3.OperationalError)  # undone with the transaction
    assert isinstance(outcomes[1], sqlite3.OperationalError)
    assert outcomes[2] == 2
    rows = await shared.run(lambda db: db.execute("SELECT n FROM t ORDER BY n").fetchall())
    assert rows == [(2,)]
    assert _count_elsewhere(tmp_path) == 1


async def test_a_broken_connection_fails_its_callers_with_the_error(
    shared: SharedConnection,
) -> None:
    # Against the contract (a write must not end the transaction, let alone the
    # connection), so that the batch itself fails, not one use in it.
    outcomes = await asyncio.gather(
        shared.write(lambda db: db.close()),
        shared.write(_plain_insert(1)),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, sqlite3.ProgrammingError) for outcome in outcomes)
