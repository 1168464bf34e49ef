"""Choose the query index by URL: none for the embedded SQLite file, or postgresql://."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from bindle_server.search.index import Index
from bindle_server.search.sqlite import SqliteIndex

INSTALL_HINT = "pip install 'bindle-server[postgres]'"


def check_index_url(url: str | None) -> None:
    """Raise ValueError, in one line saying what to do, when `url` cannot be opened here."""
    if not url:
        return
    if urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise ValueError(f"unsupported index URL {redact(url)!r}: use postgresql://...")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise ValueError(f"the PostgreSQL index needs psycopg: {INSTALL_HINT}") from None


async def open_index(url: str | None, default_location: str) -> Index:
    """Open the index `url` names, or the embedded SQLite index at `default_location`."""
    if not url:
        return SqliteIndex(default_location)
    check_index_url(url)
    from bindle_server.search.postgres import PostgresIndex

    return await PostgresIndex.open(url)


def redact(url: str) -> str:
    """`url` without its password (in the user part or a `password=` parameter), for logs,
    errors and `bindle-server config`."""
    parts = urlsplit(url)
    query = [
        # libpq also takes `password=` and `sslpassword=` as URL parameters.
        f"{name}=***" if "password" in name.lower() and sep else f"{name}{sep}{value}"
        for name, sep, value in (item.partition("=") for item in parts.query.split("&"))
    ]
    if parts.password is None and "&".join(query) == parts.query:
        return url  # as given: urlunsplit would drop an empty `//`
    if parts.password is not None:
        netloc = parts.netloc.rpartition("@")
        user = netloc[0].partition(":")[0]
        parts = parts._replace(netloc=f"{user}:***@{netloc[2]}")
    return urlunsplit(parts._replace(query="&".join(query)))
