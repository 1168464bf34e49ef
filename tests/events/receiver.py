"""A webhook endpoint on loopback for the tests: it records what it receives."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tests.factories import InvoiceDoc
from tests.lifecycle.conftest import TOML
from tests.servers import ServerProcess

WAIT = 30.0  # a deadline for what happens in the background, not an expected duration


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int

    @property
    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def event(self) -> tuple[str, str]:
        return self.json["action"], self.json["bindle"]


class Receiver:
    """A webhook endpoint on loopback that answers `status`, or holds every request
    until released (`hang`)."""

    def __init__(
        self, port: int = 0, status: int = 204, hang: bool = False, keep_alive: bool = False
    ) -> None:
        self.received: list[Received] = []
        self.status = status
        self.release = threading.Event()
        if not hang:
            self.release.set()
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._arrived:
                    arrived = Received(self.path, dict(self.headers), body, self.client_address[1])
                    receiver.received.append(arrived)
                    receiver._arrived.notify_all()
                receiver.release.wait(WAIT)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        port: int = self.server.server_address[1]
        return port

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, count: int, path: str | None = None) -> list[Received]:
        """`count` requests (to `path`), waiting for them up to a deadline; in the order
        of their events (deliveries run concurrently, so they may arrive in another)."""
        deadline = time.monotonic() + WAIT
        with self._arrived:
            while True:
                matching = [item for item in self.received if path in (None, item.path)]
                if len(matching) >= count or time.monotonic() > deadline:
                    return sorted(matching, key=lambda item: int(item.json.get("id", 0)))
                self._arrived.wait(0.1)

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def push_live(server: ServerProcess, doc: InvoiceDoc) -> None:
    """Create `doc` on a live server and upload its parcels."""
    with httpx.Client(base_url=server.url, timeout=WAIT) as client:
        created = client.post("/_i", content=doc.toml(), headers=TOML)
        assert created.status_code in (201, 202), created.text
        for item in doc.parcels:
            stored = client.post(f"/_i/{doc.bindle_id}@{item.sha256}", content=item.data)
            assert stored.status_code == 200, stored.text
