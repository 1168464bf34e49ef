"""Credentials for the server: bearer tokens, and the token file of the reference client."""

from __future__ import annotations

import tomllib
from collections.abc import Generator
from pathlib import Path

import httpx

from bindle_server.errors import InvalidInput


class BearerToken(httpx.Auth):
    """`Authorization: Bearer TOKEN` on every request."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


def token_from_file(path: Path) -> str:
    """The bearer token in a token file.

    Either the reference client's `bindle login` file (the OIDC token response as TOML;
    its `id_token` is what it sends) or a file holding just the token, as a CI system
    provides it. Refreshing an expired OIDC token is not supported.
    """
    text = path.read_text(encoding="utf-8")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        document = {}
    for key in ("id_token", "token", "access_token"):
        value = document.get(key)
        if isinstance(value, str) and value:
            return value
    token = text.strip()
    if not token or any(char.isspace() for char in token):
        raise InvalidInput(f"{path}: no token found (expected the token alone, or `id_token`)")
    return token
