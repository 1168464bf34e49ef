"""The index filters by readable name prefixes in SQL: literal prefixes, counts included."""

from __future__ import annotations

import anyio
import pytest

from bindle_server.search import IndexEntry, Query, SqliteIndex

NAMES = ["a_b/x", "axb/x", "a%/y", "team/app", "team/lib", "teamwork/app", "ünï/app"]


async def _names(prefixes: tuple[str, ...] | None) -> tuple[int, list[str]]:
    index = SqliteIndex(":memory:")
    try:
        for name in NAMES:
            await index.put(IndexEntry(f"k-{name}", name, "1.0.0", False, f'"{name}"'))
        page = await index.query(Query(name_prefixes=prefixes))
        return page.total, [document.strip('"') for document in page.documents]
    finally:
        await index.close()


@pytest.mark.parametrize(
    ("prefixes", "expected"),
    [
        (None, sorted(NAMES)),
        ((), []),
        (("team/",), ["team/app", "team/lib"]),
        (("team",), ["team/app", "team/lib", "teamwork/app"]),
        (("a_",), ["a_b/x"]),  # `_` is not a wildcard
        (("a%",), ["a%/y"]),  # nor is `%`
        (("ünï/", "team/l"), ["team/lib", "ünï/app"]),
    ],
)
def test_name_prefixes_filter_results_and_total(
    prefixes: tuple[str, ...] | None, expected: list[str]
) -> None:
    total, names = anyio.run(_names, prefixes)
    assert (total, sorted(names)) == (len(expected), expected)
