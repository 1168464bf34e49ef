"""`index_url` and `index`: each index test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bindle_server.search import Index
from bindle_server.search.registry import open_index


@pytest.fixture(params=["sqlite", "postgres"])
def index_location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str | None, str]:
    """(index URL, default location) naming an empty index of each backend."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url, ":memory:"
    return None, str(tmp_path / "index.sqlite3")


@pytest.fixture
async def index(index_location: tuple[str | None, str]) -> AsyncIterator[Index]:
    opened = await open_index(*index_location)
    yield opened
    await opened.close()
