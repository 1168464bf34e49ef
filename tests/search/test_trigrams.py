"""`_q` terms on the SQLite index go through the name trigrams (search/trigrams.py): the
same answers as a scan, whatever the counts say, and far fewer rows read."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bindle_server.search import IndexEntry, Query, sqlite_schema
from bindle_server.search.sqlite import SqliteIndex, _run_query
from bindle_server.search.trigrams import (
    PROBE,
    PROBED,
    TrigramCounts,
    match_expression,
    term_trigrams,
)

pytestmark = pytest.mark.anyio

# More names than PROBE share `example.com/`, so common terms take the scan.
NAMES = [
    *(f"example.com/team{n % 7}/app-{n}" for n in range(PROBE + 40)),
    "example.com/日本語/パッケージ",
    'odd.org/quote"d/name',
    "odd.org/100%_web",
    "ab",
    "xyz.io/Case/UPPER",
]


def _entry(name: str, version: str = "1.0.0", yanked: bool = False) -> IndexEntry:
    document = json.dumps({"bindle": {"name": name, "version": version}})
    return IndexEntry(f"key:{name}/{version}", name, version, yanked, document)


def _ids(documents: list[str]) -> list[str]:
    bindles = [json.loads(document)["bindle"] for document in documents]
    return [f"{bindle['name']}/{bindle['version']}" for bindle in bindles]


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[SqliteIndex]:
    opened = SqliteIndex(str(tmp_path / "index.sqlite3"))
    for name in NAMES:
        await opened.put(_entry(name))
    await opened.put(_entry("example.com/team1/app-1", "2.0.0", yanked=True))
    yield opened
    await opened.close()


def _terms() -> list[tuple[str, ...]]:
    chosen = random.Random(16)
    terms: list[tuple[str, ...]] = [
        ("example",),
        ("app-1",),
        ("app-12", "team5"),
        ("日本",),
        ("日本語/パ",),
        ('e"d',),
        ("%_w",),
        ("ab",),
        ("upper",),
        ("UPPER",),
        ("zzz",),
        ("team3", "nothing-here"),
        ("a", "p-5"),
    ]
    for _ in range(60):
        name = chosen.choice(NAMES)
        start = chosen.randrange(len(name))
        terms.append((name[start : start + chosen.randrange(1, 14)],))
    return terms


@pytest.mark.parametrize("terms", _terms())
async def test_term_queries_answer_as_the_names_say(
    index: SqliteIndex, terms: tuple[str, ...]
) -> None:
    matching = sorted(
        (f"{name}/1.0.0" for name in NAMES if all(term in name for term in terms)),
        key=str.encode,
    )
    for offset in (0, 50):
        page = await index.query(Query(terms=terms, offset=offset, limit=50))
        assert page.total == len(matching)
        assert _ids(page.documents) == matching[offset : offset + 50]


@pytest.mark.parametrize("terms", [("app-1",), ("team1",), ("app-1", "team1"), ("日本語",)])
async def test_terms_combine_with_yanked_and_readable_prefixes(
    index: SqliteIndex, terms: tuple[str, ...]
) -> None:
    listed = [*(f"{name}/1.0.0" for name in NAMES), "example.com/team1/app-1/2.0.0"]
    prefixes = ("example.com/team1/", "example.com/日本語/")
    matching = sorted(
        (
            bindle
            for bindle in listed
            if all(term in bindle.rsplit("/", 1)[0] for term in terms)
            and bindle.startswith(prefixes)
        ),
        key=str.encode,
    )
    query = Query(terms=terms, yanked=True, name_prefixes=prefixes, limit=255)
    page = await index.query(query)
    assert page.total == len(matching)
    assert _ids(page.documents) == matching
    if "app-1" in terms:
        assert "example.com/team1/app-1/2.0.0" in matching  # the yanked one


@pytest.mark.parametrize("term", ["ab\x00", "\x00\x00\x00", "app-1\x00", "x" * 4000, "日" * 2000])
async def test_terms_no_name_can_hold_match_nothing_cheaply(
    index: SqliteIndex, term: str, tmp_path: Path
) -> None:
    """A NUL cannot be read by FTS5 and a term longer than any name has thousands of
    trigrams: neither is an error, and at most PROBED trigrams are probed."""
    page = await index.query(Query(terms=(term,)))
    assert (page.total, page.documents) == (0, [])
    statements: list[str] = []
    with sqlite3.connect(tmp_path / "index.sqlite3") as db:
        db.set_trace_callback(statements.append)
        TrigramCounts().match(db, (term,))
    assert len(statements) <= PROBED


async def test_stale_counts_never_hide_a_match(index: SqliteIndex) -> None:
    """A trigram counted in no name, then written: its name is found all the same."""
    assert (await index.query(Query(terms=("qqqzzz",)))).total == 0
    await index.put(_entry("fresh.dev/qqqzzz"))
    assert _ids((await index.query(Query(terms=("qqqzzz",)))).documents) == [
        "fresh.dev/qqqzzz/1.0.0"
    ]
    await index.settle("key:fresh.dev/qqqzzz/1.0.0", None)
    assert (await index.query(Query(terms=("qqqzzz",)))).total == 0


def _steps(path: Path, query: Query, counts: TrigramCounts | None) -> int:
    """SQLite virtual machine steps (in hundreds) the query takes: work, not time."""
    db = sqlite3.connect(path)
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    db.set_progress_handler(step, 100)
    try:
        _run_query(db, query, counts)
    finally:
        db.close()
    return steps


async def test_a_rare_term_reads_its_candidates_and_a_common_one_scans(
    index: SqliteIndex, tmp_path: Path
) -> None:
    path = tmp_path / "index.sqlite3"
    rare = Query(terms=("app-123",))
    counts = TrigramCounts()
    with sqlite3.connect(path) as db:
        assert counts.match(db, ("app-123",)) is not None  # probed: now known
    assert _steps(path, rare, counts) * 5 < _steps(path, rare, None)
    with sqlite3.connect(path) as db:
        assert counts.match(db, ("example.com/",)) is None  # every trigram is common
        assert counts.match(db, ("ab", "p")) is None  # no trigram at all


def test_match_expressions_quote_each_trigram() -> None:
    assert term_trigrams(["abcd", "bcd", "xy", "a\x00bcd"]) == ["abc", "bcd"]
    assert match_expression(['a"b', "AND"]) == '"a""b" AND "AND"'


async def test_what_a_sqlite_without_trigrams_wrote_is_refilled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite that cannot read the table drops its triggers and writes on; the next one
    that can read it refills it, so names written meanwhile are found."""
    path = tmp_path / "index.sqlite3"
    first = SqliteIndex(str(path))
    await first.put(_entry("example.com/early-bird"))
    await first.close()
    with monkeypatch.context() as patched:
        patched.setattr("bindle_server.search.sqlite.TRIGRAM_CHECK", "SELECT nonesuch FROM filled")
        degraded = SqliteIndex(str(path))
        await degraded.put(_entry("example.com/late-owl"))
        assert (await degraded.query(Query(terms=("late-owl",)))).total == 1
        await degraded.close()
    reopened = SqliteIndex(str(path))
    try:
        for term in ("early-bird", "late-owl"):
            page = await reopened.query(Query(terms=(term,)))
            assert _ids(page.documents) == [f"example.com/{term}/1.0.0"]
    finally:
        await reopened.close()
    with sqlite3.connect(path) as db:
        found = db.execute(
            "SELECT rowid FROM name_trigrams WHERE name_trigrams MATCH ?", ('"owl"',)
        ).fetchall()
        assert len(found) == 1
        db.execute("INSERT INTO name_trigrams (name_trigrams, rank) VALUES ('integrity-check', 1)")


async def test_without_the_trigram_tokenizer_queries_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    unknown = tuple(
        s.replace("tokenize='trigram", "tokenize='nonesuch") for s in sqlite_schema.TRIGRAM_SCHEMA
    )
    monkeypatch.setattr("bindle_server.search.sqlite.TRIGRAM_SCHEMA", unknown)
    index = SqliteIndex(str(tmp_path / "index.sqlite3"))
    try:
        await index.put(_entry("example.com/plain"))
        assert _ids((await index.query(Query(terms=("plain",)))).documents) == [
            "example.com/plain/1.0.0"
        ]
    finally:
        await index.close()
    assert "no FTS5 trigram tokenizer" in caplog.text


async def test_the_trigrams_follow_every_write(index: SqliteIndex, tmp_path: Path) -> None:
    """FTS5's integrity check compares the table with `invoices` after upserts, yanks,
    removals and a clear."""
    await index.put(_entry("example.com/team1/app-1", "2.0.0", yanked=False))
    await index.settle("key:example.com/team2/app-2/1.0.0", None)
    check = "INSERT INTO name_trigrams (name_trigrams, rank) VALUES ('integrity-check', 1)"
    with sqlite3.connect(tmp_path / "index.sqlite3") as db:
        db.execute(check)
        assert db.execute(
            "SELECT count(*) FROM name_trigrams WHERE name_trigrams MATCH ?", ('"p-2"',)
        ).fetchone() == (len([n for n in NAMES if "p-2" in n]) - 1,)
    await index.clear()
    with sqlite3.connect(tmp_path / "index.sqlite3") as db:
        db.execute(check)
        assert db.execute(
            "SELECT count(*) FROM name_trigrams WHERE name_trigrams MATCH ?", ('"exa"',)
        ).fetchone() == (0,)
