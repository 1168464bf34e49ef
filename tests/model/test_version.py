"""SemVer 2.0.0 parsing and precedence (semver.org items 2, 9, 10 and 11)."""

from __future__ import annotations

import itertools
import random

import pytest

from bindle_server.model.version import Version

# semver.org item 11, example 4, plus the release it precedes.
SPEC_CHAIN = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
]


@pytest.mark.parametrize(("lower", "higher"), list(itertools.pairwise(SPEC_CHAIN)))
def test_semver_org_precedence_example_holds_pairwise(lower: str, higher: str) -> None:
    low, high = Version.parse(lower), Version.parse(higher)

    assert low < high
    assert high > low
    assert low <= high
    assert high >= low
    assert low != high
    assert not high < low


def test_sorting_shuffled_versions_restores_the_semver_org_order() -> None:
    shuffled = SPEC_CHAIN[:]
    random.Random(11).shuffle(shuffled)

    assert shuffled != SPEC_CHAIN
    assert [str(v) for v in sorted(Version.parse(text) for text in shuffled)] == SPEC_CHAIN


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0.0", "2.0.0"),
        ("2.0.0", "2.1.0"),
        ("2.1.0", "2.1.1"),
        ("1.9.0", "1.10.0"),
        ("1.0.9", "1.0.10"),
        ("9.0.0", "10.0.0"),
        ("0.0.1", "0.1.0"),
        ("1.99.99", "2.0.0"),
        ("1.0.0-alpha.2", "1.0.0-alpha.10"),
        ("1.0.0-1", "1.0.0-alpha"),
        ("1.0.0-999", "1.0.0-a"),
        ("1.0.0-alpha", "1.0.0-alpha.0"),
        ("1.0.0-alpha.1", "1.0.0-alpha.1.1"),
        ("1.0.0-Beta", "1.0.0-alpha"),
        ("1.0.0-a.b", "1.0.0-a-b"),
        ("1.0.0-1", "1.0.0-0a"),
        ("1.0.0-rc.1", "1.0.0"),
        ("1.0.0", "1.0.1-alpha"),
        ("1.0.0-rc.99", "1.0.1-alpha"),
        ("0.9.9", "1.0.0-alpha"),
        ("1.0.0-2", "1.0.0-10"),
    ],
)
def test_lower_version_has_lower_precedence(lower: str, higher: str) -> None:
    assert Version.parse(lower) < Version.parse(higher)
    assert Version.parse(higher) > Version.parse(lower)
    assert Version.parse(lower).key < Version.parse(higher).key


def test_numeric_identifiers_compare_numerically_not_as_text() -> None:
    assert Version.parse("1.0.0-beta.2") < Version.parse("1.0.0-beta.11")
    assert "beta.2" > "beta.11"  # what a string comparison would have said


def test_alphanumeric_identifiers_compare_in_ascii_order() -> None:
    # Uppercase letters sort before lowercase in ASCII, and '-' before digits and letters.
    assert Version.parse("1.0.0-RC") < Version.parse("1.0.0-rc")
    assert Version.parse("1.0.0-a-") < Version.parse("1.0.0-aa")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("1.0.0+a", "1.0.0+b"),
        ("1.0.0", "1.0.0+build.5"),
        ("1.0.0-rc.1+x", "1.0.0-rc.1+y.z"),
        ("1.0.0-rc.1", "1.0.0-rc.1+001"),
    ],
)
def test_build_metadata_is_ignored_in_equality_and_ordering(first: str, second: str) -> None:
    a, b = Version.parse(first), Version.parse(second)

    assert a == b
    assert hash(a) == hash(b)
    assert not a < b
    assert not b < a
    assert a <= b
    assert a >= b
    assert len({a, b}) == 1


def test_build_metadata_is_kept_when_printing() -> None:
    version = Version.parse("1.0.0-rc.1+build.5")

    assert version.build == "build.5"
    assert str(version) == "1.0.0-rc.1+build.5"


def test_equal_versions_built_differently_are_equal() -> None:
    assert Version(1, 2, 3) == Version.parse("1.2.3")
    assert Version(1, 2, 3, "rc.1") == Version.parse("1.2.3-rc.1")
    assert Version(1, 2, 3, "", "b") == Version.parse("1.2.3")


def test_a_pre_release_is_not_equal_to_its_release() -> None:
    assert Version.parse("1.0.0-0") != Version.parse("1.0.0")
    assert Version.parse("1.0.0-0") < Version.parse("1.0.0")


def test_numeric_pre_release_identifiers_with_the_same_value_are_equal() -> None:
    # Leading zeros are invalid, so the only equal numeric spellings are identical ones.
    assert Version.parse("1.0.0-alpha.1") == Version(1, 0, 0, "alpha.1")


def test_comparing_with_a_non_version_is_not_equal() -> None:
    version = Version.parse("1.0.0")

    assert version != "1.0.0"
    assert version.__eq__("1.0.0") is NotImplemented


def test_ordering_against_a_string_raises_type_error() -> None:
    with pytest.raises(TypeError):
        _ = Version.parse("1.0.0") < "2.0.0"  # type: ignore[operator]  # the point: refused


@pytest.mark.parametrize(
    ("text", "major", "minor", "patch", "pre", "build"),
    [
        ("0.0.0", 0, 0, 0, "", ""),
        ("1.2.3", 1, 2, 3, "", ""),
        ("10.20.30", 10, 20, 30, "", ""),
        ("1.0.0-alpha.1", 1, 0, 0, "alpha.1", ""),
        ("1.0.0+20130313144700", 1, 0, 0, "", "20130313144700"),
        ("1.0.0-beta+exp.sha.5114f85", 1, 0, 0, "beta", "exp.sha.5114f85"),
        ("1.0.0-x-y-z.--", 1, 0, 0, "x-y-z.--", ""),
        ("1.0.0+001", 1, 0, 0, "", "001"),
        ("18446744073709551615.0.0", 18446744073709551615, 0, 0, "", ""),
    ],
)
def test_parse_reads_every_part(
    text: str, major: int, minor: int, patch: int, pre: str, build: str
) -> None:
    version = Version.parse(text)

    assert (version.major, version.minor, version.patch) == (major, minor, patch)
    assert version.core == (major, minor, patch)
    assert version.pre == pre
    assert version.build == build
    assert str(version) == text
    assert Version.is_valid(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "1.0",
        "1.0.0.0",
        "v1.0.0",
        "=1.0.0",
        "01.0.0",
        "1.00.0",
        "1.0.00",
        "1.0.0-",
        "1.0.0+",
        "1.0.0-01",
        "1.0.0-alpha.01",
        "1.0.0-alpha..beta",
        "1.0.0-.alpha",
        "1.0.0-alpha.",
        "1.0.0-al_pha",
        "1.0.0+bu_ild",
        "1.0.0+a+b",
        "1.0.0-\u03b1",  # Greek alpha
        "1.0.0 ",
        " 1.0.0",
        "1.0.0\n",
        "1.0.0\r\n",
        "1.a.0",
        "-1.0.0",
        "1.-1.0",
        "1.2.x",
        "1.2.*",
    ],
)
def test_parse_refuses_invalid_versions_with_a_readable_error(text: str) -> None:
    assert not Version.is_valid(text)
    with pytest.raises(ValueError, match=r"is not a SemVer 2\.0\.0 version"):
        Version.parse(text)


def test_parse_error_quotes_the_text() -> None:
    with pytest.raises(ValueError) as caught:
        Version.parse("v1.0.0")

    assert "'v1.0.0'" in str(caught.value)


def test_versions_are_immutable() -> None:
    version = Version.parse("1.0.0")

    with pytest.raises(AttributeError):
        version.major = 2  # type: ignore[misc]  # the point: frozen refuses assignment
    assert version == Version(1, 0, 0)


@pytest.mark.parametrize(
    "text", ["18446744073709551616.0.0", "1.99999999999999999999.0", "1.0." + "9" * 5000]
)
def test_numbers_past_64_bits_are_refused_like_the_reference(text: str) -> None:
    """Rust `semver` keeps MAJOR, MINOR and PATCH in u64; longer ones are not versions."""
    assert not Version.is_valid(text)
    with pytest.raises(ValueError, match="64 bits"):
        Version.parse(text)


def test_long_numeric_pre_release_identifiers_order_by_value() -> None:
    long = "1" * 5000
    assert Version.parse(f"1.0.0-{long}") > Version.parse("1.0.0-9")
    assert Version.parse(f"1.0.0-{long}") < Version.parse(f"1.0.0-{long}1")
