"""The peer: Debian's `docker-registry` (CNCF distribution) on loopback, and its requests.

The benchmark starts it with a throwaway configuration: filesystem storage in the work
directory, no authentication, log level warn and no access log (the registry's lean
setting; nothing is written per request). Its counterpart of an invoice is a small OCI
image manifest in one repository whose two blobs (a config and a layer) are uploaded
once, before anything is timed, with the monolithic upload (POST, then PUT with the
digest). Each manifest PUT is a new manifest: its tag and an annotation carry the index.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote

import httpx

from bindle_bench.common import (
    LOOPBACK,
    STOP_TIMEOUT,
    BenchError,
    clean_env,
    command_output,
    file_tail,
    free_port,
    wait_ready,
)
from bindle_bench.rawhttp import encode_request

REGISTRY: Final = "docker-registry"
REPOSITORY: Final = "bench/app"
MANIFEST_TYPE: Final = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE: Final = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_BYTES: Final = 1024  # the corpus invoices name one 1 KiB parcel each, too
SETUP_TIMEOUT: Final = 30.0  # seconds per blob upload request


def registry_binary() -> str | None:
    """The docker-registry executable on PATH, or None when it is not installed."""
    return shutil.which(REGISTRY)


def registry_version(binary: str) -> str:
    """E.g. "docker-registry github.com/docker/distribution 2.8.2+ds1"."""
    # It prints the path it was started by first: the name alone says which program.
    _, _, version = command_output([binary, "--version"]).partition(" ")
    return f"{REGISTRY} {version or 'unknown version'}"


def _config(port: int, root: Path) -> str:
    # JSON is YAML: the configuration needs no YAML library. A fixed HTTP secret keeps the
    # registry from warning that it generated one.
    document = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(root)},
            # Debian's shipped configuration has this cache; users run with it.
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {"addr": f"{LOOPBACK}:{port}", "secret": secrets.token_hex(16)},
    }
    return json.dumps(document, indent=2) + "\n"


@dataclass
class Registry:
    """One docker-registry process at a time on a storage directory in the work directory."""

    binary: str
    workdir: Path
    start_timeout: float
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "registry.log"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchError("docker-registry is not running")
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        return file_tail(self.log_path, chars)

    def start(self) -> float:
        """Start it; return the seconds from spawning it until GET /v2/ answered 200."""
        if self.process is not None:
            raise BenchError("docker-registry already running")
        for _ in range(3):  # the probed port can be taken before the registry binds it
            self.port = free_port()
            elapsed = self._start_once()
            if elapsed is not None:
                return elapsed
        raise BenchError(f"docker-registry did not start:\n{self.log_tail()}")

    def _start_once(self) -> float | None:
        self.workdir.mkdir(exist_ok=True)
        config = self.workdir / "config.yml"
        config.write_text(_config(self.port, self.workdir / "storage"))
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            with self.log_path.open("ab") as log:
                started = time.perf_counter()
                self.process = subprocess.Popen(
                    [self.binary, "serve", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # REGISTRY_* variables would override the configuration file.
                    env=clean_env(("REGISTRY_",)),
                )
            deadline = started + self.start_timeout
            if wait_ready(client, self.process, f"{self.base_url}/v2/", deadline) is not None:
                return time.perf_counter() - started
            if self.process.poll() is not None:
                self.process = None
                return None
        self.stop()
        raise BenchError(
            f"docker-registry's /v2/ did not answer 200 within {self.start_timeout:g} s:\n"
            f"{self.log_tail()}"
        )

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; return the exit code (None if not running)."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        return process.returncode

    def upload_blobs(self) -> ManifestTemplate:
        """Upload the config and layer blobs (POST, then PUT with the digest) once."""
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
        ).encode()
        layer = os.urandom(LAYER_BYTES)
        with httpx.Client(base_url=self.base_url, timeout=SETUP_TIMEOUT, trust_env=False) as c:
            return ManifestTemplate(
                (_upload(c, config), len(config)), (_upload(c, layer), len(layer))
            )


def _upload(client: httpx.Client, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = client.post(f"/v2/{REPOSITORY}/blobs/uploads/")
    location = started.headers.get("location")
    if started.status_code != 202 or not location:
        raise BenchError(f"docker-registry blob upload POST: {started.status_code} {started.text}")
    # The location carries the upload's state in its query: the digest is appended to it.
    separator = "&" if "?" in location else "?"
    finished = client.put(
        f"{location}{separator}digest={quote(digest)}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    if finished.status_code != 201:
        raise BenchError(f"docker-registry blob upload PUT: {finished.status_code} {finished.text}")
    return digest


@dataclass(frozen=True)
class ManifestTemplate:
    """The blobs every manifest names: (digest, size) of the config and of the layer."""

    config: tuple[str, int]
    layer: tuple[str, int]

    def manifest(self, index: int) -> bytes:
        document = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": self.config[0], "size": self.config[1]},
            "layers": [{"mediaType": LAYER_TYPE, "digest": self.layer[0], "size": self.layer[1]}],
            "annotations": {"org.example.bench.index": str(index)},
        }
        return json.dumps(document).encode()

    def put_requests(self, port: int, indexes: range) -> list[tuple[int, bytes]]:
        return [
            (
                index,
                encode_request(
                    "PUT", manifest_path(index), port, self.manifest(index), MANIFEST_TYPE
                ),
            )
            for index in indexes
        ]


def manifest_path(index: int) -> str:
    return f"/v2/{REPOSITORY}/manifests/t{index}"


def get_request(port: int, index: int) -> bytes:
    # Without an Accept naming the OCI type the registry answers 404 for an OCI manifest.
    return encode_request("GET", manifest_path(index), port, accept=MANIFEST_TYPE)
