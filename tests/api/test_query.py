"""`/_q` through the app in-process: terms, SemVer filters, paging, yanked filtering."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
import tomli
from fastapi.testclient import TestClient

from bindle_server.model import BindleId, Format, parse_invoice, to_document
from bindle_server.service import index_entry
from tests.factories import make_invoice

BINDLES = [
    ("example.com/web/app", "1.0.0"),
    ("example.com/web/app", "1.2.3"),
    ("example.com/web/app", "2.0.0-rc.1"),
    ("example.com/web/app", "2.0.0"),
    ("example.com/cli/tool", "0.2.3"),
    ("example.com/cli/tool", "0.3.0"),
    ("other.org/web/site", "1.5.0"),
]


@pytest.fixture
def catalogue(api: TestClient) -> TestClient:
    for name, version in BINDLES:
        assert api.post("/_i", content=make_invoice(name, version).toml()).status_code == 201
    return api


def _query(api: TestClient, **params: str) -> dict[str, Any]:
    response = api.get("/_q", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = tomli.loads(response.text)
    return body


def _ids(body: dict[str, Any]) -> list[str]:
    return [f"{i['bindle']['name']}/{i['bindle']['version']}" for i in body["invoices"]]


def test_empty_query_returns_everything_in_name_version_byte_order(catalogue: TestClient) -> None:
    body = _query(catalogue)
    assert _ids(body) == sorted(f"{n}/{v}" for n, v in BINDLES)
    assert body["total"] == len(BINDLES)
    assert body["more"] is False
    assert body["query"] == ""
    assert body["offset"] == 0
    assert body["limit"] == 50
    assert body["yanked"] is False
    assert isinstance(body["timestamp"], int)


def test_terms_are_anded_over_the_name(catalogue: TestClient) -> None:
    assert _query(catalogue, q="web")["total"] == 5
    assert _ids(_query(catalogue, q="web site")) == ["other.org/web/site/1.5.0"]
    assert _query(catalogue, q="web tool")["total"] == 0


def test_one_term_is_a_case_sensitive_substring_of_the_name(catalogue: TestClient) -> None:
    assert _query(catalogue, q="cli/to")["total"] == 2
    assert _query(catalogue, q="CLI")["total"] == 0


def test_terms_do_not_match_the_version(catalogue: TestClient) -> None:
    assert _query(catalogue, q="1.2.3")["total"] == 0


def test_long_parameter_names_are_accepted(catalogue: TestClient) -> None:
    body = _query(catalogue, query="tool", version="0.3.0", offset="0", limit="5")
    assert _ids(body) == ["example.com/cli/tool/0.3.0"]


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ("1.2.3", ["example.com/web/app/1.2.3"]),
        (
            "^1.0",
            ["example.com/web/app/1.0.0", "example.com/web/app/1.2.3", "other.org/web/site/1.5.0"],
        ),
        (">=1.0.0, <1.5.0", ["example.com/web/app/1.0.0", "example.com/web/app/1.2.3"]),
        (">=1.0.0 <1.5.0", ["example.com/web/app/1.0.0", "example.com/web/app/1.2.3"]),
        ("1.2.0 - 1.5.0", ["example.com/web/app/1.2.3", "other.org/web/site/1.5.0"]),
        ("^0.2.3", ["example.com/cli/tool/0.2.3"]),
        ("~0.3", ["example.com/cli/tool/0.3.0"]),
        ("0.2.3 || 2.0.0", ["example.com/cli/tool/0.2.3", "example.com/web/app/2.0.0"]),
        (">=2.0.0-rc.1", ["example.com/web/app/2.0.0", "example.com/web/app/2.0.0-rc.1"]),
        (">=1.9.0", ["example.com/web/app/2.0.0"]),
    ],
)
def test_version_filter_in_rust_and_npm_syntax(
    catalogue: TestClient, filter_: str, expected: list[str]
) -> None:
    assert sorted(_ids(_query(catalogue, v=filter_))) == sorted(expected)


def test_version_filter_combines_with_terms(catalogue: TestClient) -> None:
    assert _ids(_query(catalogue, q="app", v="^1")) == [
        "example.com/web/app/1.0.0",
        "example.com/web/app/1.2.3",
    ]


def test_unparsable_version_filter_returns_400_saying_why(catalogue: TestClient) -> None:
    response = catalogue.get("/_q", params={"v": ">>1"})
    assert response.status_code == 400
    assert "invalid version filter" in tomli.loads(response.text)["error"]


def test_paging_reports_total_and_more(catalogue: TestClient) -> None:
    every = _ids(_query(catalogue))
    first = _query(catalogue, l="3")
    second = _query(catalogue, o="3", l="3")
    last = _query(catalogue, o="6", l="3")
    assert _ids(first) + _ids(second) + _ids(last) == every
    assert (first["more"], second["more"], last["more"]) == (True, True, False)
    assert first["total"] == second["total"] == last["total"] == len(BINDLES)
    beyond = _query(catalogue, o="100")
    assert beyond["invoices"] == []
    assert beyond["more"] is False


@pytest.mark.parametrize(
    ("params", "shown"),
    [
        ({"q": "cli/tool"}, 2),  # a first page that is not full
        ({"q": "cli/tool", "l": "2"}, 2),  # exactly full: counted
        ({"q": "web", "l": "2", "o": "4"}, 1),  # a last page that is not full
        ({"q": "web", "l": "2", "o": "7"}, 0),  # past the end: counted
        ({"q": "nothing-matches"}, 0),
    ],
)
def test_the_total_holds_however_the_page_ends(
    catalogue: TestClient, params: dict[str, str], shown: int
) -> None:
    everything = _query(catalogue, **{k: v for k, v in params.items() if k == "q"}, l="100")
    body = _query(catalogue, **params)
    assert len(body["invoices"]) == shown
    assert body["total"] == len(everything["invoices"])


def test_paging_with_a_version_filter_counts_only_matches(catalogue: TestClient) -> None:
    first = _query(catalogue, v="^1", l="2")
    assert first["total"] == 3
    assert first["more"] is True
    assert len(first["invoices"]) == 2
    second = _query(catalogue, v="^1", l="2", o="2")
    assert _ids(second) == ["other.org/web/site/1.5.0"]
    assert second["more"] is False


def test_yanked_bindles_are_hidden_unless_asked_for(catalogue: TestClient) -> None:
    catalogue.delete("/_i/example.com/web/app/1.0.0")
    hidden = _query(catalogue, q="app")
    assert "example.com/web/app/1.0.0" not in _ids(hidden)
    assert hidden["total"] == 3
    shown = _query(catalogue, q="app", yanked="true")
    assert "example.com/web/app/1.0.0" in _ids(shown)
    assert shown["yanked"] is True
    yanked = next(i for i in shown["invoices"] if i["bindle"]["version"] == "1.0.0")
    assert yanked["yanked"] is True


@pytest.mark.parametrize(
    "params",
    [
        {"l": "256"},
        {"l": "-1"},
        {"o": "x"},
        {"strict": "yes"},
        {"yanked": "1"},
        {"page": "2"},
        {"q": "ab\x00"},
        {"v": "1.0.0\x00"},
    ],
)
def test_bad_parameters_return_400(catalogue: TestClient, params: dict[str, str]) -> None:
    response = catalogue.get("/_q", params=params)
    assert response.status_code == 400
    assert tomli.loads(response.text)["error"]


def test_query_answers_json_on_request_and_head_without_body(catalogue: TestClient) -> None:
    response = catalogue.get("/_q", params={"q": "tool"}, headers={"Accept": "application/json"})
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["total"] == 2
    assert body["invoices"][0]["bindle"]["description"] is None
    head = catalogue.head("/_q", params={"q": "tool"})
    assert head.status_code == 200
    assert head.content == b""


@pytest.mark.parametrize("accept", ["application/toml", "application/json"])
def test_an_entry_indexed_without_its_page_forms_is_rendered_from_the_invoice(
    catalogue: TestClient, accept: str
) -> None:
    """A PostgreSQL row from before the index kept page entries has none (migration 5):
    its page entry is rendered from the invoice, the same as a kept one reads."""
    headers = {"Accept": accept}
    before = catalogue.get("/_q", params={"q": "tool"}, headers=headers)
    service = catalogue.app.state.service  # type: ignore[attr-defined]
    invoice = parse_invoice(catalogue.get("/_i/example.com/cli/tool/0.3.0").content)
    kept = index_entry(BindleId.parse("example.com/cli/tool/0.3.0").key, invoice)
    # As the index wrote it then: the JSON without nulls, no TOML entry.
    old = json.dumps(to_document(invoice, Format.TOML))
    assert old != kept.document
    old_form = replace(kept, document=old, toml_entry="", parcels=None)
    assert catalogue.portal is not None
    catalogue.portal.call(service._index.put, old_form)
    after = catalogue.get("/_q", params={"q": "tool"}, headers=headers)
    assert after.status_code == 200
    assert _without_timestamp(after) == _without_timestamp(before)


def _without_timestamp(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = (
        response.json()
        if "json" in response.headers["content-type"]
        else tomli.loads(response.text)
    )
    body.pop("timestamp")
    return body
