"""The listening socket, bound before anything is logged or started, and uvicorn on it.

uvicorn binds its own socket only after the app's start-up has run and been logged, so
a taken port used to show up as "startup complete" followed by `[Errno 98]`. Binding
here first turns that into one line that names the option to change.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from typing import Any

import typer
import uvicorn

from bindle_server.cli.server import arenas, prefork
from bindle_server.config import Settings

BACKLOG = 2048  # uvicorn's default


def bind(settings: Settings) -> socket.socket:
    """A listening TCP socket on `settings.address`, or BadParameter saying what to do."""
    host, port = settings.host_and_port()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a restart may reuse the port while old connections linger.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        reason = (
            "the address is already in use (is another server running there?)"
            if exc.errno == errno.EADDRINUSE
            else exc.strerror or str(exc)
        )
        raise typer.BadParameter(
            f"cannot listen on {settings.address}: {reason}; choose another with "
            "--address HOST:PORT (BINDLE_IP_ADDRESS_PORT)",
            param_hint="--address",
        ) from None
    sock.set_inheritable(True)  # worker processes serve on it too
    return sock


def run(app: Any, sock: socket.socket, workers: int, **options: Any) -> None:
    """Serve `app` (an ASGI app, or a factory's import path with workers > 1) on `sock`."""
    arenas.limit_arenas()  # before the workers fork and any thread allocates
    if workers == 1:
        # uvicorn re-raises the Ctrl-C it handled once it has shut down (uvicorn.run
        # swallows it the same way).
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(uvicorn.Config(app, **options)).run(sockets=[sock])
        return
    code = prefork.serve(app, sock, workers, options)
    if code:
        raise SystemExit(code)
