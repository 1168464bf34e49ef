"""The S3 engine's own ceiling: the same object size straight to and from the gateway.

No bindle-server is involved: the benchmark process PUTs an object as a multipart upload
with the server's part size (once with one part in flight, as the server sends them, and
once with several in flight) and GETs it back in one stream, with botocore, the library
under the server's aiobotocore. What the engine can do on this machine bounds what the
server can do through it.
"""

from __future__ import annotations

import os
import statistics
import time
import types
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from bindle_bench.common import MIB, BenchError
from bindle_bench.server import EngineCpu

PARALLEL_PARTS: Final = 4  # parts in flight in the concurrent PUT
READ_CHUNK: Final = MIB  # the server reads parcels from the store in 1 MiB chunks too
DISTINCT_PARTS: Final = 4  # random part buffers, reused in turn (the store does not dedupe)
CALL_TIMEOUT: Final = 120  # seconds for one S3 request (connect and each read)


@dataclass(frozen=True)
class S3Access:
    """Where and as whom to reach the bucket; keys None use botocore's own lookup."""

    endpoint: str | None
    region: str
    bucket: str
    prefix: str
    addressing: str = "path"
    access_key: str | None = None
    secret_key: str | None = None

    def client(self, pool: int = 10) -> Any:
        """A synchronous botocore client configured as the server configures its own."""
        import botocore.session
        from botocore.config import Config

        credentials: dict[str, str] = {}
        if self.access_key is not None and self.secret_key is not None:
            credentials = {
                "aws_access_key_id": self.access_key,
                "aws_secret_access_key": self.secret_key,
            }
        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": self.addressing},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"mode": "standard", "max_attempts": 4},
                connect_timeout=10,
                read_timeout=CALL_TIMEOUT,
                max_pool_connections=pool,
            ),
            **credentials,
        )


def warm_up(access: S3Access) -> None:
    """One small PUT and one small multipart upload, deleted again.

    A new Ceph RGW creates its data pool and its multipart pool on first use; that takes
    seconds and belongs to no measurement.
    """
    client = access.client()
    key = f"{access.prefix}bench-warm-up"
    try:
        client.put_object(Bucket=access.bucket, Key=key, Body=b"warm-up")
        created = client.create_multipart_upload(Bucket=access.bucket, Key=key)
        sent = client.upload_part(
            Bucket=access.bucket,
            Key=key,
            UploadId=created["UploadId"],
            PartNumber=1,
            Body=b"warm-up",
        )
        client.complete_multipart_upload(
            Bucket=access.bucket,
            Key=key,
            UploadId=created["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": sent["ETag"]}]},
        )
        client.delete_object(Bucket=access.bucket, Key=key)
    finally:
        client.close()


def server_part_size(size: int) -> int:
    """The part size bindle-server uses for a parcel of `size` bytes."""
    from bindle_server.storage.s3 import MAX_PARTS, PART_SIZE

    return max(PART_SIZE, -(-size // MAX_PARTS))


class CpuWindow:
    """Wall time, this process's CPU time and the engines' CPU time over a block."""

    def __init__(self, engines: EngineCpu | None) -> None:
        self._engines = engines
        self.wall = 0.0
        self.client_cpu = 0.0
        self.engine_cpu: dict[str, float] = {}

    def __enter__(self) -> CpuWindow:
        self._engines_start = self._engines() if self._engines is not None else {}
        self._client_start = time.process_time()
        self._wall_start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.wall = time.perf_counter() - self._wall_start
        self.client_cpu = time.process_time() - self._client_start
        if self._engines is not None:
            now = self._engines()
            self.engine_cpu = {
                name: seconds - self._engines_start.get(name, 0.0) for name, seconds in now.items()
            }

    def summary(self) -> str:
        wall = max(self.wall, 1e-9)
        parts = [
            f"bench client (botocore) {self.client_cpu:.2f} s ({100 * self.client_cpu / wall:.0f}%)"
        ]
        parts += [
            f"{name} {seconds:.2f} s ({100 * seconds / wall:.0f}%)"
            for name, seconds in self.engine_cpu.items()
        ]
        total = self.client_cpu + sum(self.engine_cpu.values())
        return "CPU " + ", ".join(parts) + f", together {100 * total / wall:.0f}% of a core"


@dataclass(frozen=True)
class CeilingRun:
    put_serial: float  # MiB/s, one part in flight
    put_parallel: float  # MiB/s, PARALLEL_PARTS in flight
    get: float  # MiB/s, one stream
    put_serial_cpu: str
    put_parallel_cpu: str
    get_cpu: str


@dataclass(frozen=True)
class Ceiling:
    runs: list[CeilingRun]
    part_mib: float

    @property
    def put_serial(self) -> float:
        return statistics.median(run.put_serial for run in self.runs)

    @property
    def put_parallel(self) -> float:
        return statistics.median(run.put_parallel for run in self.runs)

    @property
    def get(self) -> float:
        return statistics.median(run.get for run in self.runs)


def _parts(size: int, part_size: int) -> Iterator[tuple[int, int]]:
    """(part number, length) of a multipart upload of `size` bytes."""
    for number, start in enumerate(range(0, size, part_size), start=1):
        yield number, min(part_size, size - start)


def _multipart_put(
    client: Any, access: S3Access, key: str, size: int, buffers: list[bytes], parallel: int
) -> None:
    part_size = len(buffers[0])
    created = client.create_multipart_upload(Bucket=access.bucket, Key=key)
    upload_id = created["UploadId"]

    def send(part: tuple[int, int]) -> dict[str, Any]:
        number, length = part
        data = buffers[number % len(buffers)]
        body = data if length == part_size else data[:length]
        sent = client.upload_part(
            Bucket=access.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": sent["ETag"]}

    try:
        if parallel == 1:
            done = [send(part) for part in _parts(size, part_size)]
        else:
            with ThreadPoolExecutor(parallel, thread_name_prefix="put-part") as pool:
                done = list(pool.map(send, _parts(size, part_size)))
        client.complete_multipart_upload(
            Bucket=access.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": done},
        )
    except BaseException:
        try:
            client.abort_multipart_upload(Bucket=access.bucket, Key=key, UploadId=upload_id)
        except Exception as exc:  # the original failure matters more
            print(f"  (aborting the raw upload {key} failed too: {exc})", flush=True)
        raise


def _get(client: Any, access: S3Access, key: str) -> int:
    body = client.get_object(Bucket=access.bucket, Key=key)["Body"]
    received = 0
    try:
        for chunk in body.iter_chunks(READ_CHUNK):
            received += len(chunk)
    finally:
        body.close()
    return received


def measure_ceiling(
    access: S3Access,
    size_mib: int,
    runs: int,
    engines: EngineCpu | None,
    collect_garbage: Callable[[], None] | None,
    detail: Callable[[str], None],
    label: str = "RGW",
) -> Ceiling:
    """`runs` x (PUT one part in flight, GET, PUT PARALLEL_PARTS in flight) of new objects.

    Each object is deleted once measured (and, on the throwaway RGW, its RAM freed with
    `collect_garbage`), so the memstore holds at most one of them at a time.
    """
    size = size_mib * MIB
    part_size = server_part_size(size)
    buffers = [os.urandom(min(part_size, size)) for _ in range(DISTINCT_PARTS)]
    client = access.client(pool=PARALLEL_PARTS + 2)
    results: list[CeilingRun] = []
    try:
        for run in range(runs):
            base = f"{access.prefix}bench-ceiling/{uuid.uuid4().hex}"
            windows: dict[str, CpuWindow] = {}
            rates: dict[str, float] = {}
            for kind, parallel in (("serial", 1), ("parallel", PARALLEL_PARTS)):
                key = f"{base}-{kind}"
                try:
                    with CpuWindow(engines) as window:
                        _multipart_put(client, access, key, size, buffers, parallel)
                    windows[f"put {kind}"] = window
                    rates[f"put {kind}"] = size_mib / window.wall
                    if kind == "serial":
                        with CpuWindow(engines) as window:
                            received = _get(client, access, key)
                        if received != size:
                            raise BenchError(f"raw GET of {key}: {received} of {size} bytes")
                        windows["get"] = window
                        rates["get"] = size_mib / window.wall
                finally:
                    try:
                        client.delete_object(Bucket=access.bucket, Key=key)
                    finally:
                        if collect_garbage is not None:
                            collect_garbage()
            result = CeilingRun(
                rates["put serial"],
                rates["put parallel"],
                rates["get"],
                windows["put serial"].summary(),
                windows["put parallel"].summary(),
                windows["get"].summary(),
            )
            results.append(result)
            detail(
                f"{label} alone, run {run + 1}: PUT {result.put_serial:.0f} MiB/s (1 part in "
                f"flight), {result.put_parallel:.0f} MiB/s ({PARALLEL_PARTS} in flight); "
                f"GET {result.get:.0f} MiB/s"
            )
            detail(f"{label} alone, run {run + 1} PUT, 1 in flight: {result.put_serial_cpu}")
            detail(
                f"{label} alone, run {run + 1} PUT, {PARALLEL_PARTS} in flight: "
                f"{result.put_parallel_cpu}"
            )
            detail(f"{label} alone, run {run + 1} GET: {result.get_cpu}")
    finally:
        client.close()
    return Ceiling(results, part_size / MIB)
