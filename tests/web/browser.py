"""Headless Chromium for the web UI's browser tests: Debian's chromium and chromedriver
driven by Selenium, with nothing fetched from the network (no Selenium Manager, no
component updates) and every wait bounded."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PAGE_LOAD_TIMEOUT = 20.0
SCRIPT_TIMEOUT = 10.0
# How long a test waits for an element, a navigation or a download.
WAIT = 10.0

_FLAGS = (
    "--headless=new",
    # The tests run as root in containers, where Chromium's sandbox cannot start.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Containers often have a tiny /dev/shm; Chromium then crashes on larger pages.
    "--disable-dev-shm-usage",
)


def unavailable_reason() -> str | None:
    """Why a browser cannot be started here, or None when it can."""
    for program in (CHROMIUM, CHROMEDRIVER):
        if not os.access(program, os.X_OK):
            return (
                f"{program} not found: install Debian's chromium and chromium-driver "
                "packages (scripts/test does, as root)"
            )
    return None


def start_chromium(
    profile: Path, downloads: Path, width: int = 1280, height: int = 900
) -> WebDriver:
    """A fresh headless Chromium with its own profile directory, saving downloads into
    `downloads` without asking. The caller quits it."""
    # Selenium Manager runs only when no driver path is given; offline mode makes sure
    # that, should it ever run, it does not download a browser or a driver.
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "download.directory_upgrade": True,
            "safebrowsing.enabled": False,
        },
    )
    # The performance log carries each response's status, which WebDriver does not expose.
    # The browser log carries the console's errors (a refused script or style, say).
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
        driver.set_script_timeout(SCRIPT_TIMEOUT)
        # Headless Chromium may ignore the download preferences; this command does not.
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior",
            {"behavior": "allow", "downloadPath": str(downloads)},
        )
    except BaseException:
        driver.quit()
        raise
    return driver


@contextmanager
def chromium(directory: Path, width: int = 1280, height: int = 900) -> Iterator[WebDriver]:
    """`start_chromium` with its profile and downloads under `directory`, quit on exit."""
    profile, downloads = directory / "profile", directory / "downloads"
    profile.mkdir(parents=True, exist_ok=True)
    downloads.mkdir(parents=True, exist_ok=True)
    driver = start_chromium(profile, downloads, width, height)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@dataclass(frozen=True)
class PageResponse:
    """What the browser received for a page: WebDriver itself exposes none of it."""

    url: str
    status: int
    headers: dict[str, str]


def page_responses(driver: WebDriver) -> list[PageResponse]:
    """The page (document) responses since the last call, in order."""
    responses = []
    # Selenium leaves get_log unannotated.
    for entry in driver.get_log("performance"):  # type: ignore[no-untyped-call]
        message = json.loads(entry["message"])["message"]
        if message["method"] != "Network.responseReceived":
            continue
        params = message["params"]
        if params.get("type") == "Document":
            response = params["response"]
            headers = {str(k).lower(): str(v) for k, v in response["headers"].items()}
            responses.append(PageResponse(response["url"], int(response["status"]), headers))
    return responses


def open_page(driver: WebDriver, url: str) -> PageResponse:
    """Navigate to `url`; the response of the page it ends on."""
    page_responses(driver)  # drop what earlier pages logged
    driver.get(url)
    return last_response(driver)


def last_response(driver: WebDriver) -> PageResponse:
    """The latest page response (after a click or a form submission)."""
    responses = page_responses(driver)
    assert responses, "no page response was logged"
    return responses[-1]


@contextmanager
def extra_headers(driver: WebDriver, headers: dict[str, str]) -> Iterator[None]:
    """Send `headers` with every request of the browser inside the block.

    An Authorization header sent this way signs in without a 401 challenge first, so
    Chromium caches no credentials for the server: later tests see it signed out.
    """
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})


def console_errors(driver: WebDriver) -> list[str]:
    """The console's errors since the last call (e.g. what the CSP refused to load)."""
    entries = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [str(e["message"]) for e in entries if e["level"] == "SEVERE"]


def wait_for_download(directory: Path, name: str, timeout: float = WAIT) -> Path:
    """The downloaded file `name` once Chromium has finished writing it."""
    path = directory / name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Chromium writes into NAME.crdownload and renames it when the download ends.
        if path.is_file() and not any(directory.glob("*.crdownload")):
            return path
        time.sleep(0.05)
    found = sorted(p.name for p in directory.iterdir())
    raise AssertionError(f"{name} was not downloaded within {timeout} s; found {found}")
