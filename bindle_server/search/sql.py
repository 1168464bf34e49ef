"""The SQL both index backends share: the query builder and the upsert.

The backends differ only in their parameter mark, their substring function and how
ORDER BY gets byte order; `Dialect` holds those, everything else is written once here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bindle_server.model.version import Version
from bindle_server.search.index import IndexEntry, IndexTotals, InvoiceState, LifecycleRow
from bindle_server.search.query import Query


@dataclass(frozen=True)
class Dialect:
    placeholder: str
    contains: str
    """Condition that `name` contains the parameter."""
    order_by: str
    """Result order: NAME/VERSION in byte order."""


SQLITE = Dialect("?", "instr(name, ?) > 0", "bindle_id")
POSTGRES = Dialect("%s", "strpos(name, %s) > 0", 'bindle_id COLLATE "C"')


@dataclass(frozen=True)
class QuerySql:
    """A query as two statements: its total count, and its page when one is wanted."""

    count: str
    count_args: list[str | int]
    page: str | None
    page_args: list[str | int]


def build_query(
    query: Query, dialect: Dialect, restriction: tuple[str, str] | None = None
) -> QuerySql:
    """The statements for `query` over the `invoices` table in `dialect`; `restriction` is
    one more condition and its argument (search/trigrams.py), which must not change what
    matches, only how fast it is found."""
    mark = dialect.placeholder
    # Pending and removing invoices are never listed.
    clauses = ["state = 'committed'"] if query.yanked else ["state = 'committed'", "yanked = 0"]
    args: list[str | int] = []
    for term in query.terms:
        clauses.append(dialect.contains)
        args.append(term)
    if query.version_filter is not None:
        condition, params = query.version_filter.sql(mark)
        clauses.append(condition)
        args.extend(params)
    if query.name_prefixes is not None:
        # substr rather than LIKE: prefixes are literal, `_` and `%` included. The length
        # is an int we computed, so it goes into the text, untyped for either driver.
        alternatives = [f"substr(name, 1, {len(p)}) = {mark}" for p in query.name_prefixes]
        clauses.append(f"({' OR '.join(alternatives)})" if alternatives else "1 = 0")
        args.extend(query.name_prefixes)
    if restriction is not None:
        clauses.append(restriction[0])
        args.append(restriction[1])
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    page = None
    if query.limit:
        page = (
            # bindle_id too: a statement that embeds this one orders by it again.
            f"SELECT document, toml_entry, bindle_id FROM invoices {where} "
            f"ORDER BY {dialect.order_by} LIMIT {mark} OFFSET {mark}"
        )
    return QuerySql(
        count=f"SELECT count(*) FROM invoices {where}",
        count_args=args,
        page=page,
        page_args=[*args, query.limit, query.offset],
    )


_COLUMNS = (
    "key, bindle_id, name, yanked, vkey, vcore, vpre, vbuild, document, toml_entry, "
    "state, created, yanked_at, touched"
)


def upsert_sql(dialect: Dialect, now: str) -> str:
    """Insert an entry, or update what a yank or a state change alters; `now` is the
    dialect's expression for the current time in unix seconds."""
    marks = ", ".join([dialect.placeholder] * 13)
    return (
        f"INSERT INTO invoices ({_COLUMNS}) VALUES ({marks}, {now}) "
        "ON CONFLICT (key) DO UPDATE SET yanked = excluded.yanked, "
        "document = excluded.document, toml_entry = excluded.toml_entry, "
        "state = excluded.state, created = excluded.created, "
        "yanked_at = excluded.yanked_at, touched = excluded.touched"
    )


def upsert_args(entry: IndexEntry) -> tuple[str | int | float | None, ...]:
    version = Version.parse(entry.version)
    return (
        entry.key,
        f"{entry.name}/{entry.version}",
        entry.name,
        int(entry.yanked),
        version.ordinal,
        version.core_text,
        int(bool(version.pre)),
        version.build,
        entry.document,
        entry.toml_entry,
        entry.state.value,
        entry.created,
        entry.yanked_at,
    )


def lifecycle_row(row: tuple[Any, ...]) -> LifecycleRow:
    """A row of LIFECYCLE_SQL as the value retention and expiry work with."""
    key, name, bindle_id, state, yanked, created, yanked_at, idle = row
    return LifecycleRow(
        key=key,
        name=name,
        version=bindle_id[len(name) + 1 :],
        state=InvoiceState(state),
        yanked=bool(yanked),
        created=float(created),
        yanked_at=None if yanked_at is None else float(yanked_at),
        idle=float(idle),
    )


LIFECYCLE_SQL = (
    "SELECT key, name, bindle_id, state, yanked, created, yanked_at, {now} - touched FROM invoices"
)


# Both counts scan narrow indexes, never the invoice documents.
TOTALS_SQL = (
    "SELECT CASE WHEN state = 'committed' AND yanked <> 0 THEN 'yanked' ELSE state END, "
    "count(*) FROM invoices GROUP BY 1",
    "SELECT count(*), coalesce(sum(size), 0) FROM parcels",
)


def index_totals(states: list[tuple[str, int]], parcels: tuple[int, int] | None) -> IndexTotals:
    """IndexTotals from the rows of the two TOTALS_SQL statements."""
    count, size = parcels or (0, 0)
    return IndexTotals({str(s): int(n) for s, n in states}, int(count), int(size))
