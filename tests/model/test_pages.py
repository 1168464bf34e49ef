"""A query page assembled from entries rendered one by one is the page rendered whole."""

from __future__ import annotations

import json
import tomllib

import pytest

from bindle_server.model import Format, parse_invoice, to_document
from bindle_server.model.codec import dump_document
from bindle_server.model.pages import dump_page, indexed_entry, invoice_entry
from tests.factories import make_invoice, parcel, spin_invoice, spin_invoice_toml
from tests.selection.invoices import multi_platform, spin_app


def _invoices() -> list[bytes]:
    spin, _ = spin_invoice()
    return [
        spin_invoice_toml(spin),
        multi_platform().toml(),
        spin_app().toml(),
        make_invoice("example.com/plain", "0.1.0").toml(),
        make_invoice("example.com/unicode", "2.0.0", [parcel('é ü 日本 "q"')]).toml(),
    ]


@pytest.mark.parametrize("fmt", [Format.TOML, Format.JSON])
@pytest.mark.parametrize("query", ["", "spin", None])
@pytest.mark.parametrize("count", [0, 1, 5])
def test_a_page_of_entries_is_the_whole_page_rendered_at_once(
    fmt: Format, query: str | None, count: int
) -> None:
    invoices = [parse_invoice(body) for body in _invoices()[:count]]
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
    # From the index's JSON, through the per-worker cache, twice.
    indexed = [i.model_dump_json(by_alias=True) for i in invoices]
    pages += [dump_page(head, [indexed_entry(d, fmt) for d in indexed], fmt) for _ in range(2)]
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


def test_an_entry_depends_only_on_the_document() -> None:
    first, second = (parse_invoice(body) for body in _invoices()[:2])
    one = indexed_entry(first.model_dump_json(by_alias=True), Format.JSON)
    other = indexed_entry(second.model_dump_json(by_alias=True), Format.JSON)
    assert json.loads(one)["bindle"]["name"] == first.bindle.name
    assert json.loads(other)["bindle"]["name"] == second.bindle.name
