"""Bindle ids, names, parcel digests and the invoice storage key (protocol sections 2, 14.8)."""

from __future__ import annotations

import dataclasses
import hashlib
import re

import pytest

from bindle_server.errors import InvalidBindleId, InvalidDigest, InvalidInput
from bindle_server.model.ids import (
    MAX_NAME_BYTES,
    BindleId,
    check_name,
    check_sha256,
    invoice_key,
    is_sha256,
    name_problem,
)
from bindle_server.model.version import Version

HELLO_SHA256 = hashlib.sha256(b"hello\n").hexdigest()


# BindleId.parse


@pytest.mark.parametrize(
    ("text", "name", "version"),
    [
        ("hello/1.0.0", "hello", "1.0.0"),
        ("example.com/hello/1.0.0", "example.com/hello", "1.0.0"),
        ("a/b/c/d/0.1.0", "a/b/c/d", "0.1.0"),
        ("example.com/app/1.2.3-rc.1+build.5", "example.com/app", "1.2.3-rc.1+build.5"),
        ("spin-hello-world/2.0.0-beta.11", "spin-hello-world", "2.0.0-beta.11"),
        ("käse/1.0.0", "käse", "1.0.0"),
    ],
)
def test_parse_splits_at_the_last_slash(text: str, name: str, version: str) -> None:
    bindle_id = BindleId.parse(text)

    assert bindle_id.name == name
    assert bindle_id.version == version


@pytest.mark.parametrize(
    "text", ["hello/1.0.0", "example.com/hello/1.2.3-rc.1+build.5", "日本/パッケージ/0.0.1"]
)
def test_parse_then_str_gives_the_same_text(text: str) -> None:
    assert str(BindleId.parse(text)) == text


@pytest.mark.parametrize("text", ["", "hello", "1.0.0", "/", "/1.0.0", "hello/", "a/b/"])
def test_parse_refuses_text_without_both_name_and_version(text: str) -> None:
    with pytest.raises(InvalidBindleId, match="expected NAME/VERSION"):
        BindleId.parse(text)


def test_parse_refuses_a_double_slash_before_the_version() -> None:
    # The name would be "hello/", which ends with a slash.
    with pytest.raises(InvalidBindleId, match="must not start or end with '/'"):
        BindleId.parse("hello//1.0.0")


def test_parse_takes_only_the_text_after_the_last_slash_as_the_version() -> None:
    # "hello/1.0.0" is a valid (pathy) name, so the complaint is about the version "b".
    with pytest.raises(InvalidBindleId, match="invalid bindle version 'b'"):
        BindleId.parse("hello/1.0.0/b")


def test_parse_errors_are_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        BindleId.parse("no-version")


def test_parse_error_message_quotes_the_text() -> None:
    with pytest.raises(InvalidBindleId) as caught:
        BindleId.parse("hello/1.0")

    assert "'1.0'" in caught.value.message
    assert "SemVer" in caught.value.message


def test_of_builds_an_id_equal_to_the_parsed_one() -> None:
    assert BindleId.of("example.com/hello", "1.0.0") == BindleId.parse("example.com/hello/1.0.0")


def test_ids_with_different_versions_are_different() -> None:
    assert BindleId.parse("hello/1.0.0") != BindleId.parse("hello/1.0.1")


def test_ids_differing_only_in_build_metadata_are_different_bindles() -> None:
    # Two invoices are the same bindle iff name and version (as written) are equal.
    first = BindleId.parse("hello/1.0.0+a")
    second = BindleId.parse("hello/1.0.0+b")

    assert first != second
    assert first.key != second.key


def test_bindle_id_is_immutable() -> None:
    bindle_id = BindleId.parse("hello/1.0.0")

    with pytest.raises(dataclasses.FrozenInstanceError):
        bindle_id.name = "other"  # type: ignore[misc]  # the point: frozen refuses assignment


def test_semver_property_parses_the_version() -> None:
    assert BindleId.parse("hello/1.2.3-rc.1+b.5").semver == Version(1, 2, 3, "rc.1", "b.5")


# Names (section 14 item 8)


@pytest.mark.parametrize(
    "name",
    [
        "hello",
        "hello_world",
        "spin-hello-world",
        "example.com/hello_world",
        "example.com/team/app",
        "v1.2",
        "a..b",
        "..a",
        "a.",
        ".hidden",
        "_",
        "-",
        "123",
        "käse",
        "日本語/パッケージ",
        "Ελληνικά",
        "مرحبا",
        "٣٤٥",
        "bindle",
        "bindle/tools",
        "bindlex",
    ],
)
def test_valid_names_are_accepted(name: str) -> None:
    assert check_name(name) == name
    assert name_problem(name) is None
    assert BindleId.of(name, "1.0.0").name == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("/hello", "start or end with '/'"),
        ("hello/", "start or end with '/'"),
        ("/", "start or end with '/'"),
        ("a//b", "empty, '.' or '..' path segment"),
        (".", "empty, '.' or '..' path segment"),
        ("..", "empty, '.' or '..' path segment"),
        ("./hello", "empty, '.' or '..' path segment"),
        ("a/./b", "empty, '.' or '..' path segment"),
        ("a/../b", "empty, '.' or '..' path segment"),
        ("a/..", "empty, '.' or '..' path segment"),
        ("../../etc", "empty, '.' or '..' path segment"),
        ("bindle:hello", "reserved"),
        ("bindle:", "reserved"),
    ],
)
def test_invalid_names_are_refused_with_the_reason(name: str, reason: str) -> None:
    problem = name_problem(name)

    assert problem is not None
    assert reason in problem
    with pytest.raises(InvalidBindleId, match=re.escape(reason)):
        check_name(name)
    with pytest.raises(InvalidBindleId, match=re.escape(reason)):
        BindleId.of(name, "1.0.0")


@pytest.mark.parametrize(
    ("name", "bad_char"),
    [
        ("hello world", " "),
        ("hello@1", "@"),
        ("a+b", "+"),
        ("a:b", ":"),
        ("a\\b", "\\"),
        ("a%2Fb", "%"),
        ("a\x00b", "\x00"),
        ("a\nb", "\n"),
        ("a\tb", "\t"),
        ("zero\u200bwidth", "\u200b"),
        ("smile\U0001f600", "\U0001f600"),
        ("a*b", "*"),
        ("a?b", "?"),
        ("a~b", "~"),
        ("a#b", "#"),
    ],
)
def test_names_with_characters_outside_the_charset_are_refused(name: str, bad_char: str) -> None:
    problem = name_problem(name)

    assert problem is not None
    assert repr(bad_char) in problem
    assert "allowed are letters, digits" in problem
    with pytest.raises(InvalidBindleId):
        check_name(name)


def test_bindle_prefix_is_refused_even_with_a_valid_remainder() -> None:
    with pytest.raises(InvalidBindleId, match="reserved"):
        BindleId.parse("bindle:example.com/hello/1.0.0")


def test_a_name_of_exactly_512_ascii_bytes_is_accepted() -> None:
    name = "a" * MAX_NAME_BYTES

    assert MAX_NAME_BYTES == 512
    assert check_name(name) == name


def test_a_name_of_513_bytes_is_refused() -> None:
    with pytest.raises(InvalidBindleId, match="longer than 512 bytes"):
        check_name("a" * 513)


def test_name_length_is_counted_in_utf8_bytes_not_characters() -> None:
    two_byte = "ä"
    assert len(two_byte.encode()) == 2

    assert check_name(two_byte * 256) == two_byte * 256
    with pytest.raises(InvalidBindleId, match="longer than 512 bytes"):
        check_name(two_byte * 257)


def test_a_long_pathy_name_within_the_limit_is_accepted() -> None:
    name = "/".join(["segment"] * 64)  # 64 * 7 + 63 = 511 bytes

    assert len(name.encode()) == 511
    assert BindleId.of(name, "1.0.0").name == name


def test_check_name_error_message_quotes_the_name() -> None:
    with pytest.raises(InvalidBindleId) as caught:
        check_name("bad name")

    assert "'bad name'" in caught.value.message


# Versions


@pytest.mark.parametrize(
    "version",
    [
        "0.0.0",
        "1.0.0",
        "10.20.30",
        "1.2.3",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-0.3.7",
        "1.0.0-x.7.z.92",
        "1.0.0-x-y-z.--",
        "1.0.0-0alpha",
        "1.0.0-alpha+001",
        "1.0.0+20130313144700",
        "1.0.0-beta+exp.sha.5114f85",
        "1.0.0+21AF26D3----117B344092BD",
        "1.0.0+001",
        "1.2.3-rc.1+build.5",
        "18446744073709551615.0.0",
    ],
)
def test_valid_semver_versions_are_accepted(version: str) -> None:
    assert BindleId.of("hello", version).version == version


@pytest.mark.parametrize(
    "version",
    [
        "1.0",
        "1",
        "v1.0.0",
        "V1.0.0",
        "01.0.0",
        "1.01.0",
        "1.0.01",
        "1.0.0.0",
        "1.0.0-",
        "1.0.0+",
        "1.0.0-01",
        "1.0.0-alpha..1",
        "1.0.0-alpha.",
        "1.0.0-alpha_1",
        "1.0.0+build+more",
        "1.0.0+a..b",
        "-1.0.0",
        "1.0.0 ",
        " 1.0.0",
        "1.0.0\n",
        "1.0.0-\u03b1",  # Greek alpha
        "\u0661.\u0660.\u0660",  # Arabic-Indic digits
        "latest",
        "*",
        "^1.0.0",
    ],
)
def test_invalid_versions_are_refused(version: str) -> None:
    with pytest.raises(InvalidBindleId, match="SemVer"):
        BindleId.of("hello", version)


# Parcel digests


def test_check_sha256_accepts_a_real_lowercase_digest() -> None:
    assert check_sha256(HELLO_SHA256) == HELLO_SHA256
    assert is_sha256(HELLO_SHA256)


@pytest.mark.parametrize(
    "digest",
    [
        HELLO_SHA256.upper(),
        "A" * 64,
        HELLO_SHA256[:63],
        HELLO_SHA256 + "0",
        "",
        "g" * 64,
        HELLO_SHA256[:63] + "g",
        " " + HELLO_SHA256[:63],
        HELLO_SHA256 + "\n",
        "../../" + HELLO_SHA256[:58],
        "sha256:" + HELLO_SHA256,
        "\uff10" * 64,  # fullwidth zeros
    ],
)
def test_check_sha256_refuses_anything_but_64_lowercase_hex(digest: str) -> None:
    assert not is_sha256(digest)
    with pytest.raises(InvalidDigest, match="64 lowercase hexadecimal"):
        check_sha256(digest)


def test_check_sha256_refuses_uppercase_hex_digest() -> None:
    with pytest.raises(InvalidDigest):
        check_sha256(hashlib.sha256(b"x").hexdigest().upper())


@pytest.mark.parametrize("length", [63, 65])
def test_check_sha256_refuses_a_digest_one_character_off(length: int) -> None:
    digest = (HELLO_SHA256 * 2)[:length]

    assert len(digest) == length
    with pytest.raises(InvalidDigest):
        check_sha256(digest)


def test_invalid_digest_is_invalid_input_and_quotes_the_digest() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_sha256("abc")

    assert isinstance(caught.value, InvalidDigest)
    assert "'abc'" in caught.value.message


# Invoice storage key


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("hello", "1.0.0"),
        ("example.com/hello", "1.2.3-rc.1+build.5"),
        ("käse/日本", "0.0.1"),
    ],
)
def test_invoice_key_is_the_sha256_of_name_slash_version(name: str, version: str) -> None:
    expected = hashlib.sha256(f"{name}/{version}".encode()).hexdigest()

    assert invoice_key(name, version) == expected
    assert BindleId.of(name, version).key == expected


def test_invoice_key_matches_a_known_value() -> None:
    assert invoice_key("hello", "1.0.0") == hashlib.sha256(b"hello/1.0.0").hexdigest()
    assert is_sha256(invoice_key("hello", "1.0.0"))


def test_invoice_key_differs_per_version_and_per_name() -> None:
    keys = {
        invoice_key("hello", "1.0.0"),
        invoice_key("hello", "1.0.1"),
        invoice_key("hello2", "1.0.0"),
        invoice_key("hello", "1.0.0+build"),
    }

    assert len(keys) == 4


def test_names_may_use_combining_marks_of_any_script() -> None:
    for name in ("example.com/ka\u0308se", "हिन्दी/app"):
        assert check_name(name) == name
