"""The audit log from the command line: `bindle-server audit`, token commands, purge."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bindle_server.cli.server import app as server_cli
from bindle_server.config import Settings
from bindle_server.errors import StorageUnavailable
from bindle_server.events import Action, Event, EventSink, NullSink
from bindle_server.events.audit import open_audit
from bindle_server.events.journal import open_journal
from tests.events.test_audit import LOCAL, _cli, _lines, disk_app
from tests.factories import make_invoice
from tests.lifecycle.conftest import push

__all__ = ["disk_app"]  # a fixture used here

App = Callable[..., TestClient]


def _seed(data_dir: Path) -> None:
    """Records two hours ago, and now, by several actors."""
    now = time.time()
    events = [
        Event(Action.TOKEN_CREATED, actor="local:root", time=now - 7200, detail={"token": "ci"}),
        Event(Action.INVOICE_CREATED, "example.com/a/1.0.0", actor="user:alice", time=now - 7100),
        Event(Action.INVOICE_CREATED, "example.com/b/1.0.0", actor="token:ci", time=now - 10),
        Event(
            Action.AUTH_REFUSED,
            actor="user:mallory",
            address="10.0.0.9",
            result="unauthorized",
            time=now - 5,
        ),
        Event(Action.INVOICE_YANKED, "other.org/c/2.0.0", actor="user:alice", time=now - 1),
    ]

    async def write() -> None:
        sink = await open_audit(None, data_dir, 1 << 20)
        for event in events:
            await sink.record(event)
        await sink.close()

    asyncio.run(write())


def test_audit_command_filters_by_time_actor_bindle_and_action(data_dir: Path) -> None:
    _seed(data_dir)

    def bindles(*options: str) -> list[str]:
        lines = _cli("audit", "--directory", str(data_dir), "--format", "json", *options)
        return [json.loads(line)["bindle"] or json.loads(line)["action"] for line in lines]

    everything = bindles()
    assert everything == [
        "token.created",
        "example.com/a/1.0.0",
        "example.com/b/1.0.0",
        "auth.refused",
        "other.org/c/2.0.0",
    ]
    assert bindles("--since", "1h") == everything[2:]
    assert bindles("--until", "1h") == everything[:2]
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    assert bindles("--since", since) == everything[2:]
    assert bindles("--actor", "user:alice") == ["example.com/a/1.0.0", "other.org/c/2.0.0"]
    assert bindles("--actor", "user:") == [everything[1], "auth.refused", everything[4]]
    assert bindles("--bindle", "example.com/") == everything[1:3]
    assert bindles("--action", "auth.refused", "--action", "token.created") == [
        "token.created",
        "auth.refused",
    ]
    assert bindles("--bindle", "example.com/", "--actor", "token:ci", "--since", "1h") == [
        "example.com/b/1.0.0"
    ]


def test_audit_command_prints_a_table_and_refuses_bad_options(data_dir: Path) -> None:
    _seed(data_dir)
    with max((data_dir / "audit").glob("audit-*.jsonl")).open("a") as current:
        current.write('{"time": "torn li\n')  # what a hand edit or a torn write leaves
    result = CliRunner().invoke(
        server_cli, ["audit", "-d", str(data_dir), "--actor", "user:mallory"]
    )
    assert result.exit_code == 0 and "skipped 1 unreadable line(s)" in result.stderr
    table = result.stdout.splitlines()
    assert len(table) == 1
    assert table[0].split()[1:5] == ["user:mallory", "10.0.0.9", "auth.refused", "unauthorized"]
    runner = CliRunner()
    for options, message in [
        (["--since", "yesterday"], "ISO 8601"),
        (["--action", "invoice.eaten"], "unknown action"),
        (["--format", "xml"], "table or json"),
    ]:
        result = runner.invoke(server_cli, ["audit", "-d", str(data_dir), *options])
        assert result.exit_code == 2 and message in result.output


def test_token_commands_and_command_line_purge_are_audited_as_the_local_user(
    disk_app: App, data_dir: Path
) -> None:
    push(disk_app(), make_invoice("example.com/gone", "1.0.0"))
    _cli("token", "create", "--name", "ci", "--expires", "1d", "-d", str(data_dir))
    _cli("token", "revoke", "ci", "-d", str(data_dir))
    _cli("purge", "example.com/gone/1.0.0", "-d", str(data_dir))
    local = [line for line in _lines(data_dir) if line["actor"] == LOCAL]
    assert [(line["action"], line["bindle"]) for line in local] == [
        ("token.created", ""),
        ("token.revoked", ""),
        ("invoice.purged", "example.com/gone/1.0.0"),
    ]
    assert local[0]["detail"]["token"] == "ci" and local[0]["detail"]["expires"]
    assert "bindle_" not in json.dumps(local)  # never the token's value


def test_a_token_is_not_created_when_its_record_cannot_be_written(data_dir: Path) -> None:
    (data_dir / "audit").write_text("not a directory")
    result = CliRunner().invoke(
        server_cli, ["token", "create", "--name", "ci", "-d", str(data_dir)]
    )
    assert result.exit_code == 2 and "audit log cannot be written" in result.output
    assert not (data_dir / "tokens.toml").exists()


def test_a_command_line_change_whose_audit_record_fails_is_not_journaled(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FailingAudit(NullSink):
        async def record(self, event: Event) -> None:
            raise StorageUnavailable("the audit log cannot be written (test)")

    async def failing_audit(settings: Settings) -> EventSink:
        return FailingAudit()

    cli_audit = importlib.import_module("bindle_server.cli.server.audit")
    monkeypatch.setattr(cli_audit, "open_audit", failing_audit)

    async def run() -> list[Event]:
        async with cli_audit.command_recorder(Settings(directory=data_dir), data_dir) as recorder:
            with pytest.raises(StorageUnavailable):
                await recorder.record(Event(Action.INVOICE_PURGED, "example.com/a/1.0.0"))
        journal = await open_journal(None, data_dir)
        try:
            return await journal.after(0)
        finally:
            await journal.close()

    assert asyncio.run(run()) == []  # neither streamed nor sent to webhooks
