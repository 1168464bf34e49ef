"""Downloads from the UI: a bindle as a standalone `.tar.gz`, a parcel as an attachment."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from bindle_server.api.app import create_app
from bindle_server.client import open_standalone
from bindle_server.config import Settings
from bindle_server.errors import StoredParcelDamaged
from bindle_server.model import BindleId, parse_invoice
from bindle_server.service.archive import standalone_archive
from tests.auth.conftest import alice_reads_carol_nothing, basic
from tests.client.cli import BindleCli
from tests.factories import InvoiceDoc, ParcelData, make_invoice, parcel
from tests.servers import ServerProcess

NAME = "example.com/web/site"
VERSION = "1.2.0"
ARCHIVE = f"/download/{NAME}/{VERSION}.tar.gz"
KEY = BindleId(NAME, VERSION).key


def _parcels() -> list[ParcelData]:
    return [
        parcel(b"<h1>hello</h1>\n", media_type="text/html", name="index.html"),
        # Over the size that is compressed in a worker thread, and not a whole tar block.
        parcel(bytes(range(256)) * 700 + b"tail", name="css/main.css", media_type="text/css"),
        parcel(b"never uploaded", name="missing.bin"),
        parcel(b"\x00" * 5000, name="r\u00e9sum\u00e9 \u00fcber.txt"),
        parcel(b"also never uploaded", name="absent.bin"),
    ]


@pytest.fixture
def site(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(settings_factory()), base_url="http://testserver") as client:
        yield client


def _push(client: TestClient, doc: InvoiceDoc, uploaded: list[ParcelData], **kw: str) -> None:
    headers = dict(kw)
    assert client.post("/v1/_i", content=doc.toml(), headers=headers).status_code in (201, 202)
    for data in uploaded:
        path = f"/v1/_i/{doc.bindle_id}@{data.sha256}"
        assert client.post(path, content=data.data, headers=headers).status_code == 200


@pytest.fixture
def pushed(site: TestClient) -> tuple[InvoiceDoc, list[ParcelData]]:
    """The bindle with three of its five parcels uploaded (the stored ones)."""
    parcels = _parcels()
    doc = make_invoice(NAME, VERSION, parcels)
    stored = [parcels[0], parcels[1], parcels[3]]
    _push(site, doc, stored)
    return doc, stored


def _members(content: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
        return {member.name: member for member in archive.getmembers()}


def _file(content: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
        extracted = archive.extractfile(name)
        assert extracted is not None
        return extracted.read()


def test_archive_holds_the_invoice_and_every_stored_parcel_in_the_standalone_layout(
    site: TestClient, pushed: tuple[InvoiceDoc, list[ParcelData]]
) -> None:
    doc, stored = pushed
    response = site.get(ARCHIVE)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/gzip"
    assert response.headers["content-disposition"] == f'attachment; filename="{KEY}.tar.gz"'
    members = _members(response.content)
    expected = {KEY, f"{KEY}/invoice.toml", f"{KEY}/parcels"}
    expected |= {f"{KEY}/parcels/{data.sha256}.dat" for data in stored}
    assert set(members) == expected
    assert members[KEY].isdir() and members[f"{KEY}/parcels"].isdir()
    # The invoice exactly as the API serves it (with the host signature).
    served = site.get(f"/v1/_i/{doc.bindle_id}").content
    assert _file(response.content, f"{KEY}/invoice.toml") == served
    for data in stored:
        content = _file(response.content, f"{KEY}/parcels/{data.sha256}.dat")
        assert hashlib.sha256(content).hexdigest() == data.sha256
    # Fixed owner and mode; the time is when the server accepted the invoice.
    created = parse_invoice(served).created_at
    for member in members.values():
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == created
        assert member.mode == (0o755 if member.isdir() else 0o644)


def test_two_downloads_of_a_bindle_give_identical_bytes(
    site: TestClient, pushed: tuple[InvoiceDoc, list[ParcelData]]
) -> None:
    first, second = site.get(ARCHIVE), site.get(ARCHIVE)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    # A gzip member with no time stamp and no file name in its header (RFC 1952 2.3).
    assert first.content[:4] == b"\x1f\x8b\x08\x00" and first.content[4:8] == bytes(4)


def test_the_archive_reads_back_as_a_partial_standalone_bindle(
    site: TestClient, pushed: tuple[InvoiceDoc, list[ParcelData]], tmp_path: Path
) -> None:
    doc, stored = pushed
    tarball = tmp_path / f"{KEY}.tar.gz"
    tarball.write_bytes(site.get(ARCHIVE).content)
    with open_standalone(tmp_path, BindleId(NAME, VERSION)) as standalone:
        assert standalone.invoice_bytes == site.get(f"/v1/_i/{doc.bindle_id}").content
        assert sorted(standalone.parcels) == sorted(data.sha256 for data in stored)
        for data in stored:
            assert standalone.parcels[data.sha256].read_bytes() == data.data
        assert {label.name for label in standalone.absent} == {"missing.bin", "absent.bin"}
        assert standalone.unlisted == []


def test_bindle_push_p_pushes_the_downloaded_archive_to_another_server(
    site: TestClient,
    pushed: tuple[InvoiceDoc, list[ParcelData]],
    live_server: ServerProcess,
    tmp_path: Path,
) -> None:
    doc, stored = pushed
    tarball = tmp_path / "export" / f"{KEY}.tar.gz"
    tarball.parent.mkdir()
    tarball.write_bytes(site.get(ARCHIVE).content)
    result = BindleCli(live_server.url, tmp_path).run("push", doc.bindle_id, "-p", str(tarball))
    assert "3 parcel(s) uploaded" in result.stdout
    for data in stored:
        got = httpx.get(f"{live_server.url}/_i/{doc.bindle_id}@{data.sha256}", timeout=10)
        assert got.content == data.data


def test_archive_of_an_unknown_bindle_is_404_and_a_bad_path_400(site: TestClient) -> None:
    assert site.get("/download/example.com/none/1.0.0.tar.gz").status_code == 404
    assert site.get(f"/download/{NAME}/{VERSION}.zip").status_code == 400
    assert site.get(f"/download/{NAME}/not-semver.tar.gz").status_code == 400


def test_archive_and_parcel_of_a_yanked_invoice_need_yanked_true(
    site: TestClient, pushed: tuple[InvoiceDoc, list[ParcelData]]
) -> None:
    doc, stored = pushed
    assert site.delete(f"/v1/_i/{doc.bindle_id}").status_code == 200
    parcel_path = f"/parcel/{NAME}/{VERSION}/{stored[0].sha256}"
    assert site.get(ARCHIVE).status_code == 403
    assert site.get(parcel_path).status_code == 403
    yanked = site.get(f"{ARCHIVE}?yanked=true")
    assert yanked.status_code == 200
    assert b"yanked = true" in _file(yanked.content, f"{KEY}/invoice.toml")
    assert site.get(f"{parcel_path}?yanked=true").content == stored[0].data


@pytest.fixture
def private_site(settings_factory: Callable[..., Settings], tmp_path: Path) -> Iterator[TestClient]:
    """Authentication on, anonymous read off; alice may read and create, carol nothing."""
    app = create_app(alice_reads_carol_nothing(settings_factory, tmp_path))
    with TestClient(app, base_url="http://testserver") as client:
        yield client


def test_downloads_need_read_access_on_the_name(private_site: TestClient) -> None:
    alice, carol = basic("alice", "alice-secret"), basic("carol", "carol-secret")
    data = parcel(b"private bytes", name="secret.txt")
    doc = make_invoice(NAME, VERSION, [data])
    _push(private_site, doc, [data], **alice)
    parcel_path = f"/parcel/{NAME}/{VERSION}/{data.sha256}"
    for path in (ARCHIVE, parcel_path):
        anonymous = private_site.get(path)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Basic")
        assert b"private bytes" not in anonymous.content
        refused = private_site.get(path, headers=carol)
        assert refused.status_code == 403
        assert b"private bytes" not in refused.content
        assert private_site.get(path, headers=alice).status_code == 200


def test_parcel_download_is_an_attachment_named_after_its_label(
    site: TestClient, pushed: tuple[InvoiceDoc, list[ParcelData]]
) -> None:
    _, stored = pushed
    html, css, unicode_named = stored
    response = site.get(f"/parcel/{NAME}/{VERSION}/{css.sha256}")
    assert response.status_code == 200
    assert response.content == css.data
    assert response.headers["content-length"] == str(css.size)
    assert response.headers["content-type"] == "text/css"
    # Only the label's last path segment: a browser must not be told about directories.
    assert response.headers["content-disposition"] == 'attachment; filename="main.css"'
    # A page stored as a parcel never runs as one of this site's pages.
    page = site.get(f"/parcel/{NAME}/{VERSION}/{html.sha256}")
    assert page.headers["content-disposition"] == 'attachment; filename="index.html"'
    assert "sandbox" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    named = site.get(f"/parcel/{NAME}/{VERSION}/{unicode_named.sha256}")
    disposition = named.headers["content-disposition"]
    encoded = quote("r\u00e9sum\u00e9 \u00fcber.txt", safe="")
    assert disposition == f"attachment; filename=\"r_sum_ _ber.txt\"; filename*=UTF-8''{encoded}"


@pytest.mark.parametrize(
    ("label_name", "filename"),
    [
        ('evil"; filename="x.exe', 'attachment; filename="evil_ filename=x.exe"'),
        ("../../etc/passwd", 'attachment; filename="passwd"'),
        ("dir\\..\\win.ini", 'attachment; filename="win.ini"'),
        ("line\r\nbreak.txt", 'attachment; filename="linebreak.txt"'),
        ("..", None),  # nothing usable: named after its digest
    ],
)
def test_parcel_download_filename_is_safe_whatever_the_label_says(
    site: TestClient, label_name: str, filename: str | None
) -> None:
    data = parcel(f"bytes named {label_name!r}", name=label_name)
    doc = make_invoice("example.com/names", "1.0.0", [data])
    _push(site, doc, [data])
    response = site.get(f"/parcel/example.com/names/1.0.0/{data.sha256}")
    assert response.status_code == 200
    expected = filename or f'attachment; filename="{data.sha256}"'
    assert response.headers["content-disposition"] == expected


def test_parcel_download_refuses_what_the_invoice_does_not_list_or_has_not_stored(
    site: TestClient, pushed: tuple[InvoiceDoc, list[ParcelData]]
) -> None:
    doc, _ = pushed
    other = parcel(b"listed elsewhere")
    _push(site, make_invoice("example.com/other", "1.0.0", [other]), [other])
    assert site.get(f"/parcel/{NAME}/{VERSION}/{other.sha256}").status_code == 400
    never = doc.parcels[2]
    assert site.get(f"/parcel/{NAME}/{VERSION}/{never.sha256}").status_code == 404
    assert site.get(f"/parcel/{NAME}/{VERSION}/not-a-digest").status_code == 400


def test_a_parcel_damaged_on_disk_stops_the_archive_before_it_starts(
    site: TestClient, pushed: tuple[InvoiceDoc, list[ParcelData]], data_dir: Path
) -> None:
    _, stored = pushed
    (path,) = data_dir.rglob(f"{stored[0].sha256}/parcel.dat")
    with path.open("ab") as grown:
        grown.write(b"!")
    response = site.get(ARCHIVE)
    assert response.status_code == 500
    assert response.headers["content-type"] != "application/gzip"


# The archive's stream on its own, as a byte-range endpoint will use it.


def _archive_of(parcels: list[ParcelData], contents: dict[str, bytes] | None = None) -> bytes:
    invoice = parse_invoice(make_invoice(NAME, VERSION, parcels).toml())
    contents = contents or {data.sha256: data.data for data in parcels}
    archive = standalone_archive(invoice, {d.sha256: d.size for d in parcels}, _reader(contents))
    return asyncio.run(_collect(archive.stream()))


def _reader(contents: dict[str, bytes]) -> Callable[[str, int, int], AsyncIterator[bytes]]:
    async def read(sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        data = contents[sha256][start:end]
        for offset in range(0, len(data), 1000):  # several chunks, as a store sends them
            yield data[offset : offset + 1000]

    return read


async def _collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


def test_archive_stream_knows_its_size_and_serves_any_byte_range() -> None:
    parcels = [parcel(b"x" * 3000, name="a"), parcel(b"y" * 512, name="b"), parcel(b"", name="c")]
    invoice = parse_invoice(make_invoice(NAME, VERSION, parcels).toml())
    contents = {data.sha256: data.data for data in parcels}
    sizes = {data.sha256: data.size for data in parcels}
    archive = standalone_archive(invoice, sizes, _reader(contents))
    whole = asyncio.run(_collect(archive.stream()))
    assert len(whole) == archive.size and archive.size % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(whole)) as tar:
        assert len(tar.getnames()) == 6
    for start, end in [(0, 1), (511, 1537), (1000, 5000), (4000, None), (archive.size - 3, None)]:
        part = asyncio.run(_collect(archive.stream(start, end)))
        assert part == whole[start:end], (start, end)


@pytest.mark.parametrize("change", [b"one byte more", b""])
def test_a_parcel_that_changes_length_while_streamed_raises_instead_of_a_corrupt_tar(
    change: bytes,
) -> None:
    data = parcel(b"z" * 4096, name="z")
    wrong = data.data + change if change else data.data[:-100]
    with pytest.raises(StoredParcelDamaged, match=data.sha256):
        _archive_of([data], {data.sha256: wrong})
