"""Transfers run a bounded number at a time and stop starting new ones after a failure."""

from __future__ import annotations

import asyncio

import pytest

from bindle_server.client.concurrency import DEFAULT_CONCURRENCY, run_bounded


def test_at_most_the_limit_run_at_once_and_every_item_runs_once() -> None:
    running = 0
    peak = 0
    done: list[int] = []

    async def work(item: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        done.append(item)

    asyncio.run(run_bounded(range(40), work, 16))
    assert peak == 16 == DEFAULT_CONCURRENCY
    assert sorted(done) == list(range(40))


def test_the_first_failure_stops_new_work_and_is_raised_after_running_work_ends() -> None:
    started: list[int] = []
    finished: list[int] = []

    async def work(item: int) -> None:
        started.append(item)
        if item == 2:
            raise ValueError("item 2 failed")
        await asyncio.sleep(0.05)
        finished.append(item)

    with pytest.raises(ValueError, match="item 2 failed"):
        asyncio.run(run_bounded(range(100), work, 4))
    assert len(started) < 10  # nothing new after the failure
    assert sorted(finished) == sorted(item for item in started if item != 2)


def test_a_limit_below_one_is_refused() -> None:
    async def work(item: int) -> None:
        pass

    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(run_bounded([1], work, 0))
