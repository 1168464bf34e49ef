"""`serve` delivers webhooks from one process of their own per node, which starts and ends
with the server and is started again when it dies; an app started any other way (or on
in-memory storage) delivers from its own process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bindle_server.api.app import create_app
from bindle_server.config import Settings
from bindle_server.events import Action, Event
from bindle_server.events import delivery as delivery_module
from bindle_server.events.delivery import Deliverer, RetryPolicy
from bindle_server.events.outbox import open_outbox
from bindle_server.events.sqlite import SqliteJournal
from bindle_server.events.webhooks import load_webhooks
from tests.events.receiver import WAIT, Receiver, push_live
from tests.factories import InvoiceDoc, make_invoice, parcel
from tests.lifecycle.conftest import push
from tests.servers import ServerProcess, run_command

ServerFactory = Callable[..., ServerProcess]
App = Callable[..., TestClient]
_STARTED = re.compile(r"webhook delivery process (\d+) started")


def _delivery_pids(server: ServerProcess, count: int = 1) -> list[int]:
    """The delivery processes the server's log names, once it names `count` of them."""
    deadline = time.monotonic() + WAIT
    pids = [int(pid) for pid in _STARTED.findall(server.log())]
    while len(pids) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        pids = [int(pid) for pid in _STARTED.findall(server.log())]
    return pids


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name, or None once the process is gone
    (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return None
    return None if fields[0] == "Z" else fields


def _created_and_completed(doc: InvoiceDoc) -> list[tuple[str, str]]:
    """The events of pushing `doc` whole."""
    return [("invoice.created", doc.bindle_id), ("invoice.completed", doc.bindle_id)]


def _ends(pid: int) -> bool:
    deadline = time.monotonic() + WAIT
    while _stat(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    return _stat(pid) is None


def test_one_delivery_process_per_server_sends_for_all_its_workers(
    server_factory: ServerFactory, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    server = server_factory(None, "--workers", "2", "--webhook", receiver.url())
    [pid] = _delivery_pids(server)
    fields = _stat(pid)
    assert fields is not None
    # A child of the server, at a lower priority than the workers that serve requests.
    assert int(fields[1]) == server.pid and int(fields[16]) == 10
    for minor in range(3):
        push_live(
            server, make_invoice("example.com/proc", f"1.{minor}.0", parcels=[parcel(f"{minor}")])
        )
    received = receiver.wait_for(6)
    assert len(received) == 6
    assert len({item.headers["X-Bindle-Delivery"] for item in received}) == 6


def test_the_delivery_process_ends_with_the_server(
    server_factory: ServerFactory, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    stopped = server_factory(None, "--webhook", receiver.url())
    killed = server_factory(None, "--webhook", receiver.url())
    [stopped_pid], [killed_pid] = _delivery_pids(stopped), _delivery_pids(killed)
    stopped.stop()  # SIGTERM: the server stops it
    assert _ends(stopped_pid)
    killed.kill()  # SIGKILL: it notices that the server is gone
    assert _ends(killed_pid)


def test_a_delivery_process_that_dies_is_started_again(
    server_factory: ServerFactory, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    server = server_factory(None, "--webhook", receiver.url())
    [first] = _delivery_pids(server)
    os.kill(first, signal.SIGKILL)
    doc = make_invoice("example.com/again", "1.0.0")
    push_live(server, doc)  # pushes need no sender: the event waits in the journal
    pids = _delivery_pids(server, 2)
    assert len(pids) == 2 and pids[1] != first
    assert f"webhook delivery process {first} ended" in server.log()
    assert [item.event for item in receiver.wait_for(2)] == _created_and_completed(doc)


def test_in_memory_storage_delivers_from_the_serving_process(
    server_factory: ServerFactory, receivers: Callable[..., Receiver]
) -> None:
    """Its journal is in the serving process's memory, where no other process sees it."""
    receiver = receivers()
    server = server_factory(None, "--storage", "memory://", "--webhook", receiver.url())
    doc = make_invoice("example.com/memory", "1.0.0")
    push_live(server, doc)
    assert [item.event for item in receiver.wait_for(2)] == _created_and_completed(doc)
    assert not _STARTED.search(server.log())


@pytest.mark.parametrize("deliver", [True, False])
def test_an_app_told_that_another_process_delivers_does_not(
    deliver: bool, settings_factory: Callable[..., Settings]
) -> None:
    """A delivering app gives each webhook its cursor as it starts; one that leaves the
    webhooks to serve's delivery process never touches the outbox."""
    hook = "http://127.0.0.1:1/hook"
    settings = settings_factory(webhook=[hook])
    with TestClient(create_app(settings, deliver_webhooks=deliver)) as api:
        portal = api.portal
        assert portal is not None
        outbox = portal.call(open_outbox, api.app.state.observers.journal)  # type: ignore[attr-defined]
        try:
            cursors = portal.call(outbox.cursors)
        finally:
            portal.call(outbox.close)
    assert list(cursors) == ([load_webhooks([hook], None, None)[0].name] if deliver else [])


def test_a_watching_deliverer_wakes_up_for_an_event_journaled_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delivery process hears of no request: it watches the journal's newest id, and
    a new one wakes it up long before its poll interval (made an hour here) runs out."""
    monkeypatch.setattr(delivery_module, "POLL_INTERVAL", 3600.0)
    journal = SqliteJournal(str(tmp_path / "events.sqlite3"))
    hook = load_webhooks(["http://127.0.0.1:1/hook"], None, None)[0]

    async def scenario() -> None:
        outbox = await open_outbox(journal)
        try:
            deliverer = Deliverer(journal, outbox, [hook], RetryPolicy(), watch=True)
            for minor in range(2):  # the first one is news to a deliverer that saw none yet
                waiting = asyncio.create_task(deliverer._wait_for_news())
                await journal.append(Event(Action.INVOICE_CREATED, bindle=f"a/1.{minor}.0"))
                await asyncio.wait_for(waiting, WAIT)
        finally:
            await outbox.close()

    try:
        asyncio.run(scenario())
    finally:
        asyncio.run(journal.close())


def test_an_in_process_app_still_delivers(
    app_factory: App, receivers: Callable[..., Receiver]
) -> None:
    """An embedded app (create_app) has no serve to start a delivery process for it."""
    receiver = receivers()
    api = app_factory(webhook=[receiver.url()])
    doc = make_invoice("example.com/embedded", "1.0.0")
    push(api, doc)
    assert [item.event for item in receiver.wait_for(2)] == _created_and_completed(doc)


def test_nodes_on_postgresql_send_each_delivery_once(
    server_factory: ServerFactory,
    receivers: Callable[..., Receiver],
    postgres_url: str,
    tmp_path: Path,
) -> None:
    """Each node's delivery process watches the shared journal; leases on the shared
    outbox hand each delivery to one of them."""
    receiver = receivers()
    nodes = [
        server_factory(tmp_path / f"node-{n}", "--index", postgres_url, "--webhook", receiver.url())
        for n in range(2)
    ]
    assert all(_delivery_pids(node) for node in nodes)
    docs = [
        make_invoice("example.com/nodes", f"1.{n}.0", parcels=[parcel(f"{n}")]) for n in range(2)
    ]
    for node, doc in zip(nodes, docs, strict=True):
        push_live(node, doc)
    expected = sorted(event for doc in docs for event in _created_and_completed(doc))
    assert sorted(item.event for item in receiver.wait_for(4)) == expected
    name = load_webhooks([receiver.url()], None, None)[0].name
    deadline = time.monotonic() + WAIT
    states: list[str] = []
    while states != ["delivered"] * 4 and time.monotonic() < deadline:
        listed = run_command(
            "webhooks", "-d", str(tmp_path / "node-0"), "--index", postgres_url, "--format", "json"
        )
        assert listed.returncode == 0, listed.stderr
        states = [item["state"] for item in json.loads(listed.stdout) if item["webhook"] == name]
    assert states == ["delivered"] * 4
    # Every delivery is settled, so none can be claimed again: these are all there will be.
    assert len(receiver.received) == 4
