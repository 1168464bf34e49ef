"""Retention policies: which stored versions of a bindle may be removed, and why.

A policy is a list of `[[rule]]` tables, each for the names starting with its `prefix`
("" or "*" for every name). `select` decides, without IO, as follows:

* Each name follows the rule with the longest matching prefix; a name no rule matches
  loses nothing. A rule with no criteria exempts its names from shorter prefixes.
* Each version is in one class: yanked; pre-release (not yanked, has a pre-release part);
  release (neither). Versions that are not SemVer are never selected.
* A release goes when `keep_last` is set and it is not among the newest `keep_last`
  releases (newest by SemVer precedence, not by push time), or when it is older than
  `max_age`. Pre-releases likewise with `keep_last_prereleases` and `prerelease_max_age`.
* A yanked version goes when `now - (yanked_at or created)` exceeds `yanked_max_age`;
  yanked versions never count toward either `keep_last`.
* Never selected: a version matching a `keep` range, and the name's newest release unless
  the rule says `keep_last = 0` (so `max_age` alone always leaves one release behind).

Removals come out ordered by name, then version precedence, each with the criteria that
selected it and the rule's prefix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import tomli

from bindle_server.errors import InvalidQuery, InvalidRetentionPolicy
from bindle_server.model.duration import format_duration, parse_duration
from bindle_server.model.version import Version
from bindle_server.search.versions import VersionFilter, parse_version_filter

_COUNT_KEYS = ("keep_last", "keep_last_prereleases")
_AGE_KEYS = ("max_age", "prerelease_max_age", "yanked_max_age")
_RULE_KEYS = frozenset({"prefix", "comment", "keep", *_COUNT_KEYS, *_AGE_KEYS})
_ALL_NAMES = ("", "*")

_RELEASE, _PRERELEASE, _YANKED = "release", "pre-release", "yanked"


@dataclass(frozen=True)
class Release:
    """One stored bindle as the index knows it (times in unix seconds)."""

    key: str
    name: str
    version: str
    yanked: bool
    created: float
    yanked_at: float | None = None


@dataclass(frozen=True)
class Removal:
    """A release the policy selects, with the human-readable reason."""

    release: Release
    reason: str


@dataclass(frozen=True)
class RetentionRule:
    """One `[[rule]]`: the names it covers and the criteria that select their versions."""

    prefix: str
    keep_last: int | None = None
    keep_last_prereleases: int | None = None
    keep: tuple[VersionFilter, ...] = ()
    max_age: timedelta | None = None
    prerelease_max_age: timedelta | None = None
    yanked_max_age: timedelta | None = None

    @property
    def label(self) -> str:
        """How reasons and logs name the rule."""
        return f"rule {self.prefix or '*'}"

    def select(self, releases: Iterable[Release], now: float) -> list[Removal]:
        """The removals among the versions of one name, in version precedence order."""
        found: list[tuple[Version, Removal]] = []
        for kind, rank, version, release in _ranked(releases):
            reasons = self._reasons(kind, rank, release, now)
            if reasons and not self._protects(kind, rank, version):
                reason = "; ".join(reasons) + f" ({self.label})"
                found.append((version, Removal(release, reason)))
        found.sort(key=lambda item: (item[0].key, item[1].release.version))
        return [removal for _, removal in found]

    def _reasons(self, kind: str, rank: int, release: Release, now: float) -> list[str]:
        if kind == _RELEASE:
            return _beyond("keep_last", self.keep_last, rank) + _older(
                "max_age", self.max_age, now - release.created
            )
        if kind == _PRERELEASE:
            return _beyond("keep_last_prereleases", self.keep_last_prereleases, rank) + _older(
                "prerelease_max_age", self.prerelease_max_age, now - release.created
            )
        # A bindle yanked long after its push is only as old as its yank; the index may not
        # know when older yanks happened, so the push time stands in.
        since = release.created if release.yanked_at is None else release.yanked_at
        return _older("yanked_max_age", self.yanked_max_age, now - since)

    def _protects(self, kind: str, rank: int, version: Version) -> bool:
        if any(keep.matches(version) for keep in self.keep):
            return True
        # The newest release is what clients resolve "latest" to; only an explicit
        # keep_last = 0 says the name may be left without one.
        return kind == _RELEASE and rank == 0 and self.keep_last != 0


@dataclass(frozen=True)
class RetentionPolicy:
    """The rules of a retention policy file; `source` names it in messages."""

    rules: tuple[RetentionRule, ...]
    source: str = "retention policy"

    @classmethod
    def load(cls, path: Path) -> RetentionPolicy:
        """Read and validate a policy file; errors name the file, the rule and the problem."""
        try:
            document = tomli.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidRetentionPolicy(f"{path}: cannot read retention policy: {exc}") from None
        except tomli.TOMLDecodeError as exc:
            raise InvalidRetentionPolicy(f"{path}: not valid TOML: {exc}") from None
        return cls.from_document(document, str(path))

    @classmethod
    def from_document(
        cls, document: dict[str, Any], source: str = "retention policy"
    ) -> RetentionPolicy:
        """Validate a parsed policy document; an empty one removes nothing."""
        unknown = sorted(set(document) - {"rule"})
        if unknown:
            raise InvalidRetentionPolicy(
                f"{source}: unknown key(s) {', '.join(unknown)}; a policy has only [[rule]] tables"
            )
        tables = document.get("rule", [])
        if not isinstance(tables, list):
            raise InvalidRetentionPolicy(f"{source}: `rule` must be an array of tables ([[rule]])")
        rules: list[RetentionRule] = []
        first_rule: dict[str, int] = {}
        for number, table in enumerate(tables, 1):
            where = f"{source}: rule {number}"
            rule = _parse_rule(table, where)
            if rule.prefix in first_rule:
                raise InvalidRetentionPolicy(
                    f"{where}: duplicate prefix {rule.prefix or '*'!r} "
                    f"(already used by rule {first_rule[rule.prefix]})"
                )
            first_rule[rule.prefix] = number
            rules.append(rule)
        return cls(tuple(rules), source)

    def rule_for(self, name: str) -> RetentionRule | None:
        """The rule with the longest prefix that `name` starts with, if any."""
        matching = [rule for rule in self.rules if name.startswith(rule.prefix)]
        return max(matching, key=lambda rule: len(rule.prefix), default=None)

    def select(self, releases: Iterable[Release], now: float) -> list[Removal]:
        """The releases this policy removes at unix time `now`, by name then version."""
        by_name: defaultdict[str, list[Release]] = defaultdict(list)
        for release in releases:
            by_name[release.name].append(release)
        removals: list[Removal] = []
        for name in sorted(by_name):
            rule = self.rule_for(name)
            if rule is not None:
                removals.extend(rule.select(by_name[name], now))
        return removals

    def describe(self) -> str:
        """One line for logs: the source and how many rules it holds."""
        return f"{self.source} ({len(self.rules)} rule(s))"


def _ranked(releases: Iterable[Release]) -> Iterator[tuple[str, int, Version, Release]]:
    """Each parsable version with its class and rank in it (0 = highest precedence)."""
    classes: dict[str, list[tuple[Version, Release]]] = {_RELEASE: [], _PRERELEASE: [], _YANKED: []}
    for release in releases:
        try:
            version = Version.parse(release.version)
        except ValueError:
            continue
        kind = _YANKED if release.yanked else _PRERELEASE if version.pre else _RELEASE
        classes[kind].append((version, release))
    for kind, members in classes.items():
        members.sort(key=lambda member: member[0].key, reverse=True)
        for rank, (version, release) in enumerate(members):
            yield kind, rank, version, release


def _beyond(key: str, limit: int | None, rank: int) -> list[str]:
    return [f"beyond {key} = {limit}"] if limit is not None and rank >= limit else []


def _older(key: str, limit: timedelta | None, age: float) -> list[str]:
    if limit is None or age <= limit.total_seconds():
        return []
    return [f"older than {key} = {format_duration(limit.total_seconds())}"]


def _parse_rule(table: object, where: str) -> RetentionRule:
    if not isinstance(table, dict):
        raise InvalidRetentionPolicy(f"{where}: must be a table ([[rule]])")
    unknown = sorted(set(table) - _RULE_KEYS)
    if unknown:
        raise InvalidRetentionPolicy(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}; "
            f"expected {', '.join(sorted(_RULE_KEYS))}"
        )
    prefix = table.get("prefix")
    if prefix is None:
        raise InvalidRetentionPolicy(f'{where}: prefix is required ("*" for every name)')
    if not isinstance(prefix, str):
        raise InvalidRetentionPolicy(f"{where}: prefix must be a string")
    if not isinstance(table.get("comment", ""), str):
        raise InvalidRetentionPolicy(f"{where}: comment must be a string")
    return RetentionRule(
        prefix="" if prefix in _ALL_NAMES else prefix,
        keep_last=_count(table, "keep_last", where),
        keep_last_prereleases=_count(table, "keep_last_prereleases", where),
        keep=_keep(table.get("keep", []), where),
        max_age=_age(table, "max_age", where),
        prerelease_max_age=_age(table, "prerelease_max_age", where),
        yanked_max_age=_age(table, "yanked_max_age", where),
    )


def _count(table: dict[str, object], key: str, where: str) -> int | None:
    value = table.get(key)
    # TOML booleans arrive as Python bools, which are ints; `keep_last = true` is a mistake.
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise InvalidRetentionPolicy(f"{where}: {key} must be a whole number >= 0")


def _age(table: dict[str, object], key: str, where: str) -> timedelta | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRetentionPolicy(f'{where}: {key} must be a duration string such as "14d"')
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InvalidRetentionPolicy(f"{where}: {key}: {exc}") from None


def _keep(value: object, where: str) -> tuple[VersionFilter, ...]:
    if not isinstance(value, list) or not all(isinstance(text, str) for text in value):
        raise InvalidRetentionPolicy(f"{where}: keep must be a list of version range strings")
    filters: list[VersionFilter] = []
    for text in value:
        try:
            filters.append(parse_version_filter(text))
        except InvalidQuery as exc:
            raise InvalidRetentionPolicy(f"{where}: keep: {exc.message}") from None
    return tuple(filters)
