"""Per-bindle authorization from a policy file, in-process: verbs, prefixes, filtering."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli
from fastapi.testclient import TestClient

from tests.auth.conftest import basic, bearer, write_policy
from tests.factories import make_invoice, parcel

ALICE = basic("alice", "alice-secret")  # team: read, create, yank; everything: read
BOB = basic("bob", "bob-secret")  # team: read only
CAROL = basic("carol", "carol-secret")  # no rule

TEAM = "example.com/team/"
POLICY = [
    {"subjects": ["user:alice", "token:ci"], "prefixes": [TEAM], "verbs": ["read", "create"]},
    {"subjects": ["user:alice"], "prefixes": [TEAM], "verbs": ["yank"]},
    {"subjects": ["user:alice"], "prefixes": ["*"], "verbs": ["read"]},
    {"subjects": ["user:bob"], "prefixes": [TEAM, "public/"], "verbs": ["read"]},
    {"subjects": ["anonymous"], "prefixes": ["public/"], "verbs": ["read"]},
]
BINDLES = [
    f"{TEAM}app",
    f"{TEAM}lib",
    "example.com/other/app",
    "public/readme",
    "public/tools",
]


@pytest.fixture
def api(
    app_factory: Callable[..., TestClient],
    htpasswd_file: Path,
    make_token: Callable[..., str],
    tmp_path: Path,
) -> TestClient:
    make_token("ci")
    policy = write_policy(tmp_path / "policy.toml", *POLICY)
    client = app_factory(htpasswd_file=htpasswd_file, auth_policy=policy)
    # Set up through an unrestricted app on the same data directory.
    return client


@pytest.fixture
def catalogue(
    app_factory: Callable[..., TestClient], htpasswd_file: Path, api: TestClient
) -> TestClient:
    seeder = app_factory(htpasswd_file=htpasswd_file)  # no policy: alice may do anything
    for name in BINDLES:
        for version in ("1.0.0", "2.0.0"):
            created = seeder.post("/_i", content=make_invoice(name, version).toml(), headers=ALICE)
            assert created.status_code == 201
    return api


def _query(api: TestClient, headers: dict[str, str], **params: str) -> dict[str, Any]:
    response = api.get("/_q", params=params, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = tomli.loads(response.text)
    return result


def _names(result: dict[str, Any]) -> list[str]:
    return [f"{i['bindle']['name']}/{i['bindle']['version']}" for i in result["invoices"]]


def test_create_is_allowed_under_granted_prefixes_only(api: TestClient) -> None:
    allowed = api.post("/_i", content=make_invoice(f"{TEAM}new").toml(), headers=ALICE)
    assert allowed.status_code == 201
    denied = api.post("/_i", content=make_invoice("example.com/elsewhere").toml(), headers=ALICE)
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/toml"
    assert tomli.loads(denied.text) == {
        "error": "access denied: user:alice may not create example.com/elsewhere"
    }
    assert "www-authenticate" not in denied.headers
    # bob may only read: refused before his body is read, without a name
    refused = api.post("/_i", content=make_invoice(f"{TEAM}x").toml(), headers=BOB)
    assert refused.status_code == 403
    assert tomli.loads(refused.text) == {"error": "access denied: user:bob may not create"}


def test_parcel_upload_needs_create_on_the_invoice_name(
    app_factory: Callable[..., TestClient], htpasswd_file: Path, api: TestClient
) -> None:
    data = parcel("bytes of a parcel")
    invoice = make_invoice(f"{TEAM}app", "3.0.0", [data])
    assert api.post("/_i", content=invoice.toml(), headers=ALICE).status_code == 202
    path = f"/_i/{invoice.bindle_id}@{data.sha256}"
    assert api.post(path, content=data.data, headers=BOB).status_code == 403
    assert api.post(path, content=data.data).status_code == 401
    assert api.post(path, content=data.data, headers=ALICE).status_code == 200
    # Parcels are read through their invoice: its name decides.
    assert api.get(path, headers=BOB).content == data.data
    assert api.get(path, headers=CAROL).status_code == 403
    assert api.head(path, headers=CAROL).status_code == 403


def test_parcel_upload_with_a_ci_token(
    app_factory: Callable[..., TestClient],
    make_token: Callable[..., str],
    htpasswd_file: Path,
    tmp_path: Path,
) -> None:
    token = make_token("deploy")
    policy = write_policy(
        tmp_path / "ci.toml",
        {"subjects": ["token:deploy"], "prefixes": [TEAM], "verbs": ["read", "create"]},
    )
    api = app_factory(htpasswd_file=htpasswd_file, auth_policy=policy)
    data = parcel("ci output")
    invoice = make_invoice(f"{TEAM}build", "1.0.0", [data])
    assert api.post("/_i", content=invoice.toml(), headers=bearer(token)).status_code == 202
    path = f"/_i/{invoice.bindle_id}@{data.sha256}"
    assert api.post(path, content=data.data, headers=bearer(token)).status_code == 200
    other = make_invoice("elsewhere/build").toml()
    assert api.post("/_i", content=other, headers=bearer(token)).status_code == 403
    assert api.delete(f"/_i/{invoice.bindle_id}", headers=bearer(token)).status_code == 403


def test_yank_is_allowed_under_granted_prefixes_only(catalogue: TestClient) -> None:
    api = catalogue
    assert api.delete(f"/_i/{TEAM}app/1.0.0", headers=BOB).status_code == 403
    assert api.delete("/_i/public/readme/1.0.0", headers=ALICE).status_code == 403
    assert api.delete("/_i/public/readme/1.0.0").status_code == 401
    assert api.delete(f"/_i/{TEAM}app/1.0.0", headers=ALICE).status_code == 200


def test_read_is_allowed_under_granted_prefixes_only(catalogue: TestClient) -> None:
    api = catalogue
    assert api.get(f"/_i/{TEAM}app/1.0.0", headers=BOB).status_code == 200
    assert api.get("/_i/example.com/other/app/1.0.0", headers=BOB).status_code == 403
    assert api.get("/_i/example.com/other/app/1.0.0", headers=ALICE).status_code == 200
    assert api.get(f"/_i/{TEAM}app/1.0.0", headers=CAROL).status_code == 403
    # An `anonymous` rule grants reads to everyone, with credentials or without.
    assert api.get("/_i/public/readme/1.0.0", headers=CAROL).status_code == 200
    assert api.get("/_i/public/readme/1.0.0").status_code == 200
    assert api.get(f"/_i/{TEAM}app/1.0.0").status_code == 401
    # Denied whether or not the bindle exists: a 403 tells nothing about what is stored.
    assert api.get("/_i/example.com/other/nothing/1.0.0", headers=BOB).status_code == 403


def test_missing_needs_read_on_the_invoice(catalogue: TestClient) -> None:
    api = catalogue
    assert api.get(f"/_r/missing/{TEAM}app/1.0.0", headers=BOB).status_code == 200
    assert api.get("/_r/missing/example.com/other/app/1.0.0", headers=BOB).status_code == 403
    assert api.head("/_r/missing/example.com/other/app/1.0.0", headers=BOB).status_code == 403
    assert api.get(f"/_r/missing/{TEAM}app/1.0.0").status_code == 401


def test_query_lists_and_counts_only_what_the_caller_may_read(catalogue: TestClient) -> None:
    api = catalogue
    everything = _query(api, ALICE)
    assert everything["total"] == 10
    bobs = _query(api, BOB, l="3")
    assert bobs["total"] == 8
    assert bobs["more"] is True
    assert _names(bobs) == [f"{TEAM}app/1.0.0", f"{TEAM}app/2.0.0", f"{TEAM}lib/1.0.0"]
    last = _query(api, BOB, o="6", l="3")
    assert _names(last) == ["public/tools/1.0.0", "public/tools/2.0.0"]
    assert last["more"] is False
    filtered = _query(api, BOB, q="app", v="^2")
    assert (filtered["total"], _names(filtered)) == (1, [f"{TEAM}app/2.0.0"])
    # carol has no rule of her own, but the anonymous rule lets her read public/
    carols = _query(api, CAROL)
    assert carols["total"] == 4
    assert all(name.startswith("public/") for name in _names(carols))
    anonymous = _query(api, {})
    assert anonymous["total"] == 4


def test_query_without_any_read_grant_gets_an_empty_page_or_401(
    app_factory: Callable[..., TestClient], htpasswd_file: Path, tmp_path: Path
) -> None:
    policy = write_policy(
        tmp_path / "p.toml", {"subjects": ["user:alice"], "prefixes": ["*"], "verbs": ["read"]}
    )
    api = app_factory(htpasswd_file=htpasswd_file, auth_policy=policy)
    assert api.post("/_i", content=make_invoice().toml(), headers=ALICE).status_code == 403
    result = _query(api, BOB)
    assert (result["total"], result["invoices"], result["more"]) == (0, [], False)
    assert api.get("/_q").status_code == 401


def test_without_a_policy_authenticated_callers_may_do_everything(
    app_factory: Callable[..., TestClient], htpasswd_file: Path
) -> None:
    api = app_factory(htpasswd_file=htpasswd_file)
    assert (
        api.post("/_i", content=make_invoice("any/name").toml(), headers=CAROL).status_code == 201
    )
    assert api.get("/_i/any/name/1.0.0", headers=BOB).status_code == 200
    assert api.delete("/_i/any/name/1.0.0", headers=BOB).status_code == 200


def test_anonymous_read_is_off_by_default_with_authentication(
    app_factory: Callable[..., TestClient], htpasswd_file: Path
) -> None:
    api = app_factory(htpasswd_file=htpasswd_file)
    assert api.post("/_i", content=make_invoice().toml(), headers=ALICE).status_code == 201
    assert api.get("/_i/example.com/hello/1.0.0").status_code == 401
    assert api.get("/_q").status_code == 401
    assert api.get("/_r/missing/example.com/hello/1.0.0").status_code == 401


def test_anonymous_read_can_be_turned_on_with_authentication(
    app_factory: Callable[..., TestClient], htpasswd_file: Path, tmp_path: Path
) -> None:
    policy = write_policy(
        tmp_path / "p.toml", {"subjects": ["user:alice"], "prefixes": [TEAM], "verbs": ["create"]}
    )
    api = app_factory(htpasswd_file=htpasswd_file, auth_policy=policy, anonymous_read=True)
    name = f"{TEAM}app"
    assert api.post("/_i", content=make_invoice(name).toml(), headers=ALICE).status_code == 201
    assert api.get(f"/_i/{name}/1.0.0").status_code == 200
    assert api.head(f"/_i/{name}/1.0.0").status_code == 200
    assert _query(api, {})["total"] == 1
    # reading is open, writing still is not
    assert api.post("/_i", content=make_invoice(f"{TEAM}b").toml()).status_code == 401
    assert api.delete(f"/_i/{name}/1.0.0").status_code == 401
