"""Throwaway storage engines for the scale-out backend: Ceph RGW (S3) and PostgreSQL.

Both are started and stopped with the repository's own scripts (`scripts/ceph-rgw`,
`scripts/postgres`), which bound every wait and stop their processes by PID. The scripts
run in a session of their own, so a Ctrl-C at the terminal reaches the benchmark only;
the benchmark then stops the engines from its `finally` (see common.Interrupts.deferred).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bindle_bench.common import (
    MIB,
    BenchError,
    child_pids,
    command_output,
    cpu_seconds,
    read_meminfo,
)

SCRIPTS: Final = Path(__file__).resolve().parents[2] / "scripts"
RGW_START_TIMEOUT: Final = 180.0  # the script's own bound is 90 s (CEPH_START_TIMEOUT)
RGW_START_ATTEMPTS: Final = 2
POSTGRES_START_TIMEOUT: Final = 60.0  # the script's own bound is 30 s
STOP_TIMEOUT: Final = 60.0  # the scripts wait at most 10-15 s per process
GC_TIMEOUT: Final = 60.0
POSTGRES_BIN: Final = Path("/usr/lib/postgresql/15/bin")
MEMSTORE_VARIABLE: Final = "CEPH_MEMSTORE_BYTES"
# RAM left to everything else (server, curl, PostgreSQL, the OS) beyond the memstore.
RAM_HEADROOM: Final = 2 * 1024 * MIB


def clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: [state, ppid, ...]; utime is index 11."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()


def process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return f"pid {pid}"


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process, its reaped children and its live children (one level).

    PostgreSQL runs one process per connection under the postmaster; the time of those
    that ended is in the postmaster's cutime/cstime once it reaped them.
    """
    ticks = 0
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    for child in child_pids(pid):
        try:
            fields = _stat_fields(child)
        except OSError:
            continue  # gone meanwhile
        ticks += int(fields[11]) + int(fields[12])
    return ticks / clock_ticks()


def process_cpu_seconds(pid: int) -> float:
    """CPU time of a process (0 once it is gone)."""
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


def run_script(
    script: str, args: list[str], timeout: float, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run scripts/SCRIPT in a session of its own (terminal signals do not reach it)."""
    try:
        return subprocess.run(
            ["bash", str(SCRIPTS / script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(
            f"scripts/{script} {args[0]} did not finish within {timeout:.0f} s"
        ) from exc


def settings_from(output: str) -> dict[str, str]:
    """The NAME=VALUE lines a start script prints."""
    pairs = (line.split("=", 1) for line in output.splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}


def memstore_bytes(size_mib: int, runs: int) -> int:
    """RAM the OSD may fill: every run's parcel stays stored, plus one raw-ceiling object
    and one deleted but not yet collected, plus 1 GiB for invoices and metadata."""
    return max(3 * 1024, size_mib * (runs + 2) + 1024) * MIB


@dataclass
class Rgw:
    """A single-host Ceph cluster (1 mon, 1 memstore OSD, radosgw) from scripts/ceph-rgw."""

    directory: Path
    memstore: int
    endpoint: str = ""
    access_key: str = ""
    secret_key: str = ""
    pids: dict[int, str] = field(default_factory=dict)

    def start(self) -> None:
        available = read_meminfo().get("MemAvailable", 0) * 1024
        if available and available < self.memstore + RAM_HEADROOM:
            raise BenchError(
                f"the throwaway Ceph OSD keeps data in RAM and needs up to "
                f"{self.memstore / 1024**3:.1f} GiB (+{RAM_HEADROOM / 1024**3:.0f} GiB "
                f"headroom), but only {available / 1024**3:.1f} GiB is available: use a "
                f"smaller --size-mib, or set {MEMSTORE_VARIABLE}"
            )
        for program in ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "uuidgen"):
            if shutil.which(program) is None:
                raise BenchError(
                    f"{program} not found: install Debian's radosgw ceph-mon ceph-osd "
                    "ceph-common, or give --storage and --index of running engines"
                )
        for attempt in range(1, RGW_START_ATTEMPTS + 1):
            result = run_script(
                "ceph-rgw",
                ["start", str(self.directory)],
                RGW_START_TIMEOUT,
                {MEMSTORE_VARIABLE: str(self.memstore)},
            )
            self._read_pids()
            if result.returncode == 0:
                break
            # The script's own first lines say what failed; the logs' tails follow.
            said = [line for line in result.stderr.splitlines() if line.startswith("ceph-rgw:")]
            failure = "\n".join([*said, result.stderr[-2000:]])
            if attempt == RGW_START_ATTEMPTS:
                raise BenchError(f"scripts/ceph-rgw start failed {attempt} times:\n{failure}")
            # A new single-host cluster now and then fails to form (seen: the OSD's mkfs
            # refused with 'wrong fsid'); the script stopped what it started: try once more.
            print(f"scripts/ceph-rgw start failed ({'; '.join(said)}); trying again", flush=True)
            problem = self.stop()
            if problem:
                raise BenchError(f"{problem} (after a failed start:\n{failure})")
            self.pids.clear()
        settings = settings_from(result.stdout)
        try:
            self.endpoint = settings["AWS_ENDPOINT_URL"]
            self.access_key = settings["AWS_ACCESS_KEY_ID"]
            self.secret_key = settings["AWS_SECRET_ACCESS_KEY"]
        except KeyError as exc:
            raise BenchError(f"scripts/ceph-rgw printed no {exc}: {result.stdout!r}") from None

    def _read_pids(self) -> None:
        try:
            lines = (self.directory / "pids").read_text().split()
        except OSError:
            return
        for pid in map(int, filter(str.isdigit, lines)):
            if pid not in self.pids:
                self.pids[pid] = process_name(pid)

    def stop(self) -> str | None:
        """Stop every process (by PID) and remove the directory; a problem, or None."""
        self._read_pids()  # also after a start that was interrupted half-way
        result = run_script("ceph-rgw", ["stop", str(self.directory)], STOP_TIMEOUT)
        left = [pid for pid in self.pids if _alive(pid)]
        if result.returncode != 0 or left:
            return f"scripts/ceph-rgw stop: exit {result.returncode}, still running: {left}"
        return None

    def cpu(self) -> dict[str, float]:
        return {name: process_cpu_seconds(pid) for pid, name in self.pids.items()}

    def collect_garbage(self) -> None:
        """Free deleted objects now (RGW's garbage collection waits hours by default and
        memstore keeps them in RAM until then)."""
        try:
            subprocess.run(
                [
                    "radosgw-admin",
                    "-c",
                    str(self.directory / "ceph.conf"),
                    "gc",
                    "process",
                    "--include-all",
                ],
                capture_output=True,
                timeout=GC_TIMEOUT,
                check=False,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"radosgw-admin gc process took over {GC_TIMEOUT:.0f} s") from exc


@dataclass
class Postgres:
    """A PostgreSQL cluster from scripts/postgres (loopback only, trust auth, no fsync)."""

    directory: Path
    url: str = ""
    pid: int = 0

    def start(self) -> None:
        if not (POSTGRES_BIN / "initdb").exists():
            raise BenchError(
                f"no {POSTGRES_BIN}/initdb: apt-get install postgresql, or give --storage "
                "and --index of running engines"
            )
        result = run_script("postgres", ["start", str(self.directory)], POSTGRES_START_TIMEOUT)
        self._read_pid()
        if result.returncode != 0:
            raise BenchError(f"scripts/postgres start failed:\n{result.stderr[-3000:]}")
        url = settings_from(result.stdout).get("BINDLE_INDEX")
        if not url:
            raise BenchError(f"scripts/postgres printed no BINDLE_INDEX: {result.stdout!r}")
        self.url = url

    def _read_pid(self) -> None:
        try:
            first = (self.directory / "data" / "postmaster.pid").read_text().split()[0]
        except (OSError, IndexError):
            return
        if first.isdigit():
            self.pid = int(first)

    def stop(self) -> str | None:
        """Stop the postmaster (by PID) and remove the directory; a problem, or None."""
        self._read_pid()
        result = run_script("postgres", ["stop", str(self.directory)], STOP_TIMEOUT)
        if result.returncode != 0 or (self.pid and _alive(self.pid)):
            return f"scripts/postgres stop: exit {result.returncode}, postmaster {self.pid}"
        return None

    def cpu(self) -> dict[str, float]:
        return {"postgres": tree_cpu_seconds(self.pid)} if self.pid else {}


def _alive(pid: int) -> bool:
    """Whether `pid` is still a running (not zombie) process."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def engine_versions() -> str:
    ceph = command_output(["radosgw", "--version"])
    postgres = command_output([str(POSTGRES_BIN / "postgres"), "--version"])
    return f"{ceph.split(' (')[0]}; {postgres}"
