"""The journal records each public event once, in order, on both backends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import anyio
from fastapi.testclient import TestClient

from bindle_server.events import Action, Event
from bindle_server.model import BindleId
from tests.factories import InvoiceDoc, make_invoice, parcel
from tests.lifecycle.conftest import TOML

App = Callable[..., TestClient]


def _journaled(api: TestClient, after: int = 0) -> list[Event]:
    journal = api.app.state.observers.journal  # type: ignore[attr-defined]
    portal = api.portal
    assert portal is not None
    return portal.call(journal.after, after, 1000)


def _actions(events: list[Event]) -> list[tuple[str, str]]:
    return [(event.action.value, event.bindle) for event in events]


def test_an_incomplete_push_completes_with_its_last_parcel(app_factory: App) -> None:
    api = app_factory()
    first, second = parcel("one"), parcel("two")
    doc = make_invoice("example.com/app", "1.0.0", parcels=[first, second])
    start = max([event.id for event in _journaled(api)], default=0)
    assert api.post("/_i", content=doc.toml(), headers=TOML).status_code == 202
    assert _actions(_journaled(api, start)) == [("invoice.created", doc.bindle_id)]

    api.post(f"/_i/{doc.bindle_id}@{first.sha256}", content=first.data)
    assert len(_journaled(api, start)) == 1  # still incomplete
    api.post(f"/_i/{doc.bindle_id}@{second.sha256}", content=second.data)
    events = _journaled(api, start)
    assert _actions(events) == [
        ("invoice.created", doc.bindle_id),
        ("invoice.completed", doc.bindle_id),
    ]
    assert events[0].id < events[1].id
    assert events[0].actor == "anonymous" and events[0].address


def test_a_complete_create_then_yank_and_purge(app_factory: App) -> None:
    api = app_factory(atomic_push=True)
    shared = parcel("here already")
    first = make_invoice("example.com/lib", "1.0.0", parcels=[shared])
    assert api.post("/_i", content=first.toml(), headers=TOML).status_code == 202
    api.post(f"/_i/{first.bindle_id}@{shared.sha256}", content=shared.data)
    second = make_invoice("example.com/lib", "1.1.0", parcels=[shared])
    assert api.post("/_i", content=second.toml(), headers=TOML).status_code == 201
    assert api.delete(f"/_i/{second.bindle_id}").status_code == 200
    service = api.app.state.service  # type: ignore[attr-defined]
    assert api.portal is not None
    api.portal.call(service.purge, BindleId.parse(second.bindle_id))
    assert _actions(_journaled(api)) == [
        ("invoice.created", first.bindle_id),
        ("invoice.completed", first.bindle_id),
        ("invoice.created", second.bindle_id),
        ("invoice.completed", second.bindle_id),
        ("invoice.yanked", second.bindle_id),
        ("invoice.purged", second.bindle_id),
    ]
    assert all(event.action is not Action.PARCEL_STORED for event in _journaled(api))


def test_sequence_numbers_survive_a_restart(app_factory: App) -> None:
    api = app_factory()
    api.post("/_i", content=make_invoice("a", "1.0.0").toml(), headers=TOML)
    before = _journaled(api)
    restarted = app_factory()
    restarted.post("/_i", content=make_invoice("a", "2.0.0").toml(), headers=TOML)
    after = _journaled(restarted)
    assert [event.id for event in after[: len(before)]] == [event.id for event in before]
    assert after[-1].id > before[-1].id


def test_last_parcels_uploaded_at_once_complete_their_invoice_once(app_factory: App) -> None:
    api = app_factory()
    service = api.app.state.service  # type: ignore[attr-defined]
    assert api.portal is not None
    start = max([event.id for event in _journaled(api)], default=0)
    pushed = []
    for n in range(8):
        first, second = parcel(f"race {n} first"), parcel(f"race {n} second")
        doc = make_invoice("example.com/race", f"1.0.{n}", parcels=[first, second])
        assert api.post("/_i", content=doc.toml(), headers=TOML).status_code == 202
        pushed.append(doc.bindle_id)

        async def upload_both(doc: InvoiceDoc = doc) -> None:
            async with anyio.create_task_group() as group:
                for item in doc.parcels:
                    group.start_soon(
                        service.upload_parcel,
                        BindleId.parse(doc.bindle_id),
                        item.sha256,
                        _chunks(item.data),
                        len(item.data),
                    )

        api.portal.call(upload_both)
    completed = [
        event.bindle for event in _journaled(api, start) if event.action is Action.INVOICE_COMPLETED
    ]
    assert sorted(completed) == sorted(pushed)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def test_events_older_than_the_retention_are_pruned_when_a_server_starts(app_factory: App) -> None:
    api = app_factory()
    journal = api.app.state.observers.journal  # type: ignore[attr-defined]
    assert api.portal is not None
    old = api.portal.call(
        journal.append,
        Event(Action.INVOICE_CREATED, bindle="old/1.0.0", time=time.time() - 8 * 86400),
    )
    api.post("/_i", content=make_invoice("recent", "1.0.0").toml(), headers=TOML)
    restarted = app_factory()
    deadline = time.monotonic() + 20
    while any(event.id == old.id for event in _journaled(restarted)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert [event.bindle for event in _journaled(restarted)][-2:] == ["recent/1.0.0"] * 2
