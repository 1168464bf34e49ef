"""Blocking work (disk, SQLite, hashing) off the event loop, in this process's worker threads.

`run_sync` has anyio's `to_thread.run_sync` semantics where the server relies on them: the
call sees the caller's context variables, and a caller cancelled while its call runs waits
until the call is done before the cancellation goes on, so clean-up code never races its own
thread (a call that has not started yet is dropped). It costs less than half of anyio's
hand-off, which enters a shielded cancel scope and a capacity limiter on every call; a
create makes about ten of them.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, TypeVarTuple, Unpack

import anyio

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# Enough that calls waiting on the disk or on another process's lock (SQLite's writer)
# leave threads for the rest, since each upload keeps two busy; few enough that threads
# stay warm. Measured with 64 concurrent creates over two workers: 8 threads gave ~15%
# more creates per second than 16 or 40 (anyio's default), at ~5 MiB less memory per
# worker (each thread that allocates gets a malloc arena of its own).
MAX_THREADS = 8

_executor: ThreadPoolExecutor | None = None


def _forget_executor() -> None:
    # A forked worker inherits the object but none of its threads: submitting to it would
    # queue work that nothing runs.
    global _executor
    _executor = None


os.register_at_fork(after_in_child=_forget_executor)


def _threads() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="bindle-worker")
    return _executor


async def run_sync(func: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
    """`func(*args)` in a worker thread; see the module's docstring for cancellation."""
    loop = asyncio.get_running_loop()  # the server runs on asyncio (uvicorn) only

    def call() -> T:
        return func(*args)

    work = _threads().submit(contextvars.copy_context().run, call)
    future = asyncio.wrap_future(work, loop=loop)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if not work.cancel():  # it runs already; one not started yet never will
            await settled(future)
        raise


async def settled(future: asyncio.Future[T]) -> None:
    """Wait until `future` is done, whatever cancels the caller meanwhile: for a caller
    that is cancelled already and re-raises once the work it started is over."""
    # Shielded, or anyio would deliver its cancel scope's cancellation again on every
    # turn of the loop while the work runs.
    with anyio.CancelScope(shield=True):
        while not future.done():
            try:
                await asyncio.wait((future,))
            except asyncio.CancelledError:
                continue  # a plain asyncio cancellation
