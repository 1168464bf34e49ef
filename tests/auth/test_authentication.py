"""HTTP Basic from htpasswd and bearer tokens, in-process: accepted, refused, and how."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bcrypt
import pytest
import tomli
from fastapi.testclient import TestClient

from bindle_server.auth import tokens as tokens_module
from bindle_server.auth.reloading import ReloadingFile
from tests.auth.conftest import basic, bcrypt_entry, bearer
from tests.factories import make_invoice

BASIC_CHALLENGE = 'Basic realm="bindle", charset="UTF-8"'
BEARER_CHALLENGE = 'Bearer realm="bindle"'


@pytest.fixture
def api(app_factory: Callable[..., TestClient], htpasswd_file: Path) -> TestClient:
    return app_factory(htpasswd_file=htpasswd_file)


def _create(client: TestClient, name: str = "example.com/hello", **headers: str) -> int:
    response = client.post("/_i", content=make_invoice(name).toml(), headers=headers)
    status: int = response.status_code
    return status


def test_basic_with_the_right_password_may_create(api: TestClient) -> None:
    assert _create(api, **basic("alice", "alice-secret")) == 201


@pytest.mark.parametrize(
    "headers",
    [
        basic("alice", "wrong"),
        basic("mallory", "alice-secret"),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic"},
        {"Authorization": "Digest username=alice"},
        {"Authorization": "Bearer not-a-token"},
    ],
    ids=["bad-password", "unknown-user", "malformed", "empty", "digest-scheme", "bearer"],
)
def test_bad_credentials_get_401_with_challenges_and_a_toml_body(
    api: TestClient, headers: dict[str, str]
) -> None:
    for method, path in [("POST", "/_i"), ("GET", "/_q"), ("HEAD", "/_q"), ("GET", "/bindle-keys")]:
        response = api.request(method, path, headers=headers, content=b"")
        assert response.status_code == 401, (method, path)
        assert response.headers.get_list("www-authenticate") == [BASIC_CHALLENGE]
        assert response.headers["content-type"] == "application/toml"
        if method != "HEAD":
            assert tomli.loads(response.text) == {"error": "unauthorized: invalid credentials"}


def test_unknown_user_and_bad_password_get_the_same_answer(api: TestClient) -> None:
    unknown = api.get("/_q", headers=basic("mallory", "x"))
    bad = api.get("/_q", headers=basic("alice", "x"))
    assert (unknown.status_code, unknown.headers.get_list("www-authenticate"), unknown.content) == (
        bad.status_code,
        bad.headers.get_list("www-authenticate"),
        bad.content,
    )


def test_unknown_user_is_checked_against_a_dummy_hash(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    assert api.get("/_q", headers=basic("mallory", "x")).status_code == 401
    assert len(calls) == 1


def test_anonymous_write_gets_401_with_challenges(api: TestClient) -> None:
    response = api.post("/_i", content=make_invoice().toml())
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate") == [BASIC_CHALLENGE]
    assert "needs credentials" in tomli.loads(response.text)["error"]


def test_successful_basic_verification_is_cached(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        nonlocal calls
        calls += 1
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    for _ in range(5):
        assert api.get("/_q", headers=basic("bob", "bob-secret")).status_code == 200
    assert calls == 1
    for _ in range(2):  # failures are never cached
        assert api.get("/_q", headers=basic("bob", "wrong")).status_code == 401
    assert calls == 3


def test_with_no_authentication_configured_any_authorization_header_is_ignored(
    app_factory: Callable[..., TestClient],
) -> None:
    api = app_factory()
    assert _create(api, **basic("nobody", "whatever")) == 201
    assert api.get("/_q", headers={"Authorization": "Bearer junk"}).status_code == 200
    assert api.get("/_q", headers={"Authorization": "Negotiate x"}).status_code == 200


def test_bearer_token_is_accepted_and_a_wrong_one_refused(
    app_factory: Callable[..., TestClient], make_token: Callable[..., str]
) -> None:
    token = make_token("ci")
    api = app_factory()
    assert _create(api, **bearer(token)) == 201
    refused = api.post("/_i", content=make_invoice("x/y").toml(), headers=bearer(token + "x"))
    assert refused.status_code == 401
    assert refused.headers.get_list("www-authenticate") == [BEARER_CHALLENGE]
    # A token sent as a Basic password is not a token.
    assert api.get("/_q", headers=basic("ci", token)).status_code == 401


def test_with_htpasswd_and_tokens_both_challenges_are_sent(
    app_factory: Callable[..., TestClient], make_token: Callable[..., str], htpasswd_file: Path
) -> None:
    make_token("ci")
    api = app_factory(htpasswd_file=htpasswd_file)
    response = api.post("/_i", content=make_invoice().toml())
    assert response.headers.get_list("www-authenticate") == [BASIC_CHALLENGE, BEARER_CHALLENGE]


def test_expired_token_is_refused(
    app_factory: Callable[..., TestClient], make_token: Callable[..., str]
) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=2)
    expired = make_token("old", timedelta(days=1), long_ago)
    live = make_token("new", timedelta(days=1))
    api = app_factory()
    assert api.get("/_q", headers=bearer(expired)).status_code == 401
    assert api.get("/_q", headers=bearer(live)).status_code == 200


def test_revoked_token_is_refused_by_the_running_server(
    app_factory: Callable[..., TestClient],
    make_token: Callable[..., str],
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ReloadingFile, "INTERVAL", 0.0)
    token = make_token("ci")
    api = app_factory()
    assert api.get("/_q", headers=bearer(token)).status_code == 200
    path = data_dir / "tokens.toml"
    tokens = tokens_module.TokenFile.load(path)
    assert tokens.revoke("ci")
    tokens.save(path)
    deadline = time.monotonic() + 5
    while api.get("/_q", headers=bearer(token)).status_code == 200:
        assert time.monotonic() < deadline, "the revoked token is still accepted"
        time.sleep(0.05)
    assert api.get("/_q", headers=bearer(token)).status_code == 401


def test_htpasswd_changes_reach_the_running_server(
    app_factory: Callable[..., TestClient],
    htpasswd_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ReloadingFile, "INTERVAL", 0.0)
    api = app_factory(htpasswd_file=htpasswd_file)
    assert api.get("/_q", headers=basic("alice", "alice-secret")).status_code == 200
    assert api.get("/_q", headers=basic("dave", "dave-secret")).status_code == 401

    # What `htpasswd -D alice` then `htpasswd -B FILE dave` leave: alice is gone (her
    # cached success must not outlive her), dave is in, bob is untouched.
    kept = [line for line in htpasswd_file.read_text().splitlines() if line.startswith("bob:")]
    htpasswd_file.write_text("\n".join([*kept, bcrypt_entry("dave", "dave-secret")]) + "\n")
    deadline = time.monotonic() + 5
    while api.get("/_q", headers=basic("dave", "dave-secret")).status_code != 200:
        assert time.monotonic() < deadline, "the new user is still refused"
        time.sleep(0.05)
    assert api.get("/_q", headers=basic("alice", "alice-secret")).status_code == 401
    assert api.get("/_q", headers=basic("bob", "bob-secret")).status_code == 200

    htpasswd_file.write_text("dave:{SHA}not-bcrypt\n")  # a broken edit grants nothing
    deadline = time.monotonic() + 5
    while api.get("/_q", headers=basic("dave", "dave-secret")).status_code != 401:
        assert time.monotonic() < deadline, "a broken htpasswd file still grants access"
        time.sleep(0.05)
    assert api.get("/_q", headers=basic("bob", "bob-secret")).status_code == 401


def test_head_is_a_read_like_get(
    app_factory: Callable[..., TestClient], htpasswd_file: Path
) -> None:
    private = app_factory(htpasswd_file=htpasswd_file)
    assert _create(private, **basic("alice", "alice-secret")) == 201
    path = "/_i/example.com/hello/1.0.0"
    # anonymous read is off once authentication is on: HEAD and GET alike need credentials
    assert private.head(path).status_code == 401
    assert private.get(path).status_code == 401
    assert private.head(path, headers=basic("bob", "bob-secret")).status_code == 200
    assert private.head("/_q", headers=basic("bob", "bob-secret")).status_code == 200


def test_health_and_keys_stay_readable_anonymously(api: TestClient) -> None:
    assert api.get("/bindle-keys").status_code == 200
    assert api.head("/bindle-keys").status_code == 200
    assert api.get("http://testserver/healthz").status_code == 200
