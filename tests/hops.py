"""Counting this process's worker-thread hops (threads.run_sync): the `hops` fixture."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class CountingExecutor(ThreadPoolExecutor):
    """The executor threads.run_sync submits to, counting what it is given."""

    def __init__(self) -> None:
        super().__init__(8)
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)
