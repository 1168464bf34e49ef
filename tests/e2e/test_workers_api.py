"""The core API against a live server with two worker processes: whichever worker takes a
connection, every caller sees the same invoices, parcels, yanks and query results, and
concurrent writers of one thing on different workers agree on one outcome.

Each check opens fresh connections (one request each), which the kernel hands to
whichever worker accepts first: a per-worker cache or index would show up as answers
that differ between them.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import tomli

from tests.factories import as_submitted, make_invoice, parcel
from tests.servers import ServerProcess

FRESH_CONNECTIONS = 24
TIMEOUT = 30.0


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(None, "--workers", "2")


def _fresh(server: ServerProcess, method: str, path: str, **kwargs: Any) -> list[httpx.Response]:
    """The same request on FRESH_CONNECTIONS new connections, several at a time."""

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
            response = client.request(method, path, **kwargs)
            response.read()
            return response

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(FRESH_CONNECTIONS)))


def test_a_push_is_seen_alike_by_every_worker(server: ServerProcess) -> None:
    items = [parcel(f"worker parcel {n}\n" * 500, name=f"p{n}.txt") for n in range(3)]
    doc = make_invoice("example.com/workers/app", parcels=items)
    created = httpx.post(f"{server.url}/_i", content=doc.toml(), timeout=TIMEOUT)
    assert created.status_code == 202

    for answer in _fresh(server, "GET", f"/_i/{doc.bindle_id}"):
        assert answer.status_code == 200
        assert as_submitted(tomli.loads(answer.text)) == doc.document()
    missing = {answer.text for answer in _fresh(server, "GET", f"/_r/missing/{doc.bindle_id}")}
    assert len(missing) == 1
    assert {label["sha256"] for label in tomli.loads(missing.pop())["missing"]} == {
        item.sha256 for item in items
    }

    for item in items:
        url = f"{server.url}/_i/{doc.bindle_id}@{item.sha256}"
        assert httpx.post(url, content=item.data, timeout=TIMEOUT).status_code == 200
    for item in items:
        for answer in _fresh(server, "GET", f"/_i/{doc.bindle_id}@{item.sha256}"):
            assert answer.status_code == 200
            assert answer.content == item.data
    for answer in _fresh(server, "GET", f"/_r/missing/{doc.bindle_id}"):
        assert tomli.loads(answer.text).get("missing", []) == []


def test_a_yank_and_a_query_are_seen_alike_by_every_worker(server: ServerProcess) -> None:
    docs = [make_invoice("example.com/workers/q", f"1.{n}.0") for n in range(4)]
    for doc in docs:
        assert httpx.post(f"{server.url}/_i", content=doc.toml()).status_code == 201
    # Read through every worker first, so that a worker caching what it read would
    # still hold the invoice from before the yank.
    _fresh(server, "GET", f"/_i/{docs[0].bindle_id}")
    assert httpx.delete(f"{server.url}/_i/{docs[0].bindle_id}").status_code == 200

    assert {a.status_code for a in _fresh(server, "GET", f"/_i/{docs[0].bindle_id}")} == {403}
    for answer in _fresh(server, "GET", f"/_i/{docs[0].bindle_id}", params={"yanked": "true"}):
        assert answer.status_code == 200
        assert tomli.loads(answer.text)["yanked"] is True
    pages = [
        tomli.loads(answer.text)
        for answer in _fresh(server, "GET", "/_q", params={"q": "example.com/workers/q"})
    ]
    for page in pages:
        assert page["total"] == 3
        assert [i["bindle"]["version"] for i in page["invoices"]] == ["1.1.0", "1.2.0", "1.3.0"]


def test_a_purge_by_another_process_is_seen_by_every_worker(server: ServerProcess) -> None:
    doc = make_invoice("example.com/workers/purged", "1.0.0")
    assert httpx.post(f"{server.url}/_i", content=doc.toml()).status_code == 201
    # Every worker reads it in both formats first, so each may hold what it rendered.
    _fresh(server, "GET", f"/_i/{doc.bindle_id}")
    _fresh(server, "GET", f"/_i/{doc.bindle_id}", headers={"Accept": "application/json"})
    command = [
        sys.executable, "-m", "bindle_server", "purge", "-d", str(server.data_dir),
        str(doc.bindle_id),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=TIMEOUT, capture_output=True)

    for accept in ("application/toml", "application/json"):
        answers = _fresh(server, "GET", f"/_i/{doc.bindle_id}", headers={"Accept": accept})
        assert {answer.status_code for answer in answers} == {404}


def test_concurrent_writers_on_different_workers_agree_on_one_outcome(
    server: ServerProcess,
) -> None:
    item = parcel(b"raced parcel\n" * 20_000)
    doc = make_invoice("example.com/workers/race", parcels=[item])
    creates = _fresh(server, "POST", "/_i", content=doc.toml())
    assert Counter(answer.status_code for answer in creates) == {
        202: 1,
        409: FRESH_CONNECTIONS - 1,
    }
    uploads = _fresh(server, "POST", f"/_i/{doc.bindle_id}@{item.sha256}", content=item.data)
    # Concurrent identical uploads: one stores the parcel, the others get 409 (already
    # stored or being written), whichever worker took each; never a 5xx, never twice.
    statuses = Counter(answer.status_code for answer in uploads)
    assert set(statuses) <= {200, 409}
    assert statuses[200] >= 1
    assert list((server.data_dir / "parcels").iterdir()) == [
        server.data_dir / "parcels" / item.sha256
    ]
    for answer in _fresh(server, "GET", f"/_i/{doc.bindle_id}@{item.sha256}"):
        assert answer.content == item.data
