"""The bindle-server process under test, and the sampler of its RSS and CPU time."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bindle_bench.common import (
    LOOPBACK,
    MIB,
    RSS_INTERVAL,
    STOP_TIMEOUT,
    BenchError,
    child_pids,
    clean_env,
    cpu_seconds,
    file_tail,
    free_port,
    rss_bytes,
    wait_ready,
)

# CPU seconds used so far, by process name (e.g. radosgw, ceph-osd, postgres).
EngineCpu = Callable[[], dict[str, float]]


@dataclass
class Server:
    """One `python -m bindle_server` process at a time on a data directory."""

    data_dir: Path
    log_path: Path
    start_timeout: float
    extra_args: tuple[str, ...] = ()
    # Variables whose names start with one of these are not passed on from the environment;
    # `env` is added after that (the S3 credentials of the scale-out backend).
    drop_env: tuple[str, ...] = ("BINDLE_",)
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    version: str = "unknown"
    killed: bool = False

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchError("server is not running")
        return self.process.pid

    def option(self, name: str) -> str:
        """The value given to the server's option `name` (e.g. "--index")."""
        try:
            return self.extra_args[self.extra_args.index(name) + 1]
        except (ValueError, IndexError):
            raise BenchError(f"the server was started without {name}") from None

    def log_tail(self, chars: int = 3000) -> str:
        return file_tail(self.log_path, chars)

    def start(self) -> float:
        """Start the server; return the seconds from spawning it until /healthz answered 200."""
        if self.process is not None:
            raise BenchError("server already running")
        problem = "never started"
        for _ in range(3):  # the probed port can be taken before the server binds it
            self.port = free_port()
            elapsed = self._start_once()
            if elapsed is not None:
                return elapsed
            problem = self.log_tail()
        raise BenchError(f"bindle-server did not start:\n{problem}")

    def _start_once(self) -> float | None:
        command = [
            sys.executable,
            "-m",
            "bindle_server",
            "--address",
            f"{LOOPBACK}:{self.port}",
            "--directory",
            str(self.data_dir),
            *self.extra_args,
        ]
        # The client exists before the clock starts, so its set-up is not timed.
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            with self.log_path.open("ab") as log:
                started = time.perf_counter()
                self.process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**clean_env(self.drop_env), **self.env},
                )
            deadline = started + self.start_timeout
            response = wait_ready(client, self.process, f"{self.base_url}/healthz", deadline)
            if response is not None:
                elapsed = time.perf_counter() - started
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    self.version = str(response.json()["version"])
                return elapsed
            if self.process.poll() is not None:
                self.process = None
                return None
        self.stop()
        raise BenchError(
            f"/healthz did not answer 200 within {self.start_timeout:g} s:\n{self.log_tail()}"
        )

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; return the exit code (None if not running)."""
        process, self.process = self.process, None
        self.killed = False
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.killed = True
                process.kill()
                process.wait(STOP_TIMEOUT)
        return process.returncode


# ---------------------------------------------------------------------------------------
# RSS sampling


class RssSampler:
    """Samples VmRSS of a pid every 20 ms in a thread; `growth_mib` = peak - value before.

    The pid's children alive when sampling starts count with it (summed), so that a server
    with `--workers N` is measured whole: its supervisor and its worker processes.
    Also accounts the CPU time the server and this (client) process used meanwhile, and,
    given `engines` (CPU seconds so far by process name), the storage engines' CPU time.
    """

    def __init__(self, pid: int, max_seconds: float, engines: EngineCpu | None = None) -> None:
        self._pid = pid
        self._pids = [pid]
        self._max_seconds = max_seconds
        self._engines = engines
        self._engines_start: dict[str, float] = {}
        self.engine_cpu: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.baseline = 0
        self.peak = 0
        self.samples = 0
        self.server_cpu = 0.0
        self.client_cpu = 0.0
        self.wall = 0.0

    def __enter__(self) -> RssSampler:
        try:
            self._pids = [self._pid, *child_pids(self._pid)]
            self._server_cpu_start = self._cpu()
            self.baseline = self._rss()
        except OSError as exc:
            raise BenchError(f"cannot read /proc/{self._pid} (server gone?): {exc}") from exc
        if self._engines is not None:
            self._engines_start = self._engines()
        self._client_cpu_start = time.process_time()
        self._wall_start = time.perf_counter()
        self.peak = self.baseline
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._sample()
        self.wall = time.perf_counter() - self._wall_start
        self.client_cpu = time.process_time() - self._client_cpu_start
        with contextlib.suppress(OSError, ValueError, IndexError):
            self.server_cpu = self._cpu() - self._server_cpu_start
        if self._engines is not None:
            now = self._engines()
            self.engine_cpu = {
                name: seconds - self._engines_start.get(name, 0.0) for name, seconds in now.items()
            }

    def cpu_summary(self) -> str:
        wall = max(self.wall, 1e-9)
        return (
            f"server CPU {self.server_cpu:.2f} s ({100 * self.server_cpu / wall:.0f}% of a core), "
            f"bench client CPU {self.client_cpu:.2f} s ({100 * self.client_cpu / wall:.0f}%)"
        )

    def engines_summary(self) -> str:
        """The engines' CPU time meanwhile, as "; engines CPU ..."; "" without engines."""
        if not self.engine_cpu:
            return ""
        wall = max(self.wall, 1e-9)
        parts = ", ".join(
            f"{name} {seconds:.2f} s ({100 * seconds / wall:.0f}%)"
            for name, seconds in self.engine_cpu.items()
        )
        total = sum(self.engine_cpu.values())
        return f"; engines CPU {parts}, together {100 * total / wall:.0f}% of a core"

    def _cpu(self) -> float:
        """CPU seconds of the pid and its children; OSError if the pid itself is gone."""
        total = cpu_seconds(self._pid)
        for child in self._pids[1:]:
            with contextlib.suppress(OSError):
                total += cpu_seconds(child)
        return total

    def _rss(self) -> int:
        """VmRSS of the pid and its children; OSError if the pid itself is gone."""
        total = rss_bytes(self._pid)
        for child in self._pids[1:]:
            with contextlib.suppress(OSError, BenchError):
                total += rss_bytes(child)
        return total

    def _sample(self) -> bool:
        try:
            value = self._rss()
        except (OSError, BenchError):
            return False
        self.peak = max(self.peak, value)
        self.samples += 1
        return True

    def _run(self) -> None:
        deadline = time.monotonic() + self._max_seconds
        while not self._stop.wait(RSS_INTERVAL) and time.monotonic() < deadline:
            if not self._sample():
                return

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / MIB
