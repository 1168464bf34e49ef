"""`_q` requests: parameter parsing, and the page of matches a query returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bindle_server.errors import InvalidQuery
from bindle_server.search.versions import VersionFilter, parse_version_filter

DEFAULT_LIMIT = 50
MAX_LIMIT = 255  # the reference client reads `limit` as an unsigned 8-bit integer
MAX_OFFSET = 2**63 - 1

# Short names as the spec writes them, long ones as the reference also accepts.
_ALIASES = {
    "q": "q",
    "query": "q",
    "v": "v",
    "version": "v",
    "o": "o",
    "offset": "o",
    "l": "l",
    "limit": "l",
    "strict": "strict",
    "yanked": "yanked",
}


@dataclass(frozen=True)
class Query:
    """A parsed `_q` request.

    `terms` are the whitespace-separated words of `q`; every one must occur in the bindle
    name (strict matching, section 14 item 4). Standard mode is answered like strict mode,
    which the spec allows for servers without fuzzy matching.
    """

    text: str = ""
    terms: tuple[str, ...] = ()
    version_filter: VersionFilter | None = None
    offset: int = 0
    limit: int = DEFAULT_LIMIT
    strict: bool = True
    yanked: bool = False
    name_prefixes: tuple[str, ...] | None = None
    """Only names starting with one of these (the caller's readable names); None: any."""

    @classmethod
    def from_params(cls, params: Sequence[tuple[str, str]]) -> Query:
        """Build a query from URL parameters; unknown or repeated parameters are refused."""
        values: dict[str, str] = {}
        for raw_name, value in params:
            name = _ALIASES.get(raw_name)
            if name is None:
                raise InvalidQuery(
                    f"unknown query parameter {raw_name!r}; known are q, v, o, l, strict and yanked"
                )
            if name in values:
                raise InvalidQuery(f"query parameter {raw_name!r} is given more than once")
            if "\x00" in value:
                # No name or version holds one, and PostgreSQL refuses it in text.
                raise InvalidQuery(f"query parameter {raw_name!r} must not contain a NUL")
            values[name] = value
        text = values.get("q", "")
        version = values.get("v", "")
        return cls(
            text=text,
            terms=tuple(text.split()),
            version_filter=parse_version_filter(version) if version.strip() else None,
            offset=_integer(values, "o", 0, MAX_OFFSET, 0),
            limit=_integer(values, "l", 0, MAX_LIMIT, DEFAULT_LIMIT),
            strict=_boolean(values, "strict", True),
            yanked=_boolean(values, "yanked", False),
        )


@dataclass(frozen=True)
class QueryPage:
    """One page of matches: `total` counts all of them, `documents` are this page's invoices.

    `toml_entries` are the same invoices as TOML page entries, each `""` where the index
    holds none (a PostgreSQL row from before they were kept).
    """

    total: int
    documents: list[str]
    toml_entries: list[str]


def _integer(values: Mapping[str, str], name: str, low: int, high: int, default: int) -> int:
    raw = values.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 20 or not low <= int(raw) <= high:
        raise InvalidQuery(f"query parameter {name!r} must be a whole number from {low} to {high}")
    return int(raw)


def parse_boolean(raw: str, name: str) -> bool:
    """Read a `true`/`false` parameter; anything else is an InvalidQuery."""
    if raw == "true":
        return True
    if raw == "false":
        return False
    raise InvalidQuery(f"query parameter {name!r} must be true or false, not {raw!r}")


def _boolean(values: Mapping[str, str], name: str, default: bool) -> bool:
    raw = values.get(name)
    return default if raw is None else parse_boolean(raw, name)
