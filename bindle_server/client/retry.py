"""When and how long to wait before repeating a request that may safely be repeated."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

# Statuses that say "try again later". 501, 505 and 507 (disk full) do not get better soon.
RETRY_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter.

    At most `attempts` tries in all, and no new try once `deadline` seconds have passed
    since the first one (each try is itself bounded by the client's timeout).
    """

    attempts: int = 4
    backoff: float = 0.25
    max_delay: float = 4.0
    deadline: float = 60.0

    def delays(self) -> Iterator[float]:
        """The pause before each retry; ends when no further try is allowed."""
        started = time.monotonic()
        for retry in range(self.attempts - 1):
            delay = min(self.max_delay, self.backoff * 2**retry) * random.uniform(0.5, 1.0)
            if time.monotonic() + delay - started > self.deadline:
                return
            yield delay


NO_RETRIES = RetryPolicy(attempts=1)


def retryable_status(status: int) -> bool:
    return status in RETRY_STATUSES


def retryable_error(exc: BaseException) -> bool:
    """A failure on the wire (connect, read, write, timeout, broken protocol)."""
    return isinstance(exc, httpx.TransportError)
