"""The audit log: one JSON line per change and refused authentication, with the caller;
no change without its record; rotation; `bindle-server audit`; the PostgreSQL table."""

from __future__ import annotations

import asyncio
import base64
import getpass
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bindle_server.api.app import create_app
from bindle_server.cli.server import app as server_cli
from bindle_server.config import Settings
from bindle_server.events import Action, Event
from bindle_server.events.audit import (
    AuditFiles,
    AuditQuery,
    open_audit_reader,
)
from bindle_server.events.audit_postgres import AuditTable
from bindle_server.lifecycle.collector import CollectorSettings, collect
from bindle_server.model import BindleId
from tests.auth.conftest import basic, bearer, make_token, write_policy
from tests.factories import make_invoice, parcel
from tests.lifecycle.conftest import TOML, htpasswd_file, push
from tests.servers import ServerProcess

__all__ = ["htpasswd_file", "make_token"]  # fixtures used here

App = Callable[..., TestClient]
LOCAL = f"local:{getpass.getuser()}"


@pytest.fixture
def disk_app(settings_factory: Callable[..., Settings]) -> Iterator[App]:
    """In-process apps on the local-disk backend only (the audit files)."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(create_app(settings_factory(**overrides)), base_url="http://t/v1")
        clients.append(client.__enter__())
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


def _lines(data_dir: Path) -> list[dict[str, Any]]:
    """Every audit line of a data directory, in file order."""
    lines: list[dict[str, Any]] = []
    for path in sorted((data_dir / "audit").glob("audit-*.jsonl")):
        lines.extend(json.loads(line) for line in path.read_text().splitlines())
    return lines


def _read(index: str | None, directory: Path, query: AuditQuery | None = None) -> list[Event]:
    async def read() -> list[Event]:
        reader = await open_audit_reader(index, directory)
        try:
            return [event async for event in reader.entries(query or AuditQuery())]
        finally:
            await reader.close()

    return asyncio.run(read())


def _cli(*args: str) -> list[str]:
    result = CliRunner().invoke(server_cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_changes_and_refusals_are_audited_with_the_caller_of_a_live_server(
    server_factory: Callable[..., ServerProcess],
    data_dir: Path,
    tmp_path: Path,
    htpasswd_file: Path,
    make_token: Callable[..., str],
) -> None:
    token = make_token("ci")
    policy = write_policy(
        tmp_path / "policy.toml",
        {"subjects": ["authenticated"], "prefixes": ["*"], "verbs": ["read", "create", "yank"]},
    )
    server = server_factory(
        data_dir, "--htpasswd-file", str(htpasswd_file), "--auth-policy", str(policy)
    )
    item = parcel("audited bytes")
    by_alice = make_invoice("example.com/alice", "1.0.0", parcels=[item])
    by_ci = make_invoice("example.com/ci", "1.0.0")
    alice = basic("alice", "alice-secret")
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.post("/_i", content=by_alice.toml(), headers=TOML | alice).status_code == 202
        stored = http.post(
            f"/_i/{by_alice.bindle_id}@{item.sha256}", content=item.data, headers=alice
        )
        assert stored.status_code == 200
        assert http.delete(f"/_i/{by_alice.bindle_id}", headers=alice).status_code == 200
        assert (
            http.post("/_i", content=by_ci.toml(), headers=TOML | bearer(token)).status_code == 201
        )
        assert http.get("/_q", headers=basic("alice", "wrong")).status_code == 401
        assert http.get("/_q", headers=bearer("bindle_not-a-token")).status_code == 401
        assert http.get("/_q", headers=bearer("eyJhbGciOi.not.a-jwt")).status_code == 401

    done = {(line["actor"], line["action"], line["bindle"]) for line in _lines(data_dir)}
    assert {
        ("user:alice", "invoice.created", by_alice.bindle_id),
        ("user:alice", "parcel.stored", by_alice.bindle_id),
        ("user:alice", "invoice.completed", by_alice.bindle_id),
        ("user:alice", "invoice.yanked", by_alice.bindle_id),
        ("token:ci", "invoice.created", by_ci.bindle_id),
        ("user:alice", "auth.refused", ""),  # the name claimed in the Basic header
        ("token", "auth.refused", ""),
        ("bearer", "auth.refused", ""),
    } <= done
    stored_line = next(line for line in _lines(data_dir) if line["action"] == "parcel.stored")
    assert stored_line["digest"] == item.sha256
    assert stored_line["address"] == "127.0.0.1"
    assert stored_line["result"] == "ok"
    assert stored_line["detail"] == {"size": len(item.data)}
    assert stored_line["time"].endswith("Z") and abs(stored_line["unix"] - time.time()) < 600
    refused = [line for line in _lines(data_dir) if line["action"] == "auth.refused"]
    assert all(line["result"] for line in refused)  # why it was refused

    # Without authentication, everyone is anonymous.
    open_server = server_factory()
    by_anyone = make_invoice("example.com/anyone", "1.0.0")
    answer = httpx.post(f"{open_server.url}/_i", content=by_anyone.toml(), headers=TOML)
    assert answer.status_code == 201
    assert [(line["actor"], line["action"]) for line in _lines(open_server.data_dir)] == [
        ("anonymous", "invoice.created"),
        ("anonymous", "invoice.completed"),
    ]


@pytest.mark.parametrize("blocker", ["audit directory is a file", "audit file is a directory"])
def test_a_change_whose_audit_record_cannot_be_written_fails_with_503_and_stores_nothing(
    disk_app: App, data_dir: Path, blocker: str
) -> None:
    # Files only: the audit table fails with its database, which the change needs too.
    api = disk_app()
    item = parcel("never stored")
    first = make_invoice("example.com/app", "1.0.0", parcels=[item])
    assert api.post("/_i", content=first.toml(), headers=TOML).status_code == 202
    audit = data_dir / "audit"
    if blocker == "audit directory is a file":
        audit.rename(data_dir / "audit.moved")
        audit.write_text("not a directory")
    else:
        current = max(audit.glob("audit-*.jsonl"))
        current.rename(audit / "moved-away")
        current.mkdir()

    second = make_invoice("example.com/app", "2.0.0")
    refused = api.post("/_i", content=second.toml(), headers=TOML)
    assert refused.status_code == 503
    assert refused.headers["content-type"].startswith("application/toml")
    assert "audit log cannot be written" in refused.text and refused.text.startswith("error = ")
    assert api.get(f"/_i/{second.bindle_id}").status_code == 404
    upload = api.post(f"/_i/{first.bindle_id}@{item.sha256}", content=item.data)
    assert upload.status_code == 503
    assert api.get(f"/_i/{first.bindle_id}@{item.sha256}").status_code == 404
    assert api.delete(f"/_i/{first.bindle_id}").status_code == 503
    assert api.get(f"/_i/{first.bindle_id}").status_code == 200  # not yanked


def test_an_audit_log_moved_away_while_serving_starts_again_in_place(
    disk_app: App, data_dir: Path
) -> None:
    api = disk_app()
    push(api, make_invoice("example.com/app", "1.0.0"))
    (data_dir / "audit").rename(data_dir / "audit.archived")  # an operator's archiving
    push(api, make_invoice("example.com/app", "2.0.0"))
    assert {line["bindle"] for line in _lines(data_dir)} == {"example.com/app/2.0.0"}


def test_every_change_is_audited_on_both_backends(app_factory: App, data_dir: Path) -> None:
    api = app_factory(atomic_push=True)
    item = parcel("one")
    doc = make_invoice("example.com/both", "1.0.0", parcels=[item])
    push(api, doc)
    waiting = make_invoice("example.com/waiting", "1.0.0", parcels=[parcel("never sent")])
    push(api, waiting, upload=False)
    assert api.delete(f"/_i/{doc.bindle_id}").status_code == 200
    assert api.portal is not None
    service = api.app.state.service  # type: ignore[attr-defined]
    api.portal.call(service.purge, BindleId.parse(doc.bindle_id))
    everything_now = CollectorSettings(pending_ttl=1e-9, grace=1e-9)
    api.portal.call(lambda: collect(service, everything_now))
    index = api.app.state.settings.index  # type: ignore[attr-defined]
    events = _read(index, data_dir, AuditQuery(bindle="example.com/both"))
    assert [event.action.value for event in events] == [
        "invoice.created",
        "parcel.stored",
        "invoice.completed",
        "invoice.yanked",
        "invoice.purged",
    ]
    assert events[0].actor == "anonymous" and events[0].address
    assert events[1].digest == item.sha256
    assert events[-1].actor == "system" and events[-1].detail  # the purge's reason
    assert _read(index, data_dir, AuditQuery(actions=frozenset({Action.PARCEL_STORED}))) == [
        events[1]
    ]
    collected = _read(index, data_dir, AuditQuery(actor="system", since=events[-1].time))
    assert {(event.action.value, event.bindle or event.digest) for event in collected} >= {
        ("pending.expired", waiting.bindle_id),
        ("gc.removed", item.sha256),
        ("gc.run", ""),
    }


def test_no_audit_log_records_nothing(disk_app: App, data_dir: Path) -> None:
    api = disk_app(audit_log=False)
    push(api, make_invoice("example.com/quiet", "1.0.0"))
    assert not (data_dir / "audit").exists()


def test_audit_files_rotate_by_size_and_read_back_across_them(
    disk_app: App, data_dir: Path
) -> None:
    api = disk_app(audit_rotate_bytes=700)
    for minor in range(6):
        push(api, make_invoice("example.com/rotating", f"1.{minor}.0"))
    files = sorted((data_dir / "audit").glob("audit-*.jsonl"))
    assert len(files) >= 3
    assert all(path.stat().st_size < 700 + 400 for path in files)  # one line past at most
    created = [
        event.bindle
        for event in _read(None, data_dir, AuditQuery(actions=frozenset({Action.INVOICE_CREATED})))
    ]
    assert created == [f"example.com/rotating/1.{minor}.0" for minor in range(6)]
    listed = _cli("audit", "-d", str(data_dir), "--action", "invoice.created", "--format", "json")
    assert [json.loads(line)["bindle"] for line in listed] == created


def test_several_writers_share_the_current_file_and_rotate_once(tmp_path: Path) -> None:
    async def write() -> None:
        first, second = AuditFiles(tmp_path, 300), AuditFiles(tmp_path, 300)
        for number in range(8):
            writer = first if number % 2 else second
            await writer.record(Event(Action.GC_RUN, actor="system", detail={"n": number}))
        await first.close()
        await second.close()

    asyncio.run(write())
    lines = [
        json.loads(line)
        for path in sorted(tmp_path.glob("audit-*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    assert [line["detail"]["n"] for line in lines] == list(range(8))
    numbers = sorted(int(path.stem.split("-")[1]) for path in tmp_path.glob("audit-*.jsonl"))
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) > 1


_WRITER = """
import asyncio, sys
from pathlib import Path
from bindle_server.events import Action, Event
from bindle_server.events.audit import AuditFiles

async def write() -> None:
    sink = AuditFiles(Path(sys.argv[1]), 4096)
    for number in range(400):
        await sink.ready()
        await sink.record(Event(Action.GC_REMOVED, actor=sys.argv[2], detail={"n": number}))
    await sink.close()

asyncio.run(write())
"""


def test_worker_processes_append_whole_lines_to_one_log_at_once(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(audit), f"worker-{n}"])
        for n in range(3)
    ]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0, 0]
    events = _read(None, tmp_path)
    assert len(events) == 1200  # no line torn or lost
    for n in range(3):  # every line whole, each writer's in its own order
        mine = [event.detail["n"] for event in events if event.actor == f"worker-{n}"]
        assert mine == list(range(400))
    files = list(audit.glob("audit-*.jsonl"))
    assert len(files) > 3 and all(path.stat().st_size < 4096 * 2 for path in files)


def test_the_postgres_table_records_and_filters(postgres_url: str, tmp_path: Path) -> None:
    async def run() -> list[list[str]]:
        table = await AuditTable.open(postgres_url)
        again = await AuditTable.open(postgres_url)  # the schema is created once
        await again.close()
        now = time.time()
        await table.ready()
        for actor, bindle, at in [
            ("user:alice", "example.com/a/1.0.0", now - 7200),
            ("token:ci", "example.com/b/1.0.0", now - 10),
            ("user:bob", "other.org/c/1.0.0", now - 5),
        ]:
            event = Event(Action.INVOICE_CREATED, bindle, actor=actor, address="::1", time=at)
            await table.record(event)
        await table.record(Event(Action.GC_RUN, actor="system", detail={"bytes": 3}))
        await table.close()
        found = []
        for query in [
            AuditQuery(),
            AuditQuery(since=now - 3600),
            AuditQuery(until=now - 3600),
            AuditQuery(actor="user:"),
            AuditQuery(actor="token:ci"),
            AuditQuery(bindle="example.com/", actions=frozenset({Action.INVOICE_CREATED})),
            AuditQuery(actions=frozenset({Action.GC_RUN})),
        ]:
            reader = await open_audit_reader(postgres_url, tmp_path)
            found.append([e.bindle or str(e.detail) async for e in reader.entries(query)])
            await reader.close()
        return found

    a, b, c = "example.com/a/1.0.0", "example.com/b/1.0.0", "other.org/c/1.0.0"
    assert asyncio.run(run()) == [
        [a, b, c, "{'bytes': 3}"],
        [b, c, "{'bytes': 3}"],
        [a],
        [a, c],
        [b],
        [a, b],
        ["{'bytes': 3}"],
    ]
    listed = _cli("audit", "--index", postgres_url, "-d", str(tmp_path), "--actor", "token:ci")
    assert len(listed) == 1 and listed[0].split()[1:4] == ["token:ci", "::1", "invoice.created"]
    assert not (tmp_path / "audit").exists()


def test_a_claimed_name_with_control_characters_is_refused_and_audited_in_the_table(
    settings_factory: Callable[..., Settings],
    postgres_url: str,
    data_dir: Path,
    htpasswd_file: Path,
) -> None:
    settings = settings_factory(index=postgres_url, htpasswd_file=htpasswd_file)
    with TestClient(create_app(settings), base_url="http://t/v1") as api:
        for user in ["\x00", "ali\x00ce\x1b[2J\n", "m" * 1000]:
            claimed = base64.b64encode(f"{user}:secret".encode()).decode()
            answer = api.get("/_q", headers={"Authorization": f"Basic {claimed}"})
            assert answer.status_code == 401, answer.text
    refused = _read(postgres_url, data_dir, AuditQuery(actions=frozenset({Action.AUTH_REFUSED})))
    assert [event.actor for event in refused] == [
        "unauthenticated",
        "user:alice[2J",  # printable characters only
        "user:" + "m" * 128,  # and bounded
    ]
    assert all(event.result for event in refused)


def test_the_postgres_table_stores_any_text_a_client_can_send(postgres_url: str) -> None:
    async def run() -> list[Event]:
        table = await AuditTable.open(postgres_url)
        try:
            await table.record(
                Event(
                    Action.AUTH_REFUSED,
                    "example.com/\x00/1.0.0",
                    digest="\x00",
                    result="bad \x00 \ud800",  # a lone surrogate, as a JSON escape can give
                    actor="user:\x00",
                    address="\x00",
                    detail={"key\x00": ["\x00", "\udfff", 1]},
                )
            )
            return [event async for event in table.entries(AuditQuery())]
        finally:
            await table.close()

    [event] = asyncio.run(run())
    assert (event.actor, event.address, event.bindle, event.digest, event.result) == (
        "user:\ufffd",
        "\ufffd",
        "example.com/\ufffd/1.0.0",
        "\ufffd",
        "bad \ufffd ?",
    )
    assert event.detail == {"key\ufffd": ["\ufffd", "?", 1]}


def test_a_full_audit_file_is_flushed_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()  # asyncio.run runs the loop in this thread
    flushed: list[tuple[int, bool]] = []  # size of the file, flushed from the loop's thread
    fsync = os.fsync

    def watched(fd: int) -> None:
        flushed.append((os.fstat(fd).st_size, threading.get_ident() == loop_thread))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", watched)

    async def write() -> None:
        sink = AuditFiles(tmp_path, 300)
        for number in range(8):
            await sink.record(Event(Action.GC_RUN, actor="system", detail={"n": number}))
        await sink.close()

    asyncio.run(write())
    files = sorted(tmp_path.glob("audit-*.jsonl"))
    assert len(files) > 1 and len(flushed) == len(files) - 1  # each full file, once
    assert all(size >= 300 and not in_loop for size, in_loop in flushed)
    lines = [json.loads(line) for path in files for line in path.read_text().splitlines()]
    assert [line["detail"]["n"] for line in lines] == list(range(8))
