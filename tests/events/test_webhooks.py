"""Webhooks: signed JSON POSTs of invoice events, queued durably and retried, sent in the
background, never in a push's way; `bindle-server webhooks` lists what happened."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from bindle_server.events import Action, Event
from bindle_server.events.delivery import Deliverer, RetryPolicy
from bindle_server.events.outbox import Delivery, Outbox, Outcome, State, open_outbox
from bindle_server.events.sqlite import SqliteJournal
from bindle_server.events.webhooks import InvalidWebhookConfig, load_webhooks
from tests.events.receiver import WAIT, Received, Receiver, push_live
from tests.factories import make_invoice, parcel
from tests.lifecycle.conftest import TOML, push
from tests.servers import ServerProcess, free_port, run_command

ServerFactory = Callable[..., ServerProcess]
App = Callable[..., TestClient]
SECRET = "s3cret"


def _listed(server: ServerProcess, *options: str) -> list[dict[str, Any]]:
    result = run_command("webhooks", "-d", str(server.data_dir), "--format", "json", *options)
    assert result.returncode == 0, result.stderr
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    return listed


def _name(url: str) -> str:
    """The name a `--webhook URL` is stored and listed under."""
    return load_webhooks([url], None, None)[0].name


def _signed(item: Received, secret: str = SECRET) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), item.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(item.headers.get("X-Bindle-Signature", ""), expected)


def test_a_push_and_a_yank_are_delivered_as_signed_json(
    server_factory: ServerFactory, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    server = server_factory(
        None, "--webhook", receiver.url(), env={"BINDLE_WEBHOOK_SECRET": SECRET}
    )
    doc = make_invoice("example.com/app", "1.0.0", parcels=[parcel("wasm")])
    push_live(server, doc)
    assert httpx.delete(f"{server.url}/_i/{doc.bindle_id}").status_code == 200

    received = receiver.wait_for(3)
    assert [item.event for item in received] == [
        ("invoice.created", doc.bindle_id),
        ("invoice.completed", doc.bindle_id),
        ("invoice.yanked", doc.bindle_id),
    ]
    assert all(_signed(item) for item in received)
    assert not _signed(received[0], "another secret")
    assert [item.headers["X-Bindle-Event"] for item in received] == [
        "invoice.created",
        "invoice.completed",
        "invoice.yanked",
    ]
    assert len({item.headers["X-Bindle-Delivery"] for item in received}) == 3
    body = received[0].json
    assert body["name"] == "example.com/app" and body["version"] == "1.0.0"
    assert body["actor"] == "anonymous" and body["time"].endswith("Z")
    assert body["id"] < received[1].json["id"] < received[2].json["id"]
    assert received[0].headers["Content-Type"] == "application/json"


def test_deliveries_one_after_another_share_one_connection(
    server_factory: ServerFactory, receivers: Callable[..., Receiver]
) -> None:
    """A connection per delivery would cost more than the event; a receiver that keeps
    connections open (as web servers do) gets them all on one."""
    receiver = receivers(keep_alive=True)
    server = server_factory(None, "--webhook", receiver.url())
    for number in range(3):
        # Its parcel is never sent: one event (invoice.created) per push.
        doc = make_invoice("example.com/app", f"1.0.{number}", parcels=[parcel(f"{number}")])
        created = httpx.post(f"{server.url}/_i", content=doc.toml(), headers=TOML)
        assert created.status_code == 202, created.text
        receiver.wait_for(number + 1)
    assert len(receiver.received) == 3
    assert len({item.client_port for item in receiver.received}) == 1


def test_webhooks_file_entries_have_their_own_events_and_prefixes(
    app_factory: App, receivers: Callable[..., Receiver], tmp_path: Path
) -> None:
    receiver = receivers()
    config = tmp_path / "webhooks.toml"
    config.write_text(
        f'[[webhook]]\nurl = "{receiver.url("/completed")}"\nevents = ["invoice.completed"]\n'
        f'secret = "completed-secret"\n'
        f'[[webhook]]\nurl = "{receiver.url("/apps")}"\nprefixes = ["example.com/apps/"]\n'
    )
    api = app_factory(webhooks_file=config, webhook_secret=SECRET)
    app = make_invoice("example.com/apps/one", "1.0.0")
    library = make_invoice("example.com/libs/two", "1.0.0")
    push(api, app)
    push(api, library)
    assert api.delete(f"/_i/{library.bindle_id}").status_code == 200
    assert api.delete(f"/_i/{app.bindle_id}").status_code == 200

    completed = receiver.wait_for(2, "/completed")
    apps = receiver.wait_for(3, "/apps")
    assert [item.event for item in completed] == [
        ("invoice.completed", app.bindle_id),
        ("invoice.completed", library.bindle_id),
    ]
    assert [item.event for item in apps] == [
        ("invoice.created", app.bindle_id),
        ("invoice.completed", app.bindle_id),
        ("invoice.yanked", app.bindle_id),
    ]
    assert all(_signed(item, "completed-secret") for item in completed)
    assert all(_signed(item) for item in apps)  # no secret of its own: --webhook-secret's


def test_a_delivery_queued_while_the_receiver_is_down_arrives_after_a_restart(
    server_factory: ServerFactory, receivers: Callable[..., Receiver], tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there yet: every attempt is refused
    hook = f"http://127.0.0.1:{port}/hook"
    env = {"BINDLE_WEBHOOK_RETRY_DELAY": "0.1", "BINDLE_WEBHOOK_SECRET": SECRET}
    data_dir = tmp_path / "data"
    first = server_factory(data_dir, "--webhook", hook, env=env)
    doc = make_invoice("example.com/late", "1.0.0")
    push_live(first, doc)
    deadline = time.monotonic() + WAIT
    failed: list[dict[str, Any]] = []
    while len(failed) < 2 and time.monotonic() < deadline:
        failed = [item for item in _listed(first, "--failures") if item["attempts"] >= 1]
    assert {item["action"] for item in failed} == {"invoice.created", "invoice.completed"}
    assert all(item["state"] == "pending" and item["error"] for item in failed)
    first.stop()

    server_factory(data_dir, "--webhook", hook, env=env)
    receiver = receivers(port=port)
    received = receiver.wait_for(2)
    assert sorted(item.event for item in received) == [
        ("invoice.completed", doc.bindle_id),
        ("invoice.created", doc.bindle_id),
    ]
    assert {item.headers["X-Bindle-Delivery"] for item in received} == {
        item["id"] for item in failed
    }
    assert all(_signed(item) for item in received)


def test_several_workers_send_each_delivery_once(
    server_factory: ServerFactory, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    server = server_factory(None, "--workers", "2", "--webhook", receiver.url())
    for minor in range(5):
        push_live(server, make_invoice("example.com/workers", f"1.{minor}.0"))
    assert len(receiver.wait_for(10)) == 10
    deadline = time.monotonic() + WAIT
    listed = _listed(server)
    while any(item["state"] != "delivered" for item in listed) and time.monotonic() < deadline:
        listed = _listed(server)
    assert len(listed) == 10 and {item["state"] for item in listed} == {"delivered"}
    # Every delivery is settled: none can be claimed again, so none is still on its way.
    assert len(receiver.received) == 10
    assert len({item.headers["X-Bindle-Delivery"] for item in receiver.received}) == 10


def test_an_endpoint_that_never_answers_does_not_hold_up_pushes(
    server_factory: ServerFactory, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(hang=True)
    # Far longer than the pushes' own deadline: a push that waited for it would fail.
    env = {"BINDLE_WEBHOOK_TIMEOUT": "3600"}
    server = server_factory(None, "--webhook", receiver.url(), env=env)
    push_live(server, make_invoice("example.com/stuck", "1.0.0"))
    assert receiver.wait_for(1), "the first delivery never reached the endpoint"
    for minor in range(1, 4):  # while that delivery hangs, pushes go on
        push_live(server, make_invoice("example.com/stuck", f"1.{minor}.0"))
    assert not receiver.release.is_set()  # and the first delivery is still held


def test_the_webhooks_command_lists_deliveries_and_failures(
    server_factory: ServerFactory, receivers: Callable[..., Receiver]
) -> None:
    good, bad = receivers(), receivers(status=500)
    env = {"BINDLE_WEBHOOK_RETRY_DELAY": "0.1", "BINDLE_WEBHOOK_GIVE_UP": "1s"}
    server = server_factory(None, "--webhook", good.url(), "--webhook", bad.url(), env=env)
    doc = make_invoice("example.com/listed", "1.0.0")
    push_live(server, doc)
    assert len(good.wait_for(2)) == 2
    deadline = time.monotonic() + WAIT
    failed: list[dict[str, Any]] = []
    while len(failed) < 2 and time.monotonic() < deadline:
        failed = [item for item in _listed(server, "--failures") if item["state"] == "failed"]
    assert {(item["webhook"], item["action"], item["status"]) for item in failed} == {
        (_name(bad.url()), "invoice.created", 500),
        (_name(bad.url()), "invoice.completed", 500),
    }
    assert all(item["attempts"] >= 2 for item in failed)  # retried before giving up

    listed = _listed(server)
    delivered = [item for item in listed if item["webhook"] == _name(good.url())]
    assert {(item["state"], item["status"]) for item in delivered} == {("delivered", 204)}
    table = run_command("webhooks", "-d", str(server.data_dir))
    assert table.returncode == 0, table.stderr
    assert "delivered" in table.stdout and "failed" in table.stdout
    assert "HTTP 500" in table.stdout and "invoice.created example.com/listed/1.0.0" in table.stdout
    only_failures = run_command("webhooks", "-d", str(server.data_dir), "--failures")
    assert "delivered" not in only_failures.stdout and "HTTP 500" in only_failures.stdout


def _outbox(api: TestClient) -> tuple[Outbox, Callable[..., Any]]:
    portal = api.portal
    assert portal is not None
    journal = api.app.state.observers.journal  # type: ignore[attr-defined]
    return portal.call(open_outbox, journal), portal.call


def _queued(event_id: int, webhook: str = "hook") -> Delivery:
    now = time.time()
    return Delivery(
        f"{webhook}-{event_id}", webhook, event_id, Action.INVOICE_CREATED.value, "a/1.0.0",
        "{}", now, next_attempt=now, updated=now,
    )  # fmt: skip


def test_the_outbox_queues_once_and_hands_each_delivery_to_one_claim(app_factory: App) -> None:
    outbox, call = _outbox(app_factory())
    call(outbox.start, ["hook"], 5)
    call(outbox.start, ["hook"], 1)  # a cursor, once set, stays
    assert call(outbox.cursors)["hook"] == 5
    call(outbox.enqueue, "hook", [_queued(6), _queued(7)], 7)
    call(outbox.enqueue, "hook", [_queued(7)], 3)  # again, from a slower process
    assert call(outbox.cursors)["hook"] == 7
    now = time.time() + 1
    first = call(outbox.claim, ["hook"], now, now + 60, 1)
    second = call(outbox.claim, ["hook"], now, now + 60, 5)
    assert [item.event_id for item in first] == [6]
    assert [item.event_id for item in second] == [7]
    assert call(outbox.claim, ["hook"], now, now + 60, 5) == []  # both under lease

    outcomes = [
        Outcome("hook-6", State.DELIVERED, now, now, 200, ""),
        Outcome("hook-7", State.PENDING, now, now, None, "ConnectError"),
    ]
    call(outbox.settle, outcomes)
    assert [item.id for item in call(outbox.recent, 10, True)] == ["hook-7"]
    retried = call(outbox.claim, ["hook"], now, now + 60, 5)
    assert [(item.id, item.attempts) for item in retried] == [("hook-7", 2)]
    assert call(outbox.prune, now + 1) == 1  # the delivered one; the pending one stays
    assert [item.id for item in call(outbox.recent, 10)] == ["hook-7"]


def test_the_outbox_leaves_the_journals_connection_without_fsyncs(tmp_path: Path) -> None:
    """Journal appends are in the request path and commit without an fsync (NORMAL);
    outbox work must not turn that into one fsync per appended event (FULL)."""
    journal = SqliteJournal(str(tmp_path / "events.sqlite3"))

    async def scenario() -> int:
        outbox = await open_outbox(journal)
        try:
            await outbox.start(["hook"], 0)
            await outbox.enqueue("hook", [_queued(1)], 1)
            now = time.time() + 1
            claimed = await outbox.claim(["hook"], now, now + 60, 5)
            await outbox.settle([Outcome(claimed[0].id, State.DELIVERED, now, now, 204, "")])
        finally:
            await outbox.close()
        row = await journal.run(lambda db: db.execute("PRAGMA synchronous").fetchone())
        return int(row[0])

    try:
        assert asyncio.run(scenario()) == 1  # NORMAL
    finally:
        asyncio.run(journal.close())


def test_the_cursor_waits_for_a_missing_journal_id_before_moving_past_it(
    tmp_path: Path,
) -> None:
    """On PostgreSQL id 3 may commit before id 2 (another node's insert): a cursor moved
    to 3 would never queue 2. It stops before a missing id until that comes, or until it
    has been missing for the gap wait (an insert that was rolled back)."""
    gap_wait = 0.5
    journal = SqliteJournal(str(tmp_path / "events.sqlite3"))
    hook = load_webhooks(["http://127.0.0.1:1/hook"], None, None)[0]

    def insert(db: sqlite3.Connection, ids: tuple[int, ...]) -> None:
        for seq in ids:  # as commits of inserts that were given these ids
            event = Event(Action.INVOICE_CREATED, bindle=f"example.com/gap/1.{seq}.0")
            db.execute(
                "INSERT INTO events (id, time, record) VALUES (?, ?, ?)",
                (seq, event.time, event.to_json()),
            )

    async def scenario() -> list[tuple[int, list[int]]]:
        outbox = await open_outbox(journal)
        await outbox.start([hook.name], 0)
        deliverer = Deliverer(journal, outbox, [hook], RetryPolicy(), gap_wait=gap_wait)
        seen: list[tuple[int, list[int]]] = []

        async def commit_then_queue(*ids: int) -> None:
            await journal.run(functools.partial(insert, ids=ids))
            await deliverer.queue_new_events()
            queued = sorted(item.event_id for item in await outbox.recent(100))
            seen.append(((await outbox.cursors())[hook.name], queued))

        await commit_then_queue(1, 3)
        await commit_then_queue(2)  # the gap is filled
        await commit_then_queue(5)  # 4 never comes
        await asyncio.sleep(gap_wait + 0.1)
        await commit_then_queue()
        return seen

    try:
        assert asyncio.run(scenario()) == [
            (1, [1]),
            (3, [1, 2, 3]),
            (3, [1, 2, 3]),
            (5, [1, 2, 3, 5]),
        ]
    finally:
        asyncio.run(journal.close())


def test_webhook_settings_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "webhooks.toml"
    config.write_text('[[webhook]]\nurl = "http://127.0.0.1:1/x"\nevents = ["parcel.stored"]\n')
    with pytest.raises(InvalidWebhookConfig, match=r"unknown event 'parcel\.stored'"):
        load_webhooks([], None, config)
    with pytest.raises(InvalidWebhookConfig, match="not an http"):
        load_webhooks(["ftp://example.com/"], None, None)
    with pytest.raises(InvalidWebhookConfig, match="configured twice"):
        load_webhooks(["http://a.example/", "http://a.example/"], None, None)
    url = "https://user:pw@hooks.example:8443/services/T0/B0/XYZ?token=abc"
    hooks = load_webhooks([url], "key", None)
    # Stored, listed and logged: the scheme, host and port and a hash, no token.
    assert re.fullmatch(r"https://hooks\.example:8443/…#[0-9a-f]{8}", hooks[0].name)
    assert _name(url) == hooks[0].name  # the same across restarts: it keys the cursor
    assert _name(url.replace("XYZ", "XYW")) != hooks[0].name
    config.write_text(f'[[webhook]]\nurl = "{url}"\n[[webhook]]\nurl = "{url}"\nname = "b"\n')
    assert [hook.name for hook in load_webhooks([], None, config)] == [hooks[0].name, "b"]
    assert hooks[0].wants(Event(Action.INVOICE_PURGED, bindle="any/1.0.0"))
    assert not hooks[0].wants(Event(Action.PARCEL_STORED, bindle="any/1.0.0"))


def test_webhook_options_repeat_and_show_no_placeholder_default() -> None:
    shown = run_command("config", "--webhook", "http://a.example/1", "--webhook", "http://b/2")
    assert shown.returncode == 0, shown.stderr
    assert "http://a.example/1, http://b/2" in shown.stdout  # each one redacted
    secret = run_command("config", env={"BINDLE_WEBHOOK_SECRET": SECRET})
    assert SECRET not in secret.stdout
    assert "PydanticUndefined" not in run_command("serve", "--help").stdout


def test_serve_refuses_a_bad_webhook_in_one_line(tmp_path: Path) -> None:
    refused = run_command("serve", "--directory", str(tmp_path), "--webhook", "ftp://example.com/")
    assert refused.returncode == 2
    assert "is not an http:// or https:// URL" in refused.stderr
    assert "Traceback" not in refused.stderr
