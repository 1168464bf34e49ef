"""Query parsing, SemVer filters and the persistent query index."""

from bindle_server.search.index import (
    Index,
    IndexEntry,
    InvoiceState,
    InvoiceStatus,
    LifecycleRow,
)
from bindle_server.search.query import Query, QueryPage
from bindle_server.search.sqlite import SqliteIndex
from bindle_server.search.versions import VersionFilter, parse_version_filter

__all__ = [
    "Index",
    "IndexEntry",
    "InvoiceState",
    "InvoiceStatus",
    "LifecycleRow",
    "Query",
    "QueryPage",
    "SqliteIndex",
    "VersionFilter",
    "parse_version_filter",
]
