"""Take docs/invoice-page.png, the README's picture of the web UI: a throwaway server in a
temporary directory, a Spin-like bindle pushed to it, and its invoice page in headless
Chromium at 1280x900. Run it through `scripts/screenshot` after changing the pages."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import tomli_w
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from bindle_server.client import BindleClient

OUTPUT = Path(__file__).parent / "invoice-page.png"
START_TIMEOUT = 30.0
NAME = "fermyon.com/hello-spin"
VERSION = "1.2.0"

_SPIN_TOML = b"""spin_manifest_version = 2

[application]
name = "hello-spin"
version = "1.2.0"

[[trigger.http]]
route = "/..."
component = "hello"

[component.hello]
source = "hello.wasm"
files = ["static/index.html"]
"""
_README = b"""# hello-spin

A minimal [Spin](https://developer.fermyon.com/spin) application: one HTTP component
that answers every request with a greeting and serves a static page.

Run it with `spin up --from-registry` or fetch the bindle with `bindle get`.
"""


def _parcels() -> list[tuple[bytes, str, str, list[str] | None]]:
    """(bytes, media type, label name, groups) of each parcel."""
    wasm = b"\x00asm\x01\x00\x00\x00" + hashlib.sha256(b"hello").digest() * 6000
    page = b"<!doctype html>\n<title>Hello</title>\n<h1>Hello, Spin</h1>\n"
    return [
        (_SPIN_TOML, "application/vnd.fermyon.spin+toml", "spin.toml", None),
        (wasm, "application/wasm", "hello.wasm", None),
        (page, "text/html", "static/index.html", ["files-hello"]),
        (_README, "text/markdown", "README.md", None),
    ]


def _invoice() -> bytes:
    parcels = []
    for data, media_type, name, groups in _parcels():
        entry: dict[str, object] = {
            "label": {
                "sha256": hashlib.sha256(data).hexdigest(),
                "mediaType": media_type,
                "name": name,
                "size": len(data),
            }
        }
        if groups:
            entry["conditions"] = {"memberOf": groups}
        parcels.append(entry)
    document = {
        "bindleVersion": "1.0.0",
        "bindle": {
            "name": NAME,
            "version": VERSION,
            "description": "Hello world in WebAssembly, as Spin pushes it",
            "authors": ["Fermyon Engineering <engineering@fermyon.com>"],
        },
        "annotations": {"fermyon.com/spin/manifest-version": "2"},
        "parcel": parcels,
        "group": [{"name": "files-hello", "required": True, "satisfiedBy": "allOf"}],
    }
    return tomli_w.dumps(document).encode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_server(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BINDLE_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "bindle_server", "--address", f"127.0.0.1:{port}",
         "--directory", str(directory / "data")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    raise SystemExit(f"bindle-server did not start within {START_TIMEOUT} s")


def _screenshot(url: str, profile: Path) -> None:
    # Debian's chromium and chromedriver: Selenium Manager must not fetch others.
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(
        service=Service(executable_path="/usr/bin/chromedriver"), options=options
    )
    try:
        driver.set_page_load_timeout(20)
        driver.get(url)
        if not driver.save_screenshot(str(OUTPUT)):
            raise SystemExit("Chromium did not take the screenshot")
    finally:
        driver.quit()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bindle-screenshot-") as temp:
        directory = Path(temp)
        server, url = _start_server(directory)
        try:
            with BindleClient(f"{url}/v1") as client:
                client.create_invoice(_invoice())
                for data, *_ in _parcels():
                    client.upload_parcel(
                        f"{NAME}/{VERSION}", hashlib.sha256(data).hexdigest(), data
                    )
            _screenshot(f"{url}/invoice/{NAME}/{VERSION}", directory / "profile")
        finally:
            server.terminate()
            server.wait(15)
    sys.stderr.write(f"wrote {OUTPUT}\n")


if __name__ == "__main__":
    main()
