"""`--log-format json`: every log line is one JSON object carrying its request's id."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx

from tests.servers import ServerProcess


def test_json_logs_carry_the_request_id_that_the_answer_names(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(None, "--log-format", "json")
    given = httpx.get(f"{server.url}/_q", headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    made = httpx.get(f"{server.url}/_i/example.com/absent/1.0.0")
    assert made.status_code == 404
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    # A caller's id that is not a plain token is replaced, never echoed.
    odd = httpx.get(f"{server.url}/_q", headers={"X-Request-ID": "a b<script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["x-request-id"])

    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in lines)
    assert any("listening on" in entry["message"] for entry in lines)
    by_request = {entry.get("request_id"): entry for entry in lines if "request_id" in entry}
    assert by_request["trace-42"]["logger"] == "uvicorn.access"
    assert "GET /v1/_q" in by_request["trace-42"]["message"]
    assert "404" in by_request[made.headers["x-request-id"]]["message"]


def test_text_logs_stay_the_default(live_server: ServerProcess) -> None:
    assert httpx.get(f"{live_server.url}/_q").headers["x-request-id"]
    first = live_server.log().splitlines()[0]
    assert not first.startswith("{")


def test_no_access_log_keeps_the_servers_own_lines(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(None, "--log-format", "json", "--no-access-log")
    invoice = b'bindleVersion = "1.0.0"\n[bindle]\nname = "example.com/quiet"\nversion = "1.0.0"\n'
    created = httpx.post(
        f"{server.url}/_i", content=invoice, headers={"Content-Type": "application/toml"}
    )
    assert created.status_code == 201
    assert httpx.get(f"{server.url}/_i/example.com/quiet/1.0.0").status_code == 200

    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    loggers = {entry["logger"] for entry in lines}
    assert "uvicorn.access" not in loggers
    messages = [entry["message"] for entry in lines]
    assert any("stored invoice example.com/quiet/1.0.0" in message for message in messages)
    assert any("listening on" in message for message in messages)
