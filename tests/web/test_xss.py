"""Hostile invoices on the server side: everything they carry comes out escaped, and
every page sends a strict Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bindle_server.api.app import create_app
from bindle_server.config import Settings
from bindle_server.model import SignatureRole
from tests.factories import make_invoice, parcel
from tests.signing.keys import Signer, make_key, signed_toml, write_keyring
from tests.web.pages_support import Element, parse_page

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '"onerror="alert(1)'
TAG = "<img src=x onerror=alert(1)>"
PAYLOAD = f"{SCRIPT}{ATTRIBUTE}{TAG}'><svg onload=alert(1)>"
# Names allow only letters, digits, `_-./`: no markup fits, but the parts that do are used.
NAME = "example.com/x-script_onerror/a.b"
VERSION = "1.0.0-onerror.script"
CREATOR = make_key("Creator <c@example.com>", SignatureRole.CREATOR)
HOSTILE_SIGNER = make_key(f"Mallory {PAYLOAD}", SignatureRole.PROXY)


@pytest.fixture
def ui(settings_factory: Callable[..., Settings], tmp_path: Path) -> Iterator[TestClient]:
    keyring = write_keyring(tmp_path / "keyring.toml", [CREATOR.key_entry()])
    settings = settings_factory(keyring=keyring, strategy="CreativeIntegrity")
    with TestClient(create_app(settings)) as client:
        yield client


def _push_hostile_invoice(client: TestClient) -> None:
    readme = parcel(
        f"# Read me\n\n{PAYLOAD}\n\n[click](javascript:alert(1)) [data](data:text/html,{SCRIPT})"
        f'\n\n<a href="javascript:alert(1)">raw</a>\n\n![img](https://evil.example/x.png)\n',
        media_type="text/markdown",
        name=f"README{PAYLOAD}.md",
    )
    plain = parcel(b"bytes", media_type=f"text/html;x={PAYLOAD}", name=PAYLOAD, member_of=[PAYLOAD])
    doc = make_invoice(
        NAME,
        VERSION,
        parcels=[readme, plain],
        groups=[{"name": PAYLOAD, "required": True}],
        bindle={
            "name": NAME,
            "version": VERSION,
            "description": PAYLOAD,
            "authors": [PAYLOAD, f"javascript:{SCRIPT}"],
        },
        annotations={PAYLOAD: PAYLOAD, "bindle.dev/readme": PAYLOAD},
    )
    document = doc.document()
    document["parcel"][1]["label"]["annotations"] = {PAYLOAD: PAYLOAD}
    document["parcel"][1]["label"]["feature"] = {PAYLOAD: {PAYLOAD: PAYLOAD}}
    doc.extra["parcel"] = document["parcel"]
    body = signed_toml(
        doc, Signer(CREATOR, SignatureRole.CREATOR), Signer(HOSTILE_SIGNER, SignatureRole.PROXY)
    )
    created = client.post("/v1/_i", content=body)
    assert created.status_code == 202, created.text
    for item in (readme, plain):
        stored = client.post(f"/v1/_i/{NAME}/{VERSION}@{item.sha256}", content=item.data)
        assert stored.status_code == 200, stored.text


def _assert_inert(html: str) -> Element:
    """No markup from the payload: no script but ours, no event handler, no foreign URL."""
    assert SCRIPT not in html
    assert TAG not in html
    assert "<svg" not in html
    assert ATTRIBUTE not in html
    page = parse_page(html)
    for element in page.iter()[1:]:
        assert element.tag not in {"img", "svg", "iframe", "object", "embed"}, element
        for attribute, value in element.attrs.items():
            assert not attribute.startswith("on"), element
            if attribute in {"href", "src", "action"}:
                assert not value.lower().lstrip().startswith(("javascript:", "data:")), element
    scripts = page.find_all("script")
    assert [script.attrs.get("src", "").split("?")[0] for script in scripts] == ["/assets/ui.js"]
    assert all(not script.text for script in scripts)
    return page


def test_hostile_invoice_is_shown_only_escaped_on_every_page(ui: TestClient) -> None:
    _push_hostile_invoice(ui)
    invoice = ui.get(f"/invoice/{NAME}/{VERSION}")
    assert invoice.status_code == 200, invoice.text
    page = _assert_inert(invoice.text)
    # It is all there, as text.
    assert PAYLOAD in page.by_id("annotations").text
    assert PAYLOAD in page.by_id("parcels").text
    assert PAYLOAD in page.by_id("groups").text
    assert PAYLOAD in page.by_id("features").text
    assert f"Mallory {PAYLOAD}" in page.by_id("signatures").text
    assert SCRIPT in page.by_id("raw-invoice").text  # TOML escapes the quotes in it
    readme = page.by_id("readme")
    assert PAYLOAD in readme.text
    # Only the web link survives (the image becomes a link: nothing loads from elsewhere).
    assert [a.attrs["href"] for a in readme.find_all("a")] == ["https://evil.example/x.png"]

    for path in (
        "/",
        "/?q=onerror&yanked=true",
        f"/bindle/{NAME}",
        f"/invoice/{NAME}/{VERSION}/yank",
        "/server",
    ):
        response = ui.get(path)
        assert response.status_code == 200, path
        _assert_inert(response.text)
    search = parse_page(ui.get("/").text)
    assert PAYLOAD in search.by_id("results").text


def test_request_text_echoed_in_errors_is_escaped(ui: TestClient) -> None:
    for path, status in (
        (f"/?v={SCRIPT}", 400),
        (f"/?o={SCRIPT}", 400),
        (f"/bindle/{SCRIPT}", 400),
        (f"/invoice/a/{SCRIPT}", 400),
        ("/invoice/a/1.0.0/" + "x" * 10 + SCRIPT, 400),
    ):
        response = ui.get(path)
        assert response.status_code == status, path
        assert response.headers["content-type"].startswith("text/html"), path
        _assert_inert(response.text)


def test_markdown_links_are_limited_to_safe_schemes(ui: TestClient) -> None:
    readme = parcel(
        "[ok](https://example.com/) [rel](docs/guide.md) [mail](mailto:a@example.com) "
        "[js](javascript:alert(1)) [js2](JaVaScRiPt:alert(1)) [vb](vbscript:x) [f](file:///etc)\n",
        media_type="text/markdown",
    )
    doc = make_invoice("example.com/links", "1.0.0", parcels=[readme])
    assert ui.post("/v1/_i", content=doc.toml()).status_code == 202
    ui.post(f"/v1/_i/{doc.bindle_id}@{readme.sha256}", content=readme.data)
    section = parse_page(ui.get(f"/invoice/{doc.bindle_id}").text).by_id("readme")
    links = [a.attrs["href"] for a in section.find_all("a")]
    assert links == ["https://example.com/", "docs/guide.md", "mailto:a@example.com"]
    assert all("noopener" in a.attrs["rel"] for a in section.find_all("a"))


def _policy(header: str) -> dict[str, str]:
    directives = [part.strip().split(None, 1) for part in header.split(";") if part.strip()]
    return {parts[0]: parts[1] for parts in directives}


@pytest.mark.parametrize(
    "path", ["/", f"/invoice/{NAME}/{VERSION}", "/server", "/bindle/nothing/here", "/?v=bad"]
)
def test_every_ui_page_sends_a_strict_content_security_policy(ui: TestClient, path: str) -> None:
    _push_hostile_invoice(ui)
    response = ui.get(path)
    policy = _policy(response.headers["content-security-policy"])
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["img-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert policy["form-action"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


def test_pages_use_no_inline_script_or_style(ui: TestClient) -> None:
    _push_hostile_invoice(ui)
    html = ui.get(f"/invoice/{NAME}/{VERSION}").text
    page = parse_page(html)
    assert not page.find_all("style")
    assert not [e for e in page.iter() if "style" in e.attrs]
    assert all("src" in script.attrs for script in page.find_all("script"))
    assert [link.attrs["href"].split("?")[0] for link in page.find_all("link")] == [
        "/assets/style.css"
    ]
