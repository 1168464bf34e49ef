"""Several uvicorn workers forked from one process that has already imported the app.

uvicorn's own supervisor starts its workers with `spawn`: each one imports FastAPI,
pydantic and the whole server again, which costs every worker its own ~60 MiB and most of
a second of start-up. Forking after the imports lets the workers share those pages with
the supervisor and with each other (copy-on-write; `gc.freeze` keeps the collector from
writing to them), so a second worker costs only what it allocates itself, and starts at
once. Each worker still builds its own app (a factory), because open files, database
connections and event loops must not cross a fork.

The supervisor turns SIGINT or SIGTERM into a SIGTERM to each worker (a Ctrl-C in a
terminal reaches the workers as well, and a SIGINT on top would force their shutdown);
a second one is passed on as SIGINT, which forces it. It waits for their shutdown, and
replaces a worker that dies while serving. A worker that cannot start (its app's
start-up failed) stops the whole server: starting it again would fail again.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

log = logging.getLogger("bindle_server")

# What a worker exits with when its app did not start (uvicorn's own code for it).
STARTUP_FAILURE = 3

# How long stopping workers get to finish their requests before they are killed; longer
# than uvicorn's own graceful shutdown (unbounded by default) would be unbounded, so
# this is the supervisor's limit.
SHUTDOWN_SECONDS = 30.0

# prctl(2): the signal a process gets when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1

# A worker that dies sooner than this after its start is not replaced again at once.
_RESPAWN_PAUSE = 1.0


def serve(app: str, sock: socket.socket, workers: int, options: dict[str, Any]) -> int:
    """Run `workers` forked uvicorn servers of factory `app` on `sock` until stopped.

    Returns the supervisor's exit code: 0 after a requested stop, STARTUP_FAILURE when a
    worker's start-up failed.
    """
    _import_before_fork()
    # Everything allocated so far lives as long as the process: freeze it so that neither
    # this process's nor the workers' collector touches (and so copies) those pages.
    gc.collect()
    gc.freeze()
    parent = os.getpid()
    supervisor = _Supervisor(lambda: _worker(app, sock, options, parent), workers)
    return supervisor.run()


class _Supervisor:
    def __init__(self, target: Callable[[], int], workers: int) -> None:
        self._target = target
        self._workers = workers
        self._children: dict[int, float] = {}  # pid -> start time
        self._stopping = False
        self._exit_code = 0

    def run(self) -> int:
        previous = {
            signum: signal.signal(signum, self._stop) for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for _ in range(self._workers):
                self._spawn()
            self._watch()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return self._exit_code

    def _spawn(self) -> None:
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the supervisor's code
            code = 1
            try:
                code = self._target()
            finally:
                os._exit(code)
        self._children[pid] = time.monotonic()
        log.info("started worker process %d", pid)

    def _watch(self) -> None:
        deadline: float | None = None
        while self._children:
            if self._stopping and deadline is None:
                deadline = time.monotonic() + SHUTDOWN_SECONDS
                self._signal_children(signal.SIGTERM)
            pid, status = self._next_exited()
            if pid == 0:
                if deadline is not None and time.monotonic() > deadline:
                    log.warning("workers still busy after %.0f s: killing them", SHUTDOWN_SECONDS)
                    self._signal_children(signal.SIGKILL)
                    deadline = float("inf")
                # A signal interrupts the sleep, so a stop is seen at once.
                time.sleep(0.1)
                continue
            self._reap(pid, os.waitstatus_to_exitcode(status))

    def _next_exited(self) -> tuple[int, int]:
        """A worker that has exited and its wait status, or (0, 0). Only workers: the
        server's other children (the webhook delivery process) are watched by others."""
        for pid in list(self._children):
            try:
                exited, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not ours to wait for after all
                self._children.pop(pid, None)
                continue
            if exited:
                return exited, status
        return 0, 0

    def _reap(self, pid: int, code: int) -> None:
        started = self._children.pop(pid, None)
        if started is None or self._stopping:
            return
        if code == STARTUP_FAILURE:
            log.error("worker process %d could not start: stopping the server", pid)
            self._exit_code = STARTUP_FAILURE
            self._stopping = True
            return
        log.warning("worker process %d exited unexpectedly (code %d): replacing it", pid, code)
        if time.monotonic() - started < _RESPAWN_PAUSE:
            time.sleep(_RESPAWN_PAUSE)
        if not self._stopping:
            self._spawn()

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            # A second Ctrl-C forces the workers' shutdown, as it does uvicorn's own
            # (uvicorn forces on a SIGINT that follows another stop signal).
            self._signal_children(signal.SIGINT)
        self._stopping = True

    def _signal_children(self, signum: int) -> None:
        for pid in self._children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


def _worker(app: str, sock: socket.socket, options: dict[str, Any], parent: int) -> int:
    """One uvicorn server in a forked worker; returns its exit code."""
    _die_with(parent)
    # The supervisor's handlers came along with the fork. uvicorn installs its own while
    # it serves and, once stopped, raises the signals it caught again with these: as
    # KeyboardInterrupt, the event loop still finishes its cancelled requests (a forced
    # shutdown answers them 503) instead of the process dying on the spot.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    server = uvicorn.Server(uvicorn.Config(app, **options))
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    return 0 if server.started else STARTUP_FAILURE


def _die_with(parent: int) -> None:
    """Have the kernel kill this worker when the supervisor dies, even by SIGKILL: a
    killed server must not leave workers behind that go on answering on its port."""
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "prctl"):  # not Linux: the supervisor's own stop has to do
        return
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning(
            "cannot tie worker %d to the server's life: %s",
            os.getpid(),
            os.strerror(ctypes.get_errno()),
        )
    if os.getppid() != parent:  # the supervisor died before the line above
        os._exit(1)


def _import_before_fork() -> None:
    """Import what every worker would import on its own, so that they share it."""
    # uvicorn resolves its loop and protocol classes by import string in each worker's
    # `Config.load`; imported here, the workers find them in `sys.modules`.
    for module in (
        "uvloop",
        "httptools",
        "uvicorn.lifespan.on",
        "uvicorn.loops.auto",
        "uvicorn.protocols.http.auto",
        "uvicorn.protocols.http.httptools_impl",
        "uvicorn.protocols.http.h11_impl",
        "uvicorn.protocols.websockets.auto",
    ):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
