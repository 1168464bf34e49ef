"""OIDC bearer JWTs and `/v1/login`, against a provider the test serves on loopback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import tomli
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from bindle_server.auth.oidc import DEVICE_SCOPES, OidcConfig, OidcVerifier
from tests.auth.conftest import bearer, write_policy
from tests.auth.oidc_issuer import CLIENT_ID, DEVICE_ANSWER, FakeIssuer
from tests.factories import make_invoice
from tests.servers import ServerProcess, run_command

TEAM = "example.com/team"


@pytest.fixture
def issuer() -> Iterator[FakeIssuer]:
    fake = FakeIssuer().start()
    yield fake
    fake.stop()


def oidc_settings(issuer: FakeIssuer) -> dict[str, str]:
    return {
        "oidc_issuer_url": issuer.url,
        "oidc_client_id": CLIENT_ID,
        "oidc_device_url": f"{issuer.url}/device",
    }


@pytest.fixture
def oidc_api(
    app_factory: Callable[..., TestClient], issuer: FakeIssuer, tmp_path: Path
) -> TestClient:
    policy = write_policy(
        tmp_path / "policy.toml",
        {"subjects": ["group:release"], "prefixes": [TEAM], "verbs": ["read", "create"]},
        {"subjects": ["user:erin"], "prefixes": [TEAM], "verbs": ["read"]},
    )
    return app_factory(auth_policy=policy, **oidc_settings(issuer))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    """HS256 by hand: PyJWT itself refuses to use a PEM public key as an HMAC secret."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def test_group_and_user_identities_from_valid_tokens_meet_the_policy(
    oidc_api: TestClient, issuer: FakeIssuer
) -> None:
    invoice = make_invoice(f"{TEAM}/app").toml()
    dana = bearer(issuer.token())  # group:release may create
    assert oidc_api.post("/_i", content=invoice, headers=dana).status_code == 201
    erin = bearer(issuer.token(preferred_username="erin", groups=None))
    assert oidc_api.get(f"/_i/{TEAM}/app/1.0.0", headers=erin).status_code == 200
    denied = oidc_api.post("/_i", content=make_invoice(f"{TEAM}/x").toml(), headers=erin)
    assert denied.status_code == 403
    assert "user:erin" in tomli.loads(denied.text)["error"]
    # ES256 (P-256) keys work as well as RSA ones.
    ec = bearer(issuer.token(kid="ec-1", alg="ES256"))
    assert oidc_api.get(f"/_i/{TEAM}/app/1.0.0", headers=ec).status_code == 200
    # Anonymous read is off by default once OIDC is configured.
    assert oidc_api.get(f"/_i/{TEAM}/app/1.0.0").status_code == 401
    assert issuer.hits["/.well-known/openid-configuration"] == 1
    assert issuer.hits["/jwks"] == 1  # keys are cached


def test_email_counts_only_when_verified(oidc_api: TestClient, issuer: FakeIssuer) -> None:
    invoice = make_invoice(f"{TEAM}/app").toml()
    oidc_api.post("/_i", content=invoice, headers=bearer(issuer.token()))
    verified = issuer.token(preferred_username=None, groups=None, email="erin", email_verified=True)
    assert oidc_api.get(f"/_i/{TEAM}/app/1.0.0", headers=bearer(verified)).status_code == 200
    unverified = issuer.token(preferred_username=None, groups=None, email="erin")
    # Falls back to sub, which the policy does not name.
    assert oidc_api.get(f"/_i/{TEAM}/app/1.0.0", headers=bearer(unverified)).status_code == 403


def _bad_tokens(issuer: FakeIssuer) -> dict[str, str]:
    now = int(time.time())
    public_pem = issuer.rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "wrong issuer": issuer.token(iss="http://127.0.0.1:1/other"),
        "wrong audience": issuer.token(aud="someone-else"),
        "no audience": issuer.token(aud=None),
        "expired": issuer.token(exp=now - 600, iat=now - 1200),
        "no exp": issuer.token(exp=None),
        "not yet valid": issuer.token(nbf=now + 600),
        "bad signature": issuer.token(kid="rsa-1", key=issuer.other_key),
        "alg none": jwt.encode(issuer.claims(), "", algorithm="none", headers={"kid": "rsa-1"}),
        "HS256 with the public key": _hs256(issuer.claims(), public_pem),
        "RS384": issuer.token(alg="RS384"),
        "EC key named by an RS256 token": issuer.token(kid="ec-1", key=issuer.rsa_key),
        "unknown kid": issuer.token(kid="rsa-2"),
        "not a JWT": "not.a.jwt",
        "unknown bindle token": "bindle_" + "x" * 43,
    }


def test_bad_tokens_get_401_with_a_bearer_challenge(
    oidc_api: TestClient, issuer: FakeIssuer
) -> None:
    invoice = make_invoice(f"{TEAM}/app").toml()
    for reason, token in _bad_tokens(issuer).items():
        response = oidc_api.post("/_i", content=invoice, headers=bearer(token))
        assert response.status_code == 401, reason
        assert response.headers["www-authenticate"] == 'Bearer realm="bindle"', reason
        assert tomli.loads(response.text)["error"].startswith("unauthorized"), reason
    # One fetch of the keys: the unknown kid came too soon after it for another.
    assert issuer.hits["/jwks"] == 1


def test_unknown_kid_refetches_at_most_once_per_interval(issuer: FakeIssuer) -> None:
    now = [1000.0]
    config = OidcConfig(issuer.url, CLIENT_ID, f"{issuer.url}/device")
    verifier = OidcVerifier(config, clock=lambda: now[0])

    async def scenario() -> None:
        assert await verifier.verify(issuer.token()) is not None
        assert issuer.hits["/jwks"] == 1
        rotated = issuer.token(kid="rsa-2")
        now[0] += 61
        assert await verifier.verify(rotated) is None  # one refetch, still unknown
        assert issuer.hits["/jwks"] == 2
        assert await verifier.verify(rotated) is None  # no second refetch this minute
        assert issuer.hits["/jwks"] == 2
        issuer.published.add("rsa-2")  # the issuer rotates its keys
        now[0] += 30
        assert await verifier.verify(rotated) is None
        assert issuer.hits["/jwks"] == 2
        now[0] += 31
        identity = await verifier.verify(rotated)
        assert identity is not None and identity.subject == "user:dana"
        assert identity.groups == frozenset({"release"})
        assert issuer.hits["/jwks"] == 3

    asyncio.run(scenario())


def test_unreachable_issuer_refuses_tokens(issuer: FakeIssuer) -> None:
    config = OidcConfig("http://127.0.0.1:9", CLIENT_ID, "http://127.0.0.1:9/device")
    verifier = OidcVerifier(config, timeout=2.0)
    token = issuer.token(iss="http://127.0.0.1:9")
    assert asyncio.run(verifier.verify(token)) is None
    assert issuer.hits["/jwks"] == 0


def test_bindle_tokens_work_beside_oidc(
    app_factory: Callable[..., TestClient],
    issuer: FakeIssuer,
    make_token: Callable[..., str],
) -> None:
    value = make_token("ci")
    api = app_factory(**oidc_settings(issuer))
    invoice = make_invoice(f"{TEAM}/ci").toml()
    assert api.post("/_i", content=invoice, headers=bearer(value)).status_code == 201
    assert issuer.hits["/jwks"] == 0  # `bindle_` tokens never reach the JWT verifier
    jwt_token = issuer.token()
    assert api.get(f"/_i/{TEAM}/ci/1.0.0", headers=bearer(jwt_token)).status_code == 200


def test_login_starts_the_device_flow(oidc_api: TestClient, issuer: FakeIssuer) -> None:
    response = oidc_api.get("/login", params={"provider": "oidc"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/toml")
    body = tomli.loads(response.text)
    assert body == {**DEVICE_ANSWER, "client_id": CLIENT_ID, "token_url": f"{issuer.url}/token"}
    assert issuer.device_requests == [{"client_id": [CLIENT_ID], "scope": [DEVICE_SCOPES]}]
    # The reference `bindle login` sends provider=nothing; JSON when asked for.
    as_json = oidc_api.get(
        "/login", params={"provider": "nothing"}, headers={"Accept": "application/json"}
    )
    assert as_json.status_code == 200
    assert as_json.json()["device_code"] == DEVICE_ANSWER["device_code"]
    # A stale token does not stand in the way of logging in again.
    stale = bearer(issuer.token(exp=int(time.time()) - 600))
    assert oidc_api.get("/login?provider=oidc", headers=stale).status_code == 200


@pytest.mark.parametrize("query", ["", "?provider=github", "?provider=oidc&x=1"])
def test_login_with_a_bad_provider_is_a_400(oidc_api: TestClient, query: str) -> None:
    response = oidc_api.get(f"/login{query}")
    assert response.status_code == 400
    assert "error" in tomli.loads(response.text)


def test_login_without_oidc_is_a_400(app_factory: Callable[..., TestClient]) -> None:
    response = app_factory().get("/login?provider=oidc")
    assert response.status_code == 400
    assert "no OIDC provider" in tomli.loads(response.text)["error"]


def test_login_with_the_device_endpoint_down_is_a_502(
    app_factory: Callable[..., TestClient], issuer: FakeIssuer
) -> None:
    settings = oidc_settings(issuer) | {"oidc_device_url": f"{issuer.url}/missing"}
    response = app_factory(**settings).get("/login?provider=oidc")
    assert response.status_code == 502
    assert "error" in tomli.loads(response.text)


def test_start_up_refuses_some_but_not_all_oidc_settings(tmp_path: Path) -> None:
    directory = ["--directory", str(tmp_path / "data")]
    result = run_command(*directory, "--oidc-issuer-url", "http://127.0.0.1:1")
    assert result.returncode != 0
    assert "--oidc-client-id, --oidc-device-url missing" in result.stderr
    result = run_command(*directory, env={"BINDLE_OIDC_CLIENT_ID": CLIENT_ID})
    assert result.returncode != 0
    assert "--oidc-issuer-url, --oidc-device-url missing" in result.stderr
    result = run_command(
        *directory,
        "--oidc-issuer-url",
        "ftp://idp",
        "--oidc-client-id",
        "c",
        "--oidc-device-url",
        "http://127.0.0.1:1/device",
    )
    assert result.returncode != 0
    assert "must be an http(s) URL" in result.stderr


def test_live_server_accepts_oidc_tokens_and_starts_logins(
    server_factory: Callable[..., ServerProcess], issuer: FakeIssuer
) -> None:
    env = {
        "BINDLE_OIDC_ISSUER_URL": issuer.url,
        "BINDLE_OIDC_CLIENT_ID": CLIENT_ID,
        "BINDLE_OIDC_DEVICE_URL": f"{issuer.url}/device",
    }
    server = server_factory(None, env=env)
    log = server.log()
    assert f"authentication: OIDC (issuer {issuer.url}, client id {CLIENT_ID})" in log
    assert "anonymous read: off" in log
    invoice = make_invoice(f"{TEAM}/live").toml()
    refused = httpx.post(f"{server.url}/_i", content=invoice, timeout=10)
    assert refused.status_code == 401
    assert 'Bearer realm="bindle"' in refused.headers["www-authenticate"]
    forged = bearer(issuer.token(key=issuer.other_key))
    assert httpx.post(f"{server.url}/_i", content=invoice, headers=forged).status_code == 401
    good = bearer(issuer.token())
    assert httpx.post(f"{server.url}/_i", content=invoice, headers=good).status_code == 201
    fetched = httpx.get(f"{server.url}/_i/{TEAM}/live/1.0.0", headers=good, timeout=10)
    assert fetched.status_code == 200
    login = httpx.get(f"{server.url}/login", params={"provider": "oidc"}, timeout=10)
    assert login.status_code == 200
    assert tomli.loads(login.text)["user_code"] == DEVICE_ANSWER["user_code"]
