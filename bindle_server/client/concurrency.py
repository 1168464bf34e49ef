"""Running transfers a bounded number at a time, stopping at the first failure; running
them to completion from synchronous code."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_CONCURRENCY = 16  # what the reference client runs in parallel (section 10)


async def run_bounded(
    items: Iterable[T], work: Callable[[T], Awaitable[None]], limit: int = DEFAULT_CONCURRENCY
) -> None:
    """Await `work(item)` for every item, at most `limit` at once.

    After the first failure no new item is started; the ones already running finish
    (what they transfer is not wasted: a re-run skips it), then the first failure is
    raised as itself, not as an ExceptionGroup.
    """
    if limit < 1:
        raise ValueError(f"concurrency must be at least 1, not {limit}")
    pending = iter(items)
    failures: list[BaseException] = []

    async def worker() -> None:
        for item in pending:  # one shared iterator: every item is taken exactly once
            if failures:
                return
            try:
                await work(item)
            except Exception as exc:
                failures.append(exc)
                return

    tasks = [asyncio.create_task(worker()) for _ in range(limit)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:  # only when the caller itself is cancelled
            task.cancel()
    if failures:
        raise failures[0]


def run_to_completion(operation: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine `operation()` to its end from synchronous code, and return its result.

    `asyncio.run` refuses to start in a thread whose event loop is running (a Jupyter
    cell, an async test or web handler calling the sync API). There the coroutine gets
    a loop of its own in a worker thread, and the caller's thread waits for it: the
    caller's loop is blocked meanwhile, as by any blocking call.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(operation())
    with ThreadPoolExecutor(1, thread_name_prefix="bindle-client") as worker:
        return worker.submit(lambda: asyncio.run(operation())).result()
