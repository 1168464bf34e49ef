"""Constants, targets, small helpers and signal handling shared by the benchmark's modules."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import signal
import socket
import subprocess
import time
import types
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx

T = TypeVar("T")

MIB: Final = 1024 * 1024
CURL: Final = "/usr/bin/curl"
LOOPBACK: Final = "127.0.0.1"
RSS_INTERVAL: Final = 0.020  # seconds between VmRSS samples
HEALTH_POLL: Final = 0.010  # seconds between /healthz probes while starting
STOP_TIMEOUT: Final = 15.0  # SIGTERM, then SIGKILL after this long
MIN_RUNS: Final = 3
CLIENT_BOUND: Final = 0.85  # bench CPU / wall time above which a rate is the client's limit

# Targets
UPLOAD_VS_HASHLIB: Final = 0.5
DOWNLOAD_MIB_S: Final = 1024.0
RSS_GROWTH_MIB: Final = 100.0
QUERY_P99_MS: Final = 10.0
STRICT_ONE_P99_MS: Final = 3.0  # issue 16: strict `_q` of one match, c=1
TERM_PAGE_P99_MS: Final = 5.0  # issue 16: `_q` of 100 matches, l=50, c=1
STARTUP_S: Final = 1.0
STARTUP_AT_INVOICES: Final = 10_000

DEFAULTS: Final[dict[str, object]] = {
    "size_mib": 1024,
    "runs": MIN_RUNS,
    "hash_mib": 256,
    "invoices": 10_000,
    "creates": 3000,
    "gets": 5000,
    "concurrency": 64,
    "queries": 600,
    "restarts": 3,
    "peer_rounds": 5,
}


class BenchError(RuntimeError):
    """The benchmark could not measure something; the message says what and why."""


# ---------------------------------------------------------------------------------------
# Small helpers


def file_tail(path: Path, chars: int = 3000) -> str:
    """The last `chars` characters of a log file; empty if it cannot be read."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def pss_bytes(pids: Sequence[int]) -> int:
    """Proportional set size of processes together, from /proc/PID/smaps_rollup.

    Pages shared between them (a forked worker shares its supervisor's) count once in the
    sum, where summed VmRSS counts them once per process. Processes gone meanwhile count 0.
    """
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """The live children of a process (one level), by a scan of /proc.

    A server with `--workers N` is a supervisor with N worker processes under it.
    """
    children = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                ppid = stat.read().rpartition(")")[2].split()[1]
        except (OSError, IndexError):
            continue  # gone meanwhile
        if ppid == str(pid):
            children.append(int(entry.name))
    return children


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 600 values is the 594th smallest)."""
    if not values:
        raise BenchError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def clean_env(drop_prefixes: Sequence[str]) -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not any(key.upper().startswith(prefix) for prefix in drop_prefixes)
    }


# Loopback only: no proxy from the environment may sit between client and server.
PROXY_VARS: Final = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def curl_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.upper() not in PROXY_VARS}


def fmt_mib_s(value: float) -> str:
    return f"{value:,.0f} MiB/s"


def read_meminfo() -> dict[str, int]:
    """/proc/meminfo in kiB, by field name."""
    result: dict[str, int] = {}
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                result[name] = int(parts[0])
    return result


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def command_output(args: Sequence[str], timeout: float = 10.0) -> str:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = proc.stdout.strip().splitlines()
    return lines[0] if proc.returncode == 0 and lines else "unknown"


class Interrupts:
    """SIGINT, SIGTERM and SIGHUP stop the benchmark cleanly, also inside an asyncio phase.

    Outside one they raise KeyboardInterrupt; inside one they cancel its task, and `run`
    turns the cancellation into KeyboardInterrupt. Either unwinds through the `finally`
    that stops the server and the engines; inside `deferred()` (that clean-up) a signal is
    only recorded, so a second Ctrl-C cannot leave processes behind. Signals the parent set
    to be ignored (nohup, `&`) stay ignored.
    """

    def __init__(self) -> None:
        self.received: list[str] = []
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deferring = 0

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, self._on_signal)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Record signals without raising while the block runs (clean-up must finish)."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1

    def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
        self.received.append(signal.Signals(signum).name)
        if self._deferring:
            return
        task, loop = self._task, self._loop
        if task is not None and loop is not None and not task.done():
            task.cancel()
            loop.call_soon_threadsafe(lambda: None)  # wake the loop if it is waiting
            return
        raise KeyboardInterrupt(self.received[-1])

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        async def main() -> T:
            self._task = asyncio.current_task()
            self._loop = asyncio.get_running_loop()
            try:
                return await coroutine
            finally:
                self._task = self._loop = None

        try:
            return asyncio.run(main())
        except asyncio.CancelledError:
            if self.received:
                raise KeyboardInterrupt(self.received[-1]) from None
            raise


INTERRUPTS: Final = Interrupts()


def wait_ready(
    client: httpx.Client, process: subprocess.Popen[bytes], url: str, deadline: float
) -> httpx.Response | None:
    """Probe `url` every HEALTH_POLL until it answers 200 (that answer) or `process` exits
    or `deadline` (time.perf_counter) passes (None)."""
    while time.perf_counter() < deadline and process.poll() is None:
        try:
            response = client.get(url)
        except httpx.TransportError:
            pass
        else:
            if response.status_code == 200:
                return response
        time.sleep(HEALTH_POLL)
    return None
