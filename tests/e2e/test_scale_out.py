"""Three bindle-server nodes on one bucket and one PostgreSQL index behave as one server.

Every node is its own process with its own port and data directory; they share only the
S3 bucket (`--storage`), the PostgreSQL database (`--index`) and the signing key file
(`--signing-keys`). Each test writes through one node and checks through the others, so
it fails as soon as any state lives in a single node.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import tomli

from bindle_server.storage import open_stores
from bindle_server.storage.s3 import PART_SIZE, S3ParcelStore
from tests import postgres
from tests.factories import InvoiceDoc, ParcelData, as_submitted, make_invoice, parcel
from tests.rgw import S3Server
from tests.servers import ServerProcess, start_server

ServerFactory = Callable[..., ServerProcess]

# Bounds for every wait in this file.
TIMEOUT = 60.0
POLL = 0.05


def _random_bytes(size: int, seed: int) -> bytes:
    """Bytes without a short period, so a misplaced chunk cannot read back as the right one."""
    return random.Random(seed).randbytes(size)


@dataclass
class Cluster:
    """Three nodes sharing one bucket, one index database and one signing key file."""

    start: Callable[[str], ServerProcess]
    nodes: dict[str, ServerProcess] = field(default_factory=dict)

    def __getitem__(self, name: str) -> ServerProcess:
        return self.nodes[name]

    def restart(self, name: str) -> ServerProcess:
        """Start node `name` again on its own data directory (after it stopped or died)."""
        assert self.nodes[name].process.poll() is not None, f"node {name} is still running"
        self.nodes[name] = self.start(name)
        return self.nodes[name]


@pytest.fixture
def cluster(
    s3_server: S3Server, s3_url: str, postgres_url: str, tmp_path: Path
) -> Iterator[Cluster]:
    keys = tmp_path / "shared-signing-keys.toml"
    args = ("--storage", s3_url, "--index", postgres_url, "--signing-keys", str(keys))
    started: list[ServerProcess] = []
    logs = itertools.count()

    def start(name: str) -> ServerProcess:
        log = tmp_path / f"node-{name}-{next(logs)}.log"  # a new log for each start
        server = start_server(tmp_path / f"node-{name}", log, *args, env=s3_server.environment)
        started.append(server)
        return server

    nodes = Cluster(start)
    try:
        # The first start creates the shared key file; the others then load the same key,
        # and start side by side.
        nodes.nodes["a"] = start("a")
        with ThreadPoolExecutor(2) as pool:
            nodes.nodes["b"], nodes.nodes["c"] = pool.map(start, "bc")
        assert keys.is_file()
        assert len({node.port for node in nodes.nodes.values()}) == 3
        yield nodes
    finally:
        for server in started:
            server.stop()


# --- small helpers over the HTTP API ------------------------------------------------------


def _create(node: ServerProcess, doc: InvoiceDoc) -> httpx.Response:
    return httpx.post(f"{node.url}/_i", content=doc.toml(), timeout=TIMEOUT)


def _upload(node: ServerProcess, doc: InvoiceDoc, item: ParcelData) -> httpx.Response:
    return httpx.post(
        f"{node.url}/_i/{doc.bindle_id}@{item.sha256}", content=item.data, timeout=TIMEOUT
    )


def _parcel(node: ServerProcess, doc: InvoiceDoc, item: ParcelData, **kw: Any) -> httpx.Response:
    return httpx.get(f"{node.url}/_i/{doc.bindle_id}@{item.sha256}", timeout=TIMEOUT, **kw)


def _invoice(node: ServerProcess, doc: InvoiceDoc, **params: str) -> httpx.Response:
    return httpx.get(f"{node.url}/_i/{doc.bindle_id}", params=params, timeout=TIMEOUT)


def _missing(node: ServerProcess, doc: InvoiceDoc) -> list[str]:
    response = httpx.get(f"{node.url}/_r/missing/{doc.bindle_id}", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return [label["sha256"] for label in tomli.loads(response.text)["missing"]]


def _query(node: ServerProcess, **params: str) -> dict[str, Any]:
    response = httpx.get(f"{node.url}/_q", params=params, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = tomli.loads(response.text)
    return result


def _found(node: ServerProcess, **params: str) -> list[str]:
    """bindle ids a query through `node` answers, in its order."""
    invoices = _query(node, **params)["invoices"]
    return [f"{i['bindle']['name']}/{i['bindle']['version']}" for i in invoices]


def _parcel_objects(s3_server: S3Server, bucket: str, sha256: str) -> list[tuple[str, int]]:
    """(key, size) of every object the bucket holds for one parcel."""
    client = s3_server.client()
    try:
        listing = client.list_objects_v2(Bucket=bucket, Prefix=f"bindle/parcels/{sha256}")
    finally:
        client.close()
    return [(item["Key"], item["Size"]) for item in listing.get("Contents", [])]


def _pending_uploads(s3_server: S3Server, bucket: str) -> list[tuple[str, str]]:
    """(key, upload id) of every multipart upload started and neither completed nor aborted."""
    client = s3_server.client()
    try:
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    finally:
        client.close()
    return [(upload["Key"], upload["UploadId"]) for upload in uploads]


def _uploaded_parts(s3_server: S3Server, bucket: str, key: str, upload_id: str) -> int:
    client = s3_server.client()
    try:
        parts = client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id).get("Parts", [])
    finally:
        client.close()
    return len(parts)


def _wait_for(what: str, check: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(POLL)


def _server_errors(*nodes: ServerProcess) -> list[str]:
    """Lines of the nodes' logs that report a server-side failure."""
    markers = ("Traceback", "ERROR", "failed unexpectedly", '" 5')
    return [
        line
        for node in nodes
        for line in node.log().splitlines()
        if any(m in line for m in markers)
    ]


# --- 1. what one node stores, every node serves --------------------------------------------


def test_invoice_and_parcels_pushed_through_one_node_are_served_by_the_others(
    cluster: Cluster,
) -> None:
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    small = parcel("hello from node a\n", media_type="text/plain", name="hello.txt")
    large = parcel(_random_bytes(3 * 1024 * 1024 + 17, seed=1), name="blob.bin")
    wasm = parcel(_random_bytes(70_000, seed=2), media_type="application/wasm")
    doc = make_invoice("example.com/scale/shared", "1.0.0", parcels=[small, large, wasm])

    created = _create(a, doc)
    assert created.status_code == 202, created.text
    everything = [small.sha256, large.sha256, wasm.sha256]
    assert _missing(b, doc) == everything

    # One invoice document, host signature included, whichever node serves it.
    served = [_invoice(node, doc) for node in (a, b, c)]
    assert [response.status_code for response in served] == [200, 200, 200]
    assert served[1].text == served[0].text
    assert served[2].text == served[0].text
    stored = tomli.loads(served[1].text)
    assert as_submitted(stored) == doc.document()
    (host_signature,) = [s for s in stored["signature"] if s["role"] == "host"]
    keyrings = [
        httpx.get(f"{node.url}/bindle-keys", params={"roles": "host"}) for node in (a, b, c)
    ]
    assert keyrings[0].status_code == 200
    assert keyrings[1].text == keyrings[0].text == keyrings[2].text
    assert [key["key"] for key in tomli.loads(keyrings[2].text)["key"]] == [host_signature["key"]]

    # Uploads through A show up in B's view of what is missing, one by one.
    assert _upload(a, doc, large).status_code == 200
    assert _missing(b, doc) == [small.sha256, wasm.sha256]
    assert _parcel(c, doc, small).status_code == 404  # not uploaded yet, on any node
    assert _upload(a, doc, small).status_code == 200
    assert _upload(a, doc, wasm).status_code == 200
    assert _missing(b, doc) == []
    assert _missing(c, doc) == []
    # Already stored, whichever node is asked.
    assert _upload(c, doc, small).status_code == 409

    for node in (b, c):
        for item in (small, large, wasm):
            response = _parcel(node, doc, item)
            assert response.status_code == 200
            assert response.content == item.data
            assert response.headers["content-type"] == item.media_type
            assert response.headers["etag"] == f'"{item.sha256}"'

    # Byte ranges, across the whole file and at its tail, through a node that did not store it.
    part = _parcel(b, doc, large, headers={"Range": "bytes=1000000-2999999"})
    assert part.status_code == 206
    assert part.content == large.data[1_000_000:3_000_000]
    assert part.headers["content-range"] == f"bytes 1000000-2999999/{large.size}"
    tail = _parcel(c, doc, large, headers={"Range": "bytes=-100"})
    assert tail.status_code == 206
    assert tail.content == large.data[-100:]

    # The index is shared: C finds what A stored, and A's parcels count for C's invoices.
    assert _found(c, q="example.com/scale/shared") == [doc.bindle_id]
    result = _query(c, q="scale/shared")
    assert result["total"] == 1
    assert as_submitted(result["invoices"][0]) == doc.document()
    again = make_invoice("example.com/scale/shared", "1.1.0", parcels=[small, large, wasm])
    second = _create(c, again)
    assert second.status_code == 201, second.text  # nothing missing: A stored every parcel
    assert _found(b, q="example.com/scale/shared", v=">=1.1.0") == [again.bindle_id]
    assert _server_errors(a, b, c) == []


# --- 2. races between nodes --------------------------------------------------------------


async def _spread(nodes: list[ServerProcess], requests: list[Callable[..., Any]]) -> list[int]:
    """Send request i through node i % len(nodes), all at once; their status codes in order."""
    clients = [httpx.AsyncClient(base_url=node.url, timeout=TIMEOUT) for node in nodes]
    try:
        # Open a connection to every node first, so the requests leave together.
        await asyncio.gather(*(client.get("/bindle-keys") for client in clients))
        responses = await asyncio.gather(
            *(send(clients[i % len(clients)]) for i, send in enumerate(requests))
        )
    finally:
        for client in clients:
            await client.aclose()
    return [response.status_code for response in responses]


def test_racing_creates_of_one_id_on_three_nodes_have_exactly_one_winner(
    cluster: Cluster,
) -> None:
    nodes = [cluster["a"], cluster["b"], cluster["c"]]
    # Twelve different documents for one id: whichever is stored tells who won.
    docs = [
        make_invoice("example.com/scale/race", "1.0.0", annotations={"racer": str(n)})
        for n in range(12)
    ]

    def create(doc: InvoiceDoc) -> Callable[[httpx.AsyncClient], Any]:
        return lambda client: client.post("/_i", content=doc.toml())

    statuses = asyncio.run(_spread(nodes, [create(doc) for doc in docs]))
    assert sorted(statuses) == [201] + [409] * 11, statuses
    winner = docs[statuses.index(201)]

    for node in nodes:
        stored = _invoice(node, winner)
        assert stored.status_code == 200
        assert as_submitted(tomli.loads(stored.text)) == winner.document()
        # The index holds the winner only, once.
        result = _query(node, q="example.com/scale/race")
        assert result["total"] == 1
        assert as_submitted(result["invoices"][0]) == winner.document()
    assert _server_errors(*nodes) == []


@pytest.mark.parametrize(
    ("size", "racers"),
    [
        pytest.param(200_000, 12, id="single-put"),
        # Over one part: each racer streams a multipart upload to the same key.
        pytest.param(PART_SIZE + 1024 * 1024 + 3, 6, id="multipart"),
    ],
)
def test_racing_uploads_of_one_parcel_through_three_nodes_store_it_once(
    cluster: Cluster, s3_server: S3Server, s3_bucket: str, size: int, racers: int
) -> None:
    nodes = [cluster["a"], cluster["b"], cluster["c"]]
    payload = parcel(_random_bytes(size, seed=size))
    doc = make_invoice("example.com/scale/upload-race", "1.0.0", parcels=[payload])
    assert _create(cluster["b"], doc).status_code == 202
    path = f"/_i/{doc.bindle_id}@{payload.sha256}"

    def upload(client: httpx.AsyncClient) -> Any:
        return client.post(path, content=payload.data)

    statuses = asyncio.run(_spread(nodes, [upload] * racers))
    assert set(statuses) <= {200, 409}, statuses
    assert 200 in statuses

    for node in nodes:
        download = _parcel(node, doc, payload)
        assert download.status_code == 200
        assert hashlib.sha256(download.content).hexdigest() == payload.sha256
        assert download.content == payload.data
        assert _missing(node, doc) == []
    key = f"bindle/parcels/{payload.sha256}/parcel.dat"
    assert _parcel_objects(s3_server, s3_bucket, payload.sha256) == [(key, payload.size)]
    # Losers abort their multipart uploads: nothing is left pending.
    assert _pending_uploads(s3_server, s3_bucket) == []
    assert _server_errors(*nodes) == []


# --- 3. a yank through one node ----------------------------------------------------------


def test_a_yank_through_one_node_is_seen_by_the_others(cluster: Cluster) -> None:
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    payload = parcel(_random_bytes(10_000, seed=3))
    doc = make_invoice("example.com/scale/yank", "1.0.0", parcels=[payload])
    kept = make_invoice("example.com/scale/yank", "2.0.0")
    assert _create(a, doc).status_code == 202
    assert _create(c, kept).status_code == 201
    assert _upload(a, doc, payload).status_code == 200
    assert _found(c, q="example.com/scale/yank") == [doc.bindle_id, kept.bindle_id]

    assert httpx.delete(f"{b.url}/_i/{doc.bindle_id}").status_code == 200

    for node in (a, c):
        assert _invoice(node, doc).status_code == 403
        assert _parcel(node, doc, payload).status_code == 403
        yanked = _invoice(node, doc, yanked="true")
        assert yanked.status_code == 200
        assert tomli.loads(yanked.text)["yanked"] is True
        assert yanked.text == _invoice(b, doc, yanked="true").text
        assert _parcel(node, doc, payload, params={"yanked": "true"}).content == payload.data
        # The shared index hides it from every node, unless asked for yanked ones.
        assert _found(node, q="example.com/scale/yank") == [kept.bindle_id]
        assert _found(node, q="example.com/scale/yank", yanked="true") == [
            doc.bindle_id,
            kept.bindle_id,
        ]
    # Still there, so it cannot be created again, on any node; yanking again is a no-op.
    assert _create(c, doc).status_code == 409
    assert httpx.delete(f"{c.url}/_i/{doc.bindle_id}").status_code == 200
    assert _invoice(a, kept).status_code == 200
    assert _server_errors(a, b, c) == []


# --- 4. a node killed mid-upload ------------------------------------------------------------


class _Prober:
    """Reads and creates through the surviving nodes in a loop, on a thread of its own.

    Every failed or wrong answer is recorded in `failures`; leaving the `with` block ends
    the loop.
    """

    def __init__(self, nodes: list[ServerProcess], doc: InvoiceDoc, item: ParcelData) -> None:
        self._nodes = nodes
        self._doc = doc
        self._item = item
        self._stop = threading.Event()
        self.rounds = 0
        self.failures: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)

    def _run(self) -> None:
        deadline = time.monotonic() + 3 * TIMEOUT
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    self._round(client)
                except httpx.HTTPError as exc:
                    self.failures.append(f"round {self.rounds}: {type(exc).__name__}: {exc}")
                self.rounds += 1
                self._stop.wait(0.1)

    def _round(self, client: httpx.Client) -> None:
        writer, reader = self._nodes[self.rounds % 2], self._nodes[(self.rounds + 1) % 2]
        invoice = client.get(f"{reader.url}/_i/{self._doc.bindle_id}")
        blob = client.get(f"{reader.url}/_i/{self._doc.bindle_id}@{self._item.sha256}")
        fresh = make_invoice("example.com/scale/alive", f"0.0.{self.rounds}")
        created = client.post(f"{writer.url}/_i", content=fresh.toml())
        seen = client.get(f"{reader.url}/_i/{fresh.bindle_id}")
        if (invoice.status_code, blob.status_code, created.status_code, seen.status_code) != (
            200,
            200,
            201,
            200,
        ) or blob.content != self._item.data:
            self.failures.append(
                f"round {self.rounds}: invoice {invoice.status_code}, parcel "
                f"{blob.status_code}, create {created.status_code}, read-back {seen.status_code}"
            )


def _sweep_abandoned(s3_url: str) -> int:
    """Sweep every pending upload as a node (or fsck) would, from this process."""

    async def sweep() -> int:
        stores = open_stores(s3_url)
        await stores.start()
        try:
            assert isinstance(stores.parcels, S3ParcelStore)
            return await stores.parcels.sweep_abandoned_uploads(older_than=timedelta(0))
        finally:
            await stores.close()

    return anyio.run(sweep)


@pytest.mark.slow
def test_a_node_killed_mid_upload_leaves_the_others_serving_and_no_half_parcel(
    cluster: Cluster, s3_server: S3Server, s3_bucket: str, s3_url: str
) -> None:
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    small = parcel(_random_bytes(5_000, seed=4))
    big = parcel(_random_bytes(40 * 1024 * 1024 + 11, seed=5))
    doc = make_invoice("example.com/scale/kill", "1.0.0", parcels=[small, big])
    assert _create(a, doc).status_code == 202
    assert _upload(b, doc, small).status_code == 200
    key = f"bindle/parcels/{big.sha256}/parcel.dat"

    chunk = 1024 * 1024
    pause_at = PART_SIZE + 4 * chunk  # a whole part received, so it is on its way up
    resume = threading.Event()
    outcome: list[object] = []

    def body() -> Iterator[bytes]:
        for start in range(0, big.size, chunk):
            if start == pause_at:
                resume.wait(TIMEOUT)  # hold the stream open until node A is dead
            yield big.data[start : start + chunk]

    def upload() -> None:
        try:
            outcome.append(
                httpx.post(
                    f"{a.url}/_i/{doc.bindle_id}@{big.sha256}",
                    content=body(),
                    headers={"Content-Length": str(big.size)},
                    timeout=TIMEOUT,
                )
            )
        except httpx.TransportError as exc:
            outcome.append(exc)

    uploader = threading.Thread(target=upload, daemon=True)
    with _Prober([b, c], doc, small) as prober:
        uploader.start()
        try:
            # Node A has started a multipart upload and sent it a part: mid-stream for real.
            _wait_for(
                "node A's multipart upload", lambda: bool(_pending_uploads(s3_server, s3_bucket))
            )
            ((pending_key, upload_id),) = _pending_uploads(s3_server, s3_bucket)
            assert pending_key == key
            _wait_for(
                "a part in the store",
                lambda: _uploaded_parts(s3_server, s3_bucket, key, upload_id) >= 1,
            )
            assert _missing(b, doc) == [big.sha256]  # parts are not a parcel
            a.kill()
        finally:
            resume.set()
            uploader.join(TIMEOUT)
        assert not uploader.is_alive()
        assert len(outcome) == 1
        assert isinstance(outcome[0], httpx.TransportError), outcome  # no answer: A died

        # Never visible half-written, on either surviving node, nor in the bucket.
        assert _missing(b, doc) == [big.sha256]
        assert _missing(c, doc) == [big.sha256]
        assert _parcel(c, doc, big).status_code == 404
        assert _parcel_objects(s3_server, s3_bucket, big.sha256) == []
        assert _pending_uploads(s3_server, s3_bucket) == [(key, upload_id)]

        # The retry through a survivor stores it; it reads back exactly through the other.
        retry = _upload(c, doc, big)
        assert retry.status_code == 200, retry.text
        download = _parcel(b, doc, big)
        assert download.status_code == 200
        assert hashlib.sha256(download.content).hexdigest() == big.sha256
        assert download.content == big.data
        assert _missing(b, doc) == []
        time.sleep(0.5)  # a few more rounds against the healed cluster
    assert prober.rounds >= 5
    assert prober.failures == []
    assert a.process.returncode is not None and a.process.returncode < 0  # killed, by a signal

    # Only the dead node's upload is left over (C's completed); the sweep aborts it.
    assert _pending_uploads(s3_server, s3_bucket) == [(key, upload_id)]
    assert _sweep_abandoned(s3_url) == 1
    assert _pending_uploads(s3_server, s3_bucket) == []
    assert _parcel_objects(s3_server, s3_bucket, big.sha256) == [(key, big.size)]
    assert _parcel(c, doc, big, headers={"Range": "bytes=-64"}).content == big.data[-64:]
    assert _server_errors(b, c) == []


# --- 5. a node restarted after the others wrote ---------------------------------------------


def test_a_node_restarted_after_others_wrote_serves_their_writes_without_reindexing(
    cluster: Cluster,
) -> None:
    a, b = cluster["a"], cluster["b"]
    before = make_invoice("example.com/scale/restart", "1.0.0")
    assert _create(cluster["c"], before).status_code == 201
    cluster["c"].stop()

    # Written while node C is down.
    payload = parcel(_random_bytes(50_000, seed=6))
    docs = [
        make_invoice("example.com/scale/restart", f"1.{n}.0", parcels=[payload])
        for n in range(1, 4)
    ]
    assert _create(a, docs[0]).status_code == 202
    assert _upload(b, docs[0], payload).status_code == 200
    assert _create(b, docs[1]).status_code == 201
    assert _create(a, docs[2]).status_code == 201
    assert httpx.delete(f"{a.url}/_i/{before.bindle_id}").status_code == 200

    c = cluster.restart("c")
    log = c.log()
    assert "query index: postgresql://" in log
    assert "reindexed" not in log  # it reads the shared index as the others left it
    assert not list(c.data_dir.glob("index.sqlite3*"))

    for doc in docs:
        assert _invoice(c, doc).text == _invoice(a, doc).text
        assert _missing(c, doc) == []
    assert _parcel(c, docs[2], payload).content == payload.data
    assert _invoice(c, before).status_code == 403
    assert _found(c, q="example.com/scale/restart") == [doc.bindle_id for doc in docs]
    assert _query(c, q="example.com/scale/restart", yanked="true")["total"] == 4

    # And it is a full member again: what it writes, the others serve.
    after = make_invoice("example.com/scale/restart", "2.0.0", parcels=[payload])
    assert _create(c, after).status_code == 201
    assert _invoice(b, after).text == _invoice(c, after).text
    assert _found(a, q="example.com/scale/restart", v=">=2") == [after.bindle_id]
    assert _server_errors(a, b, c) == []


def test_nodes_on_a_new_index_database_over_a_populated_bucket_rebuild_the_index(
    server_factory: ServerFactory,
    s3_server: S3Server,
    s3_url: str,
    postgres_url: str,
    postgres_server: str,
    tmp_path: Path,
) -> None:
    keys = tmp_path / "shared-signing-keys.toml"
    storage = ("--storage", s3_url, "--signing-keys", str(keys))

    def start(name: str, index: str) -> ServerProcess:
        return server_factory(
            tmp_path / name, *storage, "--index", index, env=s3_server.environment
        )

    writer = start("writer", postgres_url)
    docs = [make_invoice("example.com/scale/new-index", f"1.{n}.0") for n in range(3)]
    for doc in docs:
        assert _create(writer, doc).status_code == 201
    writer.stop()

    # The index database is lost (or the deployment moves to a new one): the bucket is the
    # truth, and the first node on the new database must rebuild the index from it.
    with postgres.fresh_database(postgres_server) as new_index:
        first = start("first", new_index)
        second = start("second", new_index)
        try:
            assert _invoice(second, docs[0]).status_code == 200  # in the bucket, as it should
            assert _found(second, q="example.com/scale/new-index") == [d.bindle_id for d in docs]
            assert "reindexed 3 invoice(s)" in first.log()
        finally:  # before their database is dropped
            first.stop()
            second.stop()
