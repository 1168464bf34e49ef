"""Each verification strategy, through a live server, on the cases its definition names.

Keys: C is trusted as creator, A as approver, X as approver only, U by nobody (but its
signatures are valid). A key counts only for the roles its keyring entry lists.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import tomli

from bindle_server.model import SignatureRole
from tests.factories import make_invoice
from tests.servers import ServerProcess
from tests.signing.keys import Signer, make_key, signed_toml, write_keyring

CREATOR, APPROVER, PROXY = SignatureRole.CREATOR, SignatureRole.APPROVER, SignatureRole.PROXY
C = make_key("C <c@example.com>", CREATOR)
A = make_key("A <a@example.com>", APPROVER)
X = make_key("X <x@example.com>", APPROVER)
U = make_key("U <u@example.com>", CREATOR, PROXY)

CASES: dict[str, list[Signer]] = {
    "creator": [Signer(C, CREATOR)],
    "approver": [Signer(A, APPROVER)],
    "creator+unknown proxy": [Signer(C, CREATOR), Signer(U, PROXY)],
    "creator+approver": [Signer(C, CREATOR), Signer(A, APPROVER)],
    "unknown creator": [Signer(U, CREATOR)],
    "approver key as creator": [Signer(X, CREATOR)],
    "creator+approver+unknown proxy": [
        Signer(C, CREATOR),
        Signer(A, APPROVER),
        Signer(U, PROXY),
    ],
    "unknown creator+approver": [Signer(U, CREATOR), Signer(A, APPROVER)],
}
ORDER = list(CASES)

# Which cases each strategy accepts; every other case must be refused with 400.
ACCEPTS = {
    "GreedyVerification": {"creator", "creator+approver"},
    "CreativeIntegrity": {
        "creator",
        "creator+unknown proxy",
        "creator+approver",
        "creator+approver+unknown proxy",
    },
    "AuthoritativeIntegrity": {
        "creator",
        "approver",
        "creator+unknown proxy",
        "creator+approver",
        "creator+approver+unknown proxy",
        "unknown creator+approver",
    },
    "ExhaustiveVerification": {"creator", "approver", "creator+approver"},
    "MultipleAttestation[Creator, Approver]": {
        "creator+approver",
        "creator+approver+unknown proxy",
    },
    "MultipleAttestationGreedy[Creator,Approver]": {"creator+approver"},
}


@pytest.fixture
def keyring_file(tmp_path: Path) -> Path:
    entries = [C.key_entry(), A.key_entry(), X.key_entry()]
    return write_keyring(tmp_path / "keyring.toml", entries)


@pytest.mark.parametrize("strategy", list(ACCEPTS))
def test_strategy_accepts_and_refuses_what_its_definition_says(
    server_factory: Callable[..., ServerProcess], keyring_file: Path, strategy: str
) -> None:
    server = server_factory(None, "--keyring", str(keyring_file), "--strategy", strategy)
    outcomes = {}
    for n, (case, signers) in enumerate(CASES.items()):
        body = signed_toml(make_invoice("example.com/strategies", f"1.0.{n}"), *signers)
        response = httpx.post(f"{server.url}/_i", content=body)
        outcomes[case] = response.status_code
        if response.status_code == 400:
            assert "signature" in tomli.loads(response.text)["error"] or "role" in response.text
    expected = {case: 201 if case in ACCEPTS[strategy] else 400 for case in ORDER}
    assert outcomes == expected
