"""Parcel upload and download with curl, and the single-core hashlib reference rate."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote

import httpx

from bindle_bench.common import CURL, MIB, BenchError, curl_env
from bindle_bench.invoices import invoice_toml
from bindle_bench.server import EngineCpu, RssSampler, Server


@dataclass(frozen=True)
class CurlResult:
    http_code: int
    seconds: float  # curl's own time_total: the transfer, without reading the input file
    wall_seconds: float  # around the curl process, start-up and file loading included
    size_upload: int
    size_download: int
    body: str


WRITE_OUT: Final = "\n%{http_code} %{time_total} %{size_upload} %{size_download}"


def run_curl(args: Sequence[str], timeout: float) -> CurlResult:
    command = [CURL, "-q", *args, "--max-time", f"{timeout:.0f}", "-w", WRITE_OUT]
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            command, capture_output=True, timeout=timeout + 15, env=curl_env(), check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"curl did not finish within {timeout + 15:.0f} s") from exc
    wall = time.perf_counter() - started
    stdout = proc.stdout.decode(errors="replace")
    body, _, stats = stdout.rpartition("\n")
    if proc.returncode != 0:
        raise BenchError(
            f"curl exit code {proc.returncode} ({stats.strip()}): "
            f"{proc.stderr.decode(errors='replace').strip()} {body[:500]}"
        )
    code, total, up, down = stats.split()
    return CurlResult(int(code), float(total), wall, int(float(up)), int(float(down)), body)


def write_random_file(path: Path, size_mib: int) -> str:
    """Write `size_mib` MiB of os.urandom in 1 MiB chunks; return the sha256 hex digest."""
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for _ in range(size_mib):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


@dataclass
class TransferRun:
    upload: CurlResult
    download: CurlResult
    repeat_download: CurlResult
    upload_rss_mib: float
    download_rss_mib: float
    size: int
    upload_cpu: str
    download_cpu: str

    @property
    def upload_mib_s(self) -> float:
        return self.size / MIB / self.upload.seconds

    @property
    def download_mib_s(self) -> float:
        return self.size / MIB / self.download.seconds

    @property
    def repeat_download_mib_s(self) -> float:
        return self.size / MIB / self.repeat_download.seconds

    @property
    def upload_wall_mib_s(self) -> float:
        return self.size / MIB / self.upload.wall_seconds

    @property
    def download_wall_mib_s(self) -> float:
        return self.size / MIB / self.download.wall_seconds


def transfer_run(
    server: Server,
    workdir: Path,
    run: int,
    size_mib: int,
    timeout: float,
    engines: EngineCpu | None = None,
) -> TransferRun:
    """One new invoice with one new random parcel: upload it, then download it."""
    size = size_mib * MIB
    source = workdir / f"parcel-{run}.bin"
    sha256 = write_random_file(source, size_mib)
    name = f"bench.example/upload/run{run}-{sha256[:12]}"
    bindle = f"{name}/1.0.0"
    created = httpx.post(
        f"{server.base_url}/v1/_i",
        content=invoice_toml(name, "1.0.0", sha256, size, "parcel.bin"),
        headers={"Content-Type": "application/toml"},
        timeout=30.0,
        trust_env=False,
    )
    if created.status_code != 202:
        raise BenchError(f"creating {bindle}: {created.status_code} {created.text[:500]}")
    url = f"{server.base_url}/v1/_i/{quote(bindle)}@{sha256}"
    try:
        with RssSampler(server.pid, timeout + 30, engines) as upload_rss:
            upload = run_curl(
                [
                    "-sS",
                    "--fail",
                    "-X",
                    "POST",
                    # -T streams the file (--data-binary would load it into memory, and
                    # curl refuses that for 1 GiB); an empty Expect skips 100-continue.
                    "-T",
                    str(source),
                    "-H",
                    "Expect:",
                    "-H",
                    "Content-Type: application/octet-stream",
                    url,
                ],
                timeout,
            )
    finally:
        source.unlink(missing_ok=True)
    if upload.http_code != 200 or upload.size_upload != size:
        raise BenchError(f"upload of run {run}: {upload}")
    with RssSampler(server.pid, timeout + 30, engines) as download_rss:
        download = run_curl(["-sS", "--fail", "-o", "/dev/null", url], timeout)
    if download.http_code != 200 or download.size_download != size:
        raise BenchError(f"download of run {run}: {download}")
    # The first download reads from disk (uploads do not keep parcels in the page cache);
    # the repeat is what a parcel that is fetched often gets.
    repeat = run_curl(["-sS", "--fail", "-o", "/dev/null", url], timeout)
    if repeat.http_code != 200 or repeat.size_download != size:
        raise BenchError(f"repeat download of run {run}: {repeat}")
    return TransferRun(
        upload,
        download,
        repeat,
        upload_rss.growth_mib,
        download_rss.growth_mib,
        size,
        upload_rss.cpu_summary() + upload_rss.engines_summary(),
        download_rss.cpu_summary() + download_rss.engines_summary(),
    )


def hashlib_rates(buffer_mib: int, repeats: int) -> list[float]:
    """Single-core hashlib.sha256 over one buffer, in MiB/s, `repeats` times."""
    buffer = os.urandom(buffer_mib * MIB)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        hashlib.sha256(buffer).digest()
        rates.append(buffer_mib / (time.perf_counter() - started))
    return rates
