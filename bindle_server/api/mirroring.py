"""The service a server runs: a plain BindleService, or a pull-through mirror of its
--upstream servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bindle_server.config import Settings
from bindle_server.events import EventSink
from bindle_server.search.index import Index
from bindle_server.search.registry import redact
from bindle_server.service import BindleService
from bindle_server.signing import HostSigning
from bindle_server.storage import Stores

if TYPE_CHECKING:  # the mirror (and httpx) are imported only by servers that mirror
    from bindle_server.mirror import Upstream


def read_token(settings: Settings) -> str | None:
    """The bearer token for the upstreams (ValueError when its file cannot be read)."""
    path = settings.upstream_token_file
    if path is None:
        return None
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"--upstream-token-file {path}: {exc.strerror}") from None
    if not token:
        raise ValueError(f"--upstream-token-file {path} is empty")
    return token


def check_upstream(settings: Settings) -> None:
    """ValueError, in one line, for an --upstream URL or token file the server cannot use."""
    for url in settings.upstream:
        check_upstream_url(url, "--upstream")
    read_token(settings)


def check_upstream_url(url: str, option: str) -> None:
    """ValueError unless `url` can be an upstream's API root (http or https, a host)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{option} {redact(url)}: expected the API root of a Bindle server, "
            "http(s)://HOST[:PORT]/PATH (e.g. http://registry:8080/v1)"
        )


@asynccontextmanager
async def open_upstream(settings: Settings) -> AsyncIterator[Upstream | None]:
    """The upstream client for the server's lifetime, or None when it mirrors nothing."""
    if not settings.upstream:
        yield None
        return
    from bindle_server.mirror import Upstream

    upstream = Upstream(
        settings.upstream,
        token=read_token(settings),
        max_invoice_bytes=settings.max_invoice_bytes,
        verify_hosts=settings.upstream_verify,
    )
    try:
        yield upstream
    finally:
        await upstream.aclose()


def open_service(
    settings: Settings,
    upstream: Upstream | None,
    stores: Stores,
    index: Index,
    signing: HostSigning,
    events: EventSink,
) -> BindleService:
    """The BindleService for these settings; a MirrorService when there is an upstream."""
    if upstream is None:
        return BindleService(
            stores,
            index,
            signing,
            max_parcels=settings.max_parcels,
            max_parcel_bytes=settings.max_parcel_bytes,
            atomic_push=settings.atomic_push,
            events=events,
        )
    from bindle_server.mirror import MirrorService

    return MirrorService(
        stores,
        index,
        signing,
        upstream=upstream,
        refresh=settings.upstream_refresh,
        allow_local=settings.upstream_allow_local,
        max_parcels=settings.max_parcels,
        max_parcel_bytes=settings.max_parcel_bytes,
        atomic_push=settings.atomic_push,
        events=events,
    )
