"""Requests built once for both clients, and the reading of their answers: built and
read here without a network (the answers are made by hand)."""

from __future__ import annotations

import httpx
import pytest

from bindle_server.client import (
    InvalidInput,
    InvoiceNotFound,
    NotABindleServer,
    ParcelNotFound,
    QueryPage,
    calls,
)
from bindle_server.client.errors import Addressed
from bindle_server.model import parse_invoice
from tests.factories import make_invoice

SHA = "a" * 64


def _answer(
    status: int, body: bytes, method: str = "GET", url: str = "http://h:8080/_i/a/1.0.0"
) -> httpx.Response:
    return httpx.Response(status, content=body, request=httpx.Request(method, url))


def test_each_call_says_what_to_send_and_whether_it_may_be_repeated() -> None:
    get = calls.get_invoice("example.com/app/1.0.0+build.1", yanked=True)
    assert (get.method, get.path, get.params) == (
        "GET",
        "_i/example.com/app/1.0.0+build.1",
        {"yanked": "true"},
    )
    assert get.repeatable and get.addressed is Addressed.INVOICE

    created = calls.create_invoice(b'bindleVersion = "1.0.0"\n')
    assert (created.method, created.path, created.repeatable) == ("POST", "_i", False)
    assert created.headers == {"Content-Type": "application/toml"}

    exists = calls.parcel_exists("example.com/app/1.0.0", SHA, yanked=False)
    assert (exists.method, exists.path, exists.params) == (
        "HEAD",
        f"_i/example.com/app/1.0.0@{SHA}",
        {},
    )
    assert exists.repeatable  # a HEAD may always be repeated (both clients retry it)

    missing = calls.missing_parcels("example.com/app/1.0.0")
    assert missing.path == "_r/missing/example.com/app/1.0.0"
    assert calls.yank_invoice("example.com/app/1.0.0").method == "DELETE"
    keys = calls.host_keys(["host", "approver"], url="https://keys.example.com/bindle-keys")
    assert (keys.path, keys.params) == (
        "https://keys.example.com/bindle-keys",
        {"roles": "host,approver"},
    )
    with pytest.raises(InvalidInput):
        calls.get_invoice("no-version", yanked=False)
    with pytest.raises(InvalidInput):
        calls.parcel_exists("example.com/app/1.0.0", "not-a-digest", yanked=False)


def test_a_query_sends_only_the_parameters_it_was_given() -> None:
    assert calls.query().params == {}
    page = calls.query("app", "^1", offset=10, limit=5, strict=False, yanked=True)
    assert page.params == {
        "q": "app",
        "v": "^1",
        "o": "10",
        "l": "5",
        "strict": "false",
        "yanked": "true",
    }


INVOICE = parse_invoice(make_invoice("example.com/app", "1.0.0").toml())


def _page(offset: int, count: int, total: int, more: bool) -> QueryPage:
    return QueryPage("q", True, offset, count, total, more, False, [INVOICE] * count)


def test_paging_walks_the_pages_until_the_server_has_no_more() -> None:
    paging = calls.QueryPaging("app", None, page_size=2, yanked=True)
    first = paging.next()
    assert first is not None and first.params == {"q": "app", "o": "0", "l": "2", "yanked": "true"}
    assert len(paging.took(_page(0, 2, 3, more=True))) == 2
    second = paging.next()
    assert second is not None and second.params["o"] == "2"
    paging.took(_page(2, 1, 3, more=False))
    assert paging.next() is None


def test_paging_ends_when_a_server_claims_more_forever() -> None:
    paging = calls.QueryPaging(None, None, page_size=10)
    pages = 0
    while paging.next() is not None:
        paging.took(_page(pages * 10, 10, 25, more=True))
        pages += 1
    assert pages == 25 // 10 + 2


@pytest.mark.parametrize(
    "body",
    [b"", b"404 page not found", b"<html><body>Not Found</body></html>", b'error = "Not Found"\n'],
)
def test_a_404_without_a_bindle_error_says_the_url_is_not_a_bindle_api_root(body: bytes) -> None:
    get = calls.get_invoice("a/1.0.0", yanked=False)
    with pytest.raises(NotABindleServer) as raised:
        get.outcome(_answer(404, body), "http://h:8080/")
    message = str(raised.value)
    assert "http://h:8080/ does not look like a Bindle server's API root" in message
    assert "did you mean http://h:8080/v1/ ?" in message


def test_with_v1_in_the_url_the_advice_is_to_check_it() -> None:
    url = "http://h:8080/v1/_i/a/1.0.0"
    with pytest.raises(NotABindleServer, match="check the server URL"):
        calls.get_invoice("a/1.0.0", yanked=False).outcome(
            _answer(404, b"", url=url), "http://h:8080/v1/"
        )


def test_a_bindle_404_still_names_what_is_missing() -> None:
    get = calls.get_invoice("a/1.0.0", yanked=False)
    with pytest.raises(InvoiceNotFound, match=r"invoice a/1\.0\.0 not found"):
        get.outcome(_answer(404, b'error = "invoice a/1.0.0 not found"\n'), "http://h/v1/")
    download = _answer(404, b'error = "parcel aaa has not been uploaded"\n')
    with pytest.raises(ParcelNotFound):
        calls.raise_for_status(download, Addressed.PARCEL, "http://h/v1/")
    # A HEAD answer has no body: its 404 is the parcel's absence, not a wrong URL.
    exists = calls.parcel_exists("a/1.0.0", SHA, yanked=False)
    assert exists.outcome(_answer(404, b"", "HEAD"), "http://h:8080/") is False
    assert exists.outcome(_answer(200, b"", "HEAD"), "http://h:8080/") is True
