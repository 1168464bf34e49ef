"""What a server process imports: every module it loads costs start-up time and memory in
each worker, so those only some servers need are imported only by them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# The server's own module plus its app, started (lifespan) and asked once, without any
# HTTP client library in the way: a request is handed to the ASGI app directly.
_PROGRAM = """
import asyncio, sys
import bindle_server.cli.server.app
from bindle_server.api.app import create_app
from bindle_server.config import Settings

app = create_app(Settings(directory=sys.argv[1]))

async def main():
    async with app.router.lifespan_context(app):
        sent = []
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}
        async def send(message):
            sent.append(message)
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": "/v1/_q", "raw_path": b"/v1/_q",
            "root_path": "", "query_string": b"", "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080),
        }
        await app(scope, receive, send)
        assert sent[0]["status"] == 200, sent

asyncio.run(main())
print(sorted({name.split(".")[0] for name in sys.modules}))
"""


def test_a_server_without_oidc_mirror_or_webhooks_never_loads_httpx(tmp_path: Path) -> None:
    """httpx (with rich and pygments, which it brings) is for OIDC, the mirror and webhook
    endpoints behind a proxy; loaded by every server, it cost ~18 MiB and ~0.1 s."""
    result = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.strip().strip("[]").replace("'", "").split(", "))
    assert "bindle_server" in loaded
    assert "fastapi" in loaded
    assert loaded.isdisjoint({"httpx", "rich", "pygments"})
