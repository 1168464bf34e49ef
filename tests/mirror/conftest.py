"""Two live servers: an upstream, and mirrors of it started per test."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import InvoiceDoc, ParcelData, make_invoice, parcel
from tests.servers import ServerProcess, start_server

MirrorFactory = Callable[..., ServerProcess]


@pytest.fixture
def upstream(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory()


@pytest.fixture
def mirror_factory(tmp_path: Path) -> Iterator[MirrorFactory]:
    """Start mirrors (`--upstream URL` for each URL given, then `extra` options)."""
    started: list[ServerProcess] = []

    def start(*urls: str, extra: tuple[str, ...] = ()) -> ServerProcess:
        upstreams = [option for url in urls for option in ("--upstream", url)]
        name = f"mirror-{len(started)}"
        server = start_server(tmp_path / name, tmp_path / f"{name}.log", *upstreams, *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def push(server: ServerProcess, doc: InvoiceDoc, parcels: list[ParcelData]) -> None:
    """Push an invoice and its parcels to a server."""
    created = httpx.post(f"{server.url}/_i", content=doc.toml())
    assert created.status_code in (201, 202), created.text
    for item in parcels:
        stored = httpx.post(f"{server.url}/_i/{doc.bindle_id}@{item.sha256}", content=item.data)
        assert stored.status_code == 200, stored.text


def pushed(
    server: ServerProcess, name: str = "example.com/mirrored", version: str = "1.0.0"
) -> tuple[InvoiceDoc, ParcelData]:
    """A bindle of one small parcel, pushed to `server`."""
    item = parcel(f"parcel of {name} {version}\n" * 1000)
    doc = make_invoice(name, version, [item])
    push(server, doc, [item])
    return doc, item


def kill_upstream(server: ServerProcess) -> None:
    """SIGKILL a server and every process it started (its workers): an upstream that
    vanishes at once, mid-request, with nobody left to answer on its port."""
    doomed = [server.pid, *_descendants(server.pid)]
    for pid in reversed(doomed):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.kill()  # reaps it


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def parcel_path(server: ServerProcess, sha256: str) -> Path:
    return server.data_dir / "parcels" / sha256 / "parcel.dat"


def invoice_stored(server: ServerProcess, doc: InvoiceDoc) -> bool:
    from bindle_server.model import BindleId

    key = BindleId.parse(doc.bindle_id).key
    return (server.data_dir / "invoices" / key / "invoice.toml").is_file()
