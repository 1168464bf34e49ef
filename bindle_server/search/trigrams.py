"""Which invoices a `_q` term can match, from the trigrams of their names (SQLite index).

A term of three characters or more occurs only in names that hold every trigram of it, so
the names holding its rarest trigrams are the only candidates, and a query checks those
rows instead of scanning every invoice. The `name_trigrams` FTS5 table (sqlite_schema.py)
lists the names holding each trigram. FTS5's own AND over all of a term's trigrams walks
the lists of the common ones too (`ben` of `bench.example/...` is in every name), which
made it no faster than the scan; so the rarest two are picked here, from counts probed up
to PROBE and kept for a while per process.

The counts only choose the plan. The query still checks every term with `instr`, and a
name holding the trigrams is listed whatever the counts say: a stale count costs time,
never a wrong answer.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

PROBE = 512
"""Counts stop here: a trigram in this many names or more leaves the query to the scan,
which finds a page of common matches at the start of its walk."""
COUNTS_SECONDS = 60.0
PROBED = 32
"""Trigrams looked at per query at most, spread over its terms: a URL may hold terms of
any length, and a probe holds the index's connection. Any subset restricts correctly."""
_COUNTS_KEPT = 16_384
_CANDIDATES = 2

_PROBE_SQL = (
    "SELECT count(*) FROM (SELECT 1 FROM name_trigrams WHERE name_trigrams MATCH ? LIMIT ?)"
)
RESTRICTION = "id IN (SELECT rowid FROM name_trigrams WHERE name_trigrams MATCH ?)"
"""The condition that limits a query to the candidates; its one argument from `match`."""


def term_trigrams(terms: Sequence[str]) -> list[str]:
    """Every distinct trigram of the terms long enough to have one, in order of appearance,
    but those holding a NUL, which FTS5 cannot read in a query (and no name holds)."""
    found = (term[start : start + 3] for term in terms for start in range(len(term) - 2))
    return [trigram for trigram in dict.fromkeys(found) if "\x00" not in trigram]


def match_expression(trigrams: Sequence[str]) -> str:
    """An FTS5 query for the names holding all of `trigrams`, each quoted as a string."""
    return " AND ".join('"' + trigram.replace('"', '""') + '"' for trigram in trigrams)


class TrigramCounts:
    """How many names hold each trigram, up to PROBE, as probed within COUNTS_SECONDS.

    Used from the index's connection only, one batch at a time (sqlitedb.SharedConnection).
    """

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}

    def match(self, db: sqlite3.Connection, terms: Sequence[str]) -> str | None:
        """The MATCH argument of RESTRICTION for `terms`, or None when a scan is better:
        no term has a trigram, or even the rarest is common."""
        trigrams = term_trigrams(terms)
        if not trigrams:
            return None
        trigrams = trigrams[:: -(-len(trigrams) // PROBED)]  # PROBED at most
        now = time.monotonic()
        counted = sorted((self._count(db, trigram, now), trigram) for trigram in trigrams)
        rare = [trigram for count, trigram in counted[:_CANDIDATES] if count < PROBE]
        return match_expression(rare) if rare else None

    def _count(self, db: sqlite3.Connection, trigram: str, now: float) -> int:
        known = self._counts.get(trigram)
        if known is not None and now - known[1] < COUNTS_SECONDS:
            return known[0]
        count = int(db.execute(_PROBE_SQL, (match_expression([trigram]), PROBE)).fetchone()[0])
        if len(self._counts) >= _COUNTS_KEPT:
            self._counts.clear()
        self._counts[trigram] = (count, now)
        return count
