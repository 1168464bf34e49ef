"""The webhook delivery process: one per node, started and watched over by `serve`.

Sending a webhook costs about as much interpreter time as the push it reports (building,
signing and POSTing the request, reading the answer). Run in a serving process, it took
the interpreter lock and the event loop from the requests. In a process of its own it
takes neither, and it runs at a lower CPU priority (NICE), so that on a busy machine the
requests come first and the deliveries catch up afterwards. One process per node also
means one journal poller and one connection pool per endpoint, whatever `--workers` is.

Nothing passes between it and the workers but the journal and the outbox (a file of the
data directory, or PostgreSQL), which it polls (events/delivery.py). It ends when serve
stops it (SIGTERM: attempts in flight are cancelled and what is settled is recorded) or
when serve is gone (checked every PARENT_CHECK seconds, so a killed server leaves no
sender behind); Ctrl-C is serve's to handle. serve starts it again if it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path

from bindle_server.api.observers import webhook_delivery
from bindle_server.config import Settings, configure_logging
from bindle_server.events.journal import open_journal

log = logging.getLogger(__name__)

# nice(2) increment of the delivery process, as `gc --nice` suggests for collections.
NICE = 10
# Seconds between the delivery process's checks that the server is still there.
PARENT_CHECK = 1.0
# Bounds on the waits of start-up and shut-down, not expected durations.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# Restarts after an unasked end wait this long, doubling up to the maximum; a process
# that ran longer than STABLE seconds is restarted after the first delay again.
RESTART_DELAY = 1.0
RESTART_MAX_DELAY = 60.0
STABLE = 60.0


class DeliveryProcessFailed(RuntimeError):
    """The delivery process ended before it was ready (its log says why)."""


class DeliveryProcess:
    """Runs the delivery process, and a thread that starts it again when it ends unasked."""

    def __init__(self, settings: Settings, directory: Path | None) -> None:
        self._settings = settings
        self._directory = directory
        # spawn, as uvicorn's workers: a fork would copy this process's threads and locks.
        self._context = multiprocessing.get_context("spawn")
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # orders a restart against stop()
        self._process: SpawnProcess | None = None
        # Kept as long as its process runs: a process that starts after the event was
        # collected here cannot open its semaphore (FileNotFoundError).
        self._ready: ProcessEvent | None = None
        self._started_at = 0.0
        self._supervisor = threading.Thread(
            target=self._supervise, name="webhook-process", daemon=True
        )

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start it and wait until every webhook has its cursor, so that no request served
        afterwards can record an event a new webhook would not hear of."""
        ready = self._spawn()
        process = self._process
        assert process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.wait(0.1):
            if not process.is_alive() or time.monotonic() > deadline:
                self._stop_process(process)
                raise DeliveryProcessFailed(
                    f"the webhook delivery process did not start (exit code {process.exitcode})"
                )
        log.info("webhook delivery process %d started", process.pid)
        self._supervisor.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None:
            self._stop_process(process)
        if self._supervisor.is_alive():
            self._supervisor.join(STOP_TIMEOUT)

    def _spawn(self) -> ProcessEvent:
        ready = self._context.Event()
        process = self._context.Process(
            target=run,
            args=(self._settings, self._directory, os.getpid(), ready),
            name="bindle-server-webhooks",
            # Not daemonic: multiprocessing terminates daemonic children in any process
            # that exits normally, and worker processes forked from this one (prefork)
            # hold a copy of this one's list of children. stop() ends it, and it ends
            # by itself once this process is gone.
            daemon=False,
        )
        process.start()
        self._process, self._ready, self._started_at = process, ready, time.monotonic()
        return ready

    def _supervise(self) -> None:
        delay = RESTART_DELAY
        while True:
            process = self._process
            assert process is not None
            process.join()
            if self._stopping.is_set():
                return
            if time.monotonic() - self._started_at > STABLE:
                delay = RESTART_DELAY
            log.warning(
                "webhook delivery process %d ended (exit code %s); starting another in %.0f s",
                process.pid, process.exitcode, delay,
            )  # fmt: skip
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._spawn()
            log.info("webhook delivery process %d started", self.pid)
            delay = min(delay * 2, RESTART_MAX_DELAY)

    @staticmethod
    def _stop_process(process: SpawnProcess) -> None:
        if process.is_alive():
            process.terminate()
            process.join(STOP_TIMEOUT)
        if process.is_alive():
            process.kill()
            process.join(STOP_TIMEOUT)


def run(settings: Settings, directory: Path | None, parent: int, ready: ProcessEvent) -> None:
    """The delivery process's main function."""
    # Ctrl-C reaches the whole process group: serve shuts down, then stops this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(settings.log_level, settings.log_format)
    with contextlib.suppress(OSError):  # a priority is a preference, not a requirement
        os.nice(NICE)
    asyncio.run(_deliver(settings, directory, parent, ready))


async def _deliver(
    settings: Settings, directory: Path | None, parent: int, ready: ProcessEvent
) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    journal = await open_journal(settings.index, directory)
    try:
        async with webhook_delivery(settings, journal, watch=True):
            ready.set()
            while os.getppid() == parent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), PARENT_CHECK)
                    return
            log.warning("the server (process %d) is gone: webhook delivery stops", parent)
    finally:
        await journal.close()
