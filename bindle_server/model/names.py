"""Parcel names as relative paths: which ones may be written below a directory.

A label's `name` comes from whoever published the bindle, so everything that turns names
into paths (`bindle pull`, the server's by-name archives) treats it as hostile. Tar
extractors and file systems would follow an absolute name, a `..` segment, a Windows
drive or backslash separator, and make a NUL or a newline into a confusing file name;
all of those are refused here, once for the client and the server.
"""

from __future__ import annotations


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a relative path inside a directory, or None when it can."""
    if not name or name in (".", "./"):
        return "it is empty"
    if "\x00" in name:
        return "it contains a NUL character"
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return "it contains a control character"
    if "\\" in name:
        return "it contains a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        return "it is absolute"
    parts = name.split("/")
    if any(part == ".." for part in parts):
        return "it contains a '..' segment"
    if any(part in ("", ".") for part in parts):
        # `a//b`, `a/./b` and `dir/` spell a path that is not the one a tar entry names.
        return "it has an empty or '.' segment"
    return None
