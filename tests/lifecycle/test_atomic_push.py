"""Atomic pushes: an invoice whose parcels are missing stays hidden, then appears at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import tomli
from fastapi.testclient import TestClient

from tests.factories import InvoiceDoc, make_invoice, parcel
from tests.lifecycle.conftest import TOML, push

App = Callable[..., TestClient]


def test_pending_invoice_is_hidden_until_its_last_parcel_arrives(app_factory: App) -> None:
    api = app_factory(atomic_push=True)
    first, second = parcel("first part"), parcel("second part")
    doc = make_invoice("example.com/app", "1.0.0", parcels=[first, second])
    created = api.post("/_i", content=doc.toml(), headers=TOML)
    assert created.status_code == 202
    assert len(tomli.loads(created.text)["missing"]) == 2

    hidden = api.get(f"/_i/{doc.bindle_id}")
    assert hidden.status_code == 404
    assert "pending: 2 parcel(s) missing" in tomli.loads(hidden.text)["error"]
    assert api.head(f"/_i/{doc.bindle_id}").status_code == 404
    assert tomli.loads(api.get("/_q", params={"q": "example.com/app"}).text)["total"] == 0
    missing = tomli.loads(api.get(f"/_r/missing/{doc.bindle_id}").text)["missing"]
    assert {label["sha256"] for label in missing} == {first.sha256, second.sha256}

    assert api.post(f"/_i/{doc.bindle_id}@{first.sha256}", content=first.data).status_code == 200
    still = api.get(f"/_i/{doc.bindle_id}")
    assert "pending: 1 parcel(s) missing" in tomli.loads(still.text)["error"]
    assert api.get(f"/_i/{doc.bindle_id}@{first.sha256}").status_code == 404

    assert api.post(f"/_i/{doc.bindle_id}@{second.sha256}", content=second.data).status_code == 200
    visible = api.get(f"/_i/{doc.bindle_id}")
    assert visible.status_code == 200
    assert tomli.loads(visible.text)["bindle"]["version"] == "1.0.0"
    assert tomli.loads(api.get("/_q", params={"q": "example.com/app"}).text)["total"] == 1
    assert api.get(f"/_i/{doc.bindle_id}@{first.sha256}").content == first.data


def test_without_atomic_pushes_an_incomplete_invoice_is_visible_at_once(app_factory: App) -> None:
    api = app_factory()
    doc = make_invoice(parcels=[parcel("not yet uploaded")])
    assert api.post("/_i", content=doc.toml(), headers=TOML).status_code == 202
    assert api.get(f"/_i/{doc.bindle_id}").status_code == 200
    assert tomli.loads(api.get("/_q").text)["total"] == 1


def test_invoice_complete_at_create_is_visible_at_once_in_atomic_mode(app_factory: App) -> None:
    api = app_factory(atomic_push=True)
    shared = parcel("already here")
    push(api, make_invoice("first", parcels=[shared]))
    doc = make_invoice("second", parcels=[shared])
    assert api.post("/_i", content=doc.toml(), headers=TOML).status_code == 201
    assert api.get(f"/_i/{doc.bindle_id}").status_code == 200


def test_re_posting_a_pending_invoice_resumes_with_the_current_missing_list(
    app_factory: App,
) -> None:
    api = app_factory(atomic_push=True)
    first, second = parcel("one"), parcel("two")
    doc = make_invoice(parcels=[first, second])
    api.post("/_i", content=doc.toml(), headers=TOML)
    api.post(f"/_i/{doc.bindle_id}@{first.sha256}", content=first.data)

    again = api.post("/_i", content=doc.toml(), headers=TOML)
    assert again.status_code == 202
    assert [label["sha256"] for label in tomli.loads(again.text)["missing"]] == [second.sha256]

    api.post(f"/_i/{doc.bindle_id}@{second.sha256}", content=second.data)
    assert api.get(f"/_i/{doc.bindle_id}").status_code == 200
    # Once it is visible the reference answer applies.
    assert api.post("/_i", content=doc.toml(), headers=TOML).status_code == 409


def test_a_different_invoice_under_a_pending_id_is_refused_naming_the_difference(
    app_factory: App,
) -> None:
    api = app_factory(atomic_push=True)
    doc = make_invoice(parcels=[parcel("one")])
    api.post("/_i", content=doc.toml(), headers=TOML)
    other = make_invoice(parcels=[parcel("one"), parcel("extra")])
    refused = api.post("/_i", content=other.toml(), headers=TOML)
    assert refused.status_code == 409
    error = tomli.loads(refused.text)["error"]
    assert "pending" in error and "1 parcel(s) added and 0 removed" in error


def test_missing_list_commits_a_pending_invoice_whose_parcels_came_through_another(
    app_factory: App,
) -> None:
    api = app_factory(atomic_push=True)
    shared = parcel("shared by both")
    waiting = make_invoice("waiting", parcels=[shared])
    api.post("/_i", content=waiting.toml(), headers=TOML)
    other = make_invoice("other", parcels=[shared])
    api.post("/_i", content=other.toml(), headers=TOML)
    assert (
        api.post(f"/_i/{other.bindle_id}@{shared.sha256}", content=shared.data).status_code == 200
    )
    # The upload through `other` completed `waiting` too, in the same transaction.
    assert api.get(f"/_i/{waiting.bindle_id}").status_code == 200
    assert api.get(f"/_i/{other.bindle_id}").status_code == 200


def test_pending_state_survives_a_restart_and_a_lost_index(
    app_factory: App, data_dir: Path
) -> None:
    doc = make_invoice(parcels=[parcel("one"), parcel("two")])
    api = app_factory(atomic_push=True)
    api.post("/_i", content=doc.toml(), headers=TOML)
    api.__exit__(None, None, None)
    for name in ("index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"):
        (data_dir / name).unlink(missing_ok=True)

    restarted = app_factory(atomic_push=True)
    assert "pending" in tomli.loads(restarted.get(f"/_i/{doc.bindle_id}").text)["error"]
    push(restarted, doc, upload=False)  # resumes: 202
    for item in doc.parcels:
        restarted.post(f"/_i/{doc.bindle_id}@{item.sha256}", content=item.data)
    assert restarted.get(f"/_i/{doc.bindle_id}").status_code == 200


def test_untouched_pending_invoice_expires_and_its_id_is_free_again(app_factory: App) -> None:
    api = app_factory(atomic_push=True, pending_ttl=1, maintenance_interval=0.2)
    doc = make_invoice(parcels=[parcel("never uploaded")])
    api.post("/_i", content=doc.toml(), headers=TOML)
    deadline = time.monotonic() + 15
    # GET, not _r/missing: asking what is missing is push activity and keeps it alive.
    while "pending" in tomli.loads(api.get(f"/_i/{doc.bindle_id}").text)["error"]:
        assert time.monotonic() < deadline, "the pending invoice never expired"
        time.sleep(0.1)
    assert api.get(f"/_r/missing/{doc.bindle_id}").status_code == 404
    other = make_invoice(parcels=[parcel("something else")])
    assert api.post("/_i", content=other.toml(), headers=TOML).status_code == 202


def test_invoice_declaring_a_parcel_over_the_limit_is_refused_with_413_and_not_stored(
    app_factory: App,
) -> None:
    api = app_factory(max_parcel_bytes=1000)
    huge = {
        "sha256": "a" * 64,
        "mediaType": "application/octet-stream",
        "name": "huge.bin",
        "size": 10 * 1000**4,
    }
    big = InvoiceDoc(extra={"parcel": [{"label": huge}]})
    refused = api.post("/_i", content=big.toml(), headers=TOML)
    assert refused.status_code == 413
    assert "at most 1000 bytes" in tomli.loads(refused.text)["error"]
    assert api.get(f"/_i/{big.bindle_id}").status_code == 404
    small = make_invoice("small", parcels=[parcel("x" * 1000)])
    assert api.post("/_i", content=small.toml(), headers=TOML).status_code == 202
