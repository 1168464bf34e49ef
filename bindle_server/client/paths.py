"""Where a parcel name may be written inside a directory, and which names must be refused.

A parcel name comes from an invoice, that is from whoever published the bindle, so pull
treats it as hostile: absolute names, `..` segments, backslashes, NUL and names that
lead through a symlink out of the directory are refused before anything is written.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a relative path inside a directory, or None when it can."""
    if not name or name in (".", "./"):
        return "it is empty"
    if "\x00" in name:
        return "it contains a NUL character"
    if "\\" in name:
        return "it contains a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        return "it is absolute"
    if any(part == ".." for part in name.split("/")):
        return "it contains a '..' segment"
    return None


def safe_destination(root: Path, name: str) -> Path | None:
    """The path `name` denotes under `root`, or None when it would leave `root`.

    Existing symlinks under `root` are followed while checking, so `link/x` is refused
    when `link` points outside.
    """
    if name_problem(name) is not None:
        return None
    base = root.resolve()
    candidate = base.joinpath(*PurePosixPath(name).parts)
    resolved = candidate.resolve()
    if resolved == base or not resolved.is_relative_to(base):
        return None
    return candidate
