"""`Cache-Control` on invoices and parcels: what may be kept, by whom, and for how long."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bindle_server.api.caching import IMMUTABLE_SECONDS
from tests.auth.conftest import basic
from tests.factories import ParcelData, make_invoice, parcel

ID = "example.com/hello/1.0.0"
INVOICE = f"/_i/{ID}"
ALICE = basic("alice", "alice-secret")
FOREVER = f"max-age={IMMUTABLE_SECONDS}, immutable"


def _push(api: TestClient, headers: dict[str, str] | None = None) -> ParcelData:
    data = parcel(b"cacheable\n" * 50, media_type="text/plain", name="notes.txt")
    response = api.post("/_i", content=make_invoice(parcels=[data]).toml(), headers=headers)
    assert response.status_code in (201, 202)
    upload = api.post(f"{INVOICE}@{data.sha256}", content=data.data, headers=headers)
    assert upload.status_code == 200
    return data


def test_an_open_server_lets_shared_caches_keep_parcels_forever(api: TestClient) -> None:
    data = _push(api)
    response = api.get(f"{INVOICE}@{data.sha256}")
    assert response.headers["cache-control"] == f"public, {FOREVER}"


def test_a_live_invoice_is_public_but_revalidated_because_a_yank_changes_it(
    api: TestClient,
) -> None:
    _push(api)
    live = api.get(INVOICE)
    assert live.headers["cache-control"] == "public, no-cache"
    assert "immutable" not in live.headers["cache-control"]


def test_a_yank_changes_the_invoice_etag_and_makes_the_yanked_invoice_immutable(
    api: TestClient,
) -> None:
    _push(api)
    before = api.get(INVOICE).headers["etag"]
    assert api.delete(INVOICE).status_code == 200
    yanked = api.get(INVOICE, params={"yanked": "true"})
    assert yanked.status_code == 200
    assert yanked.headers["etag"] != before
    assert yanked.headers["cache-control"] == f"public, {FOREVER}"
    # A cache revalidating the copy it kept from before the yank gets the new invoice.
    stale = api.get(INVOICE, params={"yanked": "true"}, headers={"If-None-Match": before})
    assert stale.status_code == 200
    assert "yanked = true" in stale.text


def test_a_validator_does_not_get_around_a_yank(api: TestClient) -> None:
    data = _push(api)
    invoice_tag = api.get(INVOICE).headers["etag"]
    assert api.delete(INVOICE).status_code == 200
    assert api.get(INVOICE, headers={"If-None-Match": invoice_tag}).status_code == 403
    parcel_url = f"{INVOICE}@{data.sha256}"
    assert api.get(parcel_url, headers={"If-None-Match": f'"{data.sha256}"'}).status_code == 403


@pytest.fixture
def private_api(app_factory: Callable[..., TestClient], htpasswd_file: Path) -> TestClient:
    return app_factory(htpasswd_file=htpasswd_file)


def test_without_anonymous_read_answers_are_private(private_api: TestClient) -> None:
    data = _push(private_api, ALICE)
    invoice = private_api.get(INVOICE, headers=ALICE)
    assert invoice.headers["cache-control"] == "private, no-cache"
    stored = private_api.get(f"{INVOICE}@{data.sha256}", headers=ALICE)
    assert stored.headers["cache-control"] == f"private, {FOREVER}"


def test_a_validator_does_not_get_around_authentication(private_api: TestClient) -> None:
    data = _push(private_api, ALICE)
    invoice_tag = private_api.get(INVOICE, headers=ALICE).headers["etag"]
    assert private_api.get(INVOICE, headers={"If-None-Match": invoice_tag}).status_code == 401
    revalidated = private_api.get(INVOICE, headers={**ALICE, "If-None-Match": invoice_tag})
    assert revalidated.status_code == 304
    parcel_url = f"{INVOICE}@{data.sha256}"
    unauthenticated = private_api.get(parcel_url, headers={"If-None-Match": f'"{data.sha256}"'})
    assert unauthenticated.status_code == 401


def test_anonymous_read_with_authentication_makes_answers_public(
    app_factory: Callable[..., TestClient], htpasswd_file: Path
) -> None:
    api = app_factory(htpasswd_file=htpasswd_file, anonymous_read=True)
    data = _push(api, ALICE)
    assert api.get(INVOICE).headers["cache-control"] == "public, no-cache"
    assert api.get(f"{INVOICE}@{data.sha256}").headers["cache-control"] == f"public, {FOREVER}"
