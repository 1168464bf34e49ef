"""Behind a proxy: whose address the audit log records, by `--forwarded-allow-ips`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.factories import make_invoice
from tests.servers import ServerProcess

TOML = {"Content-Type": "application/toml"}
CLIENT = "203.0.113.7"  # what the proxy says the client is (a documentation address)


def _created_from(server: ServerProcess, name: str) -> str:
    doc = make_invoice(name, "1.0.0")
    headers = TOML | {"X-Forwarded-For": CLIENT}
    answer = httpx.post(f"{server.url}/_i", content=doc.toml(), headers=headers)
    assert answer.status_code == 201, answer.text
    lines = [
        json.loads(line)
        for path in sorted(Path(server.data_dir, "audit").glob("audit-*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    (created,) = [line for line in lines if line["action"] == "invoice.created"]
    return str(created["address"])


def test_a_trusted_proxy_names_the_client_and_another_does_not(
    server_factory: Callable[..., ServerProcess],
) -> None:
    # The tests' requests come from 127.0.0.1: trusted by default, as a local nginx is.
    trusted = server_factory(None)
    assert _created_from(trusted, "example.com/trusted") == CLIENT
    # Anyone may send the header; from a proxy not on the list it is ignored.
    untrusted = server_factory(None, "--forwarded-allow-ips", "192.0.2.1")
    assert _created_from(untrusted, "example.com/untrusted") == "127.0.0.1"
