"""The transfer decisions, without a network: what an upload's answer means, and whether
a download resumes, starts again or stops (answers are built by hand, nothing is sent)."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from bindle_server.client import (
    BadRequest,
    DigestMismatch,
    ParcelExists,
    ServerError,
    SizeMismatch,
    UnexpectedResponse,
)
from bindle_server.client.transfers import (
    ParcelDownload,
    ParcelUpload,
    UploadOutcome,
    upload_outcome,
)
from bindle_server.model import BindleId, Label

API = "http://127.0.0.1:1/v1/"
DATA = b"0123456789" * 10
SHA = hashlib.sha256(DATA).hexdigest()
BID = BindleId.parse("example.com/t/1.0.0")


class Recorded:
    """A Transfer that remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[str | int] = []

    def advance(self, amount: int) -> None:
        self.events.append(amount)

    def restart(self) -> None:
        self.events.append("restart")

    def close(self) -> None:
        self.events.append("close")


def _answer(status: int, method: str = "POST", **headers: str) -> httpx.Response:
    body = b'error = "refused"\n' if status >= 400 else b""
    request = httpx.Request(method, f"{API}_i/example.com/t/1.0.0@{SHA}")
    return httpx.Response(status, headers=headers, content=body, request=request)


@pytest.mark.parametrize(
    ("status", "tries", "from_file", "whole", "expected"),
    [
        (200, 1, False, False, UploadOutcome.STORED),
        (201, 1, True, True, UploadOutcome.STORED),
        (409, 2, False, False, UploadOutcome.STORED_BEFORE),
        (409, 3, True, True, UploadOutcome.STORED_BEFORE),
        (409, 1, True, True, UploadOutcome.REFUSED),
        (200, 1, True, True, UploadOutcome.CHECK_SENT),
        (400, 2, True, True, UploadOutcome.CHECK_SENT),
        (400, 1, True, False, UploadOutcome.BLAME_FILE),
        (200, 1, True, False, UploadOutcome.STORED),
        (400, 1, False, False, UploadOutcome.REFUSED),
        (403, 1, True, True, UploadOutcome.REFUSED),
    ],
)
def test_an_upload_answer_means_stored_refused_or_a_file_to_check(
    status: int, tries: int, from_file: bool, whole: bool, expected: UploadOutcome
) -> None:
    assert upload_outcome(status, tries, from_file, whole) is expected


def test_a_file_of_the_wrong_size_is_refused_before_anything_is_sent() -> None:
    upload = ParcelUpload(BID, SHA)
    with pytest.raises(SizeMismatch, match=r"local\.bin: parcel .* should have 99 bytes, got more"):
        upload.from_file("local.bin", len(DATA), 99)
    upload.from_file("local.bin", len(DATA), len(DATA))
    assert upload.headers["Content-Length"] == str(len(DATA))
    assert upload.repeatable and upload.path == f"_i/example.com/t/1.0.0@{SHA}"


def test_a_repeated_file_upload_starts_its_progress_and_digest_again() -> None:
    progress = Recorded()
    upload = ParcelUpload(BID, SHA, progress)
    upload.from_file("local.bin", len(DATA), None)
    upload.next_try()
    upload.sent(DATA[:40])
    upload.next_try()  # the connection broke: the whole file goes again
    for start in range(0, len(DATA), 50):
        upload.sent(DATA[start : start + 50])
    assert progress.events == [40, "restart", 50, 50]
    assert upload.outcome(_answer(200)) is UploadOutcome.CHECK_SENT
    upload.finish(_answer(200), API)  # the bytes sent are the parcel's


def test_a_damaged_file_is_reported_as_itself_even_when_the_server_took_it() -> None:
    damaged = bytes(len(DATA))
    for status in (200, 400):
        upload = ParcelUpload(BID, SHA)
        upload.from_file("damaged.bin", len(damaged), None)
        upload.next_try()
        upload.sent(damaged)
        with pytest.raises(DigestMismatch, match=r"^damaged\.bin: expected sha256"):
            upload.finish(_answer(status), API)


def test_a_409_is_success_after_a_lost_answer_and_an_error_on_the_first_try() -> None:
    first = ParcelUpload(BID, SHA)
    first.from_bytes(DATA)
    first.next_try()
    with pytest.raises(ParcelExists):
        first.finish(_answer(409), API)

    progress = Recorded()
    repeated = ParcelUpload(BID, SHA, progress)
    assert repeated.from_bytes(DATA) is DATA
    repeated.next_try()
    repeated.next_try()
    repeated.finish(_answer(409), API)
    assert progress.events == [len(DATA)]  # bytes are counted once, when answered


def test_a_stream_is_sent_once_and_a_refusal_is_raised() -> None:
    upload = ParcelUpload(BID, SHA)
    upload.from_stream(len(DATA))
    assert not upload.repeatable and upload.headers["Content-Length"] == str(len(DATA))
    upload.next_try()
    with pytest.raises(BadRequest, match="refused"):
        upload.finish(_answer(400), API)


def _download(rewindable: bool, progress: Recorded | None = None) -> ParcelDownload:
    label = Label(sha256=SHA, mediaType="application/octet-stream", name="t.bin", size=len(DATA))
    return ParcelDownload(
        BID, label, yanked=True, api_root=API, rewindable=rewindable, transfer=progress
    )


def _partial(start: int) -> httpx.Response:
    return _answer(206, "GET", **{"Content-Range": f"bytes {start}-{len(DATA) - 1}/{len(DATA)}"})


def test_a_download_asks_for_the_rest_after_the_bytes_it_kept() -> None:
    download = _download(rewindable=False)
    assert download.headers() == {} and download.params == {"yanked": "true"}
    assert download.begin(_answer(200, "GET", **{"Content-Length": str(len(DATA))})) is False
    download.received(DATA[:30])
    assert download.headers() == {"Range": "bytes=30-", "If-Range": f'"{SHA}"'}
    assert download.begin(_partial(30)) is False  # the answer continues the kept bytes
    download.received(DATA[30:])
    download.finish()


def test_a_whole_parcel_answer_to_a_range_starts_again_where_that_is_possible() -> None:
    progress = Recorded()
    download = _download(rewindable=True, progress=progress)
    download.received(DATA[:30])
    assert download.begin(_answer(200, "GET")) is True  # drop the 30 bytes kept
    download.received(DATA)
    download.finish()
    assert progress.events == [30, "restart", len(DATA)]

    stream = _download(rewindable=False)
    stream.received(DATA[:30])
    with pytest.raises(UnexpectedResponse, match="cannot resume at byte 30"):
        stream.begin(_answer(200, "GET"))


@pytest.mark.parametrize("content_range", ["bytes 10-99/100", "items 30-99/100", "bytes */100"])
def test_a_range_that_does_not_continue_the_kept_bytes_stops_the_download(
    content_range: str,
) -> None:
    download = _download(rewindable=True)
    download.received(DATA[:30])
    answer = _answer(206, "GET", **{"Content-Range": content_range})
    with pytest.raises(UnexpectedResponse, match="cannot resume"):
        download.begin(answer)


def test_a_download_stops_on_an_announced_size_or_more_bytes_than_the_label() -> None:
    with pytest.raises(SizeMismatch, match="should have 100 bytes, got more than 100"):
        _download(rewindable=True).begin(_answer(200, "GET", **{"Content-Length": "4096"}))
    download = _download(rewindable=True)
    download.received(DATA)
    with pytest.raises(SizeMismatch):
        download.received(b"x")
    with pytest.raises(ServerError):
        _download(rewindable=True).begin(_answer(503, "GET"))


def test_a_download_of_other_bytes_fails_its_digest_check() -> None:
    download = _download(rewindable=True)
    download.received(bytes(len(DATA)))
    with pytest.raises(DigestMismatch, match=f"parcel {SHA} from {API}_i/"):
        download.finish()
