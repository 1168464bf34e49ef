"""A tiny loopback HTTP server that plays a misbehaving upstream: it serves the invoices
and parcel bytes a test gives it, right or wrong, and can break a parcel off mid-body."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass
class FakeUpstream:
    """What the fake serves: invoice documents by bindle id and parcel bytes by digest.

    `cut_after`: send a parcel's full Content-Length but only this many bytes, then
    close the connection (an upstream that dies mid-stream).
    """

    invoices: dict[str, bytes] = field(default_factory=dict)
    parcels: dict[str, bytes] = field(default_factory=dict)
    keys: bytes = b'version = "1.0"\n'
    cut_after: int | None = None
    url: str = ""
    requests: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)


def _handler(fake: FakeUpstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # the test output stays quiet

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def do_GET(self) -> None:
            self._answer(head=False)

        def _answer(self, head: bool) -> None:
            path = unquote(urlsplit(self.path).path).removeprefix("/v1")
            fake.requests.append(f"{self.command} {path}")
            fake.authorizations.append(self.headers.get("Authorization"))
            body: bytes | None = None
            cut = None
            if path == "/bindle-keys":
                body = fake.keys
            elif path.startswith("/_i/") and "@" in path:
                body = fake.parcels.get(path.rsplit("@", 1)[1])
                cut = fake.cut_after
            elif path.startswith("/_i/"):
                body = fake.invoices.get(path.removeprefix("/_i/"))
            if body is None:
                body, cut = b'error = "not found"\n', None
                self.send_response(404)
            else:
                self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            if cut is not None:
                self.send_header("Connection", "close")
            self.end_headers()
            if head:
                return
            self.wfile.write(body if cut is None else body[:cut])
            self.wfile.flush()
            if cut is not None:
                self.close_connection = True

    return Handler


@contextmanager
def fake_upstream() -> Iterator[FakeUpstream]:
    """Serve a FakeUpstream on a free loopback port for the duration of the block."""
    fake = FakeUpstream()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
