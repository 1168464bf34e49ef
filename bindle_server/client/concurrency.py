"""Running transfers a bounded number at a time, stopping at the first failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

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
