"""What a newcomer meets on a first run: clear start-up errors and a clean shutdown."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import tomli

from tests.factories import make_invoice, parcel
from tests.servers import ServerProcess, run_command


def test_a_taken_port_is_one_line_naming_the_option_before_anything_starts(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_command("--address", f"127.0.0.1:{port}", "--directory", str(tmp_path))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in output
    assert "already in use" in output
    assert "--address" in output
    assert "listening on" not in output
    assert "startup complete" not in output
    assert "Traceback" not in output


def test_a_forced_shutdown_answers_503_in_toml_and_logs_one_line(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """Ctrl-C twice during an upload: the first waits for it, the second cancels it."""
    server = server_factory()
    data = os.urandom(4 << 20)
    item = parcel(data)
    invoice = make_invoice("example.com/shutdown", parcels=[item])
    assert httpx.post(f"{server.url}/_i", content=invoice.toml()).status_code == 202

    def slow_body() -> Iterator[bytes]:
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]
            time.sleep(0.05)  # ~3 s in all: the signals arrive mid-upload

    answers: list[httpx.Response] = []
    url = f"{server.url}/_i/example.com/shutdown/1.0.0@{item.sha256}"
    upload = threading.Thread(
        target=lambda: answers.append(httpx.post(url, content=slow_body(), timeout=30))
    )
    upload.start()
    time.sleep(0.8)
    server.process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    server.process.send_signal(signal.SIGINT)
    upload.join(30)
    assert server.process.wait(30) == 0

    [answer] = answers
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/toml"
    assert "shutting down" in tomli.loads(answer.text)["error"]
    log = server.log()
    assert "Traceback" not in log
    assert log.count("interrupted by a forced shutdown: answered 503") == 1
    assert not list((server.data_dir / "tmp").iterdir())


def test_a_plain_ctrl_c_stops_quietly(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory()
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(30) == 0
    assert "Traceback" not in server.log()
    assert "Application shutdown complete" in server.log()


def test_an_idle_connection_outlives_the_clients_own_keep_alive(live_server: ServerProcess) -> None:
    """httpx keeps an idle connection 5 s: a server closing at 5 s too races its reuse."""
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        sock.sendall(request)
        assert _read_response(sock).startswith(b"HTTP/1.1 200")
        time.sleep(6.5)  # longer than httpx's keep-alive expiry and uvicorn's default
        sock.sendall(request)
        assert _read_response(sock).startswith(b"HTTP/1.1 200")


def _read_response(sock: socket.socket) -> bytes:
    """One HTTP/1.1 response with a Content-Length body, read to its end."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, "connection closed mid-body"
        body += chunk
    return head
