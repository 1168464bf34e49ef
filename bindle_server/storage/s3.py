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
import os
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bindle_server.errors import (
    DigestMismatch,
    ParcelNotFound,
    SizeMismatch,
    StorageUnavailable,
)
from bindle_server.model import is_sha256
from bindle_server.storage.base import RecordKind, StoredObject

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
# CopyObject's limit; larger quarantined parcels are copied part by part.
MAX_COPY = 5 * 1024**3


@dataclass(frozen=True)
class S3Location:
    """Where the store lives, from `s3://BUCKET/PREFIX?endpoint=...&region=...`."""

    bucket: str
    prefix: str
    endpoint: str | None
    region: str
    addressing: str

    @classmethod
    def from_url(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"unsupported storage URL {url!r}: write s3://BUCKET/PREFIX")
        options = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = set(options) - {"endpoint", "region", "addressing"}
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(sorted(unknown))} in storage URL: "
                "s3:// takes endpoint, region and addressing"
            )
        endpoint = options.get("endpoint") or os.environ.get("AWS_ENDPOINT_URL_S3") or None
        addressing = options.get("addressing", "path" if endpoint else "auto")
        if addressing not in ("path", "virtual", "auto"):
            raise ValueError(f"addressing must be path, virtual or auto, not {addressing!r}")
        prefix = parts.path.strip("/")
        return cls(
            bucket=parts.netloc,
            prefix=f"{prefix}/" if prefix else "",
            endpoint=endpoint or os.environ.get("AWS_ENDPOINT_URL") or None,
            region=options.get("region")
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1",
            addressing=addressing,
        )

    def describe(self) -> str:
        where = f" at {self.endpoint}" if self.endpoint else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"


class S3Bucket:
    """One S3 client, opened on first use inside the running event loop, shared by both stores.

    Every call goes through `call`, which turns the store's failures into the domain's:
    a missing object is answered by the caller, anything unreachable is StorageUnavailable.
    """

    def __init__(self, location: S3Location) -> None:
        self.location = location
        self._client: Any = None
        self._exit: AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    def key(self, *parts: str) -> str:
        return self.location.prefix + "/".join(parts)

    async def client(self) -> Any:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await self._open()
        return self._client

    async def _open(self) -> Any:
        config = Config(
            s3={"addressing_style": self.location.addressing},
            # The server verifies every byte against its sha256 itself; the extra CRC
            # trailers newer SDKs add by default are not understood by every S3 server.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=64,
        )
        self._exit = AsyncExitStack()
        return await self._exit.enter_async_context(
            get_session().create_client(
                "s3",
                region_name=self.location.region,
                endpoint_url=self.location.endpoint,
                config=config,
            )
        )

    async def close(self) -> None:
        if self._exit is not None:
            await self._exit.aclose()
        self._client = None
        self._exit = None

    async def call(self, operation: str, **arguments: Any) -> Any:
        client = await self.client()
        with self.translate_errors():
            return await getattr(client, operation)(Bucket=self.location.bucket, **arguments)

    def paginate(self, operation: str, **arguments: Any) -> AsyncIterator[Any]:
        return self._paginate(operation, arguments)

    async def _paginate(self, operation: str, arguments: dict[str, Any]) -> AsyncIterator[Any]:
        client = await self.client()
        pages = client.get_paginator(operation).paginate(Bucket=self.location.bucket, **arguments)
        with self.translate_errors():
            async for page in pages:
                yield page

    @contextlib.contextmanager
    def translate_errors(self) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            code = error_code(exc)
            if code in ("NoSuchKey", "404", "PreconditionFailed", "412", "NoSuchUpload"):
                raise  # answers the caller handles
            if code == "NoSuchBucket":
                raise StorageUnavailable(f"bucket {self.location.bucket!r} does not exist") from exc
            log.error("object store refused %s: %s", self.location.describe(), exc)
            raise StorageUnavailable(f"the object store refused the request ({code})") from exc
        except BotoCoreError as exc:
            log.error("object store %s unreachable: %s", self.location.describe(), exc)
            raise StorageUnavailable("the object store cannot be reached") from exc

    async def check(self) -> None:
        """Fail at start-up, in one line, unless the bucket is there and honours If-None-Match."""
        probe = self.key(".bindle", f"create-once-probe-{uuid.uuid4().hex}")
        try:
            await self.call("head_bucket")
        except ClientError as exc:
            if error_code(exc) not in ("404", "NoSuchBucket"):
                raise
            raise StorageUnavailable(
                f"bucket {self.location.bucket!r} does not exist at "
                f"{self.location.endpoint or 'AWS S3'}: create it first"
            ) from None
        try:
            await self.call("put_object", Key=probe, Body=b"1", IfNoneMatch="*")
            try:
                await self.call("put_object", Key=probe, Body=b"2", IfNoneMatch="*")
            except Exception as exc:
                if not is_precondition_failed(exc):
                    raise
            else:
                raise StorageUnavailable(
                    f"{self.location.describe()} ignores If-None-Match on PUT, so invoices "
                    "could be overwritten; use an S3 server that honours it (Ceph RGW, MinIO, AWS)"
                )
        finally:
            with contextlib.suppress(Exception):
                await self.call("delete_object", Key=probe)


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def is_not_found(exc: BaseException) -> bool:
    return error_code(exc) in ("NoSuchKey", "404")


def is_precondition_failed(exc: BaseException) -> bool:
    return error_code(exc) in ("PreconditionFailed", "412")


class S3ParcelStore:
    """Parcels as objects; implements storage.base.ParcelStore."""

    def __init__(self, bucket: S3Bucket) -> None:
        self._bucket = bucket

    def _key(self, sha256: str) -> str:
        return self._bucket.key("parcels", sha256, "parcel.dat")

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
                    await anyio.to_thread.run_sync(digest.update, part)
                    await upload.send_part(part)
                    del part[:]  # reused: its copy went to the upload
                part += view
            if part:
                await anyio.to_thread.run_sync(digest.update, part)
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
        prefix = self._bucket.key("parcels", "")
        async for page in self._bucket.paginate("list_objects_v2", Prefix=prefix):
            for item in page.get("Contents", []):
                name, _, rest = item["Key"][len(prefix) :].partition("/")
                if rest == "parcel.dat" and is_sha256(name):
                    yield StoredObject(name, int(item["Size"]), _timestamp(item))

    async def delete(self, sha256: str) -> None:
        await self._bucket.call("delete_object", Key=self._key(sha256))

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
        prefix = self._bucket.key("parcels", "")
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


async def _read_object(bucket: S3Bucket, key: str) -> bytes | None:
    try:
        response = await bucket.call("get_object", Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    body = response["Body"]
    try:
        with bucket.translate_errors():
            data: bytes = await body.read()
    finally:
        body.close()
    return data


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


class S3InvoiceStore:
    """Invoices as objects; implements storage.base.InvoiceStore."""

    def __init__(self, bucket: S3Bucket) -> None:
        self._bucket = bucket

    def _key(self, key: str) -> str:
        return self._bucket.key("invoices", key, "invoice.toml")

    async def create(self, key: str, document: bytes) -> bool:
        try:
            await self._bucket.call(
                "put_object", Key=self._key(key), Body=document, IfNoneMatch="*"
            )
        except ClientError as exc:
            if is_precondition_failed(exc):
                return False
            raise
        return True

    async def read(self, key: str) -> bytes | None:
        return await _read_object(self._bucket, self._key(key))

    async def replace(self, key: str, document: bytes) -> None:
        await self._bucket.call("put_object", Key=self._key(key), Body=document)

    async def delete(self, key: str) -> None:
        await self._bucket.call("delete_object", Key=self._key(key))

    def _record_key(self, kind: RecordKind, key: str) -> str:
        return self._bucket.key(kind.value, key)

    async def put_record(self, kind: RecordKind, key: str, data: bytes, *, replace: bool) -> bool:
        condition = {} if replace else {"IfNoneMatch": "*"}
        try:
            await self._bucket.call(
                "put_object", Key=self._record_key(kind, key), Body=data, **condition
            )
        except ClientError as exc:
            if is_precondition_failed(exc):
                return False
            raise
        return True

    async def read_record(self, kind: RecordKind, key: str) -> bytes | None:
        return await _read_object(self._bucket, self._record_key(kind, key))

    async def delete_record(self, kind: RecordKind, key: str) -> None:
        await self._bucket.call("delete_object", Key=self._record_key(kind, key))

    async def records(self, kind: RecordKind) -> AsyncIterator[StoredObject]:
        prefix = self._bucket.key(kind.value, "")
        async for page in self._bucket.paginate("list_objects_v2", Prefix=prefix):
            for item in page.get("Contents", []):
                name = item["Key"][len(prefix) :]
                if name and "/" not in name:
                    yield StoredObject(name, int(item["Size"]), _timestamp(item))

    async def scan(self) -> AsyncIterator[tuple[str, bytes]]:
        prefix = self._bucket.key("invoices", "")
        async for page in self._bucket.paginate("list_objects_v2", Prefix=prefix):
            for item in page.get("Contents", []):
                key, _, rest = item["Key"][len(prefix) :].partition("/")
                if rest != "invoice.toml":
                    continue
                document = await self.read(key)
                if document is not None:
                    yield key, document


def _timestamp(item: dict[str, Any]) -> float:
    modified = item.get("LastModified")
    return modified.timestamp() if isinstance(modified, datetime) else 0.0


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
