"""`/docs` and `/redoc` work offline: every script, style and image comes from this
server (`/docs/assets/`), under a Content-Security-Policy that allows nothing else."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bindle_server.api.app import create_app
from bindle_server.config import Settings
from tests.servers import ServerProcess
from tests.web import browser

VIEWERS = ["/docs", "/redoc"]
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}


class _References(HTMLParser):
    """Every URL a page loads (src, href) and every script element."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href", "spec-url", "data-openapi-url"):
            if values.get(name):
                self.urls.append(str(values[name]))
        if tag == "script":
            self._in_script = True
            if "src" not in values:
                self.inline_scripts += 1
        for name, value in attrs:
            assert not name.startswith("on"), f"inline event handler {name}={value!r}"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        assert not (self._in_script and data.strip()), "script element with inline code"


def _references(html: str) -> _References:
    parser = _References()
    parser.feed(html)
    return parser


@pytest.fixture
def site(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(settings_factory()), base_url="http://testserver") as client:
        yield client


@pytest.mark.parametrize("path", VIEWERS)
def test_viewer_page_loads_only_from_this_server(site: TestClient, path: str) -> None:
    response = site.get(path)
    assert response.status_code == 200
    refs = _references(response.text)
    assert refs.inline_scripts == 0
    assets = [url for url in refs.urls if url != "/openapi.json"]
    assert assets, "the page loads no viewer at all"
    assert all(url.startswith("/docs/assets/") for url in assets), assets
    assert "/openapi.json" in refs.urls
    # No other host anywhere in the page, not even in text.
    assert "//" not in response.text.replace("<!doctype html>", "")


@pytest.mark.parametrize("path", VIEWERS)
def test_every_asset_a_viewer_references_answers_with_its_media_type(
    site: TestClient, path: str
) -> None:
    assets = [url for url in _references(site.get(path).text).urls if url != "/openapi.json"]
    for url in assets:
        response = site.get(url)
        assert response.status_code == 200, url
        suffix = Path(url.split("?", 1)[0]).suffix
        assert response.headers["content-type"] == MEDIA_TYPES[suffix], url
        assert "max-age=31536000" in response.headers["cache-control"]
        assert len(response.content) > 100


def test_swagger_ui_starts_from_a_script_of_this_server(site: TestClient) -> None:
    urls = _references(site.get("/docs").text).urls
    (init,) = [url for url in urls if "/swagger-init.js" in url]
    script = site.get(init).text
    assert "SwaggerUIBundle(" in script
    assert "validatorUrl: null" in script  # the validator badge would load from elsewhere


@pytest.mark.parametrize("path", VIEWERS)
def test_viewer_pages_carry_their_own_content_security_policy(site: TestClient, path: str) -> None:
    headers = site.get(path).headers
    directives = {
        part.strip().split(" ", 1)[0]: part.strip()
        for part in headers["content-security-policy"].split(";")
    }
    assert directives["default-src"] == "default-src 'none'"
    assert directives["script-src"] == "script-src 'self'"
    assert directives["style-src"] == "style-src 'self' 'unsafe-inline'"
    assert directives["img-src"] == "img-src 'self' data:"
    assert directives["connect-src"] == "connect-src 'self'"
    assert directives["worker-src"] == "worker-src blob:"
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/docs/assets/unknown.js",
        "/docs/assets/openapi.json",
        "/docs/assets/__init__.py",
        "/docs/assets/..%2F..%2Fconfig.py",
        "/docs/assets/%2E%2E%2Fassets.py",
        "/docs/assets/static%2Fswagger-ui.css",
        "/docs/assets/",
    ],
)
def test_only_the_known_asset_names_are_served(site: TestClient, path: str) -> None:
    assert site.get("/docs/assets/swagger-ui.css").status_code == 200
    assert site.get(path).status_code == 404


# In a real browser: both viewers render offline, and their policy blocks nothing they need.
_RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__violations.push(event.violatedDirective + " " + event.blockedURI);
});
"""
RENDERED = {"/docs": ".swagger-ui .info .title", "/redoc": "h1"}


@pytest.mark.skipif(browser.unavailable_reason() is not None, reason="no chromium here")
def test_both_viewers_render_in_a_browser_under_their_policy(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    with browser.chromium(tmp_path) as driver:
        driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument", {"source": _RECORD_VIOLATIONS}
        )
        for path, selector in RENDERED.items():
            driver.get(f"{live_server.base_url}{path}")
            deadline = time.monotonic() + browser.WAIT
            title = ""
            while not title and time.monotonic() < deadline:
                found = driver.find_elements(By.CSS_SELECTOR, selector)
                title = found[0].text if found else ""
                time.sleep(0.1)
            assert "Bindle server" in title, path
            violations: list[str] = driver.execute_script("return window.__violations")
            # ReDoc's footer tries a logo from its CDN: the policy keeps it from loading,
            # which is what it is for. Anything else blocked would break a viewer.
            assert all(v.startswith("img-src https://") for v in violations), violations
            loaded: list[str] = driver.execute_script(
                "return performance.getEntriesByType('resource')"
                ".filter(e => e.transferSize > 0).map(e => e.name)"
            )
            assert all(url.startswith(live_server.base_url) for url in loaded), loaded
