"""A throwaway PostgreSQL cluster for tests (`scripts/postgres`: initdb in a temp dir,
loopback only, trust auth, a linguistic default collation); and fresh databases on it.

Run as root (CI): the cluster belongs to the `postgres` user. `python -m tests.postgres`
starts one, prints its URL and stops it on Enter or Ctrl-C.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "postgres"
START_TIMEOUT = 30
STOP_TIMEOUT = 15
URL_VARIABLE = "BINDLE_TEST_POSTGRES_URL"


def unavailable_reason() -> str | None:
    """Why no cluster can be started here, or None when one can."""
    if not (BIN / "initdb").exists():
        return f"PostgreSQL binaries not found in {BIN} (set {URL_VARIABLE} to use a server)"
    if os.geteuid() != 0:
        return f"starting PostgreSQL needs root (to run as `postgres`); or set {URL_VARIABLE}"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return f"no `postgres` user to run PostgreSQL as; or set {URL_VARIABLE}"
    return None


@dataclass
class Cluster:
    url: str
    pid: int


@contextmanager
def cluster() -> Iterator[Cluster]:
    """Start a cluster with `scripts/postgres`; stop it (by its postmaster's PID) afterwards."""
    root = Path(tempfile.mkdtemp(prefix="bindle-postgres-"))
    root.chmod(0o711)  # the `postgres` user must reach the cluster directory inside
    directory = root / "cluster"
    try:
        result = subprocess.run(
            ["bash", str(SCRIPT), "start", str(directory)],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT + 15,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"scripts/postgres start failed: {result.stderr[-3000:]}")
        url = result.stdout.strip().partition("=")[2]
        pid = int((directory / "data" / "postmaster.pid").read_text().split()[0])
        yield Cluster(url, pid)
    finally:
        subprocess.run(
            ["bash", str(SCRIPT), "stop", str(directory)],
            capture_output=True,
            timeout=STOP_TIMEOUT + 15,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    """`url` with its database replaced by `name`."""
    base, _, _ = url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}"


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """Create an empty database on the server `url` names; drop it afterwards."""
    import psycopg

    name = f"bindle_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(url, name)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    with cluster() as started:
        sys.stdout.write(f"{started.url}\n")
        sys.stdout.flush()
        with suppress(KeyboardInterrupt, EOFError):
            input()
