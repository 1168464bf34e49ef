"""SemVer 2.0.0 versions: strict parsing and precedence (https://semver.org)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import total_ordering

# semver.org's grammar: no leading zeros in numeric parts, no `v` prefix, exactly three parts.
_NUM = r"0|[1-9]\d*"
_PRE_ID = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = re.compile(
    rf"^(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$",
    re.ASCII,
)

# A pre-release identifier sorts numerically when all digits, else by ASCII, and
# numeric identifiers sort before alphanumeric ones (semver.org item 11).
PreKey = tuple[tuple[int, int, str], ...]

# The reference (Rust `semver`) keeps MAJOR, MINOR and PATCH in unsigned 64-bit integers.
MAX_PART = 2**64 - 1


def _match(text: str) -> re.Match[str] | None:
    # fullmatch: `$` alone would also accept a trailing newline.
    match = _SEMVER.fullmatch(text)
    if match is None:
        return None
    # Length first, so that int() never sees an arbitrarily long digit string.
    for part in ("major", "minor", "patch"):
        if len(match[part]) > 20 or int(match[part]) > MAX_PART:
            return None
    return match


def _number(digits: str) -> str:
    return f"{len(digits):03d}{digits}"


def _pre_key(pre: str) -> PreKey:
    # Numeric identifiers have no leading zeros, so (length, digits) orders them by value
    # without converting arbitrarily long digit strings to int.
    return tuple(
        (0, len(part), part) if part.isdigit() else (1, 0, part) for part in pre.split(".")
    )


@total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A SemVer 2.0.0 version; equality and ordering follow precedence (build is ignored)."""

    major: int
    minor: int
    patch: int
    pre: str = ""
    build: str = ""
    _key: tuple[int, int, int, int, PreKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A release sorts after all of its pre-releases.
        pre_key: PreKey = _pre_key(self.pre) if self.pre else ()
        key = (self.major, self.minor, self.patch, 0 if self.pre else 1, pre_key)
        object.__setattr__(self, "_key", key)

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse a full SemVer version; raise ValueError with a readable reason otherwise."""
        match = _match(text)
        if match is None:
            raise ValueError(
                f"{text!r} is not a SemVer 2.0.0 version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], "
                "no leading zeros or 'v' prefix, numbers of at most 64 bits)"
            )
        return cls(
            int(match["major"]),
            int(match["minor"]),
            int(match["patch"]),
            match["pre"] or "",
            match["build"] or "",
        )

    @classmethod
    def is_valid(cls, text: str) -> bool:
        return _match(text) is not None

    @property
    def key(self) -> tuple[int, int, int, int, PreKey]:
        """The precedence key: compare these to compare versions."""
        return self._key

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    @property
    def ordinal(self) -> str:
        """A string whose code-point order is this version's precedence (build ignored).

        Lets a database compare versions with plain string comparisons: numbers carry a
        length prefix so they compare numerically, a release ends in `~` (after `-`, which
        starts a pre-release), and pre-release identifiers are joined by a separator that
        sorts below every identifier character.
        """
        text = _number(str(self.major)) + _number(str(self.minor)) + _number(str(self.patch))
        if not self.pre:
            return text + "~"
        identifiers = (
            "0" + _number(part) if part.isdigit() else "1" + part for part in self.pre.split(".")
        )
        return text + "-" + "\x01".join(identifiers)

    @property
    def core_text(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key == other._key

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key < other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += f"-{self.pre}"
        if self.build:
            text += f"+{self.build}"
        return text
