"""The UI's pages in-process: search, a bindle's versions, an invoice, the server, errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bindle_server.api.app import create_app
from bindle_server.config import Settings
from bindle_server.model import SignatureRole
from bindle_server.web.markdown import MAX_README_BYTES
from tests.factories import make_invoice, parcel
from tests.signing.keys import Signer, make_key, signed_toml, write_keyring
from tests.web.pages_support import parse_page, push, yank

CREATOR, PROXY = SignatureRole.CREATOR, SignatureRole.PROXY
TRUSTED = make_key("Trusted Creator <tc@example.com>", CREATOR)
STRANGER = make_key("Stranger <s@example.com>", PROXY)


@pytest.fixture
def ui(settings_factory: Callable[..., Settings], tmp_path: Path) -> Iterator[TestClient]:
    """The app in-process at the server's root; it trusts TRUSTED as creator and accepts
    signatures by unknown proxies (CreativeIntegrity)."""
    keyring = write_keyring(tmp_path / "keyring.toml", [TRUSTED.key_entry()])
    settings = settings_factory(keyring=keyring, strategy="CreativeIntegrity")
    with TestClient(create_app(settings)) as client:
        yield client


def _results(client: TestClient, **params: Any) -> list[str]:
    response = client.get("/", params=params)
    assert response.status_code == 200, response.text
    page = parse_page(response.text)
    return [row.find_all("a", "invoice-link")[0].text for row in page.find_all("tr", "result")]


def _hrefs(client: TestClient, path: str, cls: str) -> list[str]:
    page = parse_page(client.get(path).text)
    return [link.attrs["href"] for link in page.find_all("a", cls)]


def test_search_matches_name_terms_and_a_semver_range(ui: TestClient) -> None:
    for name, version in [
        ("example.com/alpha", "1.0.0"),
        ("example.com/alpha", "2.1.0"),
        ("example.com/beta", "2.0.0"),
    ]:
        push(ui, make_invoice(name, version))
    assert _hrefs(ui, "/?q=alpha", "invoice-link") == [
        "/invoice/example.com/alpha/1.0.0",
        "/invoice/example.com/alpha/2.1.0",
    ]
    assert _hrefs(ui, "/?q=alpha", "bindle-link") == ["/bindle/example.com/alpha"] * 2
    assert _results(ui, q="", v="^2") == ["2.1.0", "2.0.0"]
    assert _results(ui, q="alpha", v=">=1.0.0 <2.0.0") == ["1.0.0"]  # npm syntax
    assert _results(ui, q="gamma") == []


def test_search_results_show_description_parcel_count_and_human_total_size(
    ui: TestClient,
) -> None:
    doc = make_invoice(
        "example.com/sized",
        parcels=[parcel(b"a" * 1536), parcel(b"b" * 1024)],
        bindle={"name": "example.com/sized", "version": "1.0.0", "description": "Two parcels"},
    )
    push(ui, doc)
    row = parse_page(ui.get("/").text).find_all("tr", "result")[0]
    cells = [cell.text for cell in row.find_all("td")]
    assert cells[2:] == ["Two parcels", "2", "2.5 KiB"]


def test_yanked_invoices_are_listed_only_when_asked_and_marked(ui: TestClient) -> None:
    push(ui, make_invoice("example.com/app", "1.0.0"))
    push(ui, make_invoice("example.com/app", "1.1.0"))
    yank(ui, "example.com/app/1.0.0")
    assert _results(ui) == ["1.1.0"]
    page = parse_page(ui.get("/", params={"yanked": "true"}).text)
    rows = {
        row.find_all("a", "invoice-link")[0].text: bool(row.find_all("span", "yanked-mark"))
        for row in page.find_all("tr", "result")
    }
    assert rows == {"1.0.0": True, "1.1.0": False}
    # The form keeps what was asked for.
    checkbox = [i for i in page.by_id("search").find_all("input") if i.attrs["name"] == "yanked"]
    assert "checked" in checkbox[0].attrs


def test_search_pages_fifty_at_a_time_with_prev_and_next_links(ui: TestClient) -> None:
    for minor in range(55):
        push(ui, make_invoice("example.com/many", f"1.{minor}.0"))
    first = parse_page(ui.get("/", params={"q": "many"}).text)
    assert len(first.find_all("tr", "result")) == 50
    assert not [a for a in first.find_all("a") if a.attrs.get("rel") == "prev"]
    (next_link,) = [a for a in first.find_all("a") if a.attrs.get("rel") == "next"]
    assert next_link.attrs["href"] == "?q=many&o=50"
    second = parse_page(ui.get("/" + next_link.attrs["href"]).text)
    assert len(second.find_all("tr", "result")) == 5
    assert not [a for a in second.find_all("a") if a.attrs.get("rel") == "next"]
    (prev_link,) = [a for a in second.find_all("a") if a.attrs.get("rel") == "prev"]
    assert prev_link.attrs["href"] == "?q=many"


def test_a_bad_version_range_answers_400_with_the_form_and_the_error(ui: TestClient) -> None:
    response = ui.get("/", params={"v": ">=banana"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    page = parse_page(response.text)
    assert page.has_id("search")
    assert "banana" in page.find_all("p", "error")[0].text


def test_an_empty_registry_shows_how_to_push_with_this_servers_url(ui: TestClient) -> None:
    page = parse_page(ui.get("/").text)
    section = page.by_id("first-push").text
    assert "BINDLE_URL=http://testserver/v1" in section
    assert "bindle push-dir" in section
    assert "curl -s -X POST" in section and "B=http://testserver/v1" in section
    # Once something is stored (even if only yanked), it no longer shows.
    push(ui, make_invoice("example.com/app", "1.0.0"))
    yank(ui, "example.com/app/1.0.0")
    assert not parse_page(ui.get("/").text).has_id("first-push")


def test_first_push_commands_honour_the_root_path(
    settings_factory: Callable[..., Settings],
) -> None:
    app = create_app(settings_factory())
    with TestClient(app, root_path="/registry") as client:
        page = parse_page(client.get("/").text)
    assert "BINDLE_URL=http://testserver/registry/v1" in page.by_id("first-push").text


def test_bindle_page_lists_every_version_newest_first_with_marks(ui: TestClient) -> None:
    versions = ["1.0.0", "1.10.0", "1.2.0", "2.0.0-alpha", "2.0.0-rc.1", "2.0.0-rc.10", "0.9.0"]
    for version in versions:
        push(ui, make_invoice("example.com/app", version))
    push(ui, make_invoice("example.com/app-extra", "9.0.0"))  # a longer name: not listed
    yank(ui, "example.com/app/1.2.0")
    page = parse_page(ui.get("/bindle/example.com/app").text)
    rows = page.by_id("versions").find_all("tr", "version")
    listed = [row.find_all("a", "invoice-link")[0].text for row in rows]
    assert listed == [
        "2.0.0-rc.10",
        "2.0.0-rc.1",
        "2.0.0-alpha",
        "1.10.0",
        "1.2.0",
        "1.0.0",
        "0.9.0",
    ]
    marks = {
        row.find_all("a", "invoice-link")[0].text: (
            bool(row.find_all("span", "prerelease-mark")),
            bool(row.find_all("span", "yanked-mark")),
        )
        for row in rows
    }
    assert marks["2.0.0-rc.1"] == (True, False)
    assert marks["1.2.0"] == (False, True)
    assert marks["1.10.0"] == (False, False)


def test_unknown_bindle_and_invoice_answer_html_404_pages(ui: TestClient) -> None:
    push(ui, make_invoice("example.com/app", "1.0.0"))
    for path in (
        "/bindle/example.com/nothing",
        "/invoice/example.com/app/2.0.0",
        "/invoice/example.com/nothing/1.0.0",
    ):
        response = ui.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html"), path
        page = parse_page(response.text)
        assert page.find_all("title")[0].text.startswith("404")
        assert "not" in page.by_id("error-message").text
    bad = ui.get("/invoice/example.com/app/not-a-version")
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("text/html")
    # The API still answers in TOML.
    api = ui.get("/v1/_i/example.com/app/2.0.0")
    assert (api.status_code, api.headers["content-type"]) == (404, "application/toml")
    assert api.text == 'error = "invoice example.com/app/2.0.0 not found"\n'


def _rich_invoice() -> tuple[bytes, list[Any]]:
    readme = parcel(
        "# Hello app\n\nSee <script>alert('x')</script> the [docs](https://example.com/docs).\n",
        media_type="text/markdown",
        name="README.md",
    )
    wasm = parcel(
        b"\x00asm" + bytes(3 * 1024 * 1024), media_type="application/wasm", name="app.wasm"
    )
    asset = parcel(b"<h1>hi</h1>", media_type="text/html", name="index.html", member_of=["files"])
    doc = make_invoice(
        "example.com/app",
        "1.2.3",
        parcels=[readme, wasm, asset],
        groups=[{"name": "files", "required": True, "satisfiedBy": "oneOf"}],
        bindle={
            "name": "example.com/app",
            "version": "1.2.3",
            "description": "An app with everything",
            "authors": ["Ann <ann@example.com>", "Bo"],
        },
        annotations={"team": "platform", "ci": "run 42"},
    )
    document = doc.document()
    document["parcel"][1]["label"]["feature"] = {"wasm": {"runtime": "wasmtime"}}
    doc.extra["parcel"] = document["parcel"]
    body = signed_toml(doc, Signer(TRUSTED, CREATOR), Signer(STRANGER, PROXY))
    return body, [readme, wasm, asset]


def test_invoice_page_shows_everything_the_invoice_says(ui: TestClient) -> None:
    body, parcels = _rich_invoice()
    created = ui.post("/v1/_i", content=body)
    assert created.status_code == 202, created.text
    readme, wasm, _ = parcels
    for item in (readme, wasm):
        ui.post(f"/v1/_i/example.com/app/1.2.3@{item.sha256}", content=item.data)
    page = parse_page(ui.get("/invoice/example.com/app/1.2.3").text)

    assert page.find_all("h1")[0].text == "example.com/app 1.2.3"
    assert page.find_all("title")[0].text.startswith("example.com/app/1.2.3")
    assert "An app with everything" in page.text
    assert page.by_id("authors").text == "Ann <ann@example.com>, Bo"
    assert "team" in page.by_id("annotations").text and "run 42" in page.by_id("annotations").text

    rows = page.by_id("parcels").find_all("tr", "parcel")
    cells = [[cell.text for cell in row.find_all("td")] for row in rows]
    assert [row[:3] for row in cells] == [
        ["README.md", "text/markdown", f"{readme.size} B"],
        ["app.wasm", "application/wasm", "3.0 MiB"],
        ["index.html", "text/html", "11 B"],
    ]
    for row, item in zip(rows, parcels, strict=True):
        assert row.find_all("code", "sha256")[0].text == item.sha256
        assert row.find_all("button", "copy")[0].attrs["data-copy"] == item.sha256
        assert row.find_all("a", "download")[0].attrs["href"] == (
            f"/parcel/example.com/app/1.2.3/{item.sha256}"
        )

    groups = page.by_id("groups").find_all("tr", "group")
    assert [cell.text for cell in groups[0].find_all("td")] == [
        "files",
        "yes",
        "oneOf",
        "index.html",
    ]
    assert [cell.text for cell in page.by_id("features").find_all("td")] == [
        "app.wasm",
        "wasm",
        "runtime",
        "wasmtime",
    ]

    signatures = {
        row.find_all("td")[0].text: row for row in page.by_id("signatures").find_all("tr")[1:]
    }
    assert set(signatures) >= {TRUSTED.label, STRANGER.label}
    assert signatures[TRUSTED.label].find_all("span", "trusted")
    assert not signatures[TRUSTED.label].find_all("span", "untrusted")
    assert signatures[STRANGER.label].find_all("span", "untrusted")
    assert STRANGER.public_key in signatures[STRANGER.label].text
    assert "proxy" in signatures[STRANGER.label].text
    host = [row for label, row in signatures.items() if "host key" in label]
    assert host and host[0].find_all("span", "trusted")

    commands = page.by_id("commands").text
    assert "bindle -s http://testserver/v1 get example.com/app/1.2.3" in commands
    assert "bindle -s http://testserver/v1 pull example.com/app/1.2.3" in commands
    assert "curl -fsS http://testserver/v1/_i/example.com/app/1.2.3" in commands
    assert page.by_id("download-archive").attrs["href"] == (
        "/download/example.com/app/1.2.3.tar.gz"
    )
    raw = page.by_id("raw-invoice").text
    assert 'name = "example.com/app"' in raw and 'role = "host"' in raw

    readme_section = page.by_id("readme")
    assert readme_section.find_all("h1")[0].text == "Hello app"
    assert not readme_section.find_all("script")
    assert "<script>alert('x')</script>" in readme_section.text  # shown as text
    (link,) = readme_section.find_all("a")
    assert link.attrs["href"] == "https://example.com/docs"
    assert not page.has_id("yanked-banner")


def test_readme_is_left_out_until_its_parcel_is_stored(ui: TestClient) -> None:
    readme = parcel("# Later\n", media_type="text/markdown", name="README.md")
    push(ui, make_invoice("example.com/app", "1.0.0", parcels=[readme]))
    assert not parse_page(ui.get("/invoice/example.com/app/1.0.0").text).has_id("readme")
    ui.post(f"/v1/_i/example.com/app/1.0.0@{readme.sha256}", content=readme.data)
    page = parse_page(ui.get("/invoice/example.com/app/1.0.0").text)
    assert page.by_id("readme").find_all("h1")[0].text == "Later"


def test_a_parcel_annotated_as_readme_is_shown_as_plain_text(ui: TestClient) -> None:
    license_text = parcel("MIT License\n\n# not a heading\n", media_type="text/plain")
    other = parcel("# Not the one\n", media_type="text/markdown", name="NOTES.md")
    doc = make_invoice("example.com/app", "1.0.0", parcels=[other, license_text])
    document = doc.document()
    document["parcel"][1]["label"]["annotations"] = {"bindle.dev/readme": "license"}
    doc.extra["parcel"] = document["parcel"]
    push(ui, doc, other, license_text)
    section = parse_page(ui.get("/invoice/example.com/app/1.0.0").text).by_id("readme")
    assert "MIT License # not a heading" in section.text
    assert not section.find_all("h1")
    assert section.find_all("pre")


def test_a_yanked_invoice_has_a_banner_no_yank_link_and_working_downloads(
    ui: TestClient,
) -> None:
    item = parcel("still downloadable")
    push(ui, make_invoice("example.com/app", "1.0.0", parcels=[item]), item)
    assert parse_page(ui.get("/invoice/example.com/app/1.0.0").text).has_id("yank")
    yank(ui, "example.com/app/1.0.0")
    page = parse_page(ui.get("/invoice/example.com/app/1.0.0").text)
    assert page.has_id("yanked-banner")
    assert not page.has_id("yank")
    assert not page.has_id("purge")  # no purge on a server without authentication
    # A yanked bindle is still fetched when asked for: so are its page's download links.
    (link,) = page.find_all("a", "download")
    answer = ui.get(link.attrs["href"])
    assert answer.status_code == 200 and answer.content == item.data
    archive = ui.get(page.by_id("download-archive").attrs["href"])
    assert archive.status_code == 200 and archive.content[:2] == b"\x1f\x8b"


def test_server_page_shows_version_backend_counts_and_host_keys(ui: TestClient) -> None:
    push(ui, make_invoice("example.com/app", "1.0.0"))
    push(ui, make_invoice("example.com/app", "1.1.0"))
    yank(ui, "example.com/app/1.0.0")
    page = parse_page(ui.get("/server").text)
    info = page.by_id("server-info").text
    assert "local disk" in info and "SQLite" in info and "CreativeIntegrity" in info
    assert page.by_id("invoice-count").text == "1"
    assert page.by_id("yanked-count").text == "1"
    host_key = ui.get("/v1/bindle-keys").text.split('key = "')[1].split('"')[0]
    assert host_key in page.by_id("host-keys").text
    assert [a for a in page.find_all("a") if a.attrs["href"] == "/v1/bindle-keys"]


def test_every_page_has_a_title_and_the_nav_links(ui: TestClient) -> None:
    push(ui, make_invoice("example.com/app", "1.0.0"))
    for path in ("/", "/bindle/example.com/app", "/invoice/example.com/app/1.0.0", "/server"):
        page = parse_page(ui.get(path).text)
        assert page.find_all("title")[0].text, path
        nav = {a.attrs["href"] for a in page.find_all("nav")[0].find_all("a")}
        assert {"/", "/server", "/docs"} <= nav, path


def test_assets_are_served_and_paths_outside_the_static_folder_are_not(ui: TestClient) -> None:
    css = ui.get("/assets/style.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "prefers-color-scheme: dark" in css.text
    assert "max-age" in css.headers["cache-control"]
    assert ui.get("/assets/ui.js").headers["content-type"].startswith("text/javascript")
    for path in ("/assets/..%2f__init__.py", "/assets/.%2e/pages.py", "/assets/missing.css"):
        assert ui.get(path).status_code == 404, path


def test_a_big_readme_is_read_only_up_to_its_bound_and_says_so(ui: TestClient) -> None:
    text = "start\n" + "x" * (MAX_README_BYTES + 1000) + "\nTHE-END\n"
    big = parcel(text, media_type="text/plain; charset=utf-8", name="LICENSE")
    doc = make_invoice("example.com/app", "1.0.0", parcels=[big])
    document = doc.document()
    document["parcel"][0]["label"]["feature"] = {"bindle.dev/readme": {"kind": "license"}}
    doc.extra["parcel"] = document["parcel"]
    push(ui, doc, big)
    section = parse_page(ui.get("/invoice/example.com/app/1.0.0").text).by_id("readme")
    shown = section.find_all("pre")[0].text
    assert shown.startswith("start") and "THE-END" not in shown
    assert len(shown) <= MAX_README_BYTES
    assert "Only the beginning is shown" in section.text
