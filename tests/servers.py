"""A real bindle-server process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path
    scheme: str = "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The API root, as clients are configured with it."""
        return f"{self.base_url}/v1"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def start_server(
    data_dir: Path,
    log_path: Path,
    *extra_args: str,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> ServerProcess:
    """Start `python -m bindle_server` and wait, with a deadline, until /healthz answers.

    The server sees none of the caller's BINDLE_* variables, only those in `env`. `port`
    restarts a server where its clients expect it (default: a free port).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("BINDLE_")} | (env or {})
    last_error = "never started"
    for _ in range(3):  # the free port can be taken between our probe and the bind
        chosen = port or free_port()
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bindle_server",
                    "--address",
                    f"127.0.0.1:{chosen}",
                    "--directory",
                    str(data_dir),
                    *extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        scheme = "https" if "--tls-cert" in extra_args else "http"
        server = ServerProcess(process, chosen, data_dir, log_path, scheme)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            # Only our own process's log proves the port is ours: another test run may
            # have bound the same free port first and would answer /healthz too.
            if f"listening on {scheme}://127.0.0.1:{chosen}" in server.log():
                try:
                    # Our own self-signed certificate in TLS tests: nothing to verify here.
                    health = httpx.get(f"{server.base_url}/healthz", timeout=1.0, verify=False)
                    if health.status_code == 200:
                        return server
                except httpx.TransportError as exc:
                    last_error = str(exc)
            time.sleep(0.05)
        server.kill()
        last_error = f"exit code {process.returncode}: {server.log()[-2000:]}"
    raise RuntimeError(f"bindle-server did not start: {last_error}")


def run_command(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m bindle_server ARGS` to its end, output captured as text.

    Like a server, the command sees none of the caller's BINDLE_* variables, only `env`.
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BINDLE_")}
    return subprocess.run(
        [sys.executable, "-m", "bindle_server", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=environment | (env or {}),
    )


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
