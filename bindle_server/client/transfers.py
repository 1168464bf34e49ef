"""One parcel going up or down, over all its tries: what to send or ask for, and what
each answer means.

No I/O: the clients open files, send requests and move the bytes, and ask these objects
between the steps. The decisions are made here, once for both clients: whether an
upload stored the parcel (and whether a refused file is to blame), and whether a
download resumes where it broke off or starts again.
"""

from __future__ import annotations

from enum import Enum

import httpx

from bindle_server.client.calls import (
    parcel_path,
    raise_for_status,
    to_bindle_id,
    to_sha256,
    yanked_params,
)
from bindle_server.client.errors import Addressed, UnexpectedResponse
from bindle_server.client.integrity import ParcelCheck
from bindle_server.client.progress import SILENT_TRANSFER, Transfer
from bindle_server.errors import SizeMismatch
from bindle_server.model import BindleId, Label


class UploadOutcome(Enum):
    """What the server's answer to a parcel upload means."""

    STORED = "stored"
    """The server took the bytes."""
    STORED_BEFORE = "stored before"
    """409 to a repeat: an earlier try stored the parcel and its answer was lost."""
    CHECK_SENT = "check sent"
    """A whole file was sent and answered 200 or 400: the digest taken while sending it
    must be the parcel's, so a damaged local file is reported as itself."""
    BLAME_FILE = "blame file"
    """The server refused a file (400) before all of it was sent: read the file again to
    see whether it, not the server, is at fault."""
    REFUSED = "refused"
    """An error status, raised as its ResponseError."""


def upload_outcome(
    status: int, tries: int, from_file: bool, whole_file_sent: bool
) -> UploadOutcome:
    """What an upload's answer means, after `tries` tries."""
    if status == 409 and tries > 1:
        return UploadOutcome.STORED_BEFORE
    if from_file and status in (200, 400):
        if whole_file_sent:
            return UploadOutcome.CHECK_SENT
        if status == 400:
            return UploadOutcome.BLAME_FILE
    return UploadOutcome.STORED if status < 400 else UploadOutcome.REFUSED


class ParcelUpload:
    """The upload of one parcel's bytes, from a file, bytes or a stream.

    A file or bytes are sent again after a failure that may be retried: a parcel is
    content-addressed, so a repeat cannot store anything else, and a 409 to a repeat
    means an earlier try stored it. A stream can be read only once, so it gets one try.
    """

    def __init__(
        self, bindle_id: BindleId | str, sha256: str, transfer: Transfer | None = None
    ) -> None:
        self.sha256 = to_sha256(sha256)
        self.path = parcel_path(to_bindle_id(bindle_id), self.sha256)
        self.headers = {"Content-Type": "application/octet-stream"}
        self.transfer = transfer or SILENT_TRANSFER
        self.repeatable = True
        self.tries = 0
        self.check: ParcelCheck | None = None
        self._file: tuple[str, int] | None = None
        self._whole = 0

    def from_file(self, where: str, actual: int, size: int | None) -> None:
        """Send the `actual` bytes of the file at `where`; SizeMismatch, before anything
        is sent, when they are not the label's `size`."""
        if size is not None and actual != size:
            raise SizeMismatch(self.sha256, size, actual, where)
        self.headers["Content-Length"] = str(actual)
        self._file = (where, actual)

    def from_bytes(self, data: bytes) -> bytes:
        """Send `data` in one piece; its progress is counted once the server answered."""
        self._whole = len(data)
        return data

    def from_stream(self, size: int | None) -> None:
        """Send a stream, once, with `size` (if known) as its Content-Length."""
        if size is not None:
            self.headers["Content-Length"] = str(size)
        self.repeatable = False

    def next_try(self) -> None:
        """A try begins; from the second on, a file's progress and digest start again."""
        self.tries += 1
        if self._file is not None:
            if self.tries > 1:
                self.transfer.restart()
            where, size = self._file
            self.check = ParcelCheck(self.sha256, size, where)

    def sent(self, chunk: bytes) -> bytes:
        """A chunk on its way out: counted, and hashed if it is a file's."""
        if self.check is not None:
            self.check.update(chunk)
        self.transfer.advance(len(chunk))
        return chunk

    def outcome(self, response: httpx.Response) -> UploadOutcome:
        check = self.check
        whole = check is not None and check.size is not None and check.count == check.size
        return upload_outcome(response.status_code, self.tries, self._file is not None, whole)

    def finish(self, response: httpx.Response, api_root: str) -> None:
        """Settle the upload on its last answer (after BLAME_FILE, once the file was read
        again): raise DigestMismatch for a damaged file, else the error the answer
        reports, unless an earlier try stored the parcel."""
        if self._whole:
            self.transfer.advance(self._whole)
        outcome = self.outcome(response)
        if outcome is UploadOutcome.STORED_BEFORE:
            return
        if outcome is UploadOutcome.CHECK_SENT and self.check is not None:
            self.check.verify()
        raise_for_status(response, Addressed.PARCEL, api_root)


class ParcelDownload:
    """The download of one parcel, checked against its label as the bytes arrive.

    After a broken connection the next try asks only for the bytes not yet received (a
    `Range` with the digest as `If-Range`: the digest is the parcel's strong ETag, section
    14 item 15). A server that answers with the whole parcel instead makes the client start
    again from byte 0, which only a destination that can be rewound allows.
    """

    def __init__(
        self,
        bindle_id: BindleId,
        label: Label,
        *,
        yanked: bool,
        api_root: str,
        rewindable: bool,
        transfer: Transfer | None = None,
    ) -> None:
        self.label = label
        self.path = parcel_path(bindle_id, label.sha256)
        self.params = yanked_params(yanked)
        self.api_root = api_root
        self.rewindable = rewindable
        self.transfer = transfer or SILENT_TRANSFER
        self.check = ParcelCheck(
            label.sha256, label.size, f"parcel {label.sha256} from {api_root}{self.path}"
        )

    def headers(self) -> dict[str, str]:
        """The request headers of the next try: a byte range once some bytes are kept."""
        if not self.check.count:
            return {}
        return {"Range": f"bytes={self.check.count}-", "If-Range": f'"{self.label.sha256}"'}

    def begin(self, response: httpx.Response) -> bool:
        """Judge an answer by its head (an error's body read first).

        Raises the error it reports, UnexpectedResponse when it cannot continue what was
        kept, or SizeMismatch when it announces another size. Returns True when the bytes
        kept so far must be dropped because the answer starts again at byte 0.
        """
        raise_for_status(response, Addressed.PARCEL, self.api_root)
        start = _first_byte(response)
        restart = start != self.check.count
        if restart:
            if start != 0 or not self.rewindable:
                raise UnexpectedResponse(f"{self.path}: cannot resume at byte {self.check.count}")
            self.check.restart()
            self.transfer.restart()
        _check_declared_length(response, self.label, self.check.where)
        return restart

    def received(self, chunk: bytes) -> bytes:
        """A chunk on its way in: hashed and counted (SizeMismatch past the label's size)."""
        self.check.update(chunk)
        self.transfer.advance(len(chunk))
        return chunk

    def finish(self) -> None:
        """Raise SizeMismatch or DigestMismatch unless exactly the parcel arrived."""
        self.check.verify()


def _first_byte(response: httpx.Response) -> int:
    """Where the answer's bytes start in the parcel: 0 for a whole-parcel 200, the start of
    a 206's Content-Range, -1 for a range this client cannot read."""
    if response.status_code != 206:
        return 0
    unit, _, spec = response.headers.get("content-range", "").partition(" ")
    start = spec.partition("-")[0]
    if unit != "bytes" or not start.isdigit():
        return -1
    return int(start)


def _check_declared_length(response: httpx.Response, label: Label, where: str) -> None:
    """Refuse a whole-parcel answer that announces another size, before reading it."""
    declared = response.headers.get("content-length")
    encoded = response.headers.get("content-encoding", "identity") != "identity"
    whole = response.status_code == 200 and not encoded
    if whole and declared and declared.isdigit() and int(declared) != label.size:
        raise SizeMismatch(label.sha256, label.size, int(declared), where)
