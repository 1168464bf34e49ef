"""Validators and `If-None-Match` on invoices and parcels, in-process on an open server."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.factories import ParcelData, make_invoice, parcel

ID = "example.com/hello/1.0.0"
INVOICE = f"/_i/{ID}"
JSON = {"Accept": "application/json"}


@pytest.fixture
def stored(api: TestClient) -> ParcelData:
    """A committed invoice listing one uploaded parcel."""
    data = parcel(b"cached bytes\n" * 100, media_type="text/plain", name="notes.txt")
    assert api.post("/_i", content=make_invoice(parcels=[data]).toml()).status_code == 202
    assert api.post(f"/_i/{ID}@{data.sha256}", content=data.data).status_code == 200
    return data


def _etag(response: httpx.Response) -> str:
    assert response.status_code == 200
    return response.headers["etag"]


def test_invoice_etag_is_the_quoted_digest_of_the_served_bytes_and_stable(
    api: TestClient, stored: ParcelData
) -> None:
    first = api.get(INVOICE)
    assert _etag(first) == f'"{hashlib.sha256(first.content).hexdigest()}"'
    assert _etag(api.get(INVOICE)) == first.headers["etag"]
    assert first.headers["vary"] == "Accept"


def test_invoice_head_carries_the_same_validator_and_caching_headers_as_get(
    api: TestClient, stored: ParcelData
) -> None:
    for accept in ({}, JSON):
        get, head = api.get(INVOICE, headers=accept), api.head(INVOICE, headers=accept)
        assert head.status_code == 200
        assert head.content == b""
        for name in ("etag", "cache-control", "vary", "content-type", "content-length"):
            assert head.headers[name] == get.headers[name], name


def test_json_and_toml_representations_have_different_etags(
    api: TestClient, stored: ParcelData
) -> None:
    toml_tag, json_tag = _etag(api.get(INVOICE)), _etag(api.get(INVOICE, headers=JSON))
    assert toml_tag != json_tag
    # Each validator revalidates only its own representation.
    assert api.get(INVOICE, headers={**JSON, "If-None-Match": json_tag}).status_code == 304
    assert api.get(INVOICE, headers={**JSON, "If-None-Match": toml_tag}).status_code == 200
    assert api.get(INVOICE, headers={"If-None-Match": json_tag}).status_code == 200


def test_if_none_match_with_the_invoice_etag_returns_304_with_its_caching_headers(
    api: TestClient, stored: ParcelData
) -> None:
    full = api.get(INVOICE)
    for method in ("GET", "HEAD"):
        response = api.request(method, INVOICE, headers={"If-None-Match": full.headers["etag"]})
        assert response.status_code == 304
        assert response.content == b""
        for name in ("etag", "cache-control", "vary"):
            assert response.headers[name] == full.headers[name], name


def test_if_none_match_with_the_parcel_digest_returns_304_with_its_caching_headers(
    api: TestClient, stored: ParcelData
) -> None:
    url = f"{INVOICE}@{stored.sha256}"
    full = api.get(url)
    assert full.headers["etag"] == f'"{stored.sha256}"'
    for method in ("GET", "HEAD"):
        response = api.request(method, url, headers={"If-None-Match": f'"{stored.sha256}"'})
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["etag"] == full.headers["etag"]
        assert response.headers["cache-control"] == full.headers["cache-control"]


def test_if_none_match_wins_over_range(api: TestClient, stored: ParcelData) -> None:
    """RFC 9110 section 13.2.2: If-None-Match is evaluated before Range."""
    response = api.get(
        f"{INVOICE}@{stored.sha256}",
        headers={"If-None-Match": f'"{stored.sha256}"', "Range": "bytes=0-9"},
    )
    assert response.status_code == 304


@pytest.mark.parametrize(
    ("template", "status"),
    [
        ("{tag}", 304),
        ("*", 304),
        (" \t{tag}\t ", 304),
        ('"other", {tag}', 304),
        ('"other",{tag},"more"', 304),
        ('"other", , {tag},', 304),  # empty list members are allowed
        ('W/"other", W/{tag}', 304),  # weak comparison: the W/ prefix is ignored
        ("W/{tag}", 304),
        ('"other"', 200),
        ('"other", "more"', 200),
        ('W/"other"', 200),
        ("w/{tag}", 200),  # the weak prefix is case-sensitive: not an entity tag
        ("{bare}", 200),  # unquoted: not an entity tag
        ('"other" {tag}', 200),  # not a comma-separated list
        ("*, {tag}", 200),  # `*` is valid only on its own
        ('"{bare}', 200),  # unterminated quote
        ("", 200),
    ],
)
def test_if_none_match_follows_rfc_9110_comparison_and_list_syntax(
    api: TestClient, stored: ParcelData, template: str, status: int
) -> None:
    for url in (INVOICE, f"{INVOICE}@{stored.sha256}"):
        tag = api.get(url).headers["etag"]
        value = template.format(tag=tag, bare=tag.strip('"'))
        response = api.get(url, headers={"If-None-Match": value})
        assert response.status_code == status, (url, value)


def test_if_none_match_lines_are_combined_into_one_list(
    api: TestClient, stored: ParcelData
) -> None:
    tag = api.get(INVOICE).headers["etag"]
    headers = [("If-None-Match", '"other"'), ("If-None-Match", tag)]
    assert api.get(INVOICE, headers=httpx.Headers(headers)).status_code == 304


def test_if_none_match_star_on_a_missing_invoice_returns_404(api: TestClient) -> None:
    response = api.get("/_i/example.com/nothing/1.0.0", headers={"If-None-Match": "*"})
    assert response.status_code == 404


def test_if_none_match_on_a_parcel_not_uploaded_returns_404(api: TestClient) -> None:
    missing = parcel(b"never uploaded")
    api.post("/_i", content=make_invoice(parcels=[missing]).toml())
    response = api.get(
        f"{INVOICE}@{missing.sha256}", headers={"If-None-Match": f'"{missing.sha256}"'}
    )
    assert response.status_code == 404
