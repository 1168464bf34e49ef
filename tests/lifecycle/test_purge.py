"""Purge: hard delete over HTTP (the `purge` verb) and on the host, with tombstones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import tomli
from fastapi.testclient import TestClient

from tests.auth.conftest import basic, write_policy
from tests.factories import make_invoice, parcel
from tests.lifecycle.conftest import TOML, push
from tests.servers import run_command

App = Callable[..., TestClient]
ALICE = basic("alice", "alice-secret")
BOB = basic("bob", "bob-secret")


def _secured(app_factory: App, htpasswd_file: Path, tmp_path: Path) -> TestClient:
    policy = write_policy(
        tmp_path / "policy.toml",
        {"subjects": ["user:alice"], "prefixes": ["*"], "verbs": ["read", "create", "purge"]},
        {"subjects": ["user:bob"], "prefixes": ["*"], "verbs": ["read", "create", "yank"]},
    )
    return app_factory(htpasswd_file=htpasswd_file, auth_policy=policy)


def test_purge_over_http_is_refused_on_a_server_without_authentication(app_factory: App) -> None:
    api = app_factory()
    doc = make_invoice()
    push(api, doc)
    refused = api.delete(f"/_i/{doc.bindle_id}", params={"purge": "true"})
    assert refused.status_code == 403
    assert "bindle-server purge" in tomli.loads(refused.text)["error"]
    assert api.get(f"/_i/{doc.bindle_id}").status_code == 200


def test_purge_needs_the_purge_verb_then_the_id_answers_404_and_leaves_queries(
    app_factory: App, htpasswd_file: Path, tmp_path: Path
) -> None:
    api = _secured(app_factory, htpasswd_file, tmp_path)
    doc = make_invoice(parcels=[parcel("payload")])
    push(api, doc, headers=ALICE)
    refused = api.delete(f"/_i/{doc.bindle_id}", params={"purge": "true"}, headers=BOB)
    assert refused.status_code == 403
    assert "may not purge" in tomli.loads(refused.text)["error"]

    purged = api.delete(f"/_i/{doc.bindle_id}", params={"purge": "true"}, headers=ALICE)
    assert purged.status_code == 200
    assert tomli.loads(purged.text)["message"] == "invoice purged"
    gone = api.get(f"/_i/{doc.bindle_id}", params={"yanked": "true"}, headers=ALICE)
    assert gone.status_code == 404
    assert "purged at" in tomli.loads(gone.text)["error"]
    query = api.get("/_q", params={"yanked": "true"}, headers=ALICE)
    assert tomli.loads(query.text)["total"] == 0
    assert (
        api.delete(f"/_i/{doc.bindle_id}", params={"purge": "true"}, headers=ALICE).status_code
        == 404
    )


def test_a_purged_id_comes_back_only_with_the_same_content(
    app_factory: App, htpasswd_file: Path, tmp_path: Path
) -> None:
    api = _secured(app_factory, htpasswd_file, tmp_path)
    doc = make_invoice(parcels=[parcel("original")])
    push(api, doc, headers=ALICE)
    api.delete(f"/_i/{doc.bindle_id}", params={"purge": "true"}, headers=ALICE)

    other = make_invoice(parcels=[parcel("different bytes")])
    refused = api.post("/_i", content=other.toml(), headers={**TOML, **ALICE})
    assert refused.status_code == 409
    error = tomli.loads(refused.text)["error"]
    assert "was purged at" in error and "purge --forget" in error
    assert api.post("/_i", content=doc.toml(), headers={**TOML, **ALICE}).status_code in (201, 202)


def test_purge_on_the_host_with_dry_run_forget_and_unknown_ids(live_data: Path) -> None:
    dry = run_command("purge", "example.com/hello/1.0.0", "--dry-run", "-d", str(live_data))
    assert dry.returncode == 0, dry.stderr
    assert "would purge example.com/hello/1.0.0" in dry.stdout
    assert (live_data / "invoices").exists()

    done = run_command("purge", "example.com/hello/1.0.0", "nothing/9.9.9", "-d", str(live_data))
    assert done.returncode == 1
    assert "purged example.com/hello/1.0.0" in done.stdout
    assert "invoice nothing/9.9.9 not found" in done.stderr
    assert not any((live_data / "invoices").iterdir())

    forget = run_command("purge", "--forget", "example.com/hello/1.0.0", "-d", str(live_data))
    assert forget.returncode == 0, forget.stderr
    assert "may be pushed again" in forget.stdout
    assert not any((live_data / "tombstones").iterdir())
