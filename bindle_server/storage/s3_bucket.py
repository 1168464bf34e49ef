"""The S3 client the stores of a bucket share: where it is, its errors in the domain's terms."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bindle_server.errors import StorageUnavailable

log = logging.getLogger(__name__)


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


async def read_object(bucket: S3Bucket, key: str) -> bytes | None:
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


def timestamp(item: dict[str, Any]) -> float:
    modified = item.get("LastModified")
    return modified.timestamp() if isinstance(modified, datetime) else 0.0
