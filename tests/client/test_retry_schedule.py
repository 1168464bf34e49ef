"""The retry schedule, without a network or a real clock: which failures are repeated,
the backoff, and the bounds in tries and in time."""

from __future__ import annotations

import httpx
import pytest

from bindle_server.client import (
    BadRequest,
    ConnectionFailed,
    RetryPolicy,
    ServerError,
)
from bindle_server.client.retry import RetrySchedule

URL = "http://127.0.0.1:1/v1/_i/a/1.0.0"


class Clock:
    """A clock that moves only when told to (each pause the schedule hands out)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _top(low: float, high: float) -> float:
    return high


def _bottom(low: float, high: float) -> float:
    return low


def _schedule(
    policy: RetryPolicy, repeatable: bool = True, clock: Clock | None = None
) -> RetrySchedule:
    return RetrySchedule(policy, repeatable, URL, clock=clock or Clock(), jitter=_top)


def _refused() -> httpx.ConnectError:
    return httpx.ConnectError("connection refused")


def _answered(status: int) -> ServerError:
    return ServerError.answered(status, "busy", "GET", URL)


def test_a_repeatable_call_backs_off_exponentially_until_its_tries_run_out() -> None:
    schedule = _schedule(RetryPolicy(attempts=4, backoff=0.25, max_delay=4.0))
    assert [schedule.after(_refused()) for _ in range(3)] == [0.25, 0.5, 1.0]
    with pytest.raises(
        ConnectionFailed, match=r"ConnectError: connection refused \(after 4 tries\)"
    ):
        schedule.after(_refused())
    assert schedule.tries == 4


def test_pauses_stop_growing_at_max_delay_and_jitter_takes_up_to_half_off() -> None:
    policy = RetryPolicy(attempts=6, backoff=1.0, max_delay=3.0, deadline=1000)
    assert list(policy.delays(Clock(), _top)) == [1.0, 2.0, 3.0, 3.0, 3.0]
    assert list(policy.delays(Clock(), _bottom)) == [0.5, 1.0, 1.5, 1.5, 1.5]


def test_no_try_starts_once_the_deadline_since_the_first_failure_would_pass() -> None:
    clock = Clock()
    schedule = _schedule(
        RetryPolicy(attempts=10, backoff=1.0, max_delay=1.0, deadline=2.5), clock=clock
    )
    assert schedule.after(_refused()) == 1.0  # the deadline counts from here
    clock.now += 1.0
    assert schedule.after(_refused()) == 1.0
    clock.now += 1.0
    with pytest.raises(ConnectionFailed, match=r"after 3 tries"):
        schedule.after(_refused())  # a pause would end 3 s after the first failure


def test_a_call_that_may_not_be_repeated_gets_exactly_one_try() -> None:
    schedule = _schedule(RetryPolicy(), repeatable=False)
    with pytest.raises(ConnectionFailed, match=r"after 1 try\)$") as raised:
        schedule.after(_refused())
    assert URL in str(raised.value)
    with pytest.raises(ServerError):
        _schedule(RetryPolicy(), repeatable=False).after(_answered(503))


@pytest.mark.parametrize(
    ("status", "retried"),
    [(500, True), (502, True), (503, True), (504, True), (501, False), (505, False), (507, False)],
)
def test_only_statuses_that_say_try_again_later_are_retried(status: int, retried: bool) -> None:
    schedule = _schedule(RetryPolicy(attempts=2))
    failure = _answered(status)
    if retried:
        assert schedule.after(failure) > 0
        with pytest.raises(ServerError) as raised:
            schedule.after(_answered(status))  # the last failure is raised as itself
    else:
        with pytest.raises(ServerError) as raised:
            schedule.after(failure)
        assert raised.value is failure
    assert raised.value.status == status


def test_an_answer_that_is_not_a_passing_failure_is_raised_at_once() -> None:
    refused = BadRequest.answered(400, "invalid", "POST", URL)
    schedule = _schedule(RetryPolicy(attempts=5))
    with pytest.raises(BadRequest) as raised:
        schedule.after(refused)
    assert raised.value is refused and schedule.tries == 1
