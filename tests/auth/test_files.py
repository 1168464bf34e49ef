"""The htpasswd, token and policy files: what is accepted, and readable refusals."""

from __future__ import annotations

import stat
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bindle_server.auth import Htpasswd, Policy, TokenFile, parse_duration
from bindle_server.errors import InvalidAuthConfig
from tests.auth.conftest import bcrypt_entry


@pytest.mark.parametrize("prefix", [b"$2y$", b"$2b$", b"$2a$"])
def test_htpasswd_accepts_every_bcrypt_prefix(tmp_path: Path, prefix: bytes) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"# users\n\n{bcrypt_entry('alice', 'pw', prefix)}\n")
    users = Htpasswd.load(path)
    assert users.verify("alice", "pw")
    assert not users.verify("alice", "wrong")
    assert not users.verify("nobody", "pw")


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        ("bob:$apr1$abcdefgh$0123456789abcdefghijkl", "Apache MD5"),
        ("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
        ("bob:plaintext", "plain-text"),
        ("bob:$2y$10$tooshort", "malformed bcrypt"),
    ],
)
def test_htpasswd_refuses_other_hashes_naming_the_line(
    tmp_path: Path, entry: str, kind: str
) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"{bcrypt_entry('alice', 'pw')}\n# comment\n{entry}\n")
    with pytest.raises(InvalidAuthConfig) as caught:
        Htpasswd.load(path)
    assert f"{path}, line 3" in caught.value.message
    assert kind in caught.value.message
    assert "htpasswd -B" in caught.value.message


def test_htpasswd_uses_72_bytes_of_a_password_like_apache(tmp_path: Path) -> None:
    long = "x" * 72
    path = tmp_path / "htpasswd"
    path.write_text(bcrypt_entry("alice", long) + "\n")
    assert Htpasswd.load(path).verify("alice", long + "ignored")


def test_token_file_keeps_only_hashes_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    tokens = TokenFile()
    value = tokens.create("ci", timedelta(days=30), datetime.now(UTC))
    tokens.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert value not in path.read_text()
    loaded = TokenFile.load(path)
    assert [entry.name for entry in loaded.entries] == ["ci"]
    assert loaded.match(value, datetime.now(UTC)) is not None
    assert loaded.match(value, datetime.now(UTC) + timedelta(days=31)) is None
    assert loaded.match(value + "x", datetime.now(UTC)) is None
    assert list(tmp_path.iterdir()) == [path]  # no temp file left


def test_token_names_are_unique_and_plain() -> None:
    tokens = TokenFile()
    tokens.create("ci", None, datetime.now(UTC))
    with pytest.raises(ValueError, match="exists"):
        tokens.create("ci", None, datetime.now(UTC))
    with pytest.raises(ValueError, match="invalid token name"):
        tokens.create("has space", None, datetime.now(UTC))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("2w", timedelta(weeks=2))],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0d", "30", "d", "1y", "-1d"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def _rule(**fields: object) -> dict[str, object]:
    return {"rule": [{"subjects": ["user:a"], "prefixes": ["a/"], "verbs": ["read"], **fields}]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"rules": []}, "unknown key(s) rules"),
        (_rule(subjects=["alice"]), "rule 1: invalid subject 'alice'"),
        (_rule(prefixes=["a/*"]), "invalid prefix 'a/*'"),
        (_rule(verbs=["write"]), "unknown verb 'write'"),
        (_rule(verbs=[]), "`verbs` must be a non-empty list"),
        (_rule(subjects=["anonymous"], verbs=["create"]), "may only be granted read"),
        (_rule(x=1), "unknown key(s) x"),
    ],
)
def test_policy_errors_name_the_rule_and_the_problem(
    document: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidAuthConfig) as caught:
        Policy.from_document(document, "policy.toml")
    assert message in caught.value.message


def test_policy_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[[rule]\n")
    with pytest.raises(InvalidAuthConfig, match="not valid TOML"):
        Policy.load(path)


def test_token_file_edits_are_serialised_so_none_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    inside = threading.Event()
    order: list[str] = []

    def first() -> None:
        with TokenFile.edit(path) as tokens:
            tokens.create("first", None, datetime.now(UTC))
            inside.set()
            time.sleep(0.3)  # the second editor arrives meanwhile and must wait
            order.append("first saves")

    def second() -> None:
        inside.wait(5)
        with TokenFile.edit(path) as tokens:
            order.append("second reads")
            tokens.create("second", None, datetime.now(UTC))

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert order == ["first saves", "second reads"]
    assert [entry.name for entry in TokenFile.load(path).entries] == ["first", "second"]


def test_a_failed_token_edit_saves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    with TokenFile.edit(path) as tokens:
        tokens.create("ci", None, datetime.now(UTC))
    before = path.read_bytes()
    with pytest.raises(ValueError, match="exists"), TokenFile.edit(path) as tokens:
        tokens.revoke("ci")
        tokens.create("ci", None, datetime.now(UTC))
        tokens.create("ci", None, datetime.now(UTC))
    assert path.read_bytes() == before
