"""When to repeat a request, and how long to wait first: the clients' retry schedule.

No I/O: a client asks its RetrySchedule what to do after each failure and does the
waiting itself (`time.sleep` or `asyncio.sleep`). The clock and the jitter are
parameters, so the schedule is tested without waiting.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx

from bindle_server.client.errors import ConnectionFailed, ServerError

# Statuses that say "try again later". 501, 505 and 507 (disk full) do not get better soon.
RETRY_STATUSES = frozenset({500, 502, 503, 504})

# What a client catches around each try and hands to `RetrySchedule.after`.
RETRIED = (httpx.TransportError, ServerError)

Clock = Callable[[], float]
Jitter = Callable[[float, float], float]


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter.

    At most `attempts` tries in all, and no new try once `deadline` seconds have passed
    since the first failure (each try is itself bounded by the client's timeout).
    """

    attempts: int = 4
    backoff: float = 0.25
    max_delay: float = 4.0
    deadline: float = 60.0

    def delays(
        self, clock: Clock = time.monotonic, jitter: Jitter = random.uniform
    ) -> Iterator[float]:
        """The pause before each retry; ends when no further try is allowed."""
        started = clock()  # runs at the first `next`, i.e. after the first failure
        for retry in range(self.attempts - 1):
            delay = min(self.max_delay, self.backoff * 2**retry) * jitter(0.5, 1.0)
            if clock() + delay - started > self.deadline:
                return
            yield delay


NO_RETRIES = RetryPolicy(attempts=1)


def retryable_status(status: int | None) -> bool:
    return status in RETRY_STATUSES


def retryable_error(exc: BaseException) -> bool:
    """A failure worth another try: one on the wire (connect, read, write, timeout,
    broken protocol) or an answer that says "try again later"."""
    if isinstance(exc, ServerError):
        return retryable_status(exc.status)
    return isinstance(exc, httpx.TransportError)


class RetrySchedule:
    """The tries of one request: which failures are repeated, the pause before each
    repeat, and what is raised when no try is left.

    A request that may not be repeated (`repeatable=False`) gets exactly one try.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        repeatable: bool,
        url: str,
        *,
        clock: Clock = time.monotonic,
        jitter: Jitter = random.uniform,
    ) -> None:
        self.tries = 0
        self._url = url
        self._delays = policy.delays(clock, jitter) if repeatable else iter(())

    def after(self, failure: Exception) -> float:
        """The pause before the next try, now that `failure` ended one.

        Raises `failure` itself when it is not worth another try or none is left; a
        failure on the wire is raised as ConnectionFailed, which names the address and
        counts the tries.
        """
        self.tries += 1
        if retryable_error(failure):
            delay = next(self._delays, None)
            if delay is not None:
                return delay
        if isinstance(failure, httpx.TransportError):
            raise connection_failed(self._url, failure, self.tries) from failure
        raise failure


def connection_failed(url: str, exc: httpx.TransportError, tries: int) -> ConnectionFailed:
    """The ConnectionFailed for a request that failed on the wire `tries` times."""
    # The exact address (absolute ones included); RuntimeError if httpx attached none.
    with contextlib.suppress(RuntimeError):
        url = str(exc.request.url)
    detail = str(exc) or "the connection broke"
    plural = "try" if tries == 1 else "tries"
    return ConnectionFailed(f"{url}: {type(exc).__name__}: {detail} (after {tries} {plural})")
