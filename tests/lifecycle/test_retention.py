"""Retention policies: parsing policy files and selecting the versions they remove."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bindle_server.errors import InvalidRetentionPolicy
from bindle_server.lifecycle.retention import Release, Removal, RetentionPolicy

NOW = 1_700_000_000.0
DAY = 86_400.0

EXAMPLE = """\
[[rule]]
prefix = "ci.example.com/"
keep_last = 5
keep = ["^1"]
prerelease_max_age = "14d"
"""


def _release(
    version: str,
    *,
    name: str = "app",
    age_days: float = 1.0,
    yanked: bool = False,
    yanked_days_ago: float | None = None,
) -> Release:
    yanked_at = None if yanked_days_ago is None else NOW - yanked_days_ago * DAY
    return Release(
        key=f"key-{name}-{version}",
        name=name,
        version=version,
        yanked=yanked,
        created=NOW - age_days * DAY,
        yanked_at=yanked_at,
    )


def _policy(*rules: dict[str, Any]) -> RetentionPolicy:
    return RetentionPolicy.from_document({"rule": list(rules)})


def _removed(policy: RetentionPolicy, releases: list[Release]) -> list[str]:
    return [
        f"{removal.release.name}/{removal.release.version}"
        for removal in policy.select(releases, NOW)
    ]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "retention.toml"
    path.write_text(text, encoding="utf-8")
    return path


# Loading


def test_example_policy_file_loads_into_one_rule_with_every_key_parsed(tmp_path: Path) -> None:
    path = _write(tmp_path, EXAMPLE)

    policy = RetentionPolicy.load(path)

    assert policy.source == str(path)
    assert policy.describe() == f"{path} (1 rule(s))"
    (rule,) = policy.rules
    assert rule.prefix == "ci.example.com/"
    assert rule.keep_last == 5
    assert rule.keep_last_prereleases is None
    assert [keep.text for keep in rule.keep] == ["^1"]
    assert rule.prerelease_max_age == timedelta(days=14)
    assert rule.max_age is None
    assert rule.yanked_max_age is None


def test_example_policy_keeps_five_newest_and_the_1_x_line_and_drops_old_prereleases(
    tmp_path: Path,
) -> None:
    policy = RetentionPolicy.load(_write(tmp_path, EXAMPLE))
    name = "ci.example.com/build"
    releases = [
        *(_release(f"{major}.0.0", name=name) for major in range(1, 9)),
        _release("9.0.0-rc.1", name=name, age_days=15),
        _release("9.0.0-rc.2", name=name, age_days=2),
    ]

    assert _removed(policy, releases) == [
        f"{name}/2.0.0",
        f"{name}/3.0.0",
        f"{name}/9.0.0-rc.1",
    ]


def test_empty_policy_file_is_valid_and_removes_nothing(tmp_path: Path) -> None:
    policy = RetentionPolicy.load(_write(tmp_path, ""))

    assert policy.rules == ()
    assert policy.describe() == f"{tmp_path / 'retention.toml'} (0 rule(s))"
    assert policy.select([_release("1.0.0", age_days=1000)], NOW) == []


def test_comment_key_is_accepted_and_changes_nothing() -> None:
    with_comment = _policy({"prefix": "*", "keep_last": 1, "comment": "nightly builds"})
    without = _policy({"prefix": "*", "keep_last": 1})

    assert with_comment.rules == without.rules


def test_describe_uses_the_default_source_for_documents() -> None:
    policy = _policy({"prefix": "a/"}, {"prefix": "b/"}, {"prefix": "*"})

    assert policy.describe() == "retention policy (3 rule(s))"


# Choosing the rule


def test_longest_matching_prefix_chooses_the_rule() -> None:
    policy = _policy(
        {"prefix": "*", "keep_last": 3},
        {"prefix": "example.com/", "keep_last": 2},
        {"prefix": "example.com/nightly/", "keep_last": 1},
    )
    versions = ["1.0.0", "2.0.0", "3.0.0", "4.0.0"]
    releases = [
        _release(version, name=name)
        for name in ("other", "example.com/app", "example.com/nightly/app")
        for version in versions
    ]

    assert _removed(policy, releases) == [
        "example.com/app/1.0.0",
        "example.com/app/2.0.0",
        "example.com/nightly/app/1.0.0",
        "example.com/nightly/app/2.0.0",
        "example.com/nightly/app/3.0.0",
        "other/1.0.0",
    ]
    rule = policy.rule_for("example.com/nightly/app")
    assert rule is not None
    assert rule.keep_last == 1


@pytest.mark.parametrize("catch_all", ["*", ""])
def test_star_and_empty_prefix_match_every_name(catch_all: str) -> None:
    policy = _policy({"prefix": catch_all, "keep_last": 1})

    rule = policy.rule_for("any/name/at/all")

    assert rule is not None
    assert rule.prefix == ""
    assert _removed(policy, [_release("1.0.0", name="x"), _release("2.0.0", name="x")]) == [
        "x/1.0.0"
    ]


def test_names_no_rule_matches_lose_nothing() -> None:
    policy = _policy({"prefix": "ci/", "keep_last": 0, "max_age": "1d"})
    releases = [_release(f"{n}.0.0", name="prod/app", age_days=100) for n in range(1, 5)]

    assert policy.rule_for("prod/app") is None
    assert policy.select(releases, NOW) == []


def test_prefix_is_a_plain_string_prefix_not_a_path_segment() -> None:
    policy = _policy({"prefix": "ci", "keep_last": 1})

    assert _removed(policy, [_release("1.0.0", name="circle"), _release("2.0.0", name="circle")])
    assert policy.rule_for("circle") is not None
    assert policy.rule_for("acircle") is None


def test_rule_without_criteria_exempts_its_names_from_a_shorter_prefix() -> None:
    policy = _policy({"prefix": "*", "keep_last": 1}, {"prefix": "pinned/"})
    releases = [
        _release("1.0.0", name="pinned/app"),
        _release("2.0.0", name="pinned/app"),
        _release("1.0.0", name="loose"),
        _release("2.0.0", name="loose"),
    ]

    assert _removed(policy, releases) == ["loose/1.0.0"]


# Releases


def test_keep_last_removes_older_releases_by_semver_not_by_time() -> None:
    policy = _policy({"prefix": "*", "keep_last": 2})
    # Pushed newest-first: a backport (1.10.0) arrives after 2.0.0.
    releases = [
        _release("2.0.0", age_days=5),
        _release("1.10.0", age_days=1),
        _release("1.9.0", age_days=10),
        _release("1.2.0", age_days=0.5),
    ]

    assert _removed(policy, releases) == ["app/1.2.0", "app/1.9.0"]


def test_keep_last_reason_names_the_criterion_and_the_rule_prefix() -> None:
    policy = _policy({"prefix": "ci.example.com/", "keep_last": 5})
    releases = [_release(f"1.0.{n}", name="ci.example.com/app") for n in range(6)]

    removals = policy.select(releases, NOW)

    assert removals == [
        Removal(releases[0], "beyond keep_last = 5 (rule ci.example.com/)"),
    ]


def test_keep_last_zero_removes_every_release_including_the_newest() -> None:
    policy = _policy({"prefix": "*", "keep_last": 0})
    releases = [_release("1.0.0"), _release("2.0.0"), _release("3.0.0")]

    assert _removed(policy, releases) == ["app/1.0.0", "app/2.0.0", "app/3.0.0"]


def test_max_age_removes_old_releases_but_never_the_newest_release() -> None:
    policy = _policy({"prefix": "*", "max_age": "30d"})
    releases = [
        _release("1.0.0", age_days=90),
        _release("1.1.0", age_days=10),
        _release("2.0.0", age_days=60),
    ]

    removals = policy.select(releases, NOW)

    assert [removal.release.version for removal in removals] == ["1.0.0"]
    assert removals[0].reason == "older than max_age = 30d (rule *)"


def test_max_age_with_keep_last_zero_removes_the_newest_release_too() -> None:
    policy = _policy({"prefix": "*", "max_age": "30d", "keep_last": 0})
    releases = [_release("1.0.0", age_days=90), _release("2.0.0", age_days=60)]

    assert _removed(policy, releases) == ["app/1.0.0", "app/2.0.0"]


def test_release_exactly_as_old_as_max_age_is_kept() -> None:
    policy = _policy({"prefix": "*", "max_age": "1w"})
    releases = [_release("1.0.0", age_days=7), _release("1.0.1", age_days=7.001), _release("2.0.0")]

    assert _removed(policy, releases) == ["app/1.0.1"]


def test_release_selected_by_two_criteria_lists_both_in_its_reason() -> None:
    policy = _policy({"prefix": "*", "keep_last": 1, "max_age": "2w"})
    releases = [_release("1.0.0", age_days=30), _release("2.0.0")]

    (removal,) = policy.select(releases, NOW)

    assert removal.release.version == "1.0.0"
    assert removal.reason == "beyond keep_last = 1; older than max_age = 2w (rule *)"


def test_keep_ranges_protect_matching_versions_from_every_criterion() -> None:
    policy = _policy(
        {
            "prefix": "*",
            "keep_last": 0,
            "max_age": "1d",
            "keep_last_prereleases": 0,
            "yanked_max_age": "1d",
            "keep": ["^1", ">=3.0.0, <3.1.0", "4.0.0-rc.1", "5.0.0"],
        }
    )
    releases = [
        _release("1.0.0", age_days=50),
        _release("1.4.2", age_days=50),
        _release("2.0.0", age_days=50),
        _release("3.0.5", age_days=50),
        _release("3.1.0", age_days=50),
        _release("4.0.0-rc.1", age_days=50),
        _release("4.0.0-rc.2", age_days=50),
        _release("5.0.0", age_days=50, yanked=True, yanked_days_ago=40),
    ]

    assert _removed(policy, releases) == ["app/2.0.0", "app/3.1.0", "app/4.0.0-rc.2"]


def test_keep_ranges_still_count_toward_keep_last() -> None:
    policy = _policy({"prefix": "*", "keep_last": 2, "keep": ["^1"]})
    releases = [_release("1.0.0"), _release("1.5.0"), _release("0.9.0"), _release("0.8.0")]

    assert _removed(policy, releases) == ["app/0.8.0", "app/0.9.0"]


# Pre-releases


def test_keep_last_prereleases_counts_prereleases_separately_from_releases() -> None:
    policy = _policy({"prefix": "*", "keep_last": 1, "keep_last_prereleases": 2})
    releases = [
        _release("1.0.0"),
        _release("2.0.0"),
        _release("2.0.0-rc.1"),
        _release("3.0.0-alpha.1"),
        _release("3.0.0-alpha.2"),
        _release("3.0.0-beta.1"),
    ]

    removals = policy.select(releases, NOW)

    assert [(r.release.version, r.reason) for r in removals] == [
        ("1.0.0", "beyond keep_last = 1 (rule *)"),
        ("2.0.0-rc.1", "beyond keep_last_prereleases = 2 (rule *)"),
        ("3.0.0-alpha.1", "beyond keep_last_prereleases = 2 (rule *)"),
    ]


def test_keep_last_alone_leaves_prereleases_untouched() -> None:
    policy = _policy({"prefix": "*", "keep_last": 1})
    releases = [_release(f"1.0.0-rc.{n}", age_days=400) for n in range(1, 6)]

    assert policy.select(releases, NOW) == []


def test_newest_prerelease_is_not_protected_by_the_newest_release_rule() -> None:
    policy = _policy({"prefix": "*", "prerelease_max_age": "1h"})
    releases = [_release("1.0.0-rc.1", age_days=1), _release("1.0.0-rc.2", age_days=0.5)]

    assert _removed(policy, releases) == ["app/1.0.0-rc.1", "app/1.0.0-rc.2"]


def test_prerelease_max_age_removes_only_old_prereleases() -> None:
    policy = _policy({"prefix": "*", "prerelease_max_age": "14d"})
    releases = [
        _release("1.0.0", age_days=100),
        _release("0.9.0", age_days=100),
        _release("2.0.0-rc.1", age_days=20),
        _release("2.0.0-rc.2", age_days=3),
    ]

    removals = policy.select(releases, NOW)

    assert [(r.release.version, r.reason) for r in removals] == [
        ("2.0.0-rc.1", "older than prerelease_max_age = 2w (rule *)"),
    ]


# Yanked versions


def test_yanked_max_age_measures_from_yanked_at_not_from_the_push() -> None:
    policy = _policy({"prefix": "*", "yanked_max_age": "7d"})
    releases = [
        _release("1.0.0", age_days=300, yanked=True, yanked_days_ago=2),
        _release("1.1.0", age_days=300, yanked=True, yanked_days_ago=8),
        _release("2.0.0", age_days=300),
    ]

    removals = policy.select(releases, NOW)

    assert [(r.release.version, r.reason) for r in removals] == [
        ("1.1.0", "older than yanked_max_age = 1w (rule *)"),
    ]


def test_yanked_max_age_falls_back_to_the_push_time_when_the_yank_time_is_unknown() -> None:
    policy = _policy({"prefix": "*", "yanked_max_age": "7d"})
    releases = [
        _release("1.0.0", age_days=8, yanked=True),
        _release("1.1.0", age_days=6, yanked=True),
    ]

    assert _removed(policy, releases) == ["app/1.0.0"]


def test_yanked_versions_never_count_toward_keep_last_nor_are_removed_by_it() -> None:
    policy = _policy({"prefix": "*", "keep_last": 1, "keep_last_prereleases": 1})
    releases = [
        _release("1.0.0"),
        _release("2.0.0"),
        _release("3.0.0", yanked=True),
        _release("0.5.0", yanked=True),
        _release("4.0.0-rc.1"),
        _release("4.0.0-rc.2", yanked=True),
    ]

    # 2.0.0 is the newest release although a yanked 3.0.0 exists.
    assert _removed(policy, releases) == ["app/1.0.0"]


def test_max_age_and_prerelease_max_age_do_not_apply_to_yanked_versions() -> None:
    policy = _policy({"prefix": "*", "max_age": "1d", "prerelease_max_age": "1d"})
    releases = [
        _release("1.0.0", age_days=100, yanked=True, yanked_days_ago=50),
        _release("2.0.0-rc.1", age_days=100, yanked=True, yanked_days_ago=50),
        _release("3.0.0", age_days=100),
    ]

    assert policy.select(releases, NOW) == []


# Output


def test_removals_are_ordered_by_name_then_version_precedence() -> None:
    policy = _policy({"prefix": "*", "keep_last": 1})
    releases = [
        _release("10.0.0", name="b"),
        _release("1.0.0-rc.1", name="b"),
        _release("2.0.0", name="b"),
        _release("9.0.0", name="b"),
        _release("1.0.0", name="b"),
        _release("3.0.0", name="a"),
        _release("1.0.0", name="a"),
        _release("2.0.0", name="a"),
    ]

    assert _removed(policy, releases) == ["a/1.0.0", "a/2.0.0", "b/1.0.0", "b/2.0.0", "b/9.0.0"]


def test_versions_that_are_not_semver_are_never_removed() -> None:
    policy = _policy({"prefix": "*", "keep_last": 0, "max_age": "1d"})
    releases = [_release("v1.0", age_days=100), _release("1.0.0", age_days=100)]

    assert _removed(policy, releases) == ["app/1.0.0"]


# Invalid policies


@pytest.mark.parametrize(
    ("rule_text", "problem"),
    [
        ('prefix = "b/"\nkeep_lats = 3', "unknown key(s) keep_lats"),
        ("keep_last = 3", 'prefix is required ("*" for every name)'),
        ("prefix = 7", "prefix must be a string"),
        ('prefix = "b/"\ncomment = 1', "comment must be a string"),
        ('prefix = "b/"\nkeep_last = -1', "keep_last must be a whole number >= 0"),
        ('prefix = "b/"\nkeep_last = 2.5', "keep_last must be a whole number >= 0"),
        ('prefix = "b/"\nkeep_last = true', "keep_last must be a whole number >= 0"),
        ('prefix = "b/"\nkeep_last = "5"', "keep_last must be a whole number >= 0"),
        (
            'prefix = "b/"\nkeep_last_prereleases = -2',
            "keep_last_prereleases must be a whole number >= 0",
        ),
        ('prefix = "b/"\nkeep = "^1"', "keep must be a list of version range strings"),
        ('prefix = "b/"\nkeep = [1]', "keep must be a list of version range strings"),
        ('prefix = "b/"\nkeep = ["^1", "not a range"]', "keep: invalid version filter"),
        ('prefix = "b/"\nkeep = [""]', "keep: empty version filter"),
        ('prefix = "b/"\nmax_age = "14 days"', "max_age: invalid duration '14 days'"),
        ('prefix = "b/"\nmax_age = 14', 'max_age must be a duration string such as "14d"'),
        ('prefix = "b/"\nprerelease_max_age = "0d"', "prerelease_max_age: invalid duration"),
        ('prefix = "b/"\nyanked_max_age = "1y"', "yanked_max_age: invalid duration '1y'"),
        ('prefix = "a/"', "duplicate prefix 'a/' (already used by rule 1)"),
    ],
)
def test_invalid_rule_is_refused_naming_the_file_and_rule_number(
    tmp_path: Path, rule_text: str, problem: str
) -> None:
    path = _write(tmp_path, f'[[rule]]\nprefix = "a/"\nkeep_last = 1\n\n[[rule]]\n{rule_text}\n')

    with pytest.raises(InvalidRetentionPolicy) as caught:
        RetentionPolicy.load(path)

    assert caught.value.message.startswith(f"{path}: rule 2: {problem}")


def test_star_and_empty_prefix_together_are_a_duplicate() -> None:
    with pytest.raises(InvalidRetentionPolicy) as caught:
        _policy({"prefix": ""}, {"prefix": "*", "keep_last": 1})

    assert caught.value.message == (
        "retention policy: rule 2: duplicate prefix '*' (already used by rule 1)"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[settings]\nenabled = true\n[[rule]]\nprefix = "*"\n', "unknown key(s) settings"),
        ('[rule]\nprefix = "*"\n', "`rule` must be an array of tables ([[rule]])"),
        ('rule = "keep everything"\n', "`rule` must be an array of tables ([[rule]])"),
        ("rule = [1]\n", "rule 1: must be a table ([[rule]])"),
        ("[[rule]\nprefix = 1\n", "not valid TOML"),
    ],
)
def test_malformed_policy_document_is_refused_naming_the_file(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = _write(tmp_path, text)

    with pytest.raises(InvalidRetentionPolicy) as caught:
        RetentionPolicy.load(path)

    assert caught.value.message.startswith(f"{path}: {problem}")


def test_missing_policy_file_is_refused_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    with pytest.raises(InvalidRetentionPolicy) as caught:
        RetentionPolicy.load(path)

    assert caught.value.message.startswith(f"{path}: cannot read retention policy:")


def test_policy_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "retention.toml"
    path.write_bytes(b'[[rule]]\nprefix = "\xff"\n')

    with pytest.raises(InvalidRetentionPolicy) as caught:
        RetentionPolicy.load(path)

    assert caught.value.message.startswith(f"{path}: cannot read retention policy:")
