"""Byte counts as people read them: `512 B`, `3.4 MiB`."""

from __future__ import annotations


def format_size(count: int) -> str:
    """`count` bytes in the largest binary unit below 1024 of it (`1.5 KiB`, `2.0 GiB`)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
