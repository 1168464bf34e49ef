"""Parcel endpoints through the app in-process: upload, download, head, ranges, yank rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli
from fastapi.testclient import TestClient

from tests.factories import ParcelData, make_invoice, parcel

ID = "example.com/hello/1.0.0"


@pytest.fixture
def stored() -> ParcelData:
    return parcel(bytes(range(256)) * 40, media_type="application/wasm", name="app.wasm")


@pytest.fixture
def bindle(api: TestClient, stored: ParcelData) -> ParcelData:
    """An invoice listing `stored`, created but with the parcel not uploaded yet."""
    assert api.post("/_i", content=make_invoice(parcels=[stored]).toml()).status_code == 202
    return stored


def test_upload_parcel_returns_200_and_download_returns_exact_bytes(
    api: TestClient, bindle: ParcelData
) -> None:
    upload = api.post(f"/_i/{ID}@{bindle.sha256}", content=bindle.data)
    assert upload.status_code == 200
    assert tomli.loads(upload.text) == {"message": "parcel created"}
    download = api.get(f"/_i/{ID}@{bindle.sha256}")
    assert download.status_code == 200
    assert download.content == bindle.data
    assert download.headers["content-type"] == "application/wasm"
    assert download.headers["content-length"] == str(bindle.size)
    assert download.headers["etag"] == f'"{bindle.sha256}"'


def test_upload_with_chunked_body_is_accepted(api: TestClient, bindle: ParcelData) -> None:
    def chunks() -> Iterator[bytes]:
        for start in range(0, bindle.size, 1000):
            yield bindle.data[start : start + 1000]

    response = api.post(f"/_i/{ID}@{bindle.sha256}", content=chunks())
    assert response.status_code == 200
    assert api.get(f"/_i/{ID}@{bindle.sha256}").content == bindle.data


def test_upload_with_wrong_bytes_returns_400_and_leaves_nothing(
    api: TestClient, bindle: ParcelData, data_dir: Path
) -> None:
    wrong = bytes(reversed(bindle.data))  # same size, other digest
    response = api.post(f"/_i/{ID}@{bindle.sha256}", content=wrong)
    assert response.status_code == 400
    assert "digest does not match" in tomli.loads(response.text)["error"]
    assert api.get(f"/_i/{ID}@{bindle.sha256}").status_code == 404
    missing = tomli.loads(api.get(f"/_r/missing/{ID}").text)["missing"]
    assert [label["sha256"] for label in missing] == [bindle.sha256]
    assert not (data_dir / "parcels" / bindle.sha256).exists()
    assert list((data_dir / "tmp").iterdir()) == []
    retry = api.post(f"/_i/{ID}@{bindle.sha256}", content=bindle.data)
    assert retry.status_code == 200
    assert api.get(f"/_i/{ID}@{bindle.sha256}").content == bindle.data


@pytest.mark.parametrize("delta", [-1, 1])
def test_upload_with_wrong_size_returns_400_and_leaves_nothing(
    api: TestClient, bindle: ParcelData, data_dir: Path, delta: int
) -> None:
    body = bindle.data[:-1] if delta < 0 else bindle.data + b"!"
    response = api.post(f"/_i/{ID}@{bindle.sha256}", content=body)
    assert response.status_code == 400
    assert "size does not match" in tomli.loads(response.text)["error"]
    assert not (data_dir / "parcels" / bindle.sha256).exists()
    assert list((data_dir / "tmp").iterdir()) == []


def test_oversized_chunked_upload_is_cut_off_with_400(api: TestClient, bindle: ParcelData) -> None:
    def endless() -> Iterator[bytes]:
        for _ in range(64):  # 64 MiB, far past the label's size
            yield b"\0" * (1024 * 1024)

    response = api.post(f"/_i/{ID}@{bindle.sha256}", content=endless())
    assert response.status_code == 400
    assert "at least" in tomli.loads(response.text)["error"]


def test_upload_of_already_stored_parcel_returns_409(api: TestClient, bindle: ParcelData) -> None:
    api.post(f"/_i/{ID}@{bindle.sha256}", content=bindle.data)
    response = api.post(f"/_i/{ID}@{bindle.sha256}", content=bindle.data)
    assert response.status_code == 409


def test_upload_of_parcel_not_in_invoice_returns_400(api: TestClient, bindle: ParcelData) -> None:
    other = parcel("not listed")
    response = api.post(f"/_i/{ID}@{other.sha256}", content=other.data)
    assert response.status_code == 400
    assert "not listed" in tomli.loads(response.text)["error"]


def test_upload_to_unknown_bindle_returns_404(api: TestClient, stored: ParcelData) -> None:
    response = api.post(f"/_i/example.com/none/1.0.0@{stored.sha256}", content=stored.data)
    assert response.status_code == 404


@pytest.mark.parametrize(
    "digest", ["ABCDEF" + "0" * 58, "0" * 63, "0" * 65, "../../etc/passwd", "%2e%2e"]
)
def test_malformed_digest_returns_400(api: TestClient, bindle: ParcelData, digest: str) -> None:
    assert api.get(f"/_i/{ID}@{digest}").status_code == 400
    assert api.post(f"/_i/{ID}@{digest}", content=b"x").status_code == 400


def test_download_of_listed_but_unuploaded_parcel_returns_404(
    api: TestClient, bindle: ParcelData
) -> None:
    response = api.get(f"/_i/{ID}@{bindle.sha256}")
    assert response.status_code == 404
    assert api.head(f"/_i/{ID}@{bindle.sha256}").status_code == 404


def test_download_of_stored_parcel_not_listed_by_invoice_returns_400(
    api: TestClient, bindle: ParcelData
) -> None:
    api.post(f"/_i/{ID}@{bindle.sha256}", content=bindle.data)
    api.post("/_i", content=make_invoice(name="example.com/empty").toml())
    response = api.get(f"/_i/example.com/empty/1.0.0@{bindle.sha256}")
    assert response.status_code == 400


def test_head_parcel_has_get_headers_and_no_body(api: TestClient, bindle: ParcelData) -> None:
    api.post(f"/_i/{ID}@{bindle.sha256}", content=bindle.data)
    head = api.head(f"/_i/{ID}@{bindle.sha256}")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(bindle.size)
    assert head.headers["content-type"] == "application/wasm"
    assert head.headers["etag"] == f'"{bindle.sha256}"'


def test_parcels_of_a_yanked_bindle_need_yanked_true(api: TestClient, bindle: ParcelData) -> None:
    api.post(f"/_i/{ID}@{bindle.sha256}", content=bindle.data)
    api.delete(f"/_i/{ID}")
    assert api.get(f"/_i/{ID}@{bindle.sha256}").status_code == 403
    response = api.get(f"/_i/{ID}@{bindle.sha256}", params={"yanked": "true"})
    assert response.status_code == 200
    assert response.content == bindle.data


def test_upload_to_a_yanked_bindle_returns_403(api: TestClient, bindle: ParcelData) -> None:
    api.delete(f"/_i/{ID}")
    assert api.post(f"/_i/{ID}@{bindle.sha256}", content=bindle.data).status_code == 403


def test_range_request_returns_206_with_the_slice(api: TestClient, bindle: ParcelData) -> None:
    api.post(f"/_i/{ID}@{bindle.sha256}", content=bindle.data)
    cases = {
        "bytes=0-9": (0, 10),
        "bytes=100-": (100, bindle.size),
        "bytes=-16": (bindle.size - 16, bindle.size),
        f"bytes=5-{bindle.size * 2}": (5, bindle.size),
    }
    for header, (start, end) in cases.items():
        response = api.get(f"/_i/{ID}@{bindle.sha256}", headers={"Range": header})
        assert response.status_code == 206, header
        assert response.content == bindle.data[start:end], header
        assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{bindle.size}"
        assert response.headers["content-length"] == str(end - start)


def test_unsatisfiable_range_returns_416_with_size(api: TestClient, bindle: ParcelData) -> None:
    api.post(f"/_i/{ID}@{bindle.sha256}", content=bindle.data)
    response = api.get(f"/_i/{ID}@{bindle.sha256}", headers={"Range": f"bytes={bindle.size}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{bindle.size}"
    assert "not satisfiable" in tomli.loads(response.text)["error"]


def test_unsupported_or_stale_range_serves_the_whole_parcel(
    api: TestClient, bindle: ParcelData
) -> None:
    api.post(f"/_i/{ID}@{bindle.sha256}", content=bindle.data)
    multi = api.get(f"/_i/{ID}@{bindle.sha256}", headers={"Range": "bytes=0-1,5-6"})
    assert multi.status_code == 200
    assert multi.content == bindle.data
    stale = api.get(
        f"/_i/{ID}@{bindle.sha256}", headers={"Range": "bytes=0-9", "If-Range": '"other"'}
    )
    assert stale.status_code == 200
    assert stale.content == bindle.data
    fresh = api.get(
        f"/_i/{ID}@{bindle.sha256}",
        headers={"Range": "bytes=0-9", "If-Range": f'"{bindle.sha256}"'},
    )
    assert fresh.status_code == 206


def test_if_none_match_with_the_digest_returns_304(api: TestClient, bindle: ParcelData) -> None:
    api.post(f"/_i/{ID}@{bindle.sha256}", content=bindle.data)
    response = api.get(f"/_i/{ID}@{bindle.sha256}", headers={"If-None-Match": f'"{bindle.sha256}"'})
    assert response.status_code == 304
    assert response.content == b""


def test_text_media_type_is_served_exactly_as_labelled(api: TestClient) -> None:
    page = parcel("<h1>hi</h1>", media_type="text/html")
    api.post("/_i", content=make_invoice(parcels=[page]).toml())
    api.post(f"/_i/{ID}@{page.sha256}", content=page.data)
    assert api.get(f"/_i/{ID}@{page.sha256}").headers["content-type"] == "text/html"
    assert api.head(f"/_i/{ID}@{page.sha256}").headers["content-type"] == "text/html"


def test_empty_parcel_round_trips(api: TestClient) -> None:
    empty = parcel(b"")
    api.post("/_i", content=make_invoice(parcels=[empty]).toml())
    assert api.post(f"/_i/{ID}@{empty.sha256}", content=b"").status_code == 200
    response = api.get(f"/_i/{ID}@{empty.sha256}")
    assert response.status_code == 200
    assert response.content == b""


def test_delete_of_a_parcel_path_returns_405(api: TestClient, bindle: ParcelData) -> None:
    assert api.delete(f"/_i/{ID}@{bindle.sha256}").status_code == 405


def test_truncated_parcel_on_disk_is_served_with_its_true_length(
    api: TestClient, bindle: ParcelData, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Damage on disk must not produce a response that breaks off mid-body."""
    api.post(f"/_i/{ID}@{bindle.sha256}", content=bindle.data)
    stored = data_dir / "parcels" / bindle.sha256 / "parcel.dat"
    stored.write_bytes(bindle.data[:100])
    response = api.get(f"/_i/{ID}@{bindle.sha256}")
    assert response.status_code == 200
    assert response.headers["content-length"] == "100"
    assert response.content == bindle.data[:100]
    assert "run bindle-server fsck" in caplog.text
