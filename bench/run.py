#!/usr/bin/env python3
"""Benchmark a real bindle-server process on a loopback port.

Starts `python -m bindle_server` on a fresh temporary data directory and measures parcel
upload and download throughput (with curl), the server's RSS growth per transfer, invoice
create and GET rates under concurrency, `_q` latency with many invoices stored, and the
start-up time with those invoices on disk. Prints a table with the targets and PASS/MISS;
`--markdown PATH` also writes it as Markdown. See `python bench/run.py --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import tomllib
import types
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx
import tomli_w

T = TypeVar("T")

MIB: Final = 1024 * 1024
CURL: Final = "/usr/bin/curl"
LOOPBACK: Final = "127.0.0.1"
RSS_INTERVAL: Final = 0.020  # seconds between VmRSS samples
HEALTH_POLL: Final = 0.010  # seconds between /healthz probes while starting
STOP_TIMEOUT: Final = 15.0  # SIGTERM, then SIGKILL after this long
QUERY_GROUPS: Final = 100  # each `grpNNx` name term matches 1 / QUERY_GROUPS of the corpus
QUERY_RANGE: Final = ">=1.2.0, <2.0.0"
QUERY_WARMUP: Final = 20  # unmeasured queries before the measured ones
MIN_QUERIES: Final = 500
MIN_RUNS: Final = 3
CLIENT_BOUND: Final = 0.85  # bench CPU / wall time above which a rate is the client's limit

# Targets
UPLOAD_VS_HASHLIB: Final = 0.5
DOWNLOAD_MIB_S: Final = 1024.0
RSS_GROWTH_MIB: Final = 100.0
QUERY_P99_MS: Final = 10.0
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
}


NOTES: Final = (
    "Throughput is the parcel size over curl's own `time_total` (the transfer, without curl "
    "reading its input file; the wall-clock rate around the curl process is in the details). "
    "RSS growth is the server's peak VmRSS during a transfer minus its VmRSS just before it, "
    "sampled every 20 ms. `_q` latency is measured by the client (time.perf_counter around "
    "each request, httpx). Invoice create/s and GET/s use a minimal HTTP/1.1 keep-alive client "
    "(one request at a time per connection, request bytes encoded before the clock starts); "
    "their latency is also measured by the client. "
    "Start-up is from spawning the process until /healthz answers 200. "
    "'(client-bound)' marks a rate during which the benchmark's own process used at least "
    f"{CLIENT_BOUND:.0%} of a core: the server could go faster than shown; its CPU per "
    "request is the better figure there."
)


class BenchError(RuntimeError):
    """The benchmark could not measure something; the message says what and why."""


# ---------------------------------------------------------------------------------------
# Small helpers


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


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    that stops the server. Signals the parent set to be ignored (nohup, `&`) stay ignored.
    """

    def __init__(self) -> None:
        self.received: list[str] = []
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
        self.received.append(signal.Signals(signum).name)
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


# ---------------------------------------------------------------------------------------
# The server process


@dataclass
class Server:
    """One `python -m bindle_server` process at a time on a data directory."""

    data_dir: Path
    log_path: Path
    start_timeout: float
    extra_args: tuple[str, ...] = ()
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

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

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
                    env=clean_env(("BINDLE_",)),
                )
            deadline = started + self.start_timeout
            while time.perf_counter() < deadline:
                if self.process.poll() is not None:
                    self.process = None
                    return None
                try:
                    response = client.get(f"{self.base_url}/healthz")
                except httpx.TransportError:
                    pass
                else:
                    if response.status_code == 200:
                        elapsed = time.perf_counter() - started
                        with contextlib.suppress(ValueError, KeyError, TypeError):
                            self.version = str(response.json()["version"])
                        return elapsed
                time.sleep(HEALTH_POLL)
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

    Also accounts the CPU time the server and this (client) process used meanwhile.
    """

    def __init__(self, pid: int, max_seconds: float) -> None:
        self._pid = pid
        self._max_seconds = max_seconds
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
            self._server_cpu_start = cpu_seconds(self._pid)
            self.baseline = rss_bytes(self._pid)
        except OSError as exc:
            raise BenchError(f"cannot read /proc/{self._pid} (server gone?): {exc}") from exc
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
            self.server_cpu = cpu_seconds(self._pid) - self._server_cpu_start

    def cpu_summary(self) -> str:
        wall = max(self.wall, 1e-9)
        return (
            f"server CPU {self.server_cpu:.2f} s ({100 * self.server_cpu / wall:.0f}% of a core), "
            f"bench client CPU {self.client_cpu:.2f} s ({100 * self.client_cpu / wall:.0f}%)"
        )

    def _sample(self) -> bool:
        try:
            value = rss_bytes(self._pid)
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


# ---------------------------------------------------------------------------------------
# Transfers with curl


@dataclass(frozen=True)
class CurlResult:
    http_code: int
    seconds: float  # curl's own time_total: the transfer, without reading the input file
    wall_seconds: float  # around the curl process, start-up and file loading included
    size_upload: int
    size_download: int
    body: str


WRITE_OUT: Final = "\n%{http_code} %{time_total} %{size_upload} %{size_download}"


def run_curl(args: Sequence[str], timeout: float) -> CurlResult:
    command = [CURL, "-q", *args, "--max-time", f"{timeout:.0f}", "-w", WRITE_OUT]
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            command, capture_output=True, timeout=timeout + 15, env=curl_env(), check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"curl did not finish within {timeout + 15:.0f} s") from exc
    wall = time.perf_counter() - started
    stdout = proc.stdout.decode(errors="replace")
    body, _, stats = stdout.rpartition("\n")
    if proc.returncode != 0:
        raise BenchError(
            f"curl exit code {proc.returncode} ({stats.strip()}): "
            f"{proc.stderr.decode(errors='replace').strip()} {body[:500]}"
        )
    code, total, up, down = stats.split()
    return CurlResult(int(code), float(total), wall, int(float(up)), int(float(down)), body)


def write_random_file(path: Path, size_mib: int) -> str:
    """Write `size_mib` MiB of os.urandom in 1 MiB chunks; return the sha256 hex digest."""
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for _ in range(size_mib):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


def invoice_toml(name: str, version: str, sha256: str, size: int, label_name: str) -> bytes:
    document: dict[str, Any] = {
        "bindleVersion": "1.0.0",
        "bindle": {"name": name, "version": version},
        "parcel": [
            {
                "label": {
                    "sha256": sha256,
                    "mediaType": "application/octet-stream",
                    "name": label_name,
                    "size": size,
                }
            }
        ],
    }
    return tomli_w.dumps(document).encode()


@dataclass
class TransferRun:
    upload: CurlResult
    download: CurlResult
    repeat_download: CurlResult
    upload_rss_mib: float
    download_rss_mib: float
    size: int
    upload_cpu: str
    download_cpu: str

    @property
    def upload_mib_s(self) -> float:
        return self.size / MIB / self.upload.seconds

    @property
    def download_mib_s(self) -> float:
        return self.size / MIB / self.download.seconds

    @property
    def repeat_download_mib_s(self) -> float:
        return self.size / MIB / self.repeat_download.seconds

    @property
    def upload_wall_mib_s(self) -> float:
        return self.size / MIB / self.upload.wall_seconds

    @property
    def download_wall_mib_s(self) -> float:
        return self.size / MIB / self.download.wall_seconds


def transfer_run(
    server: Server, workdir: Path, run: int, size_mib: int, timeout: float
) -> TransferRun:
    """One new invoice with one new random parcel: upload it, then download it."""
    size = size_mib * MIB
    source = workdir / f"parcel-{run}.bin"
    sha256 = write_random_file(source, size_mib)
    name = f"bench.example/upload/run{run}-{sha256[:12]}"
    bindle = f"{name}/1.0.0"
    created = httpx.post(
        f"{server.base_url}/v1/_i",
        content=invoice_toml(name, "1.0.0", sha256, size, "parcel.bin"),
        headers={"Content-Type": "application/toml"},
        timeout=30.0,
        trust_env=False,
    )
    if created.status_code != 202:
        raise BenchError(f"creating {bindle}: {created.status_code} {created.text[:500]}")
    url = f"{server.base_url}/v1/_i/{quote(bindle)}@{sha256}"
    try:
        with RssSampler(server.pid, timeout + 30) as upload_rss:
            upload = run_curl(
                [
                    "-sS",
                    "--fail",
                    "-X",
                    "POST",
                    # -T streams the file (--data-binary would load it into memory, and
                    # curl refuses that for 1 GiB); an empty Expect skips 100-continue.
                    "-T",
                    str(source),
                    "-H",
                    "Expect:",
                    "-H",
                    "Content-Type: application/octet-stream",
                    url,
                ],
                timeout,
            )
    finally:
        source.unlink(missing_ok=True)
    if upload.http_code != 200 or upload.size_upload != size:
        raise BenchError(f"upload of run {run}: {upload}")
    with RssSampler(server.pid, timeout + 30) as download_rss:
        download = run_curl(["-sS", "--fail", "-o", "/dev/null", url], timeout)
    if download.http_code != 200 or download.size_download != size:
        raise BenchError(f"download of run {run}: {download}")
    # The first download reads from disk (uploads do not keep parcels in the page cache);
    # the repeat is what a parcel that is fetched often gets.
    repeat = run_curl(["-sS", "--fail", "-o", "/dev/null", url], timeout)
    if repeat.http_code != 200 or repeat.size_download != size:
        raise BenchError(f"repeat download of run {run}: {repeat}")
    return TransferRun(
        upload,
        download,
        repeat,
        upload_rss.growth_mib,
        download_rss.growth_mib,
        size,
        upload_rss.cpu_summary(),
        download_rss.cpu_summary(),
    )


def hashlib_rates(buffer_mib: int, repeats: int) -> list[float]:
    """Single-core hashlib.sha256 over one buffer, in MiB/s, `repeats` times."""
    buffer = os.urandom(buffer_mib * MIB)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        hashlib.sha256(buffer).digest()
        rates.append(buffer_mib / (time.perf_counter() - started))
    return rates


# ---------------------------------------------------------------------------------------
# Invoices under concurrency


def corpus_name(index: int) -> str:
    return f"bench.example/grp{index % QUERY_GROUPS:02d}x/pkg{index}"


def corpus_version(index: int) -> str:
    return f"{index % 3}.{(index // 3) % 5}.{(index // 15) % 10}"


def corpus_in_range(index: int) -> bool:
    """Whether corpus_version(index) satisfies QUERY_RANGE (>=1.2.0, <2.0.0)."""
    return index % 3 == 1 and (index // 3) % 5 >= 2


def corpus_invoice(index: int) -> bytes:
    sha256 = hashlib.sha256(f"bench parcel {index}".encode()).hexdigest()
    return invoice_toml(corpus_name(index), corpus_version(index), sha256, 1024, f"p{index}.bin")


# ---------------------------------------------------------------------------------------
# A minimal HTTP/1.1 keep-alive client for the concurrent phases
#
# httpx costs about a core per ~500 requests/s, which made the create/GET/fill figures a
# measure of the client. This client sends pre-encoded request bytes and reads exactly
# what a response with a Content-Length needs: the status line, the header block up to the
# blank line, then Content-Length body bytes. Anything else (chunked, no Content-Length, a
# status line that is not HTTP/1.1) stops the benchmark with a BenchError instead of being
# guessed at.


REQUEST_TIMEOUT: Final = 60.0  # seconds per request in a phase: (re)connect, send, response
CONNECT_TIMEOUT: Final = 10.0  # seconds for opening the phase's connections before timing
MAX_RESPONSE_HEAD: Final = 64 * 1024  # bytes of status line plus headers
HEAD_END: Final = b"\r\n\r\n"


class TransportFailure(Exception):
    """One request failed on the wire (refused, reset, closed, timed out): counted as -1."""


class _ClosedBeforeResponse(Exception):
    """The connection ended before any byte of the response arrived."""


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    body: bytes

    def text(self, limit: int = 300) -> str:
        return self.body[:limit].decode(errors="replace")


def encode_request(
    method: str, target: str, port: int, body: bytes = b"", content_type: str | None = None
) -> bytes:
    """The complete bytes of one HTTP/1.1 request (keep-alive is HTTP/1.1's default)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {LOOPBACK}:{port}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def parse_head(head: bytes) -> tuple[int, int, bool]:
    """Status, Content-Length and whether the server closes the connection, from the head.

    `head` is the status line and header lines including the final blank line.
    """
    status_line, _, header_block = head.partition(b"\r\n")
    version, _, rest = status_line.partition(b" ")
    code = rest[:3]
    if version != b"HTTP/1.1" or len(code) != 3 or not code.isdigit():
        raise BenchError(f"not an HTTP/1.1 status line: {status_line[:200]!r}")
    status = int(code)
    if status < 200:
        raise BenchError(f"unexpected interim response {status_line[:200]!r}")
    length = -1
    close = False
    for line in header_block.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon:
            continue  # the blank line(s) at the end
        name = name.strip().lower()
        if name == b"content-length":
            value = value.strip()
            if not value.isdigit() or (length >= 0 and int(value) != length):
                raise BenchError(f"bad Content-Length in {head[:500]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            raise BenchError(
                f"response with Transfer-Encoding ({value.strip()[:50]!r}); this client "
                f"reads only Content-Length bodies: {head[:500]!r}"
            )
        elif name == b"connection":
            close = b"close" in value.lower()
    if length < 0:
        raise BenchError(f"response without Content-Length: {head[:500]!r}")
    return status, length, close


class RawConnection:
    """One keep-alive HTTP/1.1 connection to the server on 127.0.0.1, reopened when needed.

    Every request is bounded by `timeout` (reconnecting, sending and reading included).
    A request on a reused connection that the server closed while it was idle (EOF or a
    reset before any response byte) is sent once more on a new connection, as HTTP clients
    do; `retries` counts those.
    """

    def __init__(self, port: int, timeout: float = REQUEST_TIMEOUT) -> None:
        self._port = port
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._served = 0  # responses read on the current connection
        self.opened = 0  # connections opened, the first one included
        self.closed_by_server = 0  # `Connection: close` answers and idle connections closed
        self.retries = 0

    async def connect(self) -> None:
        self.drop()
        self._reader, self._writer = await asyncio.open_connection(
            LOOPBACK, self._port, limit=MAX_RESPONSE_HEAD
        )
        self._served = 0
        self.opened += 1

    def drop(self, graceful: bool = False) -> None:
        """Close the connection now, without waiting for anything.

        `graceful` flushes and sends FIN; otherwise the connection is aborted (its state is
        unknown after an error).
        """
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            if graceful:
                writer.close()
            else:
                writer.transport.abort()

    async def request(self, data: bytes) -> RawResponse:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._request(data)
        except TimeoutError as exc:
            self.drop()
            raise TransportFailure(f"no complete response within {self._timeout:g} s") from exc
        except OSError as exc:
            self.drop()
            raise TransportFailure(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            self.drop()  # the connection's state is unknown now (BenchError, cancellation)
            raise

    async def _request(self, data: bytes) -> RawResponse:
        if self._writer is None:
            await self.connect()
        reused = self._served > 0
        try:
            return await self._exchange(data)
        except _ClosedBeforeResponse as exc:
            self.drop()
            if not reused:
                raise TransportFailure(
                    f"a new connection closed before the response: {exc}"
                ) from exc
            self.closed_by_server += 1
            self.retries += 1
        await self.connect()
        try:
            return await self._exchange(data)
        except _ClosedBeforeResponse as exc:
            raise TransportFailure(f"connection closed before the response, twice: {exc}") from exc

    async def _exchange(self, data: bytes) -> RawResponse:
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        try:
            writer.write(data)
            await writer.drain()
            head = await reader.readuntil(HEAD_END)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise TransportFailure("connection closed inside the response head") from exc
            raise _ClosedBeforeResponse("EOF") from exc
        except ConnectionError as exc:
            raise _ClosedBeforeResponse(f"{type(exc).__name__}: {exc}") from exc
        except asyncio.LimitOverrunError as exc:
            raise BenchError(f"response head longer than {MAX_RESPONSE_HEAD} bytes") from exc
        status, length, close = parse_head(head)
        try:
            body = await reader.readexactly(length) if length else b""
        except asyncio.IncompleteReadError as exc:
            raise TransportFailure(
                f"connection closed after {len(exc.partial)} of {length} body bytes"
            ) from exc
        self._served += 1
        if close:
            self.closed_by_server += 1
            self.drop(graceful=True)
        return RawResponse(status, body)


@dataclass
class ConnectionPool:
    """The connections of one group of phases; one worker per connection."""

    connections: list[RawConnection]

    @classmethod
    async def open(cls, port: int, count: int) -> ConnectionPool:
        pool = cls([RawConnection(port) for _ in range(count)])
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                for connection in pool.connections:  # one at a time: none is left behind
                    await connection.connect()
        except (OSError, TimeoutError) as exc:
            pool.close()
            raise BenchError(f"cannot open {count} connections to port {port}: {exc!r}") from exc
        except BaseException:
            pool.close()
            raise
        return pool

    def close(self) -> None:
        for connection in self.connections:
            connection.drop(graceful=True)

    def counters(self) -> tuple[int, int, int]:
        """Connections opened, closed by the server, requests retried; totals so far."""
        return (
            sum(c.opened for c in self.connections),
            sum(c.closed_by_server for c in self.connections),
            sum(c.retries for c in self.connections),
        )


@dataclass
class PhaseStats:
    count: int
    seconds: float
    statuses: Counter[int]
    expected: frozenset[int]
    unexpected: list[str] = field(default_factory=list)
    cpu: str = ""
    rss_growth_mib: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    connections: str = ""

    def latency_summary(self) -> str:
        if not self.latencies:
            return "no latencies"
        return (
            f"latency p50 {1000 * statistics.median(self.latencies):.1f} ms, "
            f"p99 {1000 * percentile(self.latencies, 0.99):.1f} ms, "
            f"max {1000 * max(self.latencies):.1f} ms"
        )

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    @property
    def client_bound(self) -> bool:
        """The bench process itself used most of a core: the rate is the client's limit."""
        return self.client_cpu >= CLIENT_BOUND * self.seconds

    @property
    def bad(self) -> int:
        return self.count - sum(self.statuses[status] for status in self.expected)

    def rate(self) -> str:
        note = " (client-bound)" if self.client_bound else ""
        return f"{self.per_second:,.0f}/s{note}"

    def server_ms_per_request(self) -> float:
        return 1000 * self.server_cpu / self.count if self.count else 0.0


async def concurrent_phase(
    pool: ConnectionPool,
    pid: int,
    requests: Sequence[tuple[int, bytes]],
    expected: frozenset[int],
    time_limit: float,
) -> PhaseStats:
    """Send each (index, request bytes) once, one worker per connection of `pool`.

    Statuses are counted; -1 counts requests that failed on the wire.
    """
    pending = iter(requests)
    statuses: Counter[int] = Counter()
    unexpected: list[str] = []
    latencies: list[float] = []
    clock = time.perf_counter

    async def worker(connection: RawConnection) -> None:
        for index, data in pending:  # one shared iterator: each request is sent exactly once
            started = clock()
            try:
                response = await connection.request(data)
            except TransportFailure as exc:
                statuses[-1] += 1
                if len(unexpected) < 5:
                    unexpected.append(f"#{index}: {exc}")
                continue
            latencies.append(clock() - started)
            statuses[response.status] += 1
            if response.status not in expected and len(unexpected) < 5:
                unexpected.append(f"#{index}: {response.status} {response.text()}")

    opened, closed, retried = pool.counters()
    with RssSampler(pid, time_limit + 30) as sampler:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(time_limit), asyncio.TaskGroup() as group:
                for connection in pool.connections:
                    group.create_task(worker(connection))
        except TimeoutError as exc:
            done = sum(statuses.values())
            raise BenchError(f"phase did not finish in {time_limit:.0f} s ({done} done)") from exc
        except ExceptionGroup as failures:
            for failure in failures.exceptions:
                if isinstance(failure, BenchError):
                    raise failure from failures
            raise
        elapsed = time.perf_counter() - started
    now_opened, now_closed, now_retried = pool.counters()
    connections = (
        f"{len(pool.connections)} keep-alive connections, {now_opened - opened} (re)opened "
        f"during the phase, {now_closed - closed} closed by the server, "
        f"{now_retried - retried} requests resent after an idle close"
    )
    return PhaseStats(
        len(requests),
        elapsed,
        statuses,
        expected,
        unexpected,
        sampler.cpu_summary(),
        sampler.growth_mib,
        sampler.server_cpu,
        sampler.client_cpu,
        latencies,
        connections,
    )


CREATED: Final = frozenset({201, 202})


def create_requests(port: int, indexes: Iterable[int]) -> list[tuple[int, bytes]]:
    return [
        (index, encode_request("POST", "/v1/_i", port, corpus_invoice(index), "application/toml"))
        for index in indexes
    ]


async def create_and_get(
    server: Server, args: argparse.Namespace, creates: int
) -> tuple[PhaseStats, PhaseStats]:
    # Every request's bytes exist before the clock starts.
    posts = create_requests(server.port, range(creates))
    gets = []
    for index in range(args.gets):
        target = index % creates
        path = f"/v1/_i/{quote(corpus_name(target))}/{corpus_version(target)}"
        gets.append((index, encode_request("GET", path, server.port)))
    pool = await ConnectionPool.open(server.port, args.concurrency)
    try:
        create_stats = await concurrent_phase(pool, server.pid, posts, CREATED, args.phase_timeout)
        get_stats = await concurrent_phase(
            pool, server.pid, gets, frozenset({200}), args.phase_timeout
        )
    finally:
        pool.close()
    return create_stats, get_stats


async def fill_corpus(server: Server, args: argparse.Namespace, first: int) -> PhaseStats:
    posts = create_requests(server.port, range(first, args.invoices))
    pool = await ConnectionPool.open(server.port, args.concurrency)
    try:
        return await concurrent_phase(pool, server.pid, posts, CREATED, args.phase_timeout)
    finally:
        pool.close()


# ---------------------------------------------------------------------------------------
# Queries


@dataclass(frozen=True)
class QuerySpec:
    kind: str
    params: dict[str, str]
    expected_total: int


def query_specs(count: int, invoices: int) -> Iterator[QuerySpec]:
    """A repeating mix: one name term (~1 %), the term plus a SemVer range, an empty query."""
    for number in range(count):
        group = (number * 37) % QUERY_GROUPS
        term = f"grp{group:02d}x"
        members = range(group, invoices, QUERY_GROUPS)
        kind = number % 3
        if kind == 0:
            yield QuerySpec("term", {"q": term}, len(members))
        elif kind == 1:
            in_range = sum(1 for i in members if corpus_in_range(i))
            yield QuerySpec("term+range", {"q": term, "v": QUERY_RANGE}, in_range)
        else:
            yield QuerySpec("empty,l=50", {"q": "", "l": "50"}, -1)  # -1: at least `invoices`


@dataclass
class QueryStats:
    latencies_ms: dict[str, list[float]]
    unexpected: list[str]
    statuses: Counter[int]
    cpu: str

    def all_ms(self) -> list[float]:
        return [value for values in self.latencies_ms.values() for value in values]


def run_queries(server: Server, args: argparse.Namespace, stored: int) -> QueryStats:
    latencies: dict[str, list[float]] = {}
    unexpected: list[str] = []
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + args.phase_timeout
    specs = list(query_specs(QUERY_WARMUP + args.queries, args.invoices))
    sampler = RssSampler(server.pid, args.phase_timeout + 30)
    with (
        httpx.Client(base_url=server.base_url, timeout=30.0, trust_env=False) as client,
        sampler,
    ):
        for number, spec in enumerate(specs):
            if time.monotonic() > deadline:
                raise BenchError(f"queries did not finish in {args.phase_timeout:.0f} s")
            started = time.perf_counter()
            response = client.get("/v1/_q", params=spec.params)
            elapsed_ms = (time.perf_counter() - started) * 1000
            statuses[response.status_code] += 1
            if number >= QUERY_WARMUP:
                latencies.setdefault(spec.kind, []).append(elapsed_ms)
            problem = check_query(response, spec, stored)
            if problem and len(unexpected) < 5:
                unexpected.append(f"{spec.kind} {spec.params}: {problem}")
    return QueryStats(latencies, unexpected, statuses, sampler.cpu_summary())


def check_query(response: httpx.Response, spec: QuerySpec, stored: int) -> str | None:
    if response.status_code != 200:
        return f"{response.status_code} {response.text[:300]}"
    try:
        document = tomllib.loads(response.text)
        total = int(document["total"])
        returned = len(document["invoices"])
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        return f"unreadable response: {exc}"
    if spec.expected_total >= 0 and total != spec.expected_total:
        return f"total {total}, expected {spec.expected_total}"
    if spec.expected_total < 0 and total < stored:
        return f"total {total}, expected at least {stored}"
    if returned != min(total, 50):
        return f"{returned} invoices in the page of a total of {total}"
    return None


def stored_total(server: Server) -> int:
    response = httpx.get(
        f"{server.base_url}/v1/_q", params={"l": "1"}, timeout=30.0, trust_env=False
    )
    if response.status_code != 200:
        raise BenchError(f"_q: {response.status_code} {response.text[:300]}")
    return int(tomllib.loads(response.text)["total"])


# ---------------------------------------------------------------------------------------
# Report


@dataclass(frozen=True)
class Row:
    figure: str
    value: str
    target: str = ""
    verdict: str = ""  # PASS, MISS, or "" for figures without a target


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def text_table(rows: Sequence[Row]) -> str:
    header = Row("Figure", "Value", "Target", "Result")
    widths = [
        max(len(getattr(row, attr)) for row in (header, *rows))
        for attr in ("figure", "value", "target", "verdict")
    ]

    def line(row: Row) -> str:
        cells = (row.figure, row.value, row.target, row.verdict)
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row).rstrip() for row in rows)])


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| Figure | Value | Target | Result |", "|---|---:|---|---|"]
    for row in rows:
        cells = (row.figure, row.value, row.target, f"**{row.verdict}**" if row.verdict else "")
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def detail(self, text: str) -> None:
        self.details.append(text)
        print(f"  {text}", flush=True)

    def problem(self, text: str) -> None:
        self.problems.append(text)
        print(f"  PROBLEM: {text}", flush=True)


def machine_facts() -> list[str]:
    meminfo = read_meminfo()
    total_gib = meminfo.get("MemTotal", 0) / 1024 / 1024
    available_gib = meminfo.get("MemAvailable", 0) / 1024 / 1024
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"CPUs: {os.cpu_count()} (os.cpu_count), {len(os.sched_getaffinity(0))} usable; "
        f"{cpu_model()}",
        f"Memory: MemTotal {total_gib:.1f} GiB, MemAvailable {available_gib:.1f} GiB "
        "(/proc/meminfo)",
        f"Load average at start: {load}",
        f"Kernel: {platform.system()} {platform.release()} ({platform.machine()})",
        f"Python: {platform.python_implementation()} {platform.python_version()}",
        f"curl: {command_output([CURL, '--version'])}",
    ]


def write_markdown(
    path: Path,
    results: Results,
    facts: Sequence[str],
    server_version: str,
    args: argparse.Namespace,
    command: str,
    started: datetime.datetime,
) -> None:
    here = str(Path(__file__).resolve().parent)
    git = command_output(["git", "-C", here, "rev-parse", "HEAD"])
    # command_output gives the first line, or "unknown" when there is none (a clean tree).
    changed = command_output(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"])
    if changed != "unknown":
        git += " + uncommitted changes"
    differs = [
        f"--{name.replace('_', '-')} {getattr(args, name)}"
        for name, default in DEFAULTS.items()
        if getattr(args, name) != default
    ]
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    lines = [
        "# bindle-server benchmark results",
        "",
        f"- Date: {started.isoformat(timespec='seconds')}",
        f"- Command: `{command}`",
        f"- Server: bindle-server {server_version} (git {git})",
        *(f"- {fact}" for fact in facts),
        f"- Load average at end: {load}",
        "",
    ]
    if differs:
        lines += [
            "> **Not the full configuration**: "
            + ", ".join(differs)
            + " differ from the defaults.",
            "",
        ]
    lines += [markdown_table(results.rows), ""]
    lines += [
        NOTES,
        "",
        "## Details",
        "",
        *(f"- {text}" for text in results.details),
        "",
        "## Problems observed",
        "",
        *([f"- {text}" for text in results.problems] or ["- none"]),
        "",
    ]
    path.write_text("\n".join(lines))


# ---------------------------------------------------------------------------------------
# The benchmark


def make_server(args: argparse.Namespace, workdir: Path) -> Server:
    data_dir = workdir / "data"
    data_dir.mkdir()
    extra = ("--log-level", args.server_log_level) if args.server_log_level else ()
    return Server(data_dir, workdir / "server.log", args.start_timeout, extra)


def benchmark(args: argparse.Namespace, server: Server, workdir: Path, results: Results) -> None:
    print(f"work directory {workdir}, server log {server.log_path}", flush=True)
    # (3) hashlib first, before the server exists, so that nothing competes with it.
    print(f"[1/6] hashlib.sha256 over {args.hash_mib} MiB, {args.runs} times", flush=True)
    hash_rates = hashlib_rates(args.hash_mib, args.runs)
    hash_rate = statistics.median(hash_rates)
    results.detail("hashlib MiB/s per run: " + ", ".join(f"{r:.0f}" for r in hash_rates))
    _with_server(args, server, workdir, results, hash_rate)


def _with_server(
    args: argparse.Namespace, server: Server, workdir: Path, results: Results, hash_rate: float
) -> None:
    rows = results.rows
    empty_start = server.start()
    results.detail(f"server pid {server.pid} on {server.base_url}, version {server.version}")
    results.detail(f"start-up on an empty data directory: {empty_start:.3f} s")

    # (1), (2), (4) transfers
    print(f"[2/6] {args.runs} x upload and download of {args.size_mib} MiB with curl", flush=True)
    runs: list[TransferRun] = []
    for run in range(args.runs):
        result = transfer_run(server, workdir, run, args.size_mib, args.transfer_timeout)
        runs.append(result)
        results.detail(
            f"run {run + 1}: upload {result.upload_mib_s:.0f} MiB/s "
            f"(wall {result.upload_wall_mib_s:.0f}), RSS +{result.upload_rss_mib:.1f} MiB; "
            f"download {result.download_mib_s:.0f} MiB/s "
            f"(wall {result.download_wall_mib_s:.0f}), RSS +{result.download_rss_mib:.1f} MiB; "
            f"repeat download {result.repeat_download_mib_s:.0f} MiB/s"
        )
        results.detail(f"run {run + 1} upload: {result.upload_cpu}")
        results.detail(f"run {run + 1} download: {result.download_cpu}")
    upload = statistics.median(run.upload_mib_s for run in runs)
    download = statistics.median(run.download_mib_s for run in runs)
    repeat_download = statistics.median(run.repeat_download_mib_s for run in runs)
    ratio = upload / hash_rate
    up_rss = [run.upload_rss_mib for run in runs]
    down_rss = [run.download_rss_mib for run in runs]
    rows += [
        Row("hashlib.sha256, 1 core (median)", fmt_mib_s(hash_rate)),
        Row(
            f"Upload {args.size_mib} MiB (median of {args.runs})",
            fmt_mib_s(upload),
            f">= {fmt_mib_s(UPLOAD_VS_HASHLIB * hash_rate)} (0.5 x hashlib)",
            verdict(ratio >= UPLOAD_VS_HASHLIB),
        ),
        Row(
            "Upload / hashlib",
            f"{ratio:.2f}",
            f">= {UPLOAD_VS_HASHLIB:.2f}",
            verdict(ratio >= UPLOAD_VS_HASHLIB),
        ),
        Row(
            f"Download {args.size_mib} MiB, first, from disk (median of {args.runs})",
            fmt_mib_s(download),
            f">= {fmt_mib_s(DOWNLOAD_MIB_S)}",
            verdict(download >= DOWNLOAD_MIB_S),
        ),
        Row(
            f"Download {args.size_mib} MiB, repeat, page cache (median of {args.runs})",
            fmt_mib_s(repeat_download),
            f">= {fmt_mib_s(DOWNLOAD_MIB_S)}",
            verdict(repeat_download >= DOWNLOAD_MIB_S),
        ),
        Row(
            "Server RSS growth per upload (median / worst)",
            f"{statistics.median(up_rss):.1f} / {max(up_rss):.1f} MiB",
            f"< {RSS_GROWTH_MIB:.0f} MiB each",
            verdict(max(up_rss) < RSS_GROWTH_MIB),
        ),
        Row(
            "Server RSS growth per download (median / worst)",
            f"{statistics.median(down_rss):.1f} / {max(down_rss):.1f} MiB",
            f"< {RSS_GROWTH_MIB:.0f} MiB each",
            verdict(max(down_rss) < RSS_GROWTH_MIB),
        ),
    ]

    # (5) invoice create/s and GET/s
    creates = min(args.creates, args.invoices)
    print(
        f"[3/6] {creates} invoice creates, then {args.gets} GETs, {args.concurrency} connections",
        flush=True,
    )
    create_stats, get_stats = INTERRUPTS.run(create_and_get(server, args, creates))
    report_phase(results, "create", create_stats)
    report_phase(results, "GET", get_stats)
    rows += [
        Row(f"Invoice create/s ({args.concurrency} conn.)", create_stats.rate()),
        Row(f"Invoice GET/s ({args.concurrency} conn.)", get_stats.rate()),
        Row(
            "Server CPU per create / per GET",
            f"{create_stats.server_ms_per_request():.2f} / "
            f"{get_stats.server_ms_per_request():.2f} ms",
        ),
    ]

    # (6) _q latency with `invoices` stored
    print(f"[4/6] filling the store to {args.invoices} invoices", flush=True)
    if creates < args.invoices:
        fill_stats = INTERRUPTS.run(fill_corpus(server, args, creates))
        report_phase(results, "fill", fill_stats)
    stored = stored_total(server)
    results.detail(f"invoices stored: {stored} ({args.runs} of them from the transfers)")
    if stored < args.invoices:
        results.problem(f"only {stored} invoices stored, {args.invoices} wanted")
    print(f"[5/6] {args.queries} sequential _q queries (+{QUERY_WARMUP} warm-up)", flush=True)
    query_stats = run_queries(server, args, args.invoices)
    for text in query_stats.unexpected:
        results.problem(f"_q: {text}")
    results.detail(f"_q statuses: {dict(query_stats.statuses)}; {query_stats.cpu}")
    all_ms = query_stats.all_ms()
    p99 = percentile(all_ms, 0.99)
    rows += [
        Row(
            f"_q p50, {stored} invoices ({len(all_ms)} queries)",
            f"{statistics.median(all_ms):.2f} ms",
        ),
        Row(
            f"_q p99, {stored} invoices ({len(all_ms)} queries)",
            f"{p99:.2f} ms",
            f"< {QUERY_P99_MS:.0f} ms",
            verdict(p99 < QUERY_P99_MS),
        ),
    ]
    for kind, values in query_stats.latencies_ms.items():
        results.detail(
            f"_q {kind}: p50 {statistics.median(values):.2f} ms, "
            f"p99 {percentile(values, 0.99):.2f} ms, max {max(values):.2f} ms, n={len(values)}"
        )

    # (7) start-up with `invoices` stored
    print(f"[6/6] {args.restarts} restarts on the same data directory", flush=True)
    exit_code = server.stop()
    results.detail(f"server exit code after SIGTERM: {exit_code}")
    check_exit(results, server, exit_code)
    starts: list[float] = []
    for _ in range(args.restarts):
        starts.append(server.start())
        after = stored_total(server)
        if after != stored:
            results.problem(f"after restart _q reports {after} invoices, before {stored}")
        check_exit(results, server, server.stop())
    startup = statistics.median(starts)
    results.detail("start-up seconds per restart: " + ", ".join(f"{s:.3f}" for s in starts))
    rows += [
        Row("Start-up, empty data directory", f"{empty_start:.3f} s"),
        Row(
            f"Start-up, {stored} invoices (median of {args.restarts})",
            f"{startup:.3f} s",
            f"< {STARTUP_S:.0f} s at {STARTUP_AT_INVOICES:,} invoices",
            verdict(startup < STARTUP_S),
        ),
    ]


def check_exit(results: Results, server: Server, exit_code: int | None) -> None:
    # uvicorn shuts down gracefully on SIGTERM and then re-raises it: -15 is a clean stop.
    if server.killed:
        results.problem(f"server ignored SIGTERM for {STOP_TIMEOUT:.0f} s and was killed")
    elif exit_code not in (0, -signal.SIGTERM, None):
        results.problem(f"server exited with {exit_code} on SIGTERM")


def report_phase(results: Results, name: str, stats: PhaseStats) -> None:
    results.detail(
        f"{name}: {stats.count} requests in {stats.seconds:.2f} s = {stats.per_second:.0f}/s, "
        f"statuses {dict(stats.statuses)}; {stats.latency_summary()}; {stats.cpu}; "
        f"server RSS +{stats.rss_growth_mib:.1f} MiB; {stats.connections}"
    )
    if stats.bad:
        wanted = "/".join(str(status) for status in sorted(stats.expected))
        results.problem(f"{name}: {stats.bad} of {stats.count} not {wanted}: {stats.unexpected}")


def scan_server_log(server: Server, results: Results) -> None:
    try:
        text = server.log_path.read_text(errors="replace")
    except OSError:
        return
    lines = text.splitlines()
    errors = [line for line in lines if " ERROR " in line or "Traceback" in line]
    server_errors = [line for line in lines if '" 5' in line and "HTTP/1.1" in line]
    results.detail(f"server log: {len(lines)} lines, {len(errors)} ERROR/Traceback lines")
    if errors:
        results.problem(f"server log has {len(errors)} ERROR/Traceback lines, e.g. {errors[:3]}")
    if server_errors:
        results.problem(f"server log has {len(server_errors)} 5xx responses: {server_errors[:3]}")


# ---------------------------------------------------------------------------------------
# Command line


def positive(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return parse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except for options whose help already says what happens without them."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py",
        description=(
            "Benchmark a real bindle-server process (python -m bindle_server) on a free "
            "127.0.0.1 port with a fresh temporary data directory, and print the figures "
            "beside their targets with PASS/MISS. Measured: parcel upload and download "
            "with curl (median of --runs, a new invoice and random parcel each run), the "
            "server's peak RSS growth during each transfer, single-core hashlib.sha256 and "
            "the upload/hashlib ratio, invoice create/s and GET/s with --concurrency "
            "connections, _q latency p50/p99 with --invoices stored, and the start-up time "
            "with those invoices on disk (median of --restarts)."
        ),
        epilog=(
            "Targets: upload >= 0.5 x hashlib rate; download >= 1024 MiB/s; RSS growth < 100 "
            "MiB per transfer; _q p99 < 10 ms; start-up < 1 s at 10,000 invoices. Exit "
            "status: 0 all targets met, 1 some target missed, 2 the benchmark failed. "
            "Needs /usr/bin/curl and about 2 x --size-mib x --runs MiB of free disk in the "
            "work directory. Full configuration: python bench/run.py --markdown "
            "bench/RESULTS.md"
        ),
        formatter_class=HelpFormatter,
    )
    add = parser.add_argument
    add("--size-mib", type=positive(1), default=DEFAULTS["size_mib"], help="parcel size in MiB")
    add(
        "--runs",
        type=positive(MIN_RUNS),
        default=DEFAULTS["runs"],
        help="upload/download runs; each figure is their median",
    )
    add("--hash-mib", type=positive(1), default=DEFAULTS["hash_mib"], help="hashlib buffer, MiB")
    add(
        "--invoices",
        type=positive(QUERY_GROUPS),
        default=DEFAULTS["invoices"],
        help="invoices stored for the _q and start-up measurements",
    )
    add(
        "--creates",
        type=positive(1),
        default=DEFAULTS["creates"],
        help="invoices created for create/s (at most --invoices; they count towards it)",
    )
    add("--gets", type=positive(1), default=DEFAULTS["gets"], help="invoice GETs for GET/s")
    add(
        "--concurrency",
        type=positive(1),
        default=DEFAULTS["concurrency"],
        help="concurrent connections for creates and GETs",
    )
    add(
        "--queries",
        type=positive(MIN_QUERIES),
        default=DEFAULTS["queries"],
        help=f"measured sequential _q queries (after {QUERY_WARMUP} unmeasured warm-up ones)",
    )
    add(
        "--restarts",
        type=positive(1),
        default=DEFAULTS["restarts"],
        help="restarts for the start-up time",
    )
    add("--markdown", type=Path, metavar="PATH", help="also write the results as Markdown")
    add(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="parent of the temporary work directory (default: the system temp directory)",
    )
    add("--keep", action="store_true", help="keep the work directory (data and server log)")
    add("--server-log-level", help="pass --log-level to the server (default: its own)")
    add("--start-timeout", type=float, default=60.0, help="seconds to wait for /healthz")
    add(
        "--transfer-timeout",
        type=float,
        help="seconds allowed per curl transfer (default: 60 + 1 s per 4 MiB)",
    )
    add(
        "--phase-timeout",
        type=float,
        default=900.0,
        help="seconds allowed for each create/GET/query phase",
    )
    args = parser.parse_args(argv)
    if args.transfer_timeout is None:
        args.transfer_timeout = 60.0 + args.size_mib / 4
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.access(CURL, os.X_OK):
        print(f"{CURL} is needed", file=sys.stderr)
        return 2
    command = "python " + shlex.join(sys.argv if argv is None else ["bench/run.py", *argv])
    started = datetime.datetime.now(datetime.UTC)

    INTERRUPTS.install()

    facts = machine_facts()
    print("\n".join(facts), flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bindle-bench-", dir=args.workdir))
    results = Results()
    server = make_server(args, workdir)
    try:
        benchmark(args, server, workdir, results)
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        print(f"server log tail:\n{server.log_tail()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        name = INTERRUPTS.received[0] if INTERRUPTS.received else "SIGINT"
        print(f"\ninterrupted ({name}); stopping the server", file=sys.stderr)
        return 130
    finally:
        server.stop()
        scan_server_log(server, results)
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(text_table(results.rows))
    print()
    print(textwrap.fill(NOTES, width=100))
    if results.problems:
        print("\nProblems observed:")
        print("\n".join(f"- {text}" for text in results.problems))
    if args.markdown is not None:
        write_markdown(args.markdown, results, facts, server.version, args, command, started)
        print(f"\nwrote {args.markdown}")
    return 1 if any(row.verdict == "MISS" for row in results.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
