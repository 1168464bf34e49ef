"""Pushing uploads only what the server lacks: partial bindles, resumed pushes, and a
stop when the server holds a different invoice (deislabs/bindle#335)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from bindle_server.client import (
    AsyncBindleClient,
    BindleClient,
    push_standalone,
)
from bindle_server.client.progress import Transfer
from tests.client.cli import BindleCli
from tests.client.standalones import pack, write_standalone
from tests.factories import make_invoice, parcel
from tests.servers import ServerProcess

# uvicorn logs the path re-quoted, so the `@` before the digest appears as %40.
_UPLOAD = re.compile(r'"POST /v1/_i/[^"]+?(?:@|%40)([0-9a-f]{64}) HTTP/1\.1" (\d{3})')


def uploads(log: str) -> list[tuple[str, int]]:
    """(sha256, status) of every parcel upload in a server log, in order."""
    return [(match[1], int(match[2])) for match in _UPLOAD.finditer(log)]


def uploads_since(server: ServerProcess, offset: int, expected: int) -> list[tuple[str, int]]:
    """The uploads logged after `offset`, waiting (5 s at most) until `expected` appear:
    uvicorn writes an access line just after the response, so it may trail the client."""
    deadline = time.monotonic() + 5
    while True:
        found = uploads(server.log()[offset:])
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_partial_standalone_pushes_what_it_has_and_a_full_one_completes_it(
    live_server: ServerProcess, bindle: BindleCli, work: Path
) -> None:
    a, b, c = parcel("a" * 1000), parcel("b" * 2000), parcel("c" * 3000)
    doc = make_invoice("example.com/partial", "1.0.0", parcels=[a, b, c])
    write_standalone(work / "partial", doc, [a, c])
    first = bindle.run("push", doc.bindle_id, "-p", "partial")
    assert "2 parcel(s) uploaded" in first.stdout
    assert "1 parcel(s) are still missing" in first.stdout
    with BindleClient(live_server.url) as client:
        assert [label.sha256 for label in client.missing_parcels(doc.bindle_id)] == [b.sha256]

    tarball = pack(write_standalone(work / "full", doc, [a, b, c]), work / "tarballs")
    before = len(live_server.log())
    second = bindle.run("push", doc.bindle_id, "-p", str(tarball))
    assert "invoice already existed" in second.stdout and "1 parcel(s) uploaded" in second.stdout
    assert uploads_since(live_server, before, 1) == [(b.sha256, 200)]
    with BindleClient(live_server.url) as client:
        assert client.missing_parcels(doc.bindle_id) == []


class _Interrupt(Exception):
    """Stands for Ctrl-C or a lost machine in the middle of an upload."""


class _InterruptingProgress:
    """Lets `allowed` uploads finish, then breaks the next one half-way through."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.finished = 0

    def transfer(self, description: str, total: int) -> Transfer:
        progress = self

        class Cut:
            sent = 0

            def advance(self, amount: int) -> None:
                self.sent += amount
                if progress.finished >= progress.allowed and self.sent > total // 2:
                    raise _Interrupt(description)

            def restart(self) -> None:
                self.sent = 0

            def close(self) -> None:
                progress.finished += 1

        return Cut()

    def note(self, message: str) -> None:
        pass


def test_an_interrupted_push_resumes_with_only_the_missing_parcels(
    live_server: ServerProcess, bindle: BindleCli, work: Path
) -> None:
    payloads = [parcel(bytes([index]) * (3 * 1024 * 1024)) for index in range(4)]  # 3 MiB each
    doc = make_invoice("example.com/resume", "2.0.0", parcels=payloads)
    write_standalone(work / "standalone", doc, payloads)

    async def interrupted_push() -> None:
        async with AsyncBindleClient(live_server.url) as client:
            await push_standalone(
                client,
                work / "standalone",
                concurrency=1,
                progress=_InterruptingProgress(allowed=2),
            )

    with pytest.raises(_Interrupt):
        asyncio.run(interrupted_push())
    with BindleClient(live_server.url) as client:
        still_missing = [label.sha256 for label in client.missing_parcels(doc.bindle_id)]
    assert still_missing == [p.sha256 for p in payloads[2:]]

    before = len(live_server.log())
    resumed = bindle.run("push", doc.bindle_id, "-p", "standalone")
    assert "2 parcel(s) uploaded, 2 already on the server" in resumed.stdout
    assert sorted(uploads_since(live_server, before, 2)) == sorted(
        (p.sha256, 200) for p in payloads[2:]
    )
    stored = [sha for sha, status in uploads(live_server.log()) if status == 200]
    assert sorted(stored) == sorted(p.sha256 for p in payloads)  # each stored exactly once


def test_push_stops_when_the_server_has_a_different_invoice(
    live_server: ServerProcess, bindle: BindleCli, work: Path
) -> None:
    a, b = parcel("first"), parcel("second")
    published = make_invoice("example.com/conflict", "1.0.0", parcels=[a])
    with BindleClient(live_server.url) as client:
        client.create_invoice(published.toml())
    local = make_invoice("example.com/conflict", "1.0.0", parcels=[a, b], annotations={"k": "v"})
    write_standalone(work / "standalone", local, [a, b])

    before = len(live_server.log())
    result = bindle.run("push", local.bindle_id, "-p", "standalone", check=False)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("InvoiceMismatch: ") and "annotations, parcel" in last
    assert uploads(live_server.log()[before:]) == []


def test_pushing_the_same_bindle_again_uploads_nothing(
    live_server: ServerProcess, bindle: BindleCli, work: Path
) -> None:
    tree = work / "tree"
    (tree / "docs").mkdir(parents=True)
    (tree / "app.wasm").write_bytes(b"\x00asm\x01\x00\x00\x00")
    (tree / "docs" / "README.md").write_text("# hello\n")
    args = ("push-dir", "tree", "--name", "example.com/ci", "--version", "3.1.4", "--groups")
    first = bindle.run(*args)
    assert "invoice created): 2 parcel(s) uploaded" in first.stdout
    before = len(live_server.log())
    again = bindle.run(*args)
    assert "invoice already existed): 0 parcel(s) uploaded, 2 already" in again.stdout
    assert uploads(live_server.log()[before:]) == []

    (tree / "docs" / "README.md").write_text("# changed\n")
    changed = bindle.run(*args, check=False)
    assert changed.returncode == 1 and "InvoiceMismatch" in changed.stderr
