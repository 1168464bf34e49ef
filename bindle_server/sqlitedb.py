"""One SQLite connection shared by the tasks of a process: each use runs in a worker
thread (SQLite blocks), one at a time under the connection's lock."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

from bindle_server.threads import run_sync

T = TypeVar("T")


async def run_locked(
    lock: threading.Lock, db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]
) -> T:
    """`work(db)` in a worker thread, holding `lock`; a cursor it returns is closed."""

    def locked() -> T:
        with lock:
            result = work(db)
            if isinstance(result, sqlite3.Cursor):
                # Closed here, under the lock: a cursor finalised later, in another
                # thread, resets its statement while this connection runs it again for
                # someone else (sqlite3.InterfaceError, "API misuse").
                result.close()
            return result

    return await run_sync(locked)
