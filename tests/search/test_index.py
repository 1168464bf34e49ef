"""Each index backend answers SemVer filters in SQL exactly as the filters' own `matches`."""

from __future__ import annotations

import itertools
import json

import pytest

from bindle_server.model import Version
from bindle_server.search import Index, IndexEntry, Query, parse_version_filter

VERSIONS = [
    "0.0.1",
    "0.0.3",
    "0.1.0",
    "0.2.3",
    "0.2.9",
    "0.3.0",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.0+build.5",
    "1.2.3",
    "1.2.10",
    "1.10.0",
    "2.0.0-rc.1",
    "2.0.0",
    "9.0.0",
    "10.0.0",
    "123456789012.0.0",
]

FILTERS = [
    "1.0.0",
    "1.0.0+build.5",
    "1.0.0-beta.2",
    "^1.2",
    "^0.2.3",
    "^0.0.3",
    "~1.2",
    ">=1.0.0, <2.0.0",
    ">=1.0.0 <2.0.0",
    ">1.2",
    "<=1.2",
    "1.*",
    "*",
    ">=1.0.0-alpha.1",
    ">=1.0.0-beta, <1.0.0",
    "1.2.0 - 2.0.0",
    "0.2 - 0.3",
    "0.0.1 || ^9 || >=10.0.0",
    ">=2.0.0-rc.1",
    "<1.0.0-beta.11",
]


def test_version_ordinals_sort_in_precedence_order() -> None:
    versions = [Version.parse(text) for text in VERSIONS]
    for left, right in itertools.product(versions, repeat=2):
        assert (left.ordinal < right.ordinal) == (left < right), (left, right)
        assert (left.ordinal == right.ordinal) == (left == right), (left, right)


@pytest.mark.anyio
@pytest.mark.parametrize("filter_text", FILTERS)
async def test_index_filter_matches_the_python_filter(index: Index, filter_text: str) -> None:
    version_filter = parse_version_filter(filter_text)
    expected = sorted(v for v in VERSIONS if version_filter.matches(Version.parse(v)))
    for version in VERSIONS:
        document = json.dumps({"bindle": {"name": "app", "version": version}})
        await index.put(IndexEntry(f"key-{version}", "app", version, False, document))
    page = await index.query(Query(version_filter=version_filter, limit=255))
    found = sorted(json.loads(document)["bindle"]["version"] for document in page.documents)
    assert found == expected
