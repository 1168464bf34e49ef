"""Fixtures of the client tests: a work directory and the CLI pointed at the live server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.client.cli import BindleCli
from tests.servers import ServerProcess


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def bindle(live_server: ServerProcess, work: Path) -> BindleCli:
    """The `bindle` CLI as a subprocess, talking to `live_server`."""
    return BindleCli(live_server.url, work)
