"""A query page (`/v1/_q`) assembled from its invoices rendered one by one.

Rendering a page of 50 invoices from scratch (parse each indexed document, then write
the whole page) was most of a query's time. Each invoice's part of the page depends on
nothing but the invoice, so the index keeps it, rendered when the invoice is written
(service/indexing.py), and a page is the head followed by those parts. The result reads
as the same document as the whole page rendered at once (tests/model/test_pages.py
checks it; in JSON it is the same bytes).
"""

from __future__ import annotations

from bindle_server.model.codec import Document, Format, dump_document, nested_toml, to_document
from bindle_server.model.invoice import Invoice


def invoice_entry(invoice: Invoice, fmt: Format) -> bytes:
    """The invoice as one element of a page's `invoices`, in `fmt`."""
    standalone = dump_document(to_document(invoice, fmt), fmt)
    return standalone if fmt is Format.JSON else toml_entry(standalone)


def toml_entry(standalone: bytes) -> bytes:
    """An invoice's TOML document (as model.dump_invoice writes it) as a page element."""
    # Each one a `[[invoices]]` table: written as a whole page, a page of small invoices
    # may come out as one inline array instead, which cannot be split.
    return nested_toml(standalone, "invoices", array=True)


def dump_page(head: Document, entries: list[bytes], fmt: Format) -> bytes:
    """The page: `head` (its other fields, `invoices` left out) and then the entries."""
    if not entries:
        return dump_document({**head, "invoices": []}, fmt)
    if fmt is Format.JSON:
        # `{...head...}` becomes `{...head...,"invoices":[e1,e2]}`.
        return dump_document(head, fmt)[:-1] + b',"invoices":[' + b",".join(entries) + b"]}"
    return dump_document(head, fmt) + b"\n" + b"\n".join(entries)
