"""Dependencies point one way: model <- storage, search, auth <- backend, service <- api, cli; the
client library sits on model, signing and durable (crash-safe file writes, shared with
storage), and the `bindle` CLI only on the client."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "bindle_server"

# Which project packages each layer may import (besides itself, errors and the package root).
ALLOWED = {
    "model": set(),
    "durable": set(),
    "logs": set(),
    "pgpool": set(),
    "sqlitedb": {"threads"},
    "threads": set(),
    "events": {"threads", "pgpool", "sqlitedb"},
    "storage": {"threads", "model", "durable"},
    "search": {"threads", "model", "pgpool", "sqlitedb"},
    "signing": {"model", "durable"},
    "service": {"threads", "model", "storage", "search", "signing", "events"},
    # The pull-through mirror: a BindleService that reads through to upstream servers.
    "mirror": {"threads", "model", "storage", "search", "signing", "service", "events", "migrate"},
    "fsck": {"threads", "model", "storage", "search", "service"},
    "backend": {"storage", "search"},
    "migrate": {"threads", "model", "storage"},
    "lifecycle": {"threads", "model", "storage", "search", "service", "events"},
    "config": {"model", "logs"},
    "auth": {"threads", "model", "durable"},
    "api": {
        "threads",
        "events",
        "logs",
        "model",
        "storage",
        "search",
        "signing",
        "service",
        "config",
        "auth",
        "backend",
        "lifecycle",
        "mirror",
        "web",
    },
    # The UI reuses the API's access checks and error answers (api.auth, api.errors).
    "web": {
        "threads",
        "api",
        "auth",
        "config",
        "events",
        "model",
        "search",
        "service",
        "signing",
    },
    "client": {"model", "signing", "durable"},
    "cli": {
        "threads",
        "events",
        "model",
        "storage",
        "search",
        "signing",
        "service",
        "config",
        "api",
        "auth",
        "fsck",
        "client",
        "backend",
        "migrate",
        "lifecycle",
        "mirror",
    },
}
# The `bindle` command goes only through the client library (plus keys and invoices).
CLIENT_CLI = PACKAGE / "cli" / "client"
CLIENT_CLI_ALLOWED = {"client", "model", "signing", "errors"}
# Third-party modules the pure layers must not touch.
FORBIDDEN_EXTERNAL = {
    "durable": {"fastapi", "starlette", "uvicorn", "anyio", "httpx"},
    "threads": {"fastapi", "starlette", "uvicorn", "httpx"},
    "logs": {"fastapi", "starlette", "uvicorn"},
    "events": {"fastapi", "starlette", "uvicorn"},
    "model": {"fastapi", "starlette", "uvicorn", "aiofiles", "anyio", "sqlite3"},
    "storage": {"fastapi", "starlette", "uvicorn"},
    "search": {"fastapi", "starlette", "uvicorn"},
    "signing": {"fastapi", "starlette", "uvicorn"},
    "service": {"fastapi", "starlette", "uvicorn"},
    "mirror": {"fastapi", "starlette", "uvicorn"},
    "backend": {"fastapi", "starlette", "uvicorn"},
    "migrate": {"fastapi", "starlette", "uvicorn"},
    "lifecycle": {"fastapi", "starlette", "uvicorn"},
    "auth": {"fastapi", "starlette", "uvicorn", "sqlite3"},
    "client": {"fastapi", "starlette", "uvicorn", "typer", "sqlite3"},
}


def _layer(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if _layer(p) in ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_from_lower_layers(path: Path) -> None:
    layer = _layer(path)
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "bindle_server" and len(parts) > 1:
            target = parts[1]
            if target in (layer, "errors"):
                continue
            assert target in ALLOWED[layer], f"{path.name} ({layer}) imports {name}"
        else:
            forbidden = FORBIDDEN_EXTERNAL.get(layer, set())
            assert parts[0] not in forbidden, f"{path.name} ({layer}) imports {name}"


def test_bindle_cli_imports_only_the_client_library_model_and_signing() -> None:
    modules = sorted(CLIENT_CLI.rglob("*.py"))
    assert modules, f"no modules under {CLIENT_CLI}"
    for path in modules:
        for name in _imports(path):
            parts = name.split(".")
            if parts[:3] == ["bindle_server", "cli", "client"]:
                continue  # the package's own modules
            if parts[0] == "bindle_server" and len(parts) > 1:
                assert parts[1] in CLIENT_CLI_ALLOWED, f"cli/client/{path.name} imports {name}"
