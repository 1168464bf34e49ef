"""Invoices and lifecycle records as objects in the bucket; implements storage.base.InvoiceStore."""

from __future__ import annotations

from collections.abc import AsyncIterator

from botocore.exceptions import ClientError

from bindle_server.model import layout
from bindle_server.storage.base import RecordKind, StoredObject
from bindle_server.storage.s3_bucket import S3Bucket, is_precondition_failed, read_object, timestamp


class S3InvoiceStore:
    """Invoices as objects; implements storage.base.InvoiceStore."""

    def __init__(self, bucket: S3Bucket) -> None:
        self._bucket = bucket

    def _key(self, key: str) -> str:
        return self._bucket.key(*layout.invoice_parts(key))

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
        return await read_object(self._bucket, self._key(key))

    async def replace(self, key: str, document: bytes) -> None:
        await self._bucket.call("put_object", Key=self._key(key), Body=document)

    async def delete(self, key: str) -> None:
        await self._bucket.call("delete_object", Key=self._key(key))

    def change_mark(self) -> int | None:
        # Other nodes change the bucket too, and nothing tells this one without a request.
        return None

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
        return await read_object(self._bucket, self._record_key(kind, key))

    async def delete_record(self, kind: RecordKind, key: str) -> None:
        await self._bucket.call("delete_object", Key=self._record_key(kind, key))

    async def records(self, kind: RecordKind) -> AsyncIterator[StoredObject]:
        prefix = self._bucket.key(kind.value, "")
        async for page in self._bucket.paginate("list_objects_v2", Prefix=prefix):
            for item in page.get("Contents", []):
                name = item["Key"][len(prefix) :]
                if name and "/" not in name:
                    yield StoredObject(name, int(item["Size"]), timestamp(item))

    async def scan(self) -> AsyncIterator[tuple[str, bytes]]:
        prefix = self._bucket.key(layout.INVOICES, "")
        async for page in self._bucket.paginate("list_objects_v2", Prefix=prefix):
            for item in page.get("Contents", []):
                key, _, rest = item["Key"][len(prefix) :].partition("/")
                if rest != layout.INVOICE_FILE:
                    continue
                document = await self.read(key)
                if document is not None:
                    yield key, document
