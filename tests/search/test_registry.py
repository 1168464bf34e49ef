"""The index is chosen by URL, and a missing driver says what to install."""

from __future__ import annotations

import sys

import pytest

from bindle_server.search import SqliteIndex
from bindle_server.search.registry import check_index_url, open_index, redact


@pytest.mark.anyio
async def test_no_url_means_the_embedded_sqlite_index() -> None:
    index = await open_index(None, ":memory:")
    assert isinstance(index, SqliteIndex)
    await index.close()


def test_a_missing_psycopg_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` fail
    with pytest.raises(ValueError, match=r"pip install 'bindle-server\[postgres\]'"):
        check_index_url("postgresql://db.example/bindle")


def test_other_schemes_are_refused_without_leaking_the_password() -> None:
    with pytest.raises(ValueError, match="use postgresql://") as raised:
        check_index_url("mysql://user:secret@db/bindle")
    assert "secret" not in str(raised.value)
    assert redact("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"


def test_redact_hides_password_parameters_and_leaves_other_urls_as_given() -> None:
    assert (
        redact("postgresql://h/d?user=u&password=pw&sslpassword=k")
        == "postgresql://h/d?user=u&password=***&sslpassword=***"
    )
    for url in ("memory://", "s3://bucket/prefix?endpoint=http://h:9000", "127.0.0.1:8080"):
        assert redact(url) == url
