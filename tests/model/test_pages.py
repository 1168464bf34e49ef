"""A query page assembled from entries rendered one by one is the page rendered whole."""

from __future__ import annotations

import tomllib

import pytest

from bindle_server.model import Format, dump_invoice, parse_invoice, to_document
from bindle_server.model.codec import dump_document
from bindle_server.model.pages import dump_page, invoice_entry
from bindle_server.service import index_entry
from tests.factories import make_invoice, varied_invoices


@pytest.mark.parametrize("fmt", [Format.TOML, Format.JSON])
@pytest.mark.parametrize("query", ["", "spin", None])
@pytest.mark.parametrize("count", [0, 1, 5])
def test_a_page_of_entries_is_the_whole_page_rendered_at_once(
    fmt: Format, query: str | None, count: int
) -> None:
    invoices = [parse_invoice(body) for body in varied_invoices()[:count]]
    head = {
        "query": query,
        "strict": True,
        "offset": 0,
        "limit": 50,
        "total": count,
        "more": False,
        "yanked": False,
        "timestamp": 1_800_000_000,
    }
    whole = dump_document({**head, "invoices": [to_document(i, fmt) for i in invoices]}, fmt)
    pages = [dump_page(head, [invoice_entry(i, fmt) for i in invoices], fmt)]
    # As the index keeps them, rendered from the invoice or from its stored document.
    for stored in (False, True):
        entries = [
            index_entry("k", i, stored=dump_invoice(i) if stored else None) for i in invoices
        ]
        kept = [e.document if fmt is Format.JSON else e.toml_entry for e in entries]
        pages.append(dump_page(head, [text.encode() for text in kept], fmt))
    for page in pages:
        if fmt is Format.JSON:
            assert page == whole
        else:
            assert tomllib.loads(page.decode()) == tomllib.loads(whole.decode())


def test_small_invoices_are_never_written_as_one_inline_array() -> None:
    """A page of tiny invoices, written whole, is an inline `invoices = [...]`, which
    cannot be cut into entries; each entry is a `[[invoices]]` table of its own."""
    tiny = [parse_invoice(make_invoice("a.b/c", f"1.0.{n}").toml()) for n in range(3)]
    page = dump_page({"total": 3}, [invoice_entry(i, Format.TOML) for i in tiny], Format.TOML)
    assert page.count(b"[[invoices]]") == 3
    assert [i["bindle"]["version"] for i in tomllib.loads(page.decode())["invoices"]] == [
        "1.0.0",
        "1.0.1",
        "1.0.2",
    ]


def test_the_indexed_document_reads_back_as_the_invoice() -> None:
    """The index's JSON is also what `_q` users of the service parse into invoices."""
    for body in varied_invoices():
        invoice = parse_invoice(body)
        document = index_entry("k", invoice).document
        assert type(invoice).model_validate_json(document) == invoice
