"""`threads.run_sync`: results, errors and context reach the caller, and a cancelled caller
goes on only once its thread is done, whoever cancels it."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading

import anyio
import pytest

from bindle_server import threads
from bindle_server.threads import run_sync

pytestmark = pytest.mark.anyio

WAIT = 10.0  # bounds every wait on a thread; the tests never come near it
who = contextvars.ContextVar("who", default="nobody")


async def test_the_result_comes_back_from_another_thread() -> None:
    total, thread = await run_sync(lambda a, b: (a + b, threading.get_ident()), 2, 3)
    assert total == 5
    assert thread != threading.get_ident()


async def test_an_error_in_the_thread_is_raised_to_the_caller() -> None:
    def fail() -> None:
        raise ValueError("from the thread")

    with pytest.raises(ValueError, match="from the thread"):
        await run_sync(fail)


async def test_the_thread_sees_the_callers_context_variables() -> None:
    who.set("alice")
    assert await run_sync(who.get) == "alice"


class _Blocker:
    """A call that runs until the test lets it finish, and a record of what happened when."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.events: list[str] = []

    def __call__(self) -> str:
        self.started.set()
        assert self.release.wait(WAIT)
        self.events.append("thread done")
        return "finished"

    async def wait_started(self) -> None:
        assert await anyio.to_thread.run_sync(self.started.wait, WAIT)


async def test_a_caller_cancelled_by_anyio_waits_for_its_thread() -> None:
    blocker = _Blocker()

    async def caller(scope: anyio.CancelScope) -> None:
        with scope:
            try:
                await run_sync(blocker)
            finally:
                blocker.events.append("caller cancelled")

    scope = anyio.CancelScope()
    async with anyio.create_task_group() as group:
        group.start_soon(caller, scope)
        await blocker.wait_started()
        scope.cancel()
        await anyio.sleep(0.05)  # the caller would run its clean-up now if it did not wait
        assert blocker.events == []
        blocker.release.set()
    assert blocker.events == ["thread done", "caller cancelled"]
    assert scope.cancelled_caught


async def test_a_caller_cancelled_by_asyncio_waits_for_its_thread_even_when_cancelled_again() -> (
    None
):
    blocker = _Blocker()

    async def caller() -> None:
        try:
            await run_sync(blocker)
        finally:
            blocker.events.append("caller cancelled")

    task = asyncio.create_task(caller())
    await blocker.wait_started()
    task.cancel()
    await asyncio.sleep(0.05)
    task.cancel()  # a second cancellation does not cut the wait short either
    await asyncio.sleep(0.05)
    assert blocker.events == []
    blocker.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert blocker.events == ["thread done", "caller cancelled"]


async def test_a_forked_child_gets_threads_of_its_own() -> None:
    await run_sync(os.getpid)  # the parent's threads exist before the fork
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status only
        codes = [1]

        def child() -> None:  # a thread of its own: the fork copied this one's running loop
            answer = asyncio.run(asyncio.wait_for(run_sync(os.getpid), WAIT))
            codes[0] = 0 if answer == os.getpid() else 2

        try:
            thread = threading.Thread(target=child)
            thread.start()
            thread.join(WAIT * 2)
        finally:
            os._exit(codes[0])
    ended, status = 0, 0
    with anyio.move_on_after(WAIT * 3):
        while not ended:
            await anyio.sleep(0.01)
            ended, status = os.waitpid(pid, os.WNOHANG)
    if not ended:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert ended
    assert os.waitstatus_to_exitcode(status) == 0


async def test_a_call_not_started_when_its_caller_is_cancelled_never_runs() -> None:
    blockers = [_Blocker() for _ in range(threads.MAX_THREADS)]
    ran: list[str] = []
    async with anyio.create_task_group() as group:
        for blocker in blockers:
            group.start_soon(run_sync, blocker)
        for blocker in blockers:
            await blocker.wait_started()
        with anyio.move_on_after(0.05) as scope:  # every thread is busy: this one waits
            await run_sync(ran.append, "late")
        for blocker in blockers:
            blocker.release.set()
    assert scope.cancelled_caught
    await run_sync(ran.append, "after")
    assert ran == ["after"]
