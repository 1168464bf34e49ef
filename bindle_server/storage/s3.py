"""Parcels and invoices in an S3-compatible bucket (Ceph RGW, MinIO, AWS S3).

Keys under the URL's prefix follow the disk layout, so a migrated store reads the same:

    PREFIX/invoices/<sha256 of "NAME/VERSION">/invoice.toml
    PREFIX/parcels/<sha256>/parcel.dat
    PREFIX/quarantine/<sha256>.<time>.dat        parcels fsck took out of service
    PREFIX/pending/<key>, PREFIX/tombstones/<key> lifecycle records (atomic pushes, purges)

How the disk backend's guarantees carry over to a bucket shared by many server nodes:

- A parcel becomes visible only once verified. Small parcels are received whole (at most
  one part, 8 MiB), hashed, and only then PUT. Larger ones go up as a multipart upload
  to their final key while they are hashed; an S3 multipart upload stays invisible until
  it is completed, so the pending upload is the temporary object, and it is completed only
  when size and digest matched, and aborted otherwise. A single PUT is conditional
  (If-None-Match: *), so of concurrent writers of a small parcel exactly one reports
  storing it. A multipart commit cannot be (RGW 16 ignores If-None-Match on
  CompleteMultipartUpload): it checks first that the parcel is not stored yet, and two
  nodes that still complete the same digest at once both store the same verified bytes,
  which content addressing makes harmless (both then report storing it).
- An invoice is created with a single conditional PUT (If-None-Match: *), which the store
  applies atomically: exactly one of any number of concurrent creates, on any node, wins.
  Opening the store checks that the endpoint honours the condition, so a store that
  would silently overwrite is refused at start-up rather than found out later.
- A yank is one unconditional PUT of the whole new document: readers see the old or the
  new invoice, never a mix.
- Uploads abandoned by a node that died are aborted by `sweep_abandoned_uploads`, which
  runs when a node starts (so also in `bindle-server fsck`) and periodically while it
  serves; only uploads older than a grace period are touched, since other nodes may
  still be writing theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from botocore.exceptions import ClientError

from bindle_server.errors import (
    DigestMismatch,
    ParcelNotFound,
    SizeMismatch,
    StorageUnavailable,
)
from bindle_server.model import is_sha256, layout
from bindle_server.storage.base import StoredObject
from bindle_server.storage.s3_bucket import (
    S3Bucket,
    S3Location,
    error_code,
    is_not_found,
    is_precondition_failed,
    timestamp,
)
from bindle_server.storage.s3_invoices import S3InvoiceStore
from bindle_server.threads import run_sync

__all__ = ["INSTALL_HINT", "PART_SIZE", "S3Location", "S3ParcelStore", "S3Stores"]

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'bindle-server[s3]'"

# One part fills in memory while up to PARTS_IN_FLIGHT earlier ones are on their way to
# the store. Two in flight keep the store busy while the next part is received and hashed
# (on RGW here one in flight reached ~200 MiB/s, four ~300). Each part in flight costs
# about twice its size (the HTTP transport copies what the socket has not taken yet), so
# parts are 8 MiB: an upload holds ~40 MiB whatever the parcel's size. S3 allows at most
# 10,000 parts: parcels over ~70 GiB get larger parts (1 TiB: ~120 MiB parts).
PART_SIZE = 8 * 1024 * 1024
PARTS_IN_FLIGHT = 2
MAX_PARTS = 9_000
# Downloads read this far ahead of the client, so that the store's bytes keep arriving
# while the previous ones are being sent on.
READ_CHUNK = 1024 * 1024
READ_AHEAD_CHUNKS = 8
# How many HEAD requests one `missing`/`stored_sizes` call keeps in flight.
HEAD_CONCURRENCY = 32
# Multipart uploads older than this are taken to be abandoned by a node that died.
ABANDONED_AFTER = timedelta(hours=6)
# DeleteObjects takes at most this many keys.
_DELETE_BATCH = 1000
# CopyObject's limit; larger quarantined parcels are copied part by part.
MAX_COPY = 5 * 1024**3


class S3ParcelStore:
    """Parcels as objects; implements storage.base.ParcelStore."""

    def __init__(self, bucket: S3Bucket) -> None:
        self._bucket = bucket

    def _key(self, sha256: str) -> str:
        return self._bucket.key(*layout.parcel_parts(sha256))

    async def size(self, sha256: str) -> int | None:
        try:
            head = await self._bucket.call("head_object", Key=self._key(sha256))
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return int(head["ContentLength"])

    async def exists(self, sha256: str) -> bool:
        return await self.size(sha256) is not None

    async def stored_sizes(self, digests: Iterable[str]) -> dict[str, int]:
        wanted = list(dict.fromkeys(digests))
        sizes: dict[str, int] = {}
        limiter = anyio.CapacityLimiter(HEAD_CONCURRENCY)

        async def look(sha256: str) -> None:
            async with limiter:
                size = await self.size(sha256)
            if size is not None:
                sizes[sha256] = size

        async with anyio.create_task_group() as group:
            for sha256 in wanted:
                group.start_soon(look, sha256)
        return sizes

    async def missing(self, digests: Iterable[str]) -> set[str]:
        wanted = list(digests)
        stored = await self.stored_sizes(wanted)
        return {sha256 for sha256 in wanted if sha256 not in stored}

    async def write(self, sha256: str, size: int, chunks: AsyncIterable[bytes]) -> bool:
        part_size = max(PART_SIZE, -(-size // MAX_PARTS))
        upload = _Upload(self._bucket, self._key(sha256), part_size)
        digest = hashlib.sha256()
        received = 0
        # Filled to exactly one part, then handed to the upload as it is (no copy) while a
        # new one fills: at most two parts of memory per upload, whatever the parcel size.
        part = bytearray()
        try:
            async for chunk in chunks:
                received += len(chunk)
                if received > size:
                    raise SizeMismatch(sha256, size, received, at_least=True)
                view = memoryview(chunk)
                while len(part) + len(view) >= part_size:
                    taken = part_size - len(part)
                    part += view[:taken]
                    view = view[taken:]
                    # hashlib releases the GIL on large buffers: hash in a worker thread
                    # so the event loop goes on receiving.
                    await run_sync(digest.update, part)
                    await upload.send_part(part)
                    del part[:]  # reused: its copy went to the upload
                part += view
            if part:
                await run_sync(digest.update, part)
            if received != size:
                raise SizeMismatch(sha256, size, received)
            if digest.hexdigest() != sha256:
                raise DigestMismatch(sha256, digest.hexdigest())
            return await upload.commit(part)
        finally:
            # Also on success (a no-op then); shielded, so that a cancelled request does not
            # leave an upload pending until the sweep.
            with anyio.CancelScope(shield=True):
                await upload.abort()

    async def read(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        arguments: dict[str, Any] = {"Key": self._key(sha256)}
        if end is not None and end <= start:
            if not await self.exists(sha256):
                raise ParcelNotFound(sha256)
            return
        if start > 0 or end is not None:
            arguments["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            response = await self._bucket.call("get_object", **arguments)
        except ClientError as exc:
            if is_not_found(exc) or error_code(exc) == "InvalidRange":
                if is_not_found(exc) or not await self.exists(sha256):
                    raise ParcelNotFound(sha256) from None
                return  # a range starting at the end of the parcel: no bytes
            raise
        body = response["Body"]
        send, receive = anyio.create_memory_object_stream[bytes](READ_AHEAD_CHUNKS)
        failures: list[Exception] = []

        async def read_ahead() -> None:
            async with send:
                try:
                    with self._bucket.translate_errors():
                        async for chunk in body.iter_chunks(READ_CHUNK):
                            await send.send(chunk)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass  # the client went away
                except Exception as exc:  # handed to the reader below
                    failures.append(exc)

        reader = asyncio.create_task(read_ahead())
        try:
            async with receive:
                async for chunk in receive:
                    yield chunk
            await reader
            if failures:
                raise failures[0]
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            body.close()

    async def digests(self) -> AsyncIterator[str]:
        async for sha256, _ in self.listing():
            yield sha256

    async def listing(self) -> AsyncIterator[tuple[str, int]]:
        """Every stored parcel's digest and size, a thousand per request."""
        async for entry in self.inventory():
            yield entry.name, entry.size

    async def inventory(self) -> AsyncIterator[StoredObject]:
        prefix = self._bucket.key(layout.PARCELS, "")
        async for page in self._bucket.paginate("list_objects_v2", Prefix=prefix):
            for item in page.get("Contents", []):
                name, _, rest = item["Key"][len(prefix) :].partition("/")
                if rest == layout.PARCEL_FILE and is_sha256(name):
                    yield StoredObject(name, int(item["Size"]), timestamp(item))

    async def delete(self, digests: Sequence[str]) -> None:
        keys = [{"Key": self._key(sha256)} for sha256 in digests]
        for start in range(0, len(keys), _DELETE_BATCH):
            answer = await self._bucket.call(
                "delete_objects", Delete={"Objects": keys[start : start + _DELETE_BATCH]}
            )
            failed = answer.get("Errors") or []
            if failed:
                first = failed[0]
                raise StorageUnavailable(
                    f"the object store did not delete {len(failed)} parcel(s), e.g. "
                    f"{first.get('Key')}: {first.get('Code')}"
                )

    async def quarantine(self, sha256: str) -> None:
        # Kept, not deleted, so an operator can look at what went wrong.
        source = self._key(sha256)
        size = await self.size(sha256)
        if size is None:
            return
        target = self._bucket.key("quarantine", f"{sha256}.{time.strftime('%Y%m%dT%H%M%S')}.dat")
        await _copy(self._bucket, source, target, size)
        await self._bucket.call("delete_object", Key=source)

    async def sweep_abandoned_uploads(self, older_than: timedelta = ABANDONED_AFTER) -> int:
        """Abort parcel uploads started before `older_than` ago; return how many."""
        cutoff = datetime.now(UTC) - older_than
        stale: list[tuple[str, str]] = []
        prefix = self._bucket.key(layout.PARCELS, "")
        async for page in self._bucket.paginate("list_multipart_uploads", Prefix=prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] <= cutoff:
                    stale.append((upload["Key"], upload["UploadId"]))
        for key, upload_id in stale:
            with contextlib.suppress(Exception):
                await self._bucket.call("abort_multipart_upload", Key=key, UploadId=upload_id)
        if stale:
            log.info("aborted %d abandoned parcel upload(s)", len(stale))
        return len(stale)


class _Upload:
    """A parcel on its way into the bucket: one PUT if it fits one part, else multipart.

    Sending parts overlaps with receiving the next; `commit` makes the object visible.
    """

    def __init__(self, bucket: S3Bucket, key: str, part_size: int) -> None:
        self._bucket = bucket
        self._key = key
        self._part_size = part_size
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._pending: list[asyncio.Task[None]] = []
        self._done = False

    async def send_part(self, data: bytearray) -> None:
        if self._upload_id is None:
            created = await self._bucket.call("create_multipart_upload", Key=self._key)
            self._upload_id = created["UploadId"]
        while len(self._pending) >= PARTS_IN_FLIGHT:
            await self._pending.pop(0)
        number = len(self._parts) + 1
        self._parts.append({"PartNumber": number})
        # A copy: the caller refills its buffer while this part is on its way.
        self._pending.append(asyncio.create_task(self._put_part(number, bytes(data))))

    async def _put_part(self, number: int, data: bytes) -> None:
        sent = await self._bucket.call(
            "upload_part",
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        self._parts[number - 1]["ETag"] = sent["ETag"]

    async def commit(self, last: bytearray) -> bool:
        """Make the verified parcel visible; False if a concurrent writer stored it first."""
        if self._upload_id is None:
            self._done = True
            try:
                await self._bucket.call(
                    "put_object", Key=self._key, Body=bytes(last), IfNoneMatch="*"
                )
            except ClientError as exc:
                if is_precondition_failed(exc):
                    return False
                raise
            return True
        if await _exists(self._bucket, self._key):
            return False
        if last:
            await self.send_part(last)
        while self._pending:
            await self._pending.pop(0)
        await self._bucket.call(
            "complete_multipart_upload",
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._done = True
        return True

    async def abort(self) -> None:
        while self._pending:
            with contextlib.suppress(Exception):
                await self._pending.pop(0)
        if self._upload_id is not None and not self._done:
            with contextlib.suppress(Exception):
                await self._bucket.call(
                    "abort_multipart_upload", Key=self._key, UploadId=self._upload_id
                )
            self._done = True


async def _exists(bucket: S3Bucket, key: str) -> bool:
    try:
        await bucket.call("head_object", Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            return False
        raise
    return True


async def _copy(bucket: S3Bucket, source: str, target: str, size: int) -> None:
    """Server-side copy, part by part above CopyObject's 5 GiB limit."""
    origin = {"Bucket": bucket.location.bucket, "Key": source}
    if size <= MAX_COPY:
        await bucket.call("copy_object", Key=target, CopySource=origin)
        return
    created = await bucket.call("create_multipart_upload", Key=target)
    upload_id = created["UploadId"]
    parts = []
    try:
        part_size = MAX_COPY // 2
        for number, start in enumerate(range(0, size, part_size), start=1):
            end = min(start + part_size, size) - 1
            copied = await bucket.call(
                "upload_part_copy",
                Key=target,
                UploadId=upload_id,
                PartNumber=number,
                CopySource=origin,
                CopySourceRange=f"bytes={start}-{end}",
            )
            parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
        await bucket.call(
            "complete_multipart_upload",
            Key=target,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )
    except BaseException:
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await bucket.call("abort_multipart_upload", Key=target, UploadId=upload_id)
        raise


class S3Stores:
    """Both stores in one bucket, sharing one client."""

    def __init__(self, location: S3Location) -> None:
        self.bucket = S3Bucket(location)
        self.parcels = S3ParcelStore(self.bucket)
        self.invoices = S3InvoiceStore(self.bucket)

    async def start(self) -> None:
        await self.bucket.check()
        await self.parcels.sweep_abandoned_uploads()

    async def maintain(self) -> None:
        await self.parcels.sweep_abandoned_uploads()

    async def close(self) -> None:
        await self.bucket.close()
