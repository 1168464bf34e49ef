"""What the server under test stores its data in: the local disk, or S3 + PostgreSQL.

`disk` (the default) is the data directory alone. `s3+postgresql` is the scale-out
backend: invoices and parcels in an S3 bucket (--storage s3://...) and the query index on
PostgreSQL (--index postgresql://...), either on throwaway engines the benchmark starts
(scripts/ceph-rgw, scripts/postgres) or on running ones named with --storage and --index.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bindle_bench.ceiling import S3Access, warm_up
from bindle_bench.common import INTERRUPTS, BenchError
from bindle_bench.engines import (
    MEMSTORE_VARIABLE,
    Postgres,
    Rgw,
    engine_versions,
    memstore_bytes,
)
from bindle_bench.server import EngineCpu

DISK: Final = "disk"
SCALE_OUT: Final = "s3+postgresql"
BACKENDS: Final = (DISK, SCALE_OUT)
BUCKET: Final = "bindle-bench"
PREFIX: Final = "bench"
REGION: Final = "us-east-1"


@dataclass
class Backend:
    """How to start the server on a backend, and the words its report uses."""

    key: str
    heading: str  # section heading when the report joins a results file with others
    title: str = ""  # after "bindle-server benchmark results" in a file of its own
    first_download: str = "first, from disk"
    repeat_download: str = "repeat, page cache"
    empty_start: str = "empty data directory"
    server_args: tuple[str, ...] = ()
    server_env: dict[str, str] = field(default_factory=dict)
    drop_env: tuple[str, ...] = ("BINDLE_",)
    facts: list[str] = field(default_factory=list)
    engines: EngineCpu | None = None
    s3: S3Access | None = None
    engine_label: str = ""  # what the raw ceiling measures ("RGW")
    collect_garbage: Callable[[], None] | None = None

    def start(self) -> None:
        """Start (or check) the engines; the server is started afterwards."""

    def stop(self) -> list[str]:
        """Stop what `start` started; return problems (processes left, failed scripts)."""
        return []


def disk_backend() -> Backend:
    return Backend(DISK, "Local disk (`--backend disk`, the default)")


class ThrowawayScaleOut(Backend):
    """A Ceph RGW and a PostgreSQL started for this run, on this machine, and stopped."""

    def __init__(self, workdir: Path, size_mib: int, runs: int) -> None:
        super().__init__(
            SCALE_OUT,
            "Scale-out: S3 bucket on Ceph RGW + PostgreSQL index (`--backend s3+postgresql`)",
            title="S3 (Ceph RGW) + PostgreSQL backend",
            first_download="first, from the bucket",
            repeat_download="repeat",
            empty_start="empty bucket and index",
            drop_env=("BINDLE_", "AWS_"),
            engine_label="RGW",
        )
        memstore = int(os.environ.get(MEMSTORE_VARIABLE) or memstore_bytes(size_mib, runs))
        self.rgw = Rgw(workdir / "rgw", memstore)
        self.postgres = Postgres(workdir / "postgres")
        self.engines = self._engine_cpu
        self.collect_garbage = self.rgw.collect_garbage
        self._workdir = workdir

    def _engine_cpu(self) -> dict[str, float]:
        return {**self.rgw.cpu(), **self.postgres.cpu()}

    def start(self) -> None:
        print(
            "starting a throwaway Ceph RGW (scripts/ceph-rgw, memstore "
            f"{self.rgw.memstore / 1024**3:.1f} GiB) and PostgreSQL (scripts/postgres)",
            flush=True,
        )
        # The postgres user must reach its cluster directory inside the work directory.
        self._workdir.chmod(0o711)
        self.rgw.start()
        self.postgres.start()
        self.s3 = S3Access(
            self.rgw.endpoint,
            REGION,
            BUCKET,
            f"{PREFIX}/",
            access_key=self.rgw.access_key,
            secret_key=self.rgw.secret_key,
        )
        client = self.s3.client()
        try:
            client.create_bucket(Bucket=BUCKET)
        finally:
            client.close()
        warm_up(self.s3)
        storage = f"s3://{BUCKET}/{PREFIX}?endpoint={self.rgw.endpoint}"
        self.server_args = ("--storage", storage, "--index", self.postgres.url)
        self.server_env = {
            "AWS_ACCESS_KEY_ID": self.rgw.access_key,
            "AWS_SECRET_ACCESS_KEY": self.rgw.secret_key,
            "AWS_REGION": REGION,
        }
        names = ", ".join(f"{name} (pid {pid})" for pid, name in self.rgw.pids.items())
        self.facts = [
            f"Backend: `--storage {storage} --index {self.postgres.url}`",
            "Engines: throwaway, on this machine, sharing its cores with the server and curl: "
            f"scripts/ceph-rgw ({names}; one OSD on memstore, data in RAM, "
            f"{self.rgw.memstore / 1024**3:.1f} GiB, pool size 1) and scripts/postgres "
            f"(postmaster pid {self.postgres.pid}; fsync and synchronous_commit off); "
            f"{engine_versions()}",
        ]
        for fact in self.facts:
            print(fact, flush=True)

    def stop(self) -> list[str]:
        with INTERRUPTS.deferred():
            problems = [self.postgres.stop(), self.rgw.stop()]
        return [problem for problem in problems if problem]


class RunningScaleOut(Backend):
    """Engines that were already running: --storage s3://... and --index postgresql://..."""

    def __init__(self, storage: str, index: str) -> None:
        from bindle_server.search.registry import redact
        from bindle_server.storage.s3 import S3Location

        super().__init__(
            SCALE_OUT,
            "Scale-out: S3 bucket + PostgreSQL index (`--backend s3+postgresql`)",
            title="S3 + PostgreSQL backend",
            first_download="first, from the bucket",
            repeat_download="repeat",
            empty_start="empty bucket prefix and index",
            engine_label="S3 endpoint",
        )
        try:
            location = S3Location.from_url(storage)
        except ValueError as exc:
            raise BenchError(str(exc)) from None
        if not index.startswith(("postgresql://", "postgres://")):
            raise BenchError(f"--index must be a postgresql:// URL, not {redact(index)!r}")
        self.s3 = S3Access(
            location.endpoint,
            location.region,
            location.bucket,
            location.prefix,
            location.addressing,
        )
        self.server_args = ("--storage", storage, "--index", index)
        self.facts = [
            f"Backend: `--storage {storage} --index {redact(index)}` "
            "(engines already running; credentials from the AWS_* variables)",
        ]

    def start(self) -> None:
        assert self.s3 is not None
        client = self.s3.client()
        try:
            client.head_bucket(Bucket=self.s3.bucket)
            listed = client.list_objects_v2(Bucket=self.s3.bucket, Prefix=self.s3.prefix, MaxKeys=1)
        except Exception as exc:  # botocore's errors: no bucket, refused, unreachable
            raise BenchError(f"cannot use the bucket {self.s3.bucket!r}: {exc}") from None
        finally:
            client.close()
        if listed.get("KeyCount", 0):
            raise BenchError(
                f"s3://{self.s3.bucket}/{self.s3.prefix} is not empty: the benchmark needs an "
                "empty bucket prefix (and an empty index database)"
            )
        warm_up(self.s3)


def make_backend(args: argparse.Namespace, workdir: Path) -> Backend:
    if args.backend == DISK:
        return disk_backend()
    if args.storage is not None:
        return RunningScaleOut(args.storage, args.index)
    return ThrowawayScaleOut(workdir, args.size_mib, args.runs)
