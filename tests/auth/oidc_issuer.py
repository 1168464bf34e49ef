"""A stand-in OIDC provider on loopback: discovery, JWKS, device and token endpoints.

It runs in a thread (http.server), counts the requests each path gets, and mints JWTs
with RSA and EC keys generated per test, so nothing leaves the machine.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

CLIENT_ID = "bindle-test-client"
DEVICE_ANSWER = {
    "device_code": "dev-code-123",
    "user_code": "WDJB-MJHT",
    "verification_uri": "https://idp.example/device",
    "verification_uri_complete": "https://idp.example/device?user_code=WDJB-MJHT",
    "expires_in": 900,
    "interval": 5,
}


class FakeIssuer:
    def __init__(self) -> None:
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published = {"rsa-1", "ec-1"}
        self.hits: Counter[str] = Counter()
        self.device_requests: list[dict[str, list[str]]] = []
        issuer = self
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(issuer))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeIssuer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def jwks(self) -> dict[str, Any]:
        keys = []
        if "rsa-1" in self.published:
            keys.append(RSAAlgorithm.to_jwk(self.rsa_key.public_key(), as_dict=True))
            keys[-1] |= {"kid": "rsa-1", "use": "sig", "alg": "RS256"}
        if "ec-1" in self.published:
            keys.append(ECAlgorithm.to_jwk(self.ec_key.public_key(), as_dict=True))
            keys[-1] |= {"kid": "ec-1", "use": "sig", "alg": "ES256"}
        if "rsa-2" in self.published:
            keys.append(RSAAlgorithm.to_jwk(self.other_key.public_key(), as_dict=True))
            keys[-1] |= {"kid": "rsa-2", "use": "sig"}
        return {"keys": keys}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.url,
            "aud": CLIENT_ID,
            "sub": "subject-1",
            "preferred_username": "dana",
            "groups": ["release"],
            "iat": now,
            "exp": now + 300,
        }
        base.update(overrides)
        return {name: value for name, value in base.items() if value is not None}

    def token(self, kid: str = "rsa-1", alg: str = "RS256", key: Any = None, **claims: Any) -> str:
        signing_key = key
        if signing_key is None:
            signing_key = {"rsa-1": self.rsa_key, "ec-1": self.ec_key, "rsa-2": self.other_key}[kid]
        return jwt.encode(self.claims(**claims), signing_key, algorithm=alg, headers={"kid": kid})


def _handler(issuer: FakeIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, document: object, status: int = 200) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            issuer.hits[self.path] += 1
            if self.path == "/.well-known/openid-configuration":
                self._json(
                    {
                        "issuer": issuer.url,
                        "jwks_uri": f"{issuer.url}/jwks",
                        "token_endpoint": f"{issuer.url}/token",
                        "device_authorization_endpoint": f"{issuer.url}/device",
                    }
                )
            elif self.path == "/jwks":
                self._json(issuer.jwks())
            else:
                self._json({"error": "not found"}, 404)

        def do_POST(self) -> None:
            issuer.hits[self.path] += 1
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            if self.path == "/device":
                issuer.device_requests.append(form)
                self._json(DEVICE_ANSWER)
            else:
                self._json({"error": "not found"}, 404)

    return Handler
