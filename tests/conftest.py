"""Shared fixtures: settings, the app in-process, and a live server process."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bindle_server import threads
from bindle_server.api.app import create_app
from bindle_server.config import Settings
from tests import postgres, rgw
from tests.hops import CountingExecutor
from tests.servers import ServerProcess, start_server

# Read at import: `_clean_environment` removes BINDLE_* variables before fixtures run.
_POSTGRES_URL = os.environ.get(postgres.URL_VARIABLE)
_S3_SERVER = rgw.from_environment()
# CI sets this: there, a test engine that cannot start is a failure, not a skip.
_REQUIRE_ENGINES = os.environ.get("BINDLE_TEST_REQUIRE_ENGINES") == "1"


def _engine_unavailable(reason: str) -> None:
    if _REQUIRE_ENGINES:
        pytest.fail(f"BINDLE_TEST_REQUIRE_ENGINES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see no BINDLE_* variables of the machine they run on."""
    for name in list(os.environ):
        if name.startswith("BINDLE_") and name != "BINDLE_REFERENCE_CLIENTS":
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """Commands run in-process (typer's CliRunner) configure logging onto a stream that is
    closed once they return; later log records would then fail to print."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """The server runs on asyncio (uvicorn) only; trio, which selenium brings along,
    would otherwise double every async test."""
    return "asyncio"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def settings_factory(data_dir: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"directory": data_dir, **overrides}
        return Settings(**values)

    return make


@pytest.fixture
def api(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    """The ASGI app in-process, lifespan included, on the local-disk backend."""
    with TestClient(create_app(settings_factory()), base_url="http://testserver/v1") as client:
        yield client


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start live servers (stopped at teardown); each call may reuse a data directory."""
    started: list[ServerProcess] = []

    def start(
        data_dir: Path | None = None, *extra_args: str, env: dict[str, str] | None = None
    ) -> ServerProcess:
        directory = data_dir or tmp_path / f"server-data-{len(started)}"
        log = tmp_path / f"server-{len(started)}.log"
        server = start_server(directory, log, *extra_args, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def live_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server: BINDLE_TEST_POSTGRES_URL, or a throwaway cluster."""
    if _POSTGRES_URL:
        yield _POSTGRES_URL
        return
    reason = postgres.unavailable_reason()
    if reason is not None:
        _engine_unavailable(reason)
    with postgres.cluster() as cluster:
        yield cluster.url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """URL of an empty database of its own on the test PostgreSQL server."""
    with postgres.fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="session")
def s3_server() -> Iterator[rgw.S3Server]:
    """An S3 server: BINDLE_TEST_S3_ENDPOINT, or a throwaway Ceph RGW."""
    if _S3_SERVER is not None:
        yield _S3_SERVER
        return
    reason = rgw.unavailable_reason()
    if reason is not None:
        _engine_unavailable(reason)
    with rgw.gateway() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: rgw.S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty bucket of the test's own; in-process code finds its credentials in AWS_*."""
    for name, value in s3_server.environment.items():
        monkeypatch.setenv(name, value)
    with rgw.fresh_bucket(s3_server) as bucket:
        yield bucket


@pytest.fixture
def s3_url(s3_server: rgw.S3Server, s3_bucket: str) -> str:
    """Storage URL of an empty bucket (under a prefix, as deployments often use)."""
    return s3_server.url(s3_bucket, "bindle")


BACKENDS = ["disk", "s3+postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    """Settings that select the backend under test (parametrizes the test over both)."""
    if request.param == "disk":
        return {}
    return {
        "storage": request.getfixturevalue("s3_url"),
        "index": request.getfixturevalue("postgres_url"),
    }


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingExecutor]:
    """Counts this process's worker-thread hops (threads.run_sync)."""
    executor = CountingExecutor()
    monkeypatch.setattr(threads, "_executor", executor)
    yield executor
    executor.shutdown()
