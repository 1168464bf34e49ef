"""Authorization: which verbs a caller may use on which bindle names.

A policy file (TOML) lists rules; each grants verbs on bindle-name prefixes to subjects:

    [[rule]]
    subjects = ["user:alice", "token:ci", "group:devs"]
    prefixes = ["example.com/team/"]
    verbs = ["read", "create"]

Subjects: `user:NAME` (htpasswd), `token:NAME` (bearer token), `group:NAME` (groups an
identity provider asserts; none do yet: the seam for OIDC), `authenticated` (any caller
with valid credentials) and `anonymous` (everyone, with or without credentials; `read`
only). Prefixes are plain string prefixes of the bindle name (`example.com/team/` covers
`example.com/team/app` but `example.com/team` also covers `example.com/teamwork`); `*`
stands for every name. Verbs: `read` (invoices, parcels through them, query, missing),
`create` (invoices and parcels), `yank`, `purge` (hard delete), `metrics` (scrape
`/metrics`; it names no bindle, so a rule granting only it may leave out `prefixes`).
Anything not granted is refused; `purge` is irreversible, so only a rule that names it
grants it (never the "no policy: authenticated callers may do everything" default).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import tomli

from bindle_server.auth.identity import Identity
from bindle_server.errors import InvalidAuthConfig

ALL_NAMES = "*"
_SUBJECT_KINDS = ("user:", "token:", "group:")
_RULE_KEYS = {"subjects", "prefixes", "verbs", "comment"}


class Verb(StrEnum):
    READ = "read"
    CREATE = "create"
    YANK = "yank"
    PURGE = "purge"
    METRICS = "metrics"


@dataclass(frozen=True)
class Rule:
    """Grant `verbs` on names starting with one of `prefixes` to any of `subjects`."""

    subjects: frozenset[str]
    prefixes: tuple[str, ...]
    verbs: frozenset[Verb]

    def covers(self, name: str) -> bool:
        return any(prefix == ALL_NAMES or name.startswith(prefix) for prefix in self.prefixes)


@dataclass(frozen=True)
class Policy:
    """The rules of a policy file; `None` prefixes from `readable_prefixes` mean every name."""

    rules: tuple[Rule, ...]
    source: str = "policy"

    @classmethod
    def load(cls, path: Path) -> Policy:
        """Read and validate a policy file; errors name the rule and what is wrong."""
        try:
            document = tomli.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidAuthConfig(f"cannot read policy file {path}: {exc}") from None
        except tomli.TOMLDecodeError as exc:
            raise InvalidAuthConfig(f"policy file {path} is not valid TOML: {exc}") from None
        return cls.from_document(document, str(path))

    @classmethod
    def from_document(cls, document: dict[str, Any], source: str = "policy") -> Policy:
        unknown = sorted(set(document) - {"rule"})
        if unknown:
            raise InvalidAuthConfig(
                f"{source}: unknown key(s) {', '.join(unknown)}; a policy has only [[rule]] tables"
            )
        rules = document.get("rule", [])
        if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
            raise InvalidAuthConfig(f"{source}: `rule` must be an array of tables ([[rule]])")
        return cls(
            tuple(_rule(rule, f"{source}: rule {n}") for n, rule in enumerate(rules, 1)), source
        )

    def allows(self, identity: Identity, verb: Verb, name: str) -> bool:
        subjects = identity.subjects
        return any(
            verb in rule.verbs and rule.subjects & subjects and rule.covers(name)
            for rule in self.rules
        )

    def may_ever(self, identity: Identity, verb: Verb) -> bool:
        subjects = identity.subjects
        return any(verb in rule.verbs and rule.subjects & subjects for rule in self.rules)

    def readable_prefixes(self, identity: Identity) -> tuple[str, ...] | None:
        subjects = identity.subjects
        prefixes = {
            prefix
            for rule in self.rules
            if Verb.READ in rule.verbs and rule.subjects & subjects
            for prefix in rule.prefixes
        }
        return None if ALL_NAMES in prefixes else _minimal(prefixes)


@dataclass(frozen=True)
class Authorizer:
    """One check for every request: `allows(identity, verb, name)`.

    Without a policy, authenticated callers may do everything. Anonymous callers may read
    everything when `anonymous_read` is on, and otherwise only what `anonymous` rules
    grant; they never create or yank (a policy refuses such rules). With `open_access`
    (no authentication configured) everyone may do everything.
    """

    policy: Policy | None = None
    anonymous_read: bool = True
    open_access: bool = False

    def allows(self, identity: Identity, verb: Verb, name: str) -> bool:
        if self.open_access:
            return True
        if verb is Verb.READ and self.anonymous_read:
            return True
        if self.policy is None:
            return not identity.is_anonymous and verb is not Verb.PURGE
        return self.policy.allows(identity, verb, name)

    def may_ever(self, identity: Identity, verb: Verb) -> bool:
        """Whether `verb` is allowed on some name (checked before a body is read)."""
        if self.open_access or (verb is Verb.READ and self.anonymous_read):
            return True
        if self.policy is None:
            return not identity.is_anonymous
        return self.policy.may_ever(identity, verb)

    def readable_prefixes(self, identity: Identity) -> tuple[str, ...] | None:
        """The name prefixes `identity` may read, or None for every name."""
        if self.open_access or self.anonymous_read:
            return None
        if self.policy is None:
            return () if identity.is_anonymous else None
        return self.policy.readable_prefixes(identity)


def _rule(rule: dict[str, Any], where: str) -> Rule:
    unknown = sorted(set(rule) - _RULE_KEYS)
    if unknown:
        raise InvalidAuthConfig(
            f"{where}: unknown key(s) {', '.join(unknown)}; expected subjects, prefixes, verbs"
        )
    subjects = _strings(rule, "subjects", where)
    verb_names = _strings(rule, "verbs", where)
    if set(verb_names) == {Verb.METRICS.value} and "prefixes" not in rule:
        prefixes = [ALL_NAMES]
    else:
        prefixes = _strings(rule, "prefixes", where)
    for subject in subjects:
        if subject in ("anonymous", "authenticated"):
            continue
        kind = next((kind for kind in _SUBJECT_KINDS if subject.startswith(kind)), None)
        if kind is None or len(subject) == len(kind):
            raise InvalidAuthConfig(
                f"{where}: invalid subject {subject!r}; expected user:NAME, token:NAME, "
                "group:NAME, authenticated or anonymous"
            )
    for prefix in prefixes:
        if prefix != ALL_NAMES and ("*" in prefix or not prefix):
            raise InvalidAuthConfig(
                f"{where}: invalid prefix {prefix!r}; prefixes are plain name prefixes "
                '(no wildcards), or "*" alone for every name'
            )
    verbs = set()
    for verb in verb_names:
        try:
            verbs.add(Verb(verb))
        except ValueError:
            raise InvalidAuthConfig(
                f"{where}: unknown verb {verb!r}; expected read, create, yank, purge or metrics"
            ) from None
    if "anonymous" in subjects and verbs - {Verb.READ}:
        raise InvalidAuthConfig(f"{where}: anonymous callers may only be granted read")
    return Rule(frozenset(subjects), tuple(prefixes), frozenset(verbs))


def _strings(rule: dict[str, Any], key: str, where: str) -> list[str]:
    values = rule.get(key)
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise InvalidAuthConfig(f"{where}: `{key}` must be a non-empty list of strings")
    return values


def _minimal(prefixes: Iterable[str]) -> tuple[str, ...]:
    """Sorted prefixes without those another one already covers."""
    kept: list[str] = []
    for prefix in sorted(prefixes):
        if not kept or not prefix.startswith(kept[-1]):
            kept.append(prefix)
    return tuple(kept)
