"""Garbage collection: retention, pending expiry and unreferenced parcels, on both backends."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import tomli
import tomli_w
from fastapi.testclient import TestClient

from bindle_server.lifecycle.collector import CollectionReport, CollectorSettings, collect
from bindle_server.lifecycle.retention import RetentionPolicy
from bindle_server.model import BindleId
from bindle_server.service import BindleService
from tests.factories import make_invoice, parcel
from tests.lifecycle.conftest import TOML, push
from tests.servers import ServerProcess, run_command

App = Callable[..., TestClient]
NOW = CollectorSettings(grace=0.0)  # every parcel old enough to collect


def _service(api: TestClient) -> BindleService:
    service = api.app.state.service  # type: ignore[attr-defined]
    assert isinstance(service, BindleService)
    return service


def run_gc(
    api: TestClient, settings: CollectorSettings = NOW, *, dry_run: bool = False
) -> CollectionReport:
    """One collection in the app's own event loop, as its periodic collector runs it."""
    assert api.portal is not None
    return api.portal.call(lambda: collect(_service(api), settings, dry_run=dry_run))


def purge(api: TestClient, bindle_id: str) -> None:
    assert api.portal is not None
    api.portal.call(_service(api).purge, BindleId.parse(bindle_id))


def test_gc_removes_parcels_of_purged_bindles_but_keeps_shared_ones(app_factory: App) -> None:
    api = app_factory()
    shared, own = parcel("shared" * 100), parcel("only in the purged one" * 10)
    doomed = make_invoice("doomed", parcels=[shared, own])
    kept = make_invoice("kept", parcels=[shared])
    push(api, doomed)
    push(api, kept)
    purge(api, doomed.bindle_id)

    dry = run_gc(api, dry_run=True)
    assert (dry.parcels_removed, dry.bytes_freed) == (1, own.size)
    assert api.get(f"/_i/{kept.bindle_id}@{shared.sha256}").status_code == 200

    report = run_gc(api)
    assert (report.parcels_removed, report.bytes_freed, report.parcels_kept) == (1, own.size, 1)
    assert api.get(f"/_i/{kept.bindle_id}@{shared.sha256}").content == shared.data
    assert run_gc(api).parcels_removed == 0


def test_gc_never_collects_parcels_younger_than_the_grace_period(app_factory: App) -> None:
    api = app_factory()
    orphan = parcel("uploaded, then its bindle was purged")
    doc = make_invoice(parcels=[orphan])
    push(api, doc)
    purge(api, doc.bindle_id)
    assert run_gc(api, CollectorSettings(grace=3600.0)).parcels_removed == 0
    assert run_gc(api).parcels_removed == 1


def test_retention_purges_beyond_keep_last_and_frees_their_parcels(app_factory: App) -> None:
    api = app_factory()
    for version in ("1.0.0", "1.1.0", "2.0.0", "2.1.0-rc.1"):
        push(api, make_invoice("ci.example.com/app", version, parcels=[parcel(version)]))
    push(api, make_invoice("other.example.com/app", "0.1.0", parcels=[parcel("other")]))
    policy = RetentionPolicy.from_document(
        {"rule": [{"prefix": "ci.example.com/", "keep_last": 2}]}
    )
    report = run_gc(api, CollectorSettings(grace=0.0, retention=policy))
    assert [item["bindle"] for item in report.purged] == ["ci.example.com/app/1.0.0"]
    assert report.parcels_removed == 1
    listed = tomli.loads(api.get("/_q", params={"l": "50"}).text)["invoices"]
    assert sorted(i["bindle"]["version"] for i in listed) == [
        "0.1.0",
        "1.1.0",
        "2.0.0",
        "2.1.0-rc.1",
    ]
    refused = api.post(
        "/_i", content=make_invoice("ci.example.com/app", "1.0.0").toml(), headers=TOML
    )
    assert refused.status_code == 409


def test_gc_expires_untouched_pending_invoices_and_collects_their_parcels(
    app_factory: App,
) -> None:
    api = app_factory(atomic_push=True)
    stored, absent = parcel("stored"), parcel("never sent")
    doc = make_invoice(parcels=[stored, absent])
    api.post("/_i", content=doc.toml(), headers=TOML)
    api.post(f"/_i/{doc.bindle_id}@{stored.sha256}", content=stored.data)
    assert run_gc(api, CollectorSettings(grace=0.0, pending_ttl=3600.0)).expired == []
    report = run_gc(api, CollectorSettings(grace=0.0, pending_ttl=0.0))
    assert report.expired == [doc.bindle_id]
    assert report.parcels_removed == 1
    assert api.get(f"/_r/missing/{doc.bindle_id}").status_code == 404


def test_gc_command_reports_as_json_and_dry_run_changes_nothing(
    live_data: Path, tmp_path: Path
) -> None:
    purged = run_command("purge", "example.com/hello/1.0.0", "-d", str(live_data))
    assert purged.returncode == 0, purged.stderr
    dry = run_command(
        "gc", "--dry-run", "--format", "json", "--gc-grace", "1h", "-d", str(live_data)
    )
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["parcels_removed"] == 0  # stored under an hour ago
    before = sorted(p.name for p in (live_data / "parcels").iterdir())
    assert before, "the parcel should still be stored"
    time.sleep(1.1)
    dry = run_command(
        "gc", "--dry-run", "--format", "json", "--gc-grace", "1s", "-d", str(live_data)
    )
    report = json.loads(dry.stdout)
    assert (report["parcels_removed"], report["dry_run"]) == (1, True)
    assert sorted(p.name for p in (live_data / "parcels").iterdir()) == before

    done = run_command("gc", "--gc-grace", "1s", "-d", str(live_data))
    assert done.returncode == 0, done.stderr
    assert "1 parcel(s) removed" in done.stdout
    assert list((live_data / "parcels").iterdir()) == []


def test_gc_command_refuses_a_broken_retention_policy_in_one_line(
    live_data: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "retention.toml"
    policy.write_text(tomli_w.dumps({"rule": [{"prefix": "x/", "keep_last": -1}]}))
    refused = run_command("gc", "--retention", str(policy), "-d", str(live_data))
    assert refused.returncode == 2
    assert "rule 1: keep_last must be a whole number >= 0" in refused.stderr


def test_parcels_a_pending_invoice_lists_are_kept_when_their_other_bindle_is_purged(
    app_factory: App,
) -> None:
    api = app_factory(atomic_push=True)
    shared, absent = parcel("listed by both"), parcel("not uploaded yet")
    committed = make_invoice("committed", parcels=[shared])
    push(api, committed)
    pending = make_invoice("pending", parcels=[shared, absent])
    assert api.post("/_i", content=pending.toml(), headers=TOML).status_code == 202
    purge(api, committed.bindle_id)
    assert run_gc(api).parcels_removed == 0
    assert (
        api.post(f"/_i/{pending.bindle_id}@{absent.sha256}", content=absent.data).status_code == 200
    )
    assert api.get(f"/_i/{pending.bindle_id}@{shared.sha256}").content == shared.data


def test_a_serving_node_collects_garbage_every_gc_interval(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(None, "--gc-interval", "1s", "--gc-grace", "1s")
    doc = make_invoice(parcels=[parcel("collected while serving")])
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/_i", content=doc.toml(), headers=TOML).status_code == 202
        item = doc.parcels[0]
        assert (
            client.post(f"/_i/{doc.bindle_id}@{item.sha256}", content=item.data).status_code == 200
        )
    purged = run_command("purge", doc.bindle_id, "-d", str(server.data_dir))
    assert purged.returncode == 0, purged.stderr
    deadline = time.monotonic() + 30
    # The parcel goes first; the collection's summary line follows once its round ends.
    while any((server.data_dir / "parcels").iterdir()) or "1 parcel(s) removed" not in server.log():
        assert time.monotonic() < deadline, server.log()[-2000:]
        time.sleep(0.2)
