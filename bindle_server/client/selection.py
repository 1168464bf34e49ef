"""Selections of groups and features: the `resolve` call, and the archive download.

`resolve` asks the server which labels a selection needs (`/_r/resolve`). An archive
(`/_r/archive`) is a deterministic tar of a selection, so an interrupted download is
resumed: the bytes so far wait in `FILE.part` with the server's ETag in `FILE.part.etag`,
and the next try asks for the rest with `Range` and that ETag as `If-Range`. No I/O here
besides the two small bookkeeping files; the clients move the bytes.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bindle_server.client.calls import (
    Call,
    invoice_path,
    raise_for_status,
    to_bindle_id,
    yanked_params,
)
from bindle_server.client.documents import answered_document, answered_invoice
from bindle_server.client.errors import Addressed, UnexpectedResponse
from bindle_server.client.integrity import CHUNK, ParcelCheck
from bindle_server.client.progress import Progress, Silent, Transfer
from bindle_server.durable import fsync_dir, move_into_place
from bindle_server.errors import InvalidInput
from bindle_server.model import BindleId, Invoice, Label

# The first member of an archive (the server's service.archive.INVOICE_FILE).
ARCHIVE_INVOICE = "invoice.toml"
# An invoice longer than this is not read from an archive: twice the server's default
# limit on invoices, which leaves room for the signatures it adds.
_MAX_INVOICE = 64 * 1024 * 1024


@dataclass(frozen=True)
class Resolution:
    """What a selection needs: its labels in invoice order, the groups it satisfies,
    and for each needed `oneOf` group the sha256 of the member chosen."""

    labels: list[Label]
    groups: list[str]
    chosen: dict[str, str]
    size: int


def selection_params(
    groups: Iterable[str], features: Iterable[str], yanked: bool
) -> dict[str, str]:
    """The query of a selection: comma-separated `groups` and `features`."""
    params = yanked_params(yanked)
    for key, values in (("groups", list(groups)), ("features", list(features))):
        if any("," in value for value in values):
            raise InvalidInput(f"{key} cannot contain ',' (it separates them): {values!r}")
        if values:
            params[key] = ",".join(values)
    return params


def resolve(
    bindle_id: BindleId | str, groups: Iterable[str], features: Iterable[str], yanked: bool
) -> Call[Resolution]:
    path = invoice_path(to_bindle_id(bindle_id)).removeprefix("_i/")
    params = selection_params(groups, features, yanked)
    return Call("GET", f"_r/resolve/{path}", Addressed.INVOICE, _resolution, params)


def archive_path(bindle_id: BindleId) -> str:
    return f"_r/archive/{invoice_path(bindle_id).removeprefix('_i/')}"


def _resolution(data: bytes) -> Resolution:
    document = answered_document(data, "resolve answer")
    try:
        labels: list[Any] = document["labels"]
        return Resolution(
            labels=[Label.model_validate(label) for label in labels],
            groups=[str(group) for group in document["groups"]],
            chosen={str(k): str(v) for k, v in dict(document.get("chosen", {})).items()},
            size=int(document["size"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UnexpectedResponse(f"the resolve answer lacks or garbles {exc}") from None


class StalePart(Exception):
    """The kept part cannot be continued (416 to its range): start again from byte 0."""


class ArchiveDownload:
    """The download of one archive into `destination`, over all its tries and runs."""

    def __init__(
        self,
        bindle_id: BindleId | str,
        destination: Path,
        *,
        groups: Iterable[str] = (),
        features: Iterable[str] = (),
        yanked: bool = False,
        api_root: str,
        progress: Progress | None = None,
    ) -> None:
        self.path = archive_path(to_bindle_id(bindle_id))
        self.params = selection_params(groups, features, yanked)
        self.destination = destination
        self.part = destination.with_name(destination.name + ".part")
        self.tag_file = destination.with_name(destination.name + ".part.etag")
        self.api_root = api_root
        self.progress = progress or Silent()
        self.transfer: Transfer | None = None  # made once the length is known
        self.etag: str | None = None
        self.offset = 0  # bytes kept in the part file
        self.total: int | None = None
        self.resumed = 0  # bytes a previous run left, reused by this one

    def load(self) -> None:
        """Look at what an earlier run left (blocking: run in a thread when async)."""
        if self.destination.exists():
            raise FileExistsError(f"{self.destination} exists; not overwriting it")
        if self.part.is_file() and self.tag_file.is_file():
            self.etag = self.tag_file.read_text("utf-8").strip() or None
            self.offset = self.part.stat().st_size if self.etag else 0
            self.resumed = self.offset

    def headers(self) -> dict[str, str]:
        """The next request's headers: the rest of the archive, if it is still the same."""
        if not self.offset or self.etag is None:
            return {}
        return {"Range": f"bytes={self.offset}-", "If-Range": self.etag}

    def begin(self, response: httpx.Response) -> bool:
        """Judge an answer by its head (an error's body read first). Returns True when the
        part must be emptied first (the archive starts again at byte 0, under a new ETag:
        the caller writes it to the tag file). Raises StalePart for a 416 to a resume."""
        if response.status_code == 416 and self.offset:
            self.offset, self.etag = 0, None
            raise StalePart(self.path)
        raise_for_status(response, Addressed.PARCEL, self.api_root)
        start, self.total = _range_start(response)
        if start != self.offset and start != 0:
            raise UnexpectedResponse(f"{self.path}: the answer starts at byte {start}")
        restart = start == 0
        if restart:
            self.offset = self.resumed = 0
        if self.transfer is None:
            self.transfer = self.progress.transfer(f"get {self.destination.name}", self.total or 0)
            self.transfer.advance(self.offset)
        elif restart:
            self.transfer.restart()
        self.etag = response.headers.get("etag")
        return restart

    def received(self, chunk: bytes) -> bytes:
        """A chunk on its way to the part file."""
        self.offset += len(chunk)
        if self.transfer is not None:
            self.transfer.advance(len(chunk))
        return chunk

    def forget_tag(self) -> None:
        """Before the part is emptied: a crash now must not resume under the old ETag."""
        self.tag_file.unlink(missing_ok=True)

    def keep_tag(self) -> None:
        """Record the ETag the part's bytes belong to (blocking)."""
        if self.etag is not None:
            self.tag_file.write_text(self.etag + "\n", "utf-8")

    def close(self) -> None:
        """The download is over, saved or not (ends the progress display)."""
        if self.transfer is not None:
            self.transfer.close()

    def check_complete(self) -> None:
        """Raise UnexpectedResponse unless the whole archive arrived."""
        if self.total is not None and self.offset != self.total:
            raise UnexpectedResponse(
                f"{self.path}: got {self.offset} of {self.total} bytes; run again to resume"
            )

    def verify(self, check: Callable[[Invoice], None] | None) -> Invoice:
        """Check the complete part (blocking): see `verify_archive`. Bytes that fail are
        removed with their ETag, since resuming them could never succeed."""
        self.check_complete()
        try:
            return verify_archive(self.part, check)
        except BaseException:
            self.part.unlink(missing_ok=True)
            self.tag_file.unlink(missing_ok=True)
            raise

    def save(self) -> ArchiveReport:
        """Make the complete part durable and give it the destination's name (blocking)."""
        self.check_complete()
        fd = os.open(self.part, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if not move_into_place(self.part, self.destination, replace=False):
            raise FileExistsError(f"{self.destination} appeared meanwhile; kept {self.part}")
        self.part.unlink(missing_ok=True)
        self.tag_file.unlink(missing_ok=True)
        fsync_dir(self.destination.parent)
        return ArchiveReport(self.destination, self.offset, self.resumed)


def verify_archive(path: Path, check: Callable[[Invoice], None] | None = None) -> Invoice:
    """Check a selection archive against its own `invoice.toml` (blocking), and return it.

    `check` is called with the invoice first (e.g. to verify its signatures); then every
    other member must be a regular file named like a label (its name, or its sha256 when
    unnamed), once, with exactly that parcel's bytes: DigestMismatch or SizeMismatch
    otherwise. Members are read in chunks, so memory stays flat.
    """
    where = str(path)
    with tarfile.open(path, mode="r:") as archive:
        first = archive.next()
        extracted = archive.extractfile(first) if first is not None else None
        if first is None or first.name != ARCHIVE_INVOICE or extracted is None:
            raise UnexpectedResponse(f"{where}: the archive does not start with {ARCHIVE_INVOICE}")
        if first.size > _MAX_INVOICE:
            raise UnexpectedResponse(f"{where}: {ARCHIVE_INVOICE} is {first.size} bytes long")
        invoice = answered_invoice(extracted.read(), f"{where} {ARCHIVE_INVOICE}")
        if check is not None:
            check(invoice)
        labels = {label.name or label.sha256: label for label in invoice.labels}
        seen: set[str] = set()
        for member in archive:
            if member is first:
                continue  # iteration starts again with the members already read
            label = labels.get(member.name)
            data = archive.extractfile(member) if member.isfile() else None
            if label is None or data is None or member.name in seen:
                raise UnexpectedResponse(f"{where}: unexpected member {member.name!r}")
            seen.add(member.name)
            parcel = ParcelCheck(label.sha256, label.size, f"{member.name} in {where}")
            while chunk := data.read(CHUNK):
                parcel.update(chunk)
            parcel.verify()
    return invoice


def _range_start(response: httpx.Response) -> tuple[int, int | None]:
    """Where the answer's bytes start and the archive's whole length (None if unsaid)."""
    if response.status_code != 206:
        length = response.headers.get("content-length", "")
        return 0, int(length) if length.isdigit() else None
    unit, _, spec = response.headers.get("content-range", "").partition(" ")
    span, _, total = spec.partition("/")
    start = span.partition("-")[0]
    if unit != "bytes" or not start.isdigit() or not total.isdigit():
        raise UnexpectedResponse(f"unreadable Content-Range {spec!r}")
    return int(start), int(total)


@dataclass(frozen=True)
class ArchiveReport:
    """A saved archive: where, how long, and how many bytes an earlier run had left."""

    path: Path
    size: int
    resumed: int
