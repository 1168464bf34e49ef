"""Hostile ids, digests and invoices: always a 4xx with a TOML error, never a stray file.

Every payload that could name a path ends in CANARY, so a request that escaped the data
directory would leave a file or folder of that name beside one of its ancestors.
Request targets with literal `..` segments go to a live server over a raw socket, because
httpx removes dot segments before sending; everything else runs in-process.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli
import tomli_w
from fastapi.testclient import TestClient

from tests.factories import make_invoice, parcel
from tests.servers import ServerProcess, start_server

CANARY = "hostile-canary"
LISTED = parcel("bytes a hostile request must never store")
SHA = LISTED.sha256
BINDLE = "example.com/hello/1.0.0"
METHODS = ("GET", "HEAD", "POST", "DELETE")
# SQLite creates its side files lazily; they belong to the index opened at start-up.
INDEX_SIDE_FILES = {"index.sqlite3-wal", "index.sqlite3-shm", "index.sqlite3-journal"}
SOCKET_TIMEOUT = 10.0

# Bindle ids as they appear in a URL after `/_i/` or `/_r/missing/`, already percent-encoded
# where the encoding is the attack. None of them has a literal `..` segment (see DOT_TARGETS).
HOSTILE_IDS = {
    "dot-dot-encoded": f"%2e%2e/%2e%2e/{CANARY}/1.0.0",
    "dot-dot-slash-encoded-upper": f"%2E%2E%2F%2E%2E%2F{CANARY}/1.0.0",
    "backslashes": f"..\\..\\{CANARY}/1.0.0",
    "backslashes-encoded": f"..%5C..%5C{CANARY}/1.0.0",
    "absolute-name": "/etc/passwd/1.0.0",
    "absolute-name-encoded": "%2Fetc%2Fpasswd/1.0.0",
    "windows-drive": f"C:%5C{CANARY}/1.0.0",
    "empty-segment": "example.com//hello/1.0.0",
    "empty-name": "/1.0.0",
    "empty-version": "example.com/hello/",
    "empty-id": "",
    "no-version": "example.com",
    "nul-in-name": f"{CANARY}%00/1.0.0",
    "nul-in-version": "example.com/hello/1.0.0%00",
    "dot-dot-version": "example.com/hello/%2e%2e",
    "traversal-in-version": f"example.com/hello/1.0.0%2F%2e%2e%2F{CANARY}",
    "v-prefixed-version": "example.com/hello/v1.0.0",
    "name-600-bytes": "a" * 600 + "/1.0.0",
    "name-600-bytes-of-two-byte-letters": "%C3%A4" * 300 + "/1.0.0",
    "name-10k-bytes": "a" * 10_000 + "/1.0.0",
    "invalid-utf8": "%FF%FE/1.0.0",
    "overlong-utf8-dots": f"%C0%AE%C0%AE/{CANARY}/1.0.0",
    "fullwidth-dots": f"%EF%BC%8E%EF%BC%8E/{CANARY}/1.0.0",
    "reserved-prefix": f"bindle:{CANARY}/1.0.0",
}

# What follows `@` in a parcel URL of an existing bindle that lists SHA.
HOSTILE_DIGESTS = {
    "uppercase-hex": SHA.upper(),
    "63-chars": SHA[:63],
    "65-chars": SHA + "0",
    "non-hex": "g" * 64,
    "fullwidth-digits": "%EF%BC%91" * 64,
    "empty": "",
    "at-twice": "@" + SHA,
    "second-at": f"{SHA}@{SHA}",
    "traversal-encoded-slashes": f"..%2F..%2F{CANARY}",
    "traversal-encoded-dots": f"%2e%2e%2f%2e%2e%2f{CANARY}",
    "digest-then-traversal": f"{SHA}%2F..%2F..%2F{CANARY}",
    "digest-then-path": f"{SHA}/{CANARY}",
    "backslashes": f"..\\..\\{CANARY}",
    "nul": SHA + "%00",
}

# Names and versions inside POSTed invoices (plain strings: the document carries them).
HOSTILE_NAMES = {
    "dot-dot": "..",
    "traversal": f"../../{CANARY}",
    "traversal-inside": f"example.com/../../{CANARY}",
    "absolute": "/etc/passwd",
    "empty-segment": "example.com//hello",
    "trailing-slash": "example.com/hello/",
    "empty": "",
    "nul": f"{CANARY}\x00",
    "backslashes": f"..\\..\\{CANARY}",
    "windows-drive": f"C:\\{CANARY}",
    "600-bytes": "a" * 600,
    "600-bytes-of-two-byte-letters": "ä" * 300,
    "10k-bytes": "a" * 10_000,
    "fullwidth-dots": f"\uff0e\uff0e/{CANARY}",
    "one-dot-leader": f"\u2025/{CANARY}",
    "reserved-prefix": f"bindle:{CANARY}",
    "at-sign": f"example.com@{CANARY}",
    "at-twice": f"a@b@{CANARY}",
    "percent-encoded": f"%2e%2e/{CANARY}",
    "space": "hello world",
    "newline": "hello\n",
}
HOSTILE_VERSIONS = {
    "dot-dot": "..",
    "traversal-before": "../1.0.0",
    "traversal-after": f"1.0.0/../../{CANARY}",
    "traversal-in-build": f"1.0.0+build/../{CANARY}",
    "nul": "1.0.0\x00",
    "backslash": "1.0.0\\..",
    "v-prefix": "v1.0.0",
    "two-parts": "1.0",
    "leading-zero": "01.0.0",
    "empty": "",
    "empty-pre-release": "1.0.0-",
    "empty-build": "1.0.0+",
    "trailing-newline": "1.0.0\n",
    "with-digest": f"1.0.0@{SHA}",
    "5000-digit-major": "1" * 5000 + ".0.0",
}
HOSTILE_LABEL_DIGESTS = {
    "uppercase-hex": SHA.upper(),
    "63-chars": SHA[:63],
    "65-chars": SHA + "0",
    "non-hex": "g" * 64,
    "traversal": f"../../{CANARY}",
    "empty": "",
    "trailing-newline": SHA + "\n",
    "nul": SHA[:63] + "\x00",
}


@dataclass(frozen=True)
class _Snapshot:
    """The files around a data directory at one moment, to prove a request created none.

    Watched: everything under the test's own temp directory (which holds the data
    directory) and the entries of the session's temp root beside it. Escapes further up
    are caught by CANARY, which ends every traversal payload. Other tests' directories
    are not walked, so the cost does not grow with the rest of the session.
    """

    test_dir: Path
    data_dir: Path
    before: frozenset[Path]

    @classmethod
    def take(cls, test_dir: Path, data_dir: Path) -> _Snapshot:
        return cls(test_dir, data_dir, _files_around(test_dir))

    def assert_nothing_created(self) -> None:
        created = _files_around(self.test_dir) - self.before
        outside = sorted(str(path) for path in created if not path.is_relative_to(self.data_dir))
        assert outside == [], f"files created outside the data directory: {outside}"
        inside = {path.relative_to(self.data_dir).as_posix() for path in created}
        assert inside <= INDEX_SIDE_FILES, f"refused requests created {sorted(inside)}"
        for ancestor in self.data_dir.parents:
            assert not (ancestor / CANARY).exists(), f"{ancestor / CANARY} was created"


@dataclass(frozen=True)
class _RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def _files_around(test_dir: Path) -> frozenset[Path]:
    return frozenset([*test_dir.rglob("*"), *test_dir.parent.iterdir()])


def _assert_toml_error(status: int, content_type: str | None, body: bytes, method: str) -> None:
    assert 400 <= status < 500, f"status {status}: {body[:300]!r}"
    assert content_type == "application/toml"
    if method == "HEAD":
        assert body == b""
        return
    document = tomli.loads(body.decode())
    assert list(document) == ["error"]
    assert isinstance(document["error"], str)
    assert document["error"]


def _assert_refused(response: httpx.Response, method: str) -> None:
    _assert_toml_error(
        response.status_code, response.headers.get("content-type"), response.content, method
    )


def _send_raw(port: int, method: str, target: bytes, body: bytes = b"") -> _RawResponse:
    """One request whose request line we write ourselves, read until the server closes."""
    head = (
        f"{method} ".encode()
        + target
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as conn:
        conn.sendall(head + body)
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    header_block, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = header_block.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return _RawResponse(int(status_line.split()[1]), headers, payload)


def _create_bindle_listing_parcel(api: TestClient) -> None:
    response = api.post("/_i", content=make_invoice(parcels=[LISTED]).toml())
    assert response.status_code == 202


def _invoice_toml(bindle: dict[str, Any], sha256: str = SHA) -> bytes:
    document = {
        "bindleVersion": "1.0.0",
        "bindle": bindle,
        "parcel": [{"label": {"sha256": sha256, "mediaType": "text/plain", "size": LISTED.size}}],
    }
    return tomli_w.dumps(document).encode()


def _assert_nothing_stored(api: TestClient) -> None:
    query = tomli.loads(api.get("/_q", params={"yanked": "true"}).text)
    assert query["total"] == 0


@pytest.fixture
def snapshot(api: TestClient, tmp_path: Path, data_dir: Path) -> _Snapshot:
    """Files around the data directory after start-up (the app is running)."""
    return _Snapshot.take(tmp_path, data_dir)


@pytest.mark.parametrize("bindle_id", HOSTILE_IDS.values(), ids=HOSTILE_IDS.keys())
def test_hostile_bindle_id_in_url_is_refused_with_400_and_creates_nothing(
    api: TestClient, snapshot: _Snapshot, bindle_id: str
) -> None:
    for method in METHODS:
        for url in (f"/_i/{bindle_id}", f"/_i/{bindle_id}@{SHA}", f"/_r/missing/{bindle_id}"):
            body = LISTED.data if method == "POST" else None
            response = api.request(method, url, content=body)
            _assert_refused(response, method)
            if method == "GET" or url.startswith("/_i/"):
                # A bad id is a 400 (section 4); only POST/DELETE on /_r are 405 instead.
                assert response.status_code == 400, f"{method} {url[:80]}: {response.text[:300]}"
    snapshot.assert_nothing_created()


@pytest.mark.parametrize("digest", HOSTILE_DIGESTS.values(), ids=HOSTILE_DIGESTS.keys())
def test_hostile_parcel_digest_in_url_is_refused_with_400_and_stores_nothing(
    api: TestClient, data_dir: Path, tmp_path: Path, digest: str
) -> None:
    _create_bindle_listing_parcel(api)
    snapshot = _Snapshot.take(tmp_path, data_dir)
    for method in METHODS:
        response = api.request(method, f"/_i/{BINDLE}@{digest}", content=LISTED.data)
        _assert_refused(response, method)
        assert response.status_code == 400, f"{method} @{digest[:80]}: {response.text[:300]}"
    snapshot.assert_nothing_created()
    missing = tomli.loads(api.get(f"/_r/missing/{BINDLE}").text)["missing"]
    assert [label["sha256"] for label in missing] == [SHA]


@pytest.mark.parametrize("name", HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
def test_invoice_with_hostile_name_is_refused_with_400_and_stores_nothing(
    api: TestClient, snapshot: _Snapshot, name: str
) -> None:
    response = api.post("/_i", content=_invoice_toml({"name": name, "version": "1.0.0"}))
    _assert_refused(response, "POST")
    assert response.status_code == 400
    snapshot.assert_nothing_created()
    _assert_nothing_stored(api)


@pytest.mark.parametrize("version", HOSTILE_VERSIONS.values(), ids=HOSTILE_VERSIONS.keys())
def test_invoice_with_hostile_version_is_refused_with_400_and_stores_nothing(
    api: TestClient, snapshot: _Snapshot, version: str
) -> None:
    response = api.post("/_i", content=_invoice_toml({"name": CANARY, "version": version}))
    _assert_refused(response, "POST")
    assert response.status_code == 400
    snapshot.assert_nothing_created()
    _assert_nothing_stored(api)


@pytest.mark.parametrize("sha256", HOSTILE_LABEL_DIGESTS.values(), ids=HOSTILE_LABEL_DIGESTS.keys())
def test_invoice_with_hostile_label_digest_is_refused_with_400_and_stores_nothing(
    api: TestClient, snapshot: _Snapshot, sha256: str
) -> None:
    bindle = {"name": CANARY, "version": "1.0.0"}
    response = api.post("/_i", content=_invoice_toml(bindle, sha256))
    _assert_refused(response, "POST")
    assert response.status_code == 400
    snapshot.assert_nothing_created()
    _assert_nothing_stored(api)


@pytest.mark.parametrize(
    "bindle",
    [
        {"name": 1, "version": "1.0.0"},
        {"name": ["..", CANARY], "version": "1.0.0"},
        {"name": CANARY, "version": 1.0},
        {"name": CANARY, "version": {"path": "../.."}},
        {"name": CANARY},
        {"version": "1.0.0"},
    ],
    ids=["int-name", "list-name", "float-version", "table-version", "no-version", "no-name"],
)
def test_invoice_with_wrongly_typed_or_missing_id_fields_is_refused_with_400(
    api: TestClient, snapshot: _Snapshot, bindle: dict[str, Any]
) -> None:
    response = api.post("/_i", content=_invoice_toml(bindle))
    _assert_refused(response, "POST")
    assert response.status_code == 400
    snapshot.assert_nothing_created()


@pytest.mark.parametrize(
    "body",
    [
        b'bindleVersion = "1.0.0"\n[bindle]\nname = "\xff\xfe"\nversion = "1.0.0"\n',
        b'bindleVersion = "1.0.0"\n[bindle]\nname = "a\x00b"\nversion = "1.0.0"\n',
        b'bindleVersion = "1.0.0"\n[bindle]\nname = "\xc0\xae\xc0\xae"\nversion = "1.0.0"\n',
        b"\xff\xfe" + 'bindleVersion = "1.0.0"'.encode("utf-16-le"),
    ],
    ids=["invalid-utf8-name", "raw-nul-in-name", "overlong-utf8-dots", "utf16-document"],
)
def test_invoice_with_invalid_bytes_is_refused_with_400(
    api: TestClient, snapshot: _Snapshot, body: bytes
) -> None:
    response = api.post("/_i", content=body)
    _assert_refused(response, "POST")
    assert response.status_code == 400
    snapshot.assert_nothing_created()


@pytest.mark.parametrize("name", ["..", f"../../{CANARY}", "/etc/passwd", "a" * 600, "a\x00"])
def test_json_invoice_with_hostile_name_is_refused_with_400(
    api: TestClient, snapshot: _Snapshot, name: str
) -> None:
    document = {"bindleVersion": "1.0.0", "bindle": {"name": name, "version": "1.0.0"}}
    response = api.post("/_i", json=document, headers={"Content-Type": "application/json"})
    _assert_refused(response, "POST")
    assert response.status_code == 400
    snapshot.assert_nothing_created()
    _assert_nothing_stored(api)


# Starlette matches routes with `re.match` and a pattern ending in `$`, which also matches
# before a final newline, so `{path:path}` captures the path WITHOUT a trailing `%0A`.


def test_trailing_newline_in_invoice_url_is_refused_not_read_as_another_bindle(
    api: TestClient,
) -> None:
    _create_bindle_listing_parcel(api)
    for method, url in (
        ("GET", f"/_i/{BINDLE}%0A"),
        ("HEAD", f"/_i/{BINDLE}%0A"),
        ("GET", f"/_r/missing/{BINDLE}%0A"),
        ("DELETE", f"/_i/{BINDLE}%0A"),
    ):
        response = api.request(method, url)
        _assert_refused(response, method)
        assert response.status_code == 400, f"{method} {url}: {response.status_code}"
    assert api.get(f"/_i/{BINDLE}").status_code == 200, "the bindle was yanked"


def test_trailing_newline_in_parcel_url_is_refused_not_read_as_the_parcel(
    api: TestClient,
) -> None:
    _create_bindle_listing_parcel(api)
    for method in ("POST", "GET", "HEAD"):
        response = api.request(method, f"/_i/{BINDLE}@{SHA}%0A", content=LISTED.data)
        _assert_refused(response, method)
        assert response.status_code == 400, f"{method}: {response.status_code}"
    missing = tomli.loads(api.get(f"/_r/missing/{BINDLE}").text)["missing"]
    assert [label["sha256"] for label in missing] == [SHA], "the parcel was stored"


def _query_without_raising(api: TestClient, version_filter: str) -> httpx.Response:
    """GET /_q?v=...; a server error comes back as a response, not as an exception."""
    client = TestClient(api.app, base_url="http://testserver/v1", raise_server_exceptions=False)
    response: httpx.Response = client.get("/_q", params={"v": version_filter})
    return response


def _assert_answered_without_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        _assert_refused(response, "GET")
        assert "set_int_max_str_digits" not in response.text


@pytest.mark.parametrize(
    "version_filter",
    ["1" * 5000 + ".0.0", "1." + "1" * 5000 + ".0", "1.0.0-" + "1" * 5000],
    ids=["5000-digit-major", "5000-digit-minor", "5000-digit-pre-release"],
)
def test_query_with_huge_numbers_in_version_filter_answers_without_server_error(
    api: TestClient, version_filter: str
) -> None:
    _assert_answered_without_server_error(_query_without_raising(api, version_filter))


@pytest.mark.parametrize(
    "separator, comparator",
    [(" || ", "1.0.0"), (", ", ">=1.0.0"), (" ", ">=1.0.0")],
    ids=["alternatives", "comma-joined", "space-joined"],
)
def test_query_with_a_thousand_version_comparators_answers_without_server_error(
    api: TestClient, separator: str, comparator: str
) -> None:
    version_filter = separator.join([comparator] * 1000)
    _assert_answered_without_server_error(_query_without_raising(api, version_filter))


# --- raw request lines against a live server -------------------------------------------------


@dataclass(frozen=True)
class _LiveBindle:
    server: ServerProcess
    test_dir: Path


@pytest.fixture(scope="module")
def live_bindle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_LiveBindle]:
    """One server for the module whose data holds BINDLE, listing (not storing) LISTED."""
    root = tmp_path_factory.mktemp("hostile-live")
    server = start_server(root / "data", root / "server.log")
    try:
        document = make_invoice(parcels=[LISTED]).toml()
        response = _send_raw(server.port, "POST", b"/v1/_i", document)
        assert response.status == 202, response.body
        yield _LiveBindle(server, root)
    finally:
        server.stop()


def _dot_targets() -> dict[str, bytes]:
    canary = CANARY.encode()
    sha = SHA.encode()
    return {
        "dot-dot-name": b"/v1/_i/../../../../" + canary + b"/1.0.0",
        "dot-dot-inside-name": b"/v1/_i/example.com/../../" + canary + b"/1.0.0",
        "dot-dot-version": b"/v1/_i/example.com/hello/..",
        "dot-dot-after-version": b"/v1/_i/example.com/hello/1.0.0/../../" + canary,
        "dot-dot-encoded": b"/v1/_i/%2e%2e/%2e%2e/" + canary + b"/1.0.0",
        "dot-dot-slash-encoded-upper": b"/v1/_i/%2E%2E%2F%2E%2E%2F" + canary + b"/1.0.0",
        "dot-dot-backslash": b"/v1/_i/..\\..\\" + canary + b"/1.0.0",
        "absolute-name": b"/v1/_i//etc/passwd/1.0.0",
        "nul-encoded": b"/v1/_i/" + canary + b"%00/1.0.0",
        "name-10k-bytes": b"/v1/_i/" + b"a" * 10_000 + b"/1.0.0",
        "digest-dot-dot": b"/v1/_i/example.com/hello/1.0.0@../../../" + canary,
        "digest-then-dot-dot": b"/v1/_i/example.com/hello/1.0.0@" + sha + b"/../../" + canary,
        "digest-dot-dot-encoded": b"/v1/_i/example.com/hello/1.0.0@%2e%2e%2f" + canary,
        "digest-uppercase": b"/v1/_i/example.com/hello/1.0.0@" + sha.upper(),
        "at-twice": b"/v1/_i/example.com/hello/1.0.0@@" + sha,
        "missing-dot-dot": b"/v1/_r/missing/../../" + canary + b"/1.0.0",
        "missing-dot-dot-encoded": b"/v1/_r/missing/%2e%2e/%2e%2e/" + canary + b"/1.0.0",
        "missing-absolute": b"/v1/_r/missing//etc/passwd/1.0.0",
        "prefix-dot-dot": b"/v1/../../../" + canary,
        "root-dot-dot": b"/../../../etc/passwd",
        "double-slash-root": b"//etc/passwd",
        "absolute-form-target": b"http://127.0.0.1/v1/_i/../../" + canary + b"/1.0.0",
    }


DOT_TARGETS = _dot_targets()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("target", DOT_TARGETS.values(), ids=DOT_TARGETS.keys())
def test_raw_traversal_request_line_is_refused_with_toml_4xx_and_creates_nothing(
    live_bindle: _LiveBindle, target: bytes, method: str
) -> None:
    data_dir = live_bindle.server.data_dir
    snapshot = _Snapshot.take(live_bindle.test_dir, data_dir)
    response = _send_raw(live_bindle.server.port, method, target, LISTED.data)
    _assert_toml_error(response.status, response.headers.get("content-type"), response.body, method)
    snapshot.assert_nothing_created()
    assert not (data_dir / "parcels" / SHA).exists()


@pytest.mark.parametrize(
    "target",
    [
        b"/v1/_i/\xff\xfe/1.0.0",
        b"/v1/_i/" + CANARY.encode() + b"\x00/1.0.0",
        b"/v1/_i/example.com/hello/1.0.0@" + SHA.encode() + b"\x00",
        b"/v1/_i/" + b"a" * 100_000 + b"/1.0.0",
    ],
    ids=["raw-invalid-utf8", "raw-nul-in-name", "raw-nul-in-digest", "100k-request-line"],
)
def test_request_line_the_http_parser_rejects_gets_400_and_creates_nothing(
    live_bindle: _LiveBindle, target: bytes
) -> None:
    # uvicorn's parser answers these before the app sees them, with its own plain-text body
    # ("Invalid HTTP request received."), so only the status and the disk are ours to check.
    snapshot = _Snapshot.take(live_bindle.test_dir, live_bindle.server.data_dir)
    for method in METHODS:
        response = _send_raw(live_bindle.server.port, method, target, LISTED.data)
        assert response.status == 400, f"{method}: {response.body[:300]!r}"
    snapshot.assert_nothing_created()


def test_live_server_still_serves_the_bindle_after_hostile_requests(
    live_bindle: _LiveBindle,
) -> None:
    response = _send_raw(live_bindle.server.port, "GET", f"/v1/_r/missing/{BINDLE}".encode())
    assert response.status == 200
    assert [label["sha256"] for label in tomli.loads(response.body.decode())["missing"]] == [SHA]
