"""Event fixtures: the lifecycle suite's apps on the backend under test, and webhook
endpoints on loopback."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.events.receiver import Receiver
from tests.lifecycle.conftest import app_factory

__all__ = ["app_factory", "receivers"]


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(**options: Any) -> Receiver:
        started.append(Receiver(**options))
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()
