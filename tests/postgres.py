"""A throwaway PostgreSQL cluster for tests: initdb in a temp dir, loopback only, trust auth.

Run as root (CI): the cluster belongs to the `postgres` user. `python -m tests.postgres`
starts one, prints its URL and stops it on Enter or Ctrl-C.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT = 30
STOP_TIMEOUT = 15.0
URL_VARIABLE = "BINDLE_TEST_POSTGRES_URL"
# A linguistic default collation (ICU "en": "B" sorts after "a"), so that a column or
# ORDER BY missing its COLLATE "C" shows up as a wrong order in the tests.
LOCALE = ["--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en"]


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
    """Start a cluster and stop it (by its postmaster's PID) afterwards."""
    user = pwd.getpwnam("postgres")
    root = Path(tempfile.mkdtemp(prefix="bindle-postgres-"))
    pid: int | None = None
    try:
        os.chown(root, user.pw_uid, user.pw_gid)
        data, log = root / "data", root / "postgres.log"
        _run_as_postgres(
            [BIN / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", *LOCALE],
            root,
        )
        port = free_port()
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        # -w -t: pg_ctl waits until the server accepts connections, within the deadline.
        wait = ["-w", "-t", str(START_TIMEOUT)]
        _run_as_postgres(
            [BIN / "pg_ctl", "start", "-D", data, "-l", log, "-o", options, *wait], root
        )
        pid = int((data / "postmaster.pid").read_text().split()[0])
        yield Cluster(f"postgresql://postgres@127.0.0.1:{port}/postgres", pid)
    finally:
        pid_file = root / "data" / "postmaster.pid"
        if pid is None and pid_file.exists():  # started, but not ready in time
            pid = int(pid_file.read_text().split()[0])
        if pid is not None:
            _stop(pid)
        shutil.rmtree(root, ignore_errors=True)


def _run_as_postgres(command: list[str | Path], cwd: Path) -> None:
    result = subprocess.run(
        command,
        user="postgres",
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT + 5,
        check=False,
    )
    if result.returncode != 0:
        log = cwd / "postgres.log"
        detail = log.read_text(errors="replace") if log.exists() else ""
        raise RuntimeError(f"{command[0]} failed: {result.stderr}{result.stdout}{detail}")


def _stop(pid: int) -> None:
    """Fast shutdown, then SIGKILL if it has not exited in time."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if not _running(pid):
                return
            time.sleep(0.05)


def _running(pid: int) -> bool:
    """Alive and not a zombie (the postmaster's parent is init, which may reap late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


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
