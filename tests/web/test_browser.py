"""The web UI in a real browser (headless Chromium) against live server processes: what
a person does with it (search, browse, download, yank), and what an invoice's untrusted
text must never do there."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.auth.conftest import basic, bcrypt_entry, write_policy
from tests.conftest import _engine_unavailable
from tests.factories import InvoiceDoc, ParcelData, make_invoice, parcel
from tests.servers import ServerProcess, start_server
from tests.web.browser import (
    WAIT,
    chromium,
    console_errors,
    extra_headers,
    last_response,
    open_page,
    unavailable_reason,
    wait_for_download,
)

ALICE = ("alice", "alice-secret")  # may read, create and yank example.com/
BOB = ("bob", "bob-secret")  # may only read example.com/

SUBMIT = "form#search button:not([type]), form#search [type=submit]"

# Markup in every field of an invoice a page shows. The pages must show it as text; were
# it parsed, the injected elements would exist (even where the CSP stops them running).
SCRIPT = "<script>window.__xss=1</script>"
IMAGE = '<img src=x onerror="window.__xss=2">'
SVG = '"><svg onload="window.__xss=3">'
IMAGE_KEY = "<img src=x onerror=window.__xss=4>"
GROUP = "<script>window.__xss=5</script>"
MEDIA_TYPE = '<img src=x onerror="window.__xss=6">'
LABEL_NAME = "</td><script>window.__xss=7</script>.txt"
README = (
    "# Read me\n\n<script>window.__xss=8</script>\n\n"
    "[a link](javascript:window.__xss=9) and <img src=x onerror=window.__xss=10>\n"
)


def _weather(
    version: str, name: str = "example.com/weather/app"
) -> tuple[InvoiceDoc, list[ParcelData]]:
    wasm = parcel(
        b"\x00asm\x01\x00\x00\x00" + f"forecast {version}".encode() * 300,
        media_type="application/wasm",
        name="weather.wasm",
    )
    doc = make_invoice(name, version, [wasm])
    doc.extra["bindle"] = {
        "name": doc.name,
        "version": version,
        "description": f"Weather forecasts, release {version}",
    }
    return doc, [wasm]


def _hostile() -> tuple[InvoiceDoc, list[ParcelData]]:
    payload = parcel("hostile parcel\n", media_type=MEDIA_TYPE, name=LABEL_NAME, member_of=[GROUP])
    readme = parcel(README, media_type="text/markdown", name="README.md")
    doc = make_invoice(
        "example.com/hostile/app",
        "1.0.0",
        [payload, readme],
        [{"name": GROUP, "required": True, "satisfiedBy": "allOf"}],
        annotations={"note": SVG, IMAGE_KEY: "value"},
    )
    doc.extra["bindle"] = {
        "name": doc.name,
        "version": doc.version,
        "description": SCRIPT,
        "authors": [IMAGE, SVG],
    }
    return doc, [payload, readme]


def _push(
    server: ServerProcess,
    doc: InvoiceDoc,
    parcels: list[ParcelData],
    headers: dict[str, str] | None = None,
) -> None:
    """Store an invoice and its parcels through the API."""
    created = httpx.post(f"{server.url}/_i", content=doc.toml(), headers=headers, timeout=10)
    assert created.status_code in (201, 202), created.text
    for item in parcels:
        uploaded = httpx.post(
            f"{server.url}/_i/{doc.bindle_id}@{item.sha256}",
            content=item.data,
            headers=headers,
            timeout=10,
        )
        assert uploaded.status_code in (200, 201), uploaded.text


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chromium")


@pytest.fixture(scope="module")
def browser(browser_dir: Path) -> Iterator[WebDriver]:
    """One headless Chromium for the module (a start costs seconds); quit at the end."""
    reason = unavailable_reason()
    if reason is not None:
        _engine_unavailable(reason)
    with chromium(browser_dir) as driver:
        yield driver


@pytest.fixture
def driver(browser: WebDriver) -> Iterator[WebDriver]:
    """The module's browser, back at the desktop size after each test."""
    yield browser
    browser.set_window_size(1280, 900)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server without authentication holding three weather releases and the hostile
    invoice."""
    directory = tmp_path_factory.mktemp("open-server")
    server = start_server(directory / "data", directory / "server.log")
    try:
        for version in ("1.0.0", "1.10.0", "1.2.0"):
            _push(server, *_weather(version))
        _push(server, *_hostile())
        yield server
    finally:
        server.stop()


@contextmanager
def _private_server(directory: Path) -> Iterator[ServerProcess]:
    """A server with users alice (may yank) and bob (may only read), anonymous read off,
    holding example.com/private/app 1.0.0."""
    htpasswd = directory / "htpasswd"
    htpasswd.write_text("".join(f"{bcrypt_entry(u, p)}\n" for u, p in (ALICE, BOB)))
    policy = write_policy(
        directory / "policy.toml",
        {
            "subjects": ["user:alice"],
            "prefixes": ["example.com/"],
            "verbs": ["read", "create", "yank"],
        },
        {"subjects": ["user:bob"], "prefixes": ["example.com/"], "verbs": ["read"]},
    )
    server = start_server(
        directory / "data",
        directory / "server.log",
        "--htpasswd-file",
        str(htpasswd),
        "--auth-policy",
        str(policy),
    )
    try:
        _push(server, *_weather("1.0.0", "example.com/private/app"), basic(*ALICE))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def private_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The private server for tests that sign in only through `extra_headers`."""
    with _private_server(tmp_path_factory.mktemp("private-server")) as server:
        yield server


@pytest.fixture
def yank_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A private server of its own: once a test signs in with credentials in the URL,
    Chromium sends them to that server's origin for the rest of the module."""
    with _private_server(tmp_path) as server:
        yield server


# -- helpers --------------------------------------------------------------------------


def _element(driver: WebDriver, selector: str) -> WebElement:
    """The element once it is on the page (bounded wait)."""
    element: WebElement = WebDriverWait(driver, WAIT).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, selector))
    )
    return element


def _click_and_wait(driver: WebDriver, element: WebElement) -> None:
    """Click a link or button that loads another page, and wait until it has."""
    element.click()
    WebDriverWait(driver, WAIT).until(expected_conditions.staleness_of(element))
    WebDriverWait(driver, WAIT).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def _authenticated(server: ServerProcess, user: tuple[str, str]) -> str:
    """The server's address with Basic credentials in it, as a person may type it."""
    return f"http://{user[0]}:{user[1]}@127.0.0.1:{server.port}"


def _assert_no_script_ran(driver: WebDriver) -> None:
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 (the property raises when no alert is open)
    assert driver.execute_script("return window.__xss") is None
    injected = driver.find_elements(
        By.CSS_SELECTOR, "img[src='x'], svg[onload], a[href^='javascript'], script:not([src])"
    )
    assert injected == [], [e.get_attribute("outerHTML") for e in injected]


def _fetch(driver: WebDriver, path: str) -> dict[str, Any]:
    """GET `path` with fetch() in the current page, without credentials."""
    result: dict[str, Any] = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        fetch(arguments[0], {credentials: "omit"}).then(
            async (r) => done({status: r.status, body: await r.text()}),
            (e) => done({status: 0, body: String(e)}),
        );
        """,
        path,
    )
    return result


def _text(driver: WebDriver, selector: str) -> str:
    return _element(driver, selector).text


# -- tests ----------------------------------------------------------------------------


def test_search_then_bindle_then_invoice_then_download_gives_the_parcels_bytes(
    driver: WebDriver, open_server: ServerProcess, browser_dir: Path
) -> None:
    assert open_page(driver, f"{open_server.base_url}/").status == 200
    _element(driver, "form#search input[name=q]").send_keys("weather")
    _click_and_wait(driver, _element(driver, SUBMIT))
    assert "q=weather" in driver.current_url
    rows = driver.find_elements(By.CSS_SELECTOR, "table#results tr.result")
    links = {r.find_element(By.CSS_SELECTOR, "a.invoice-link").get_attribute("href") for r in rows}
    assert links == {
        f"{open_server.base_url}/invoice/example.com/weather/app/{v}"
        for v in ("1.0.0", "1.2.0", "1.10.0")
    }
    assert "hostile" not in _text(driver, "table#results")

    _click_and_wait(driver, rows[0].find_element(By.CSS_SELECTOR, "a.bindle-link"))
    assert driver.current_url.endswith("/bindle/example.com/weather/app")
    versions = driver.find_elements(By.CSS_SELECTOR, "table#versions tr.version a.invoice-link")
    hrefs = [v.get_attribute("href") or "" for v in versions]
    assert [h.rsplit("/", 1)[-1] for h in hrefs] == ["1.10.0", "1.2.0", "1.0.0"]  # SemVer order

    _click_and_wait(driver, versions[0])
    assert driver.current_url.endswith("/invoice/example.com/weather/app/1.10.0")
    assert "example.com/weather/app" in _text(driver, "h1")
    assert "1.10.0" in _text(driver, "h1")
    _, (wasm,) = _weather("1.10.0")
    row = _element(driver, "table#parcels tr.parcel")
    assert row.find_element(By.CSS_SELECTOR, "code.sha256").text == wasm.sha256
    download = row.find_element(By.CSS_SELECTOR, "a.download")
    assert (download.get_attribute("href") or "").endswith(
        f"/parcel/example.com/weather/app/1.10.0/{wasm.sha256}"
    )
    download.click()
    saved = wait_for_download(browser_dir / "downloads", "weather.wasm")
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == wasm.sha256


def test_allowed_user_yanks_an_invoice_from_its_page(
    driver: WebDriver, yank_server: ServerProcess
) -> None:
    page = f"{_authenticated(yank_server, ALICE)}/invoice/example.com/private/app/1.0.0"
    assert open_page(driver, page).status == 200
    _click_and_wait(driver, _element(driver, "a#yank"))
    assert driver.current_url.endswith("/invoice/example.com/private/app/1.0.0/yank")
    form = _element(driver, "form#confirm-yank")
    assert form.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
    submit = form.find_element(By.CSS_SELECTOR, "button:not([type]), [type=submit]")
    _click_and_wait(driver, submit)
    assert last_response(driver).status == 200
    assert _text(driver, "#result")

    api = f"{yank_server.url}/_i/example.com/private/app/1.0.0"
    assert httpx.get(api, headers=basic(*ALICE), timeout=10).status_code == 403  # yanked
    stored = httpx.get(api, params={"yanked": "true"}, headers=basic(*ALICE), timeout=10)
    assert tomli.loads(stored.text)["yanked"] is True


def test_reader_sees_the_invoice_without_a_yank_link(
    driver: WebDriver, private_server: ServerProcess
) -> None:
    page = f"{private_server.base_url}/invoice/example.com/private/app/1.0.0"
    with extra_headers(driver, basic(*BOB)):
        assert open_page(driver, page).status == 200
        _element(driver, "table#parcels tr.parcel")
        assert driver.find_elements(By.CSS_SELECTOR, "#yank, #purge") == []


def test_anonymous_browser_gets_the_401_page_and_no_bindle_when_anonymous_read_is_off(
    driver: WebDriver, private_server: ServerProcess
) -> None:
    for path in ("/", "/bindle/example.com/private/app", "/invoice/example.com/private/app/1.0.0"):
        response = open_page(driver, f"{private_server.base_url}{path}")
        assert response.status == 401, path
        assert response.headers["www-authenticate"].startswith('Basic realm="bindle"')
        assert "text/html" in response.headers["content-type"]
        assert driver.find_elements(By.CSS_SELECTOR, "table#parcels, table#versions") == []
    assert "example.com/private" not in driver.page_source
    # Headless Chromium shows a blank page where a person would get the sign-in dialog,
    # so the page itself is read with fetch() from a page anyone may open.
    open_page(driver, f"{private_server.base_url}/healthz")
    page = _fetch(driver, "/")
    assert page["status"] == 401
    assert "<title>" in page["body"]
    assert 'href="/server"' in page["body"]
    assert "example.com/private" not in page["body"]


def test_markup_in_an_invoice_is_shown_as_text_and_never_runs(
    driver: WebDriver, open_server: ServerProcess
) -> None:
    assert open_page(driver, f"{open_server.base_url}/?q=hostile").status == 200
    _assert_no_script_ran(driver)
    assert SCRIPT in _text(driver, "table#results")

    assert open_page(driver, f"{open_server.base_url}/bindle/example.com/hostile/app").status == 200
    _assert_no_script_ran(driver)
    _element(driver, "table#versions tr.version")

    page = f"{open_server.base_url}/invoice/example.com/hostile/app/1.0.0"
    response = open_page(driver, page)
    assert response.status == 200
    # Defence in depth: were any markup to get through, inline script would not run.
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    _assert_no_script_ran(driver)
    body = _text(driver, "body")
    for text in (SCRIPT, IMAGE, SVG):  # description and authors
        assert text in body
    annotations = _text(driver, "#annotations")
    assert SVG in annotations
    assert IMAGE_KEY in annotations
    parcels = _text(driver, "table#parcels")
    assert LABEL_NAME in parcels
    assert MEDIA_TYPE in parcels
    assert GROUP in _text(driver, "#groups")
    readme = _text(driver, "section#readme")
    assert "Read me" in readme
    assert "a link" in readme


def test_search_form_works_with_the_keyboard_alone(
    driver: WebDriver, open_server: ServerProcess
) -> None:
    assert open_page(driver, f"{open_server.base_url}/").status == 200
    _element(driver, "form#search")

    def tab_to(matches: Callable[[WebElement], bool]) -> WebElement:
        for _ in range(40):
            driver.switch_to.active_element.send_keys(Keys.TAB)
            focused = driver.switch_to.active_element
            if matches(focused):
                return focused
        raise AssertionError("not reachable with the TAB key")

    query = tab_to(lambda e: e.get_attribute("name") == "q")
    query.send_keys("weather")
    button = tab_to(lambda e: e.get_attribute("type") == "submit")
    button.send_keys(Keys.ENTER)
    WebDriverWait(driver, WAIT).until(lambda d: "q=weather" in d.current_url)
    rows = WebDriverWait(driver, WAIT).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "table#results tr.result")
    )
    assert len(rows) == 3


def test_invoice_page_fits_a_phone_screen_without_horizontal_scroll(
    driver: WebDriver, open_server: ServerProcess
) -> None:
    driver.set_window_size(390, 844)
    page = f"{open_server.base_url}/invoice/example.com/hostile/app/1.0.0"
    assert open_page(driver, page).status == 200
    _element(driver, "table#parcels tr.parcel")
    viewport = driver.find_element(By.CSS_SELECTOR, "meta[name=viewport]")
    assert "width=device-width" in (viewport.get_attribute("content") or "")
    sizes: dict[str, Any] = driver.execute_script(
        "return {inner: window.innerWidth, scroll: document.documentElement.scrollWidth}"
    )
    assert sizes["inner"] <= 400
    assert sizes["scroll"] <= sizes["inner"], sizes


def test_pages_follow_the_systems_dark_mode(driver: WebDriver, open_server: ServerProcess) -> None:
    def background() -> str:
        assert open_page(driver, f"{open_server.base_url}/").status == 200
        color: str = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
        return color

    def luminance(color: str) -> float:
        red, green, blue = (int(part) for part in re.findall(r"\d+", color)[:3])
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    try:
        for scheme in ("light", "dark"):
            driver.execute_cdp_cmd(
                "Emulation.setEmulatedMedia",
                {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
            )
            if scheme == "light":
                light = background()
            else:
                dark = background()
    finally:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    assert luminance(light) > 128 > luminance(dark), (light, dark)


def test_pages_load_everything_they_use_within_their_content_security_policy(
    driver: WebDriver, open_server: ServerProcess
) -> None:
    console_errors(driver)  # drop what earlier tests logged
    for path in (
        "/",
        "/?q=weather",
        "/bindle/example.com/weather/app",
        "/invoice/example.com/weather/app/1.2.0",
        "/server",
    ):
        assert open_page(driver, f"{open_server.base_url}{path}").status == 200, path
        stylesheets = driver.execute_script("return document.styleSheets.length")
        assert stylesheets >= 1, path
        # An inline style or script, or anything from another host, is refused and logged.
        # (Chromium asks for /favicon.ico on its own, now and then; no page names it.)
        errors = [e for e in console_errors(driver) if "/favicon.ico" not in e]
        assert errors == [], f"{path}: {errors}"
