"""Durations as people write them in settings and policy files: `30s`, `15m`, `1h`, `14d`, `2w`."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `45m`, `2w` or `90s` as a timedelta (ValueError otherwise)."""
    match = _DURATION.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"invalid duration {text!r}: expected a number and s, m, h, d or w (30d)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def format_duration(seconds: float) -> str:
    """The largest whole unit that writes `seconds` exactly (`86400` -> `1d`), for messages."""
    whole = int(seconds)
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{seconds:g}s"
