"""SemVer filters for `_q?v=`: a plain version, Rust `semver` requirements, npm ranges.

BINDLE-PROTOCOL.md section 14 item 6. Which syntax a filter is read in:

* a full version (`1.2.3`, `1.0.0-beta.1`) means exactly that version (npm style);
* comma-separated comparators, or a single one (`^1.2`, `>=1.0, <2.0`, `1.2`), are a
  requirement of the Rust `semver` crate, where a bare partial version means caret;
* `||`, hyphen ranges (`1.2.3 - 1.5`) or space-joined comparators (`>=1.0 <2.0`) are an
  npm range, where a bare partial version is an X-range (`1.2` = `1.2.x`).

In both, a pre-release version matches only when a comparator of the same alternative
names a pre-release of the same MAJOR.MINOR.PATCH.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from bindle_server.errors import InvalidQuery
from bindle_server.model.version import MAX_PART, Version

_OPERATORS = ("<=", ">=", "~>", "<", ">", "=", "~", "^")
_WILDCARD = ("*", "x", "X")
_PART = r"(?:0|[1-9]\d*|\*|x|X)"
_IDENT = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_PARTIAL = re.compile(
    rf"^(?P<major>{_PART})(?:\.(?P<minor>{_PART})(?:\.(?P<patch>{_PART})"
    rf"(?:-(?P<pre>{_IDENT}))?(?:\+{_IDENT})?)?)?$"
)
_COMPARATOR = re.compile(r"^(?P<op><=|>=|~>|<|>|=|~|\^)?\s*(?P<version>\S+)$")
_HYPHEN = re.compile(r"^(?P<low>\S+)\s+-\s+(?P<high>\S+)$")
# A comparator inside a space-joined npm range: an optional operator, optional spaces, a version.
_NPM_TOKEN = re.compile(r"(?:<=|>=|~>|<|>|=|~|\^)?\s*[^\s<>=~^]+")

_Compare = Callable[[tuple[object, ...], tuple[object, ...]], bool]
_SQL_OPS = {">=": ">=", ">": ">", "<=": "<=", "<": "<", "==": "="}
_OPS: dict[str, _Compare] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}


@dataclass(frozen=True)
class _Partial:
    major: int | None
    minor: int | None
    patch: int | None
    pre: str
    # Written with `*`/`x`: in Rust syntax a bare `1.2.*` is that wildcard, not a caret.
    wildcard: bool = False

    def floor(self) -> Version:
        return Version(self.major or 0, self.minor or 0, self.patch or 0, self.pre)

    @property
    def is_full(self) -> bool:
        return self.patch is not None


@dataclass(frozen=True)
class _ComparatorSet:
    """Comparators that must all hold, plus the cores whose pre-releases may match."""

    bounds: tuple[tuple[str, Version], ...]
    pre_cores: frozenset[tuple[int, int, int]]

    def matches(self, version: Version) -> bool:
        if version.pre and version.core not in self.pre_cores:
            return False
        return all(_OPS[op](version.key, bound.key) for op, bound in self.bounds)

    def sql(self, placeholder: str) -> tuple[str, list[str]]:
        clauses = [f"vkey {_SQL_OPS[op]} {placeholder}" for op, _ in self.bounds]
        params = [bound.ordinal for _, bound in self.bounds]
        cores = sorted(f"{major}.{minor}.{patch}" for major, minor, patch in self.pre_cores)
        marks = ", ".join([placeholder] * len(cores))
        clauses.append(f"(vpre = 0 OR vcore IN ({marks}))" if cores else "vpre = 0")
        return "(" + " AND ".join(clauses) + ")", [*params, *cores]


@dataclass(frozen=True)
class VersionFilter:
    """A parsed `v` filter: the version matches if any alternative matches."""

    text: str
    alternatives: tuple[_ComparatorSet, ...]
    exact_build: str | None = None

    def matches(self, version: Version) -> bool:
        if self.exact_build is not None and version.build != self.exact_build:
            return False
        return any(alternative.matches(version) for alternative in self.alternatives)

    def sql(self, placeholder: str = "?") -> tuple[str, list[str]]:
        """The filter as an SQL condition over an index's version columns.

        `vkey` holds Version.ordinal, `vcore` "MAJOR.MINOR.PATCH", `vpre` 1 for a
        pre-release, `vbuild` the build metadata. Equivalent to `matches` when `vkey`
        compares in byte order (in PostgreSQL: COLLATE "C"). `placeholder` is the
        driver's parameter mark: `?` for sqlite3, `%s` for psycopg.
        """
        parts = [alternative.sql(placeholder) for alternative in self.alternatives]
        condition = "(" + " OR ".join(text for text, _ in parts) + ")"
        params = [param for _, alternative_params in parts for param in alternative_params]
        if self.exact_build is not None:
            condition = f"({condition} AND vbuild = {placeholder})"
            params.append(self.exact_build)
        return condition, params


def parse_version_filter(text: str) -> VersionFilter:
    """Parse a `v` filter; raise InvalidQuery saying why when it cannot be read."""
    stripped = text.strip()
    if not stripped:
        raise InvalidQuery("empty version filter")
    if Version.is_valid(stripped):
        exact = Version.parse(stripped)
        pre_cores = frozenset({exact.core}) if exact.pre else frozenset()
        build = exact.build or None
        return VersionFilter(text, (_ComparatorSet((("==", exact),), pre_cores),), build)
    try:
        return VersionFilter(text, _parse_alternatives(stripped))
    except ValueError as exc:
        raise InvalidQuery(f"invalid version filter {text!r}: {exc}") from None


# Each comparator becomes one SQL condition; SQLite refuses expressions ~1000 deep, and no
# real filter needs more than a handful.
MAX_COMPARATORS = 64


def _parse_alternatives(text: str) -> tuple[_ComparatorSet, ...]:
    if text.count("||") + text.count(",") + len(text.split()) > MAX_COMPARATORS:
        raise ValueError(f"more than {MAX_COMPARATORS} comparators")
    alternatives = [part.strip() for part in text.split("||")]
    npm = len(alternatives) > 1
    sets = []
    for alternative in alternatives:
        hyphen = _HYPHEN.match(alternative)
        if hyphen:
            sets.append(_hyphen_range(hyphen["low"], hyphen["high"]))
            continue
        if not alternative:
            if not npm:
                raise ValueError("empty requirement")
            alternative = "*"
        if "," in alternative:
            tokens = [token.strip() for token in alternative.split(",")]
            space_joined = False
        else:
            tokens = [token.strip() for token in _NPM_TOKEN.findall(alternative)]
            if "".join(tokens).replace(" ", "") != alternative.replace(" ", ""):
                raise ValueError(f"cannot read {alternative!r}")
            space_joined = len(tokens) > 1
        sets.append(_comparator_set(tokens, npm=npm or space_joined))
    return tuple(sets)


def _comparator_set(tokens: list[str], *, npm: bool) -> _ComparatorSet:
    bounds: list[tuple[str, Version]] = []
    pre_cores: set[tuple[int, int, int]] = set()
    for token in tokens:
        if not token:
            raise ValueError("empty comparator")
        match = _COMPARATOR.match(token)
        if match is None:
            raise ValueError(f"cannot read comparator {token!r}")
        op = match["op"] or ""
        partial = _parse_partial(match["version"])
        if partial.pre:
            pre_cores.add(partial.floor().core)
        bounds.extend(_bounds(op, partial, npm=npm))
    return _ComparatorSet(tuple(bounds), frozenset(pre_cores))


def _hyphen_range(low_text: str, high_text: str) -> _ComparatorSet:
    low, high = _parse_partial(low_text), _parse_partial(high_text)
    bounds = [(">=", low.floor())]
    bounds.extend(_bounds("<=", high, npm=True))
    pre_cores = {p.floor().core for p in (low, high) if p.pre}
    return _ComparatorSet(tuple(bounds), frozenset(pre_cores))


def _parse_partial(text: str) -> _Partial:
    match = _PARTIAL.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a version or partial version")
    parts: list[int | None] = []
    wildcard = False
    for name in ("major", "minor", "patch"):
        wildcard = wildcard or match[name] in _WILDCARD
        value = match[name]
        # Everything after the first wildcard or missing part is a wildcard too.
        if value is None or value in _WILDCARD or (parts and parts[-1] is None):
            parts.append(None)
        elif len(value) > 20 or int(value) > MAX_PART:
            raise ValueError(f"{text!r}: version numbers must fit in 64 bits")
        else:
            parts.append(int(value))
    major, minor, patch = parts
    pre = match["pre"] or ""
    if pre and patch is None:
        raise ValueError(f"{text!r}: a pre-release needs a full MAJOR.MINOR.PATCH")
    return _Partial(major, minor, patch, pre, wildcard)


def _bounds(op: str, v: _Partial, *, npm: bool) -> list[tuple[str, Version]]:
    if v.major is None:
        return [] if op in ("", "=", ">=", "<=", "~", "~>", "^") else [("<", Version(0, 0, 0, "0"))]
    if op == "":
        op = "=" if npm or v.wildcard else "^"
    floor = v.floor()
    major, minor = v.major, v.minor
    if op == "=":
        if v.is_full:
            return [("==", floor)]
        return [(">=", floor), ("<", _next(major, minor))]
    if op == ">":
        return [(">", floor)] if v.is_full else [(">=", _next(major, minor))]
    if op == ">=":
        return [(">=", floor)]
    if op == "<":
        return [("<", floor)]
    if op == "<=":
        return [("<=", floor)] if v.is_full else [("<", _next(major, minor))]
    if op in ("~", "~>"):
        upper = Version(major + 1, 0, 0) if minor is None else Version(major, minor + 1, 0)
        return [(">=", floor), ("<", upper)]
    # Caret: the left-most non-zero part of what was written may not change.
    if major > 0 or minor is None:
        upper = Version(major + 1, 0, 0)
    elif minor > 0 or v.patch is None:
        upper = Version(0, minor + 1, 0)
    else:
        upper = Version(0, 0, v.patch + 1)
    return [(">=", floor), ("<", upper)]


def _next(major: int, minor: int | None) -> Version:
    """The first version after the X-range `major[.minor].x`."""
    return Version(major + 1, 0, 0) if minor is None else Version(major, minor + 1, 0)
