"""A throwaway Ceph RGW (S3) for tests, started by `scripts/ceph-rgw`, and fresh buckets on it.

Set BINDLE_TEST_S3_ENDPOINT (with the AWS_* credential variables) to use a running S3
server instead. `python -m tests.rgw` starts one, prints its settings and stops it on
Enter or Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "ceph-rgw"
ENDPOINT_VARIABLE = "BINDLE_TEST_S3_ENDPOINT"
START_TIMEOUT = 120
START_ATTEMPTS = 2


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    @property
    def environment(self) -> dict[str, str]:
        """What a server process needs to reach the store (the standard AWS variables)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
        }

    def url(self, bucket: str, prefix: str = "") -> str:
        return f"s3://{bucket}/{prefix}?endpoint={self.endpoint}"

    def client(self) -> Any:
        """A plain (synchronous) botocore client, for fixtures and for looking inside."""
        import botocore.session
        from botocore.config import Config

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )


def unavailable_reason() -> str | None:
    """Why no RGW can be started here, or None when one can."""
    for program in ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "curl", "uuidgen"):
        if shutil.which(program) is None:
            return (
                f"{program} not found: install Debian's radosgw ceph-mon ceph-osd ceph-common "
                f"(or set {ENDPOINT_VARIABLE})"
            )
    return None


def from_environment() -> S3Server | None:
    endpoint = os.environ.get(ENDPOINT_VARIABLE)
    if not endpoint:
        return None
    return S3Server(endpoint, os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])


@contextmanager
def gateway() -> Iterator[S3Server]:
    """Start a single-host Ceph cluster with RGW; stop every process of it afterwards."""
    root = Path(tempfile.mkdtemp(prefix="bindle-rgw-")) / "cluster"
    try:
        failures = []
        # A second try: a free port probed for the mon can be taken by another process
        # before the mon binds it (seen when several test runs start clusters at once).
        for _ in range(START_ATTEMPTS):
            result = subprocess.run(
                ["bash", str(SCRIPT), "start", str(root)],
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT,
                check=False,
            )
            if result.returncode == 0:
                break
            failures.append(result.stderr[-3000:])
        else:
            raise RuntimeError(f"scripts/ceph-rgw start failed: {failures}")
        settings = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        yield S3Server(
            settings["AWS_ENDPOINT_URL"],
            settings["AWS_ACCESS_KEY_ID"],
            settings["AWS_SECRET_ACCESS_KEY"],
        )
    finally:
        subprocess.run(
            ["bash", str(SCRIPT), "stop", str(root)], timeout=60, check=False, capture_output=True
        )
        shutil.rmtree(root.parent, ignore_errors=True)


@contextmanager
def fresh_bucket(server: S3Server) -> Iterator[str]:
    """Create an empty bucket; empty and delete it afterwards (memstore keeps data in RAM)."""
    name = f"bindle-test-{uuid.uuid4().hex[:12]}"
    client = server.client()
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        empty_bucket(client, name)
        with suppress(Exception):
            client.delete_bucket(Bucket=name)
        client.close()


def empty_bucket(client: Any, bucket: str) -> None:
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])


if __name__ == "__main__":
    with gateway() as started:
        sys.stdout.write(
            f"AWS_ENDPOINT_URL={started.endpoint}\nAWS_ACCESS_KEY_ID={started.access_key}\n"
            f"AWS_SECRET_ACCESS_KEY={started.secret_key}\n"
        )
        sys.stdout.flush()
        with suppress(KeyboardInterrupt, EOFError):
            input()
