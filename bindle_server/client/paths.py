"""Where a parcel name may be written inside a directory, and which names must be refused.

A parcel name comes from an invoice, that is from whoever published the bindle, so pull
treats it as hostile: the names `model.names` refuses (absolute, `..`, backslashes,
control characters) and names that lead through a symlink out of the directory are
refused before anything is written.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from bindle_server.model.names import name_problem


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
