"""`_q?upstream=true`: local and upstream matches as one page, de-duplicated by bindle id."""

from __future__ import annotations

from collections.abc import Sequence

from bindle_server.mirror.upstream import UpstreamPage
from bindle_server.model import Invoice
from bindle_server.search.query import Query
from bindle_server.service import QueryResult


def merge_pages(query: Query, local: QueryResult, pages: Sequence[UpstreamPage]) -> QueryResult:
    """One page of `query` from the local matches and each upstream's first matches.

    Each source was asked for its first `offset + limit` matches, so the page is exact;
    the total counts every source's matches, less the duplicates seen among those asked
    for (exact whenever every source's matches fit in that window). An invoice stored
    here wins over an upstream's copy of it. Upstream matches are filtered as local ones
    are: yanked ones only with `yanked=true`, and only names the caller may read.
    """
    seen: set[str] = set()
    merged: list[Invoice] = []
    total = local.total
    for invoice in local.invoices:
        seen.add(str(invoice.bindle_id))
        merged.append(invoice)
    for page in pages:
        total += page.total
        for invoice in page.invoices:
            bindle_id = str(invoice.bindle_id)
            if bindle_id in seen:
                total -= 1
                continue
            if not _visible(query, invoice):
                total -= 1
                continue
            seen.add(bindle_id)
            merged.append(invoice)
    # The local index's order: NAME/VERSION in byte order.
    merged.sort(key=lambda invoice: str(invoice.bindle_id).encode())
    window = merged[query.offset : query.offset + query.limit]
    return QueryResult(query, max(total, len(merged)), window)


def _visible(query: Query, invoice: Invoice) -> bool:
    if invoice.is_yanked and not query.yanked:
        return False
    prefixes = query.name_prefixes
    return prefixes is None or invoice.bindle.name.startswith(tuple(prefixes))
