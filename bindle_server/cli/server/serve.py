"""`bindle-server serve`: check the settings, bind the socket, then run uvicorn on it."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from bindle_server import __version__
from bindle_server.cli.server import listen
from bindle_server.cli.server.options import SERVE, settings_options
from bindle_server.config import Settings, configure_logging
from bindle_server.errors import BindleError

if TYPE_CHECKING:  # the API is imported only to serve, so other commands start faster
    from bindle_server.api.auth import AuthSetup

log = logging.getLogger("bindle_server")


@settings_options(*SERVE)
def serve(settings: Settings) -> None:
    """Serve the Bindle API under /v1 (same as running bindle-server with no command)."""
    run_server(settings)


def run_server(settings: Settings) -> None:
    """Refuse unusable settings in one line each, then serve until interrupted."""
    from bindle_server.api.app import create_app, freeze_startup_objects
    from bindle_server.api.observers import WEBHOOKS_ELSEWHERE

    configure_logging(settings.log_level, settings.log_format)
    auth = _check(settings)
    directory = _check_backend(settings)
    tls = _tls_options(settings)
    _log_exposure(settings, auth)
    sock = listen.bind(settings)
    log.info(
        "bindle-server %s listening on %s://%s, data in %s",
        __version__,
        "https" if tls else "http",
        settings.address,
        settings.storage_url,
    )
    options: dict[str, Any] = {
        "log_config": None,
        "log_level": settings.log_level,
        "access_log": settings.access_log,
        "server_header": False,
        # Outlast the clients' own idle timeouts (httpx keeps a connection 5 s, reqwest
        # 90 s): with equal timeouts a client may reuse a connection at the moment the
        # server closes it, and that request fails with a reset nobody can retry safely.
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        **tls,
    }
    with _webhook_process(settings, directory) as delivering:
        workers = settings.worker_count()
        if workers == 1:
            app = create_app(settings, backend_checked=True, deliver_webhooks=not delivering)
            freeze_startup_objects()
            listen.run(app, sock, 1, **options)
            return
        # Worker processes import the app and rebuild the settings from the environment.
        # They share the data directory safely: writes publish with link/rename, temp files
        # are locked, and the SQLite index coordinates its writers.
        os.environ.update(settings.to_environment())
        if delivering:
            os.environ[WEBHOOKS_ELSEWHERE] = "1"
        app_path = "bindle_server.api.app:app_from_environment"
        with _shared_metrics():
            listen.run(app_path, sock, workers, factory=True, **options)


@contextmanager
def _webhook_process(settings: Settings, directory: Path | None) -> Iterator[bool]:
    """Deliver webhooks from a process of their own while serving (webhook_process.py);
    yields whether one runs. None does without webhooks, or when the journal is in this
    process's memory (in-memory storage): the app then delivers them itself."""
    from bindle_server.api.observers import journal_is_shared, webhooks_to_deliver
    from bindle_server.cli.server.webhook_process import DeliveryProcess, DeliveryProcessFailed

    if not webhooks_to_deliver(settings) or not journal_is_shared(settings, directory):
        yield False
        return
    process = DeliveryProcess(settings, directory)
    try:
        process.start()
    except DeliveryProcessFailed as exc:
        raise typer.BadParameter(f"{exc}; see the log above", param_hint="--webhook") from None
    try:
        yield True
    finally:
        process.stop()


# Longer than the clients keep an idle connection (see run_server).
KEEP_ALIVE_SECONDS = 100

# prometheus_client's own variable: where each worker process keeps its metric values.
METRICS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def _shared_metrics() -> Iterator[None]:
    """Have the workers keep their metrics where any of them can sum them for a scrape.

    A fresh directory per run (values from an earlier run would be counted again), in
    the temporary directory rather than the data directory: an S3 backend has none, and
    several servers may share one data directory, each with its own metrics. Removed at
    exit; one a killed server leaves behind is never reused. An operator who sets the
    variable chooses the directory, and empties it between runs, themselves.
    """
    if os.environ.get(METRICS_DIRECTORY):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="bindle-metrics-") as directory:
        os.environ[METRICS_DIRECTORY] = directory
        try:
            yield
        finally:
            del os.environ[METRICS_DIRECTORY]


def _check(settings: Settings) -> AuthSetup:
    """Fail here, with one readable line, rather than inside the server's start-up."""
    from bindle_server.api.app import collector_settings, open_signing
    from bindle_server.api.auth import open_auth
    from bindle_server.api.exposure import check_exposure
    from bindle_server.api.mirroring import check_upstream
    from bindle_server.events.webhooks import load_webhooks
    from bindle_server.search.registry import check_index_url

    try:
        settings.host_and_port()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--address") from None
    try:
        open_signing(settings)
        auth = open_auth(settings)
        check_exposure(settings, auth.enabled)
        check_index_url(settings.index)
        collector_settings(settings)
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        load_webhooks(settings.webhook, secret, settings.webhooks_file)
        check_upstream(settings)
    except (ValueError, BindleError) as exc:
        raise typer.BadParameter(str(exc)) from None
    return auth


def _log_exposure(settings: Settings, auth: AuthSetup) -> None:
    if auth.enabled:
        log.info("authentication: %s", auth.describe())
    elif settings.listens_on_loopback():
        log.warning(
            "no authentication: anyone who can reach %s may read and write (loopback only)",
            settings.address,
        )
    else:
        log.warning(
            "no authentication (--unauthenticated): anyone who can reach %s may read and write",
            settings.address,
        )


def _tls_options(settings: Settings) -> dict[str, str]:
    """uvicorn's TLS options, once both files are readable (Settings pairs them)."""
    if settings.tls_cert is None or settings.tls_key is None:
        return {}
    for path in (settings.tls_cert, settings.tls_key):
        if not path.is_file():
            raise typer.BadParameter(f"TLS file {path} does not exist")
    return {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}


def _check_backend(settings: Settings) -> Path | None:
    """Open the stores and the index once before serving: an unreachable bucket or
    database, or a missing extra, is one readable line here, not a start-up traceback.
    Returns the backend's data directory (None for S3 and memory)."""
    from bindle_server.backend import open_backend

    async def probe() -> Path | None:
        async with open_backend(settings.storage_url, settings.index) as backend:
            return backend.directory

    try:
        return asyncio.run(probe())
    except (ValueError, BindleError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--storage/--index") from None
    except Exception as exc:  # the database driver's own connection errors
        raise typer.BadParameter(
            f"cannot open the backend: {type(exc).__name__}: {exc}".strip(),
            param_hint="--storage/--index",
        ) from None
