"""create_app(settings): the ASGI application, its lifespan and its routers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from bindle_server import __version__
from bindle_server.api.auth import AuthSetup, get_access, open_auth
from bindle_server.api.errors import install_error_handlers
from bindle_server.api.exposure import LoopbackOnly, check_exposure
from bindle_server.api.limits import RequestGuard
from bindle_server.api.metrics import EventCounter, Metrics
from bindle_server.api.mirroring import open_service, open_upstream
from bindle_server.api.observers import WEBHOOKS_ELSEWHERE, open_observers
from bindle_server.api.openapi import TomlResponse
from bindle_server.api.readonly import ReadOnly
from bindle_server.api.request_metrics import RequestMetrics
from bindle_server.api.requestid import RequestId
from bindle_server.api.routes import (
    docs,
    events,
    health,
    invoices,
    keys,
    login,
    query,
    relationships,
    selection,
)
from bindle_server.api.routes.metrics import router as metrics_router
from bindle_server.api.shutdown import ShutdownGuard
from bindle_server.backend import open_backend
from bindle_server.config import Settings, configure_logging
from bindle_server.lifecycle.collector import (
    CollectorBusy,
    CollectorSettings,
    collect,
    expire_pending,
)
from bindle_server.lifecycle.retention import RetentionPolicy
from bindle_server.model.duration import format_duration
from bindle_server.search.registry import redact
from bindle_server.service import BindleService
from bindle_server.signing import HostSigning, open_host_signing
from bindle_server.web import install_web

log = logging.getLogger(__name__)

API_PREFIX = "/v1"


def open_signing(settings: Settings) -> HostSigning:
    """The server's signing setup from its settings (raises ValueError on bad settings)."""
    return open_host_signing(
        settings.signing_keys_path,
        settings.keyring,
        settings.strategy,
        settings.require_signatures,
    )


async def _maintain(
    service: BindleService,
    maintain_stores: Callable[[], Awaitable[None]],
    interval: float,
    pending_ttl: float,
) -> None:
    """Clean up after writers that died and expire abandoned pending pushes, every
    `interval` seconds, for as long as we serve."""
    while True:
        await asyncio.sleep(interval)
        try:
            await service.settle_interrupted()
            await expire_pending(service, pending_ttl)
            await maintain_stores()
        except Exception:  # a failed round is retried at the next; serving goes on
            log.exception("maintenance round failed")


async def _collect_periodically(
    service: BindleService, settings: CollectorSettings, interval: float
) -> None:
    """Garbage collection every `interval` seconds; of several processes or nodes, the
    one that takes the lease runs it."""
    while True:
        await asyncio.sleep(interval)
        try:
            await collect(service, settings)
        except CollectorBusy as exc:
            log.info("garbage collection skipped: %s", exc)
        except Exception:  # retried at the next interval; serving goes on
            log.exception("garbage collection failed")


def collector_settings(settings: Settings) -> CollectorSettings:
    """The collector's settings from the server's (raises InvalidRetentionPolicy)."""
    retention = RetentionPolicy.load(settings.retention) if settings.retention else None
    return CollectorSettings(settings.pending_ttl, settings.gc_grace, retention)


# routes/docs.py serves these, under the server's read access.
_NO_BUILT_IN_DOCS: dict[str, Any] = {"openapi_url": None, "docs_url": None, "redoc_url": None}


def create_app(
    settings: Settings, *, backend_checked: bool = False, deliver_webhooks: bool = True
) -> FastAPI:
    """Build the application; stores and index open in its lifespan, not at import.

    `backend_checked`: the caller has just run the stores' start-up checks (serve does,
    to report a bad backend in one line), so the lifespan does not run them again.
    `deliver_webhooks=False`: a process of the caller's delivers them (serve starts one).
    Raises InvalidAuthConfig for an open server on a non-loopback address, whoever starts it.
    """
    auth = open_auth(settings)
    check_exposure(settings, auth.enabled)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        signing = open_signing(settings)
        gc_settings = collector_settings(settings)
        async with (
            open_backend(
                settings.storage_url, settings.index, start_stores=not backend_checked
            ) as backend,
            open_observers(settings, backend, deliver=deliver_webhooks) as observers,
            open_upstream(settings) as upstream,
        ):
            observers.recorder.add(EventCounter(metrics), required=False)
            service = open_service(
                settings, upstream, backend.stores, backend.index, signing, observers.recorder
            )
            await service.recover()
            app.state.service = service
            app.state.observers = observers
            app.state.settings = settings
            app.state.auth = auth
            log.info("serving bindles from %s", backend.stores.description)
            for line in _describe(settings, signing, auth, gc_settings):
                log.info("%s", line)
            if settings.read_only:
                log.warning("read-only: writes are refused; no clean-up or GC runs")
                yield
                return
            async with _background(service, backend.stores.maintain, settings, gc_settings):
                yield

    app = FastAPI(
        title="Bindle server",
        version=__version__,
        summary="Bindle v1 protocol: invoices and content-addressed parcels",
        lifespan=lifespan,
        default_response_class=TomlResponse,
        **_NO_BUILT_IN_DOCS,
    )
    install_error_handlers(app)
    app.state.metrics = metrics
    _install_middleware(app, settings, auth)
    # Outside every other middleware, so that the answers they give are counted too.
    app.add_middleware(RequestMetrics, metrics=metrics, prefix=API_PREFIX)
    # Every /v1 route authenticates its caller first (a bad Authorization header is a 401
    # everywhere); routes check what the caller may do with the bindle they act on.
    for router in (
        invoices.router,
        relationships.router,
        selection.router,
        query.router,
        keys.router,
        events.router,
    ):
        app.include_router(router, prefix=API_PREFIX, dependencies=[Depends(get_access)])
    # Login needs no credentials (it is how a caller gets them): no authentication here,
    # so a stale token sent along does not block getting a new one.
    app.include_router(login.router, prefix=API_PREFIX)
    app.include_router(health.router)
    app.include_router(metrics_router)
    app.include_router(docs.router)
    # First of all routes: they answer invoice creates and reads and `_q`, the hot paths.
    app.router.routes[:0] = [*invoices.hot_routes(API_PREFIX), *query.hot_routes(API_PREFIX)]
    install_web(app)
    return app


def _install_middleware(app: FastAPI, settings: Settings, auth: AuthSetup) -> None:
    """From the innermost to the outermost (each one added wraps those before it)."""
    app.add_middleware(RequestGuard, header_limit=settings.max_header_bytes)
    if settings.read_only:
        app.add_middleware(ReadOnly)
    if not auth.enabled and not settings.unauthenticated:
        app.add_middleware(LoopbackOnly)
    app.add_middleware(ShutdownGuard)  # it also covers the other middleware
    app.add_middleware(RequestId)  # outermost: every log line of a request carries its id


@asynccontextmanager
async def _background(
    service: BindleService,
    maintain_stores: Callable[[], Awaitable[None]],
    settings: Settings,
    gc_settings: CollectorSettings,
) -> AsyncIterator[None]:
    """The maintenance rounds and periodic GC, for as long as the app serves."""
    tasks = [
        asyncio.create_task(
            _maintain(service, maintain_stores, settings.maintenance_interval, settings.pending_ttl)
        )
    ]
    if settings.gc_interval:
        tasks.append(
            asyncio.create_task(_collect_periodically(service, gc_settings, settings.gc_interval))
        )
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _describe(
    settings: Settings, signing: HostSigning, auth: AuthSetup, gc: CollectorSettings
) -> list[str]:
    """The start-up log's account of how this server is set up."""
    return [
        f"query index: {redact(settings.index) if settings.index else 'SQLite'}",
        f"signing: {signing.describe()}",
        f"authentication: {auth.describe()}",
        f"lifecycle: {_describe_lifecycle(settings, gc)}",
        *([f"mirror of: {', '.join(map(redact, settings.upstream))}"] if settings.upstream else []),
    ]


def _describe_lifecycle(settings: Settings, gc: CollectorSettings) -> str:
    pushes = "atomic pushes" if settings.atomic_push else "pushes visible at once"
    every = f"every {format_duration(settings.gc_interval)}" if settings.gc_interval else "off"
    policy = gc.retention.describe() if gc.retention else "none"
    return (
        f"{pushes}, pending TTL {format_duration(settings.pending_ttl)}; garbage collection "
        f"{every}, grace {format_duration(settings.gc_grace)}, retention {policy}"
    )


def app_from_environment() -> FastAPI:
    """The app for uvicorn worker processes, configured by BINDLE_* variables."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings, deliver_webhooks=WEBHOOKS_ELSEWHERE not in os.environ)
    freeze_startup_objects()
    return app


def freeze_startup_objects() -> None:
    """Move everything allocated so far out of the cyclic collector's way.

    Modules, models and the app live as long as the process; without this, every full
    collection rescans them (measured as 20-30 ms pauses in `_q` latency). Only for
    server processes: a test process that builds many apps would keep their garbage.
    """
    gc.collect()
    gc.freeze()
