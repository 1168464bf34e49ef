"""Limits: oversized invoices, parcel lists and headers are refused; stalled bodies time out."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import tomli
from fastapi.testclient import TestClient

from bindle_server.api.app import create_app
from bindle_server.config import Settings
from tests.factories import make_invoice, parcel
from tests.servers import ServerProcess


@pytest.fixture
def limited_api(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    settings = settings_factory(max_invoice_bytes=4096, max_parcels=3, max_header_bytes=8192)
    with TestClient(create_app(settings), base_url="http://testserver/v1") as client:
        yield client


def _read_response(sock: socket.socket) -> str:
    """One whole HTTP response (headers and Content-Length body) from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode(errors="replace")


def _error(response: object) -> str:
    text = getattr(response, "text", "")
    message: str = tomli.loads(text)["error"]
    return message


def test_invoice_body_over_the_limit_is_refused_with_413(limited_api: TestClient) -> None:
    doc = make_invoice(annotations={"padding": "x" * 5000})
    response = limited_api.post("/_i", content=doc.toml())
    assert response.status_code == 413
    assert "too large" in _error(response)


def test_oversized_chunked_invoice_is_refused_while_streaming(limited_api: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"#" * 1000 + b"\n"

    response = limited_api.post("/_i", content=chunks())
    assert response.status_code == 413


def test_too_many_parcels_are_refused_with_413(limited_api: TestClient) -> None:
    doc = make_invoice(parcels=[parcel(str(n)) for n in range(4)])
    response = limited_api.post("/_i", content=doc.toml())
    assert response.status_code == 413
    assert "4 parcels" in _error(response)
    assert limited_api.get("/_i/example.com/hello/1.0.0").status_code == 404


def test_oversized_headers_are_refused_with_431(limited_api: TestClient) -> None:
    response = limited_api.get("/_q", headers={"X-Padding": "p" * 10_000})
    assert response.status_code == 431
    assert "headers too large" in _error(response)


def test_the_default_limits_accept_an_invoice_of_10000_parcels(api: TestClient) -> None:
    doc = make_invoice(parcels=[parcel(f"parcel {n}") for n in range(10_000)])
    response = api.post("/_i", content=doc.toml())
    assert response.status_code == 202
    assert len(tomli.loads(response.text)["missing"]) == 10_000


def test_a_stalled_upload_times_out_with_408_and_leaves_nothing(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(env={"BINDLE_BODY_TIMEOUT": "1"})
    payload = parcel(b"z" * 100_000)
    doc = make_invoice(parcels=[payload])
    assert httpx.post(f"{server.url}/_i", content=doc.toml()).status_code == 202
    path = f"/v1/_i/{doc.bindle_id}@{payload.sha256}"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {payload.size}\r\n\r\n"
        sock.sendall(head.encode() + payload.data[:1000])
        started = time.monotonic()
        reply = _read_response(sock)  # meanwhile the client sends nothing more
        waited = time.monotonic() - started
    assert reply.startswith("HTTP/1.1 408"), reply
    assert "timed out" in reply
    assert waited < 8
    assert list((server.data_dir / "tmp").iterdir()) == []
    retry = httpx.post(f"{server.url}{path.removeprefix('/v1')}", content=payload.data)
    assert retry.status_code == 200
