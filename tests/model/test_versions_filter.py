"""The `_q` SemVer filter `v` (protocol sections 5 and 14.6) and `_q` parameter parsing."""

from __future__ import annotations

import pytest

from bindle_server.errors import InvalidInput, InvalidQuery
from bindle_server.model.version import Version
from bindle_server.search.query import DEFAULT_LIMIT, MAX_LIMIT, Query
from bindle_server.search.versions import parse_version_filter


def _matching(filter_text: str, versions: list[str]) -> list[str]:
    version_filter = parse_version_filter(filter_text)
    return [text for text in versions if version_filter.matches(Version.parse(text))]


def _check(filter_text: str, matching: list[str], not_matching: list[str]) -> None:
    assert _matching(filter_text, matching) == matching, f"{filter_text} should match"
    assert _matching(filter_text, not_matching) == [], f"{filter_text} should not match"


# Plain versions mean equality


@pytest.mark.parametrize(
    ("filter_text", "matching", "not_matching"),
    [
        ("1.0.0", ["1.0.0"], ["1.0.1", "0.9.9", "1.0.0-rc.1", "1.1.0", "2.0.0"]),
        (
            "1.0.0-beta.1",
            ["1.0.0-beta.1"],
            ["1.0.0-beta.12", "1.0.0-beta.10", "1.0.0-beta", "1.0.0-beta.1.1", "1.0.0"],
        ),
        ("0.0.0", ["0.0.0"], ["0.0.1"]),
        (" 1.2.3 ", ["1.2.3"], ["1.2.4"]),
    ],
)
def test_plain_version_matches_only_that_version(
    filter_text: str, matching: list[str], not_matching: list[str]
) -> None:
    _check(filter_text, matching, not_matching)


def test_plain_version_beta_1_does_not_match_beta_12() -> None:
    version_filter = parse_version_filter("1.0.0-beta.1")

    assert version_filter.matches(Version.parse("1.0.0-beta.1"))
    assert not version_filter.matches(Version.parse("1.0.0-beta.12"))


def test_plain_version_without_build_matches_any_build_of_it() -> None:
    _check("1.0.0", ["1.0.0+build.1", "1.0.0+other"], [])


def test_plain_version_with_build_matches_only_that_build() -> None:
    _check("1.0.0+build.1", ["1.0.0+build.1"], ["1.0.0", "1.0.0+build.2"])


def test_filter_keeps_the_text_it_was_given() -> None:
    assert parse_version_filter(">=1.0, <2.0").text == ">=1.0, <2.0"


# Rust `semver` requirement syntax


@pytest.mark.parametrize(
    ("filter_text", "matching", "not_matching"),
    [
        ("^1.2.3", ["1.2.3", "1.2.4", "1.3.0", "1.99.99"], ["1.2.2", "2.0.0", "0.9.0"]),
        ("~1.2.3", ["1.2.3", "1.2.9"], ["1.2.2", "1.3.0", "2.0.0"]),
        ("~1.2", ["1.2.0", "1.2.9"], ["1.1.9", "1.3.0"]),
        ("~1", ["1.0.0", "1.9.9"], ["0.9.9", "2.0.0"]),
        ("~>1.2.3", ["1.2.3", "1.2.9"], ["1.3.0"]),
        (">=1.0, <2.0", ["1.0.0", "1.5.0", "1.99.0"], ["0.9.9", "2.0.0", "2.0.1"]),
        (">=1.0,<2.0", ["1.0.0", "1.9.9"], ["2.0.0"]),
        (">= 1.0 , < 2.0", ["1.0.0", "1.9.9"], ["2.0.0"]),
        ("=1.2", ["1.2.0", "1.2.9"], ["1.1.9", "1.3.0"]),
        ("=1", ["1.0.0", "1.9.9"], ["2.0.0", "0.9.9"]),
        ("=1.2.3", ["1.2.3"], ["1.2.4", "1.2.2"]),
        (">1.2", ["1.3.0", "2.0.0"], ["1.2.0", "1.2.9"]),
        (">1.2.3", ["1.2.4", "2.0.0"], ["1.2.3"]),
        (">1", ["2.0.0"], ["1.9.9"]),
        (">=1.2", ["1.2.0", "5.0.0"], ["1.1.9"]),
        ("<1.2", ["1.1.9", "0.0.1"], ["1.2.0", "1.2.1"]),
        ("<1.2.3", ["1.2.2"], ["1.2.3"]),
        ("<=1.2", ["1.2.0", "1.2.9"], ["1.3.0"]),
        ("<=1.2.3", ["1.2.3"], ["1.2.4"]),
        ("1.*", ["1.0.0", "1.9.0"], ["0.9.0", "2.0.0"]),
        ("1.x", ["1.0.0", "1.9.0"], ["2.0.0"]),
        ("1.2.*", ["1.2.0", "1.2.9"], ["1.1.9", "1.3.0", "1.9.0"]),
        ("1.2.x", ["1.2.0", "1.2.9"], ["1.3.0"]),
        ("*", ["0.0.0", "1.0.0", "99.99.99"], []),
        ("1.2", ["1.2.0", "1.9.0"], ["1.1.9", "2.0.0"]),
        ("1", ["1.0.0", "1.9.9"], ["0.9.9", "2.0.0"]),
        ("1.2.3", ["1.2.3"], ["1.9.0"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.2.2", "0.3.0", "1.0.0"]),
        ("^0.0.3", ["0.0.3"], ["0.0.2", "0.0.4", "0.1.0"]),
        ("^0.0", ["0.0.0", "0.0.9"], ["0.1.0"]),
        ("^0", ["0.0.0", "0.9.9"], ["1.0.0"]),
        ("^1", ["1.0.0", "1.9.9"], ["2.0.0"]),
        ("^1.2", ["1.2.0", "1.9.9"], ["1.1.0", "2.0.0"]),
        ("0.2", ["0.2.0", "0.2.9"], ["0.3.0"]),
        (">=1.2.3, <1.8.0", ["1.2.3", "1.7.9"], ["1.8.0", "1.2.2"]),
        ("^1.2, <1.5", ["1.2.0", "1.4.9"], ["1.5.0"]),
    ],
)
def test_rust_requirement_syntax(
    filter_text: str, matching: list[str], not_matching: list[str]
) -> None:
    _check(filter_text, matching, not_matching)


def test_bare_partial_version_is_caret_in_rust_syntax() -> None:
    version_filter = parse_version_filter("1.2")

    assert version_filter.matches(Version.parse("1.9.0"))
    assert not version_filter.matches(Version.parse("2.0.0"))


def test_wildcard_patch_in_rust_syntax_is_a_wildcard_not_a_caret() -> None:
    # Rust `semver`: "1.2.*" is Op::Wildcard (>=1.2.0, <1.3.0), unlike the bare "1.2".
    assert not parse_version_filter("1.2.*").matches(Version.parse("1.3.0"))
    assert parse_version_filter("1.2").matches(Version.parse("1.3.0"))


def test_wildcard_with_an_explicit_operator_keeps_the_operator() -> None:
    _check("^1.2.*", ["1.2.0", "1.9.0"], ["2.0.0"])
    _check(">=1.*", ["1.0.0", "7.0.0"], ["0.9.9"])


# npm range syntax


@pytest.mark.parametrize(
    ("filter_text", "matching", "not_matching"),
    [
        (">=1.0.0 <2.0.0", ["1.0.0", "1.5.0", "1.99.99"], ["0.9.9", "2.0.0"]),
        (">=1.2 <1.4", ["1.2.0", "1.3.9"], ["1.1.9", "1.4.0"]),
        (">= 1.0.0 < 2.0.0", ["1.0.0", "1.9.9"], ["2.0.0"]),
        (">1.0.0 <=1.5.0", ["1.0.1", "1.5.0"], ["1.0.0", "1.5.1"]),
        ("1.2.3 - 1.5.6", ["1.2.3", "1.4.0", "1.5.6"], ["1.2.2", "1.5.7", "1.6.0"]),
        ("1.2 - 1.4", ["1.2.0", "1.4.0", "1.4.99"], ["1.1.9", "1.5.0"]),
        ("1.2.3 - 2", ["1.2.3", "2.9.9"], ["1.2.2", "3.0.0"]),
        ("1 - 2", ["1.0.0", "2.9.9"], ["0.9.9", "3.0.0"]),
        ("1.0.0 || 2.0.0", ["1.0.0", "2.0.0"], ["1.5.0", "2.0.1"]),
        ("^1.0.0 || ^3.0.0", ["1.2.0", "3.4.0"], ["2.0.0", "4.0.0"]),
        ("1.2.3 - 1.2.5 || >=2.0.0", ["1.2.4", "2.0.0", "9.0.0"], ["1.2.6", "1.9.9"]),
        (">=1.0.0 <1.1.0 || >=3.0.0 <3.1.0", ["1.0.5", "3.0.5"], ["1.1.0", "2.0.0", "3.1.0"]),
        ("~1.2.3 || ~2.0", ["1.2.9", "2.0.9"], ["1.3.0", "2.1.0"]),
    ],
)
def test_npm_range_syntax(filter_text: str, matching: list[str], not_matching: list[str]) -> None:
    _check(filter_text, matching, not_matching)


def test_hyphen_range_with_partial_upper_bound_excludes_the_next_minor() -> None:
    version_filter = parse_version_filter("1.2 - 1.4")

    assert version_filter.matches(Version.parse("1.4.99"))
    assert not version_filter.matches(Version.parse("1.5.0"))


@pytest.mark.parametrize(
    ("filter_text", "matching", "not_matching"),
    [
        # The same text means caret alone (Rust) and X-range inside npm syntax.
        ("1.2 || 3", ["1.2.0", "1.2.9", "3.0.0", "3.9.9"], ["1.3.0", "2.0.0", "4.0.0"]),
        ("1.2 >=1.2.5", ["1.2.5", "1.2.9"], ["1.2.4", "1.3.0"]),
        ("1 <1.5", ["1.0.0", "1.4.9"], ["1.5.0", "2.0.0"]),
        ("1.2.x || 2.x", ["1.2.5", "2.9.0"], ["1.3.0", "3.0.0"]),
    ],
)
def test_bare_partial_inside_npm_syntax_is_an_x_range(
    filter_text: str, matching: list[str], not_matching: list[str]
) -> None:
    _check(filter_text, matching, not_matching)


def test_empty_npm_alternative_means_any_release() -> None:
    _check("1.0.0 ||", ["1.0.0", "5.0.0"], ["1.0.0-rc.1"])


# Pre-releases


@pytest.mark.parametrize(
    ("filter_text", "matching", "not_matching"),
    [
        (">=1.0.0-alpha", ["1.0.0-alpha", "1.0.0-beta", "1.0.0", "1.1.0"], ["1.1.0-alpha"]),
        (">=1.0.0-alpha, <2.0.0", ["1.0.0-rc.1", "1.5.0"], ["1.5.0-alpha", "2.0.0-alpha"]),
        ("^1.2.3-beta.2", ["1.2.3-beta.2", "1.2.3-beta.3", "1.2.3", "1.9.0"], ["1.2.3-beta.1"]),
        ("^1.2.3-beta.2", [], ["1.2.4-beta.3", "1.3.0-alpha"]),
        ("~1.2.3-rc.1", ["1.2.3-rc.1", "1.2.3-rc.2", "1.2.3", "1.2.9"], ["1.2.4-rc.1"]),
        ("^1.2.3", ["1.2.3"], ["1.2.4-alpha", "1.3.0-alpha", "1.2.3-alpha"]),
        (">=1.0, <2.0", ["1.0.0"], ["1.5.0-alpha", "2.0.0-alpha", "1.0.0-rc.1"]),
        ("<1.0.0", ["0.9.9"], ["1.0.0-alpha", "0.9.9-alpha"]),
        ("*", [], ["1.0.0-alpha", "0.0.0-0"]),
        ("1.*", [], ["1.1.0-beta"]),
        ("1.2.3 - 1.5.6", [], ["1.3.0-alpha", "1.5.6-rc.1"]),
        ("1.2.3-alpha - 1.5.6", ["1.2.3-alpha", "1.2.3-beta", "1.4.0"], ["1.4.0-alpha"]),
        ("1.2.3 - 1.5.6-rc.2", ["1.5.6-rc.1", "1.5.0"], ["1.5.6-rc.3", "1.5.0-rc.1"]),
        (">=1.0.0-beta <1.0.0", ["1.0.0-beta", "1.0.0-rc.1"], ["1.0.0-alpha", "1.0.0"]),
        (">=1.0.0-beta.2 || >=2.0.0-alpha", ["1.0.0-beta.3", "2.0.0-beta"], ["1.5.0-alpha"]),
    ],
)
def test_pre_release_matches_only_with_a_pre_release_comparator_of_the_same_core(
    filter_text: str, matching: list[str], not_matching: list[str]
) -> None:
    _check(filter_text, matching, not_matching)


def test_pre_release_rule_applies_per_alternative() -> None:
    # 1.0.0-beta is allowed by the first alternative only, which its version fails.
    _check(">=1.0.0-alpha <1.0.0-alpha.5 || >=0.5.0", ["1.0.0-alpha.2", "1.0.0"], ["1.0.0-beta"])


def test_alpha_comparator_allows_beta_of_the_same_core_but_not_alpha_of_another() -> None:
    version_filter = parse_version_filter(">=1.0.0-alpha")

    assert version_filter.matches(Version.parse("1.0.0-beta"))
    assert not version_filter.matches(Version.parse("1.1.0-alpha"))


# Unparsable filters


@pytest.mark.parametrize(
    "filter_text",
    [
        ">>1",
        "1.2.3.4",
        "abc",
        "1.2 - ",
        "- 1.2",
        "1.0.0 - 2.0.0 - 3.0.0",
        "=>1.0",
        "^",
        ">=",
        "v1.2.3",
        "01.2.3",
        "1.2.3-",
        "1.2-beta",
        "1.*-beta",
        ">=1.0,",
        ",",
        ">=1.0,,<2.0",
        ">=1.0 <2.0, <3.0",
        "1.0.0 -1.0.0",
        ">=1.0.0 - 2.0.0",
        "latest",
        "1.2.3 || abc",
        "!1.0.0",
        "1.0.0 && 2.0.0",
    ],
)
def test_unparsable_filter_raises_invalid_query_quoting_the_filter(filter_text: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        parse_version_filter(filter_text)

    assert caught.value.message.startswith(f"invalid version filter {filter_text!r}: ")
    assert len(caught.value.message) > len(f"invalid version filter {filter_text!r}: ")


@pytest.mark.parametrize("filter_text", ["", " ", "\t"])
def test_empty_filter_raises_invalid_query(filter_text: str) -> None:
    with pytest.raises(InvalidQuery, match="empty version filter"):
        parse_version_filter(filter_text)


@pytest.mark.parametrize(
    ("filter_text", "reason"),
    [
        ("1.2.3.4", "'1.2.3.4' is not a version or partial version"),
        ("abc", "'abc' is not a version or partial version"),
        ("1.2-beta", "'1.2-beta' is not a version or partial version"),
        ("1.*.*-beta", "a pre-release needs a full MAJOR.MINOR.PATCH"),
        (">=1.0,", "empty comparator"),
        (">>1", "cannot read '>>1'"),
    ],
)
def test_unparsable_filter_message_says_why(filter_text: str, reason: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        parse_version_filter(filter_text)

    assert caught.value.message.endswith(reason)


def test_invalid_query_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        parse_version_filter("nope")


# Query.from_params


def test_no_parameters_give_the_defaults() -> None:
    query = Query.from_params([])

    assert query == Query()
    assert query.text == ""
    assert query.terms == ()
    assert query.version_filter is None
    assert query.offset == 0
    assert query.limit == DEFAULT_LIMIT == 50
    assert query.strict is True
    assert query.yanked is False


def test_short_parameter_names_are_read() -> None:
    query = Query.from_params(
        [
            ("q", "hello"),
            ("v", "^1.0"),
            ("o", "10"),
            ("l", "5"),
            ("strict", "false"),
            ("yanked", "true"),
        ]
    )

    assert query.text == "hello"
    assert query.version_filter is not None
    assert query.version_filter.text == "^1.0"
    assert query.offset == 10
    assert query.limit == 5
    assert query.strict is False
    assert query.yanked is True


@pytest.mark.parametrize(
    ("long_name", "short_name"),
    [("query", "q"), ("version", "v"), ("offset", "o"), ("limit", "l")],
)
def test_long_parameter_names_are_aliases_of_the_short_ones(
    long_name: str, short_name: str
) -> None:
    value = {"q": "hello", "v": "1.0.0", "o": "3", "l": "7"}[short_name]

    long_query = Query.from_params([(long_name, value)])
    short_query = Query.from_params([(short_name, value)])

    assert long_query == short_query
    assert long_query != Query()


def test_q_is_split_into_whitespace_separated_terms() -> None:
    query = Query.from_params([("q", "  weather  app\tdemo ")])

    assert query.text == "  weather  app\tdemo "
    assert query.terms == ("weather", "app", "demo")


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_v_means_no_filter(value: str) -> None:
    assert Query.from_params([("v", value)]).version_filter is None


def test_v_is_parsed_as_a_version_filter() -> None:
    query = Query.from_params([("v", ">=1.0.0 <2.0.0")])

    assert query.version_filter is not None
    assert query.version_filter.matches(Version.parse("1.5.0"))
    assert not query.version_filter.matches(Version.parse("2.0.0"))


def test_unparsable_v_is_an_invalid_query() -> None:
    with pytest.raises(InvalidQuery, match="invalid version filter '>>1'"):
        Query.from_params([("v", ">>1")])


@pytest.mark.parametrize("name", ["x", "Q", "page", "strict ", "", "bindle"])
def test_unknown_parameter_is_an_invalid_query(name: str) -> None:
    with pytest.raises(InvalidQuery, match=f"unknown query parameter {name!r}"):
        Query.from_params([("q", "a"), (name, "1")])


@pytest.mark.parametrize(
    "params",
    [
        [("q", "a"), ("q", "b")],
        [("q", "a"), ("query", "b")],
        [("version", "1.0.0"), ("v", "1.0.0")],
        [("l", "5"), ("limit", "5")],
        [("o", "1"), ("o", "1")],
        [("strict", "true"), ("strict", "true")],
        [("yanked", "false"), ("yanked", "true")],
    ],
)
def test_repeated_parameter_is_an_invalid_query(params: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidQuery, match="is given more than once"):
        Query.from_params(params)


@pytest.mark.parametrize("value", ["0", "1", "50", "255"])
def test_limit_from_0_to_255_is_accepted(value: str) -> None:
    assert Query.from_params([("l", value)]).limit == int(value)


@pytest.mark.parametrize(
    "value", ["256", "1000", "-1", "-0", "+5", "5.0", "1e2", "", " 5", "ten", "٣"]
)
def test_limit_outside_0_to_255_or_not_a_number_is_an_invalid_query(value: str) -> None:
    with pytest.raises(InvalidQuery, match=f"'l' must be a whole number from 0 to {MAX_LIMIT}"):
        Query.from_params([("l", value)])


def test_largest_offset_is_accepted_and_one_more_is_refused() -> None:
    assert Query.from_params([("o", str(2**63 - 1))]).offset == 2**63 - 1
    with pytest.raises(InvalidQuery, match="'o' must be a whole number"):
        Query.from_params([("o", str(2**63))])


@pytest.mark.parametrize("value", ["-1", "x", "", "1.5"])
def test_invalid_offset_is_an_invalid_query(value: str) -> None:
    with pytest.raises(InvalidQuery, match="'o' must be a whole number"):
        Query.from_params([("offset", value)])


@pytest.mark.parametrize("name", ["strict", "yanked"])
@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False)])
def test_boolean_parameters_accept_true_and_false(name: str, value: str, expected: bool) -> None:
    assert getattr(Query.from_params([(name, value)]), name) is expected


@pytest.mark.parametrize("name", ["strict", "yanked"])
@pytest.mark.parametrize("value", ["True", "FALSE", "1", "0", "yes", "", " true"])
def test_boolean_parameters_refuse_anything_but_true_or_false(name: str, value: str) -> None:
    with pytest.raises(InvalidQuery, match=f"{name!r} must be true or false, not {value!r}"):
        Query.from_params([(name, value)])
