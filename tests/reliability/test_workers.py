"""`--workers N`: workers forked from the server process, replaced when they die, and
stopped with it, through a live server."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.factories import make_invoice
from tests.servers import ServerProcess, run_command

DEADLINE = 30.0


def _workers(server: ServerProcess) -> list[int]:
    """The server's child processes, by a scan of /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:  # ended while we looked
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if int(fields.get("PPid", "0").strip()) == server.pid:
            children.append(int(entry.name))
    return sorted(children)


def _memory_kib(pid: int) -> tuple[int, int]:
    """(Rss, Pss) of a process: Pss splits each shared page among its sharers."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("Rss", "Pss"):
            fields[name] = int(value.split()[0])
    return fields["Rss"], fields["Pss"]


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _answers(server: ServerProcess) -> bool:
    try:
        return httpx.get(f"{server.base_url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_workers_are_forked_from_the_server_and_share_its_imported_code(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(None, "--workers", "2")
    _wait_for(lambda: len(_workers(server)) == 2, "two workers")
    command = Path(f"/proc/{server.pid}/cmdline").read_bytes()
    for pid in _workers(server):
        # A forked worker runs the server's own command line; a spawned one runs
        # `python -c "from multiprocessing.spawn import spawn_main ..."`.
        assert Path(f"/proc/{pid}/cmdline").read_bytes() == command
    # Serve a little first, so that the workers' own allocations count too.
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for index in range(20):
            name = f"example.com/forked{index}"
            assert client.post("/_i", content=make_invoice(name).toml()).status_code == 201
            assert client.get(f"/_i/{name}/1.0.0").status_code == 200
    pids = [server.pid, *_workers(server)]
    rss, pss = (sum(values) for values in zip(*map(_memory_kib, pids), strict=True))
    # The imported code is resident once, shared by the three processes; processes that
    # each imported it themselves would share almost nothing (Pss close to Rss).
    assert pss < 0.7 * rss, (pss, rss)


def test_a_worker_that_dies_is_replaced_and_the_server_keeps_serving(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(None, "--workers", "2")
    _wait_for(lambda: len(_workers(server)) == 2, "two workers")
    victim, survivor = _workers(server)
    os.kill(victim, signal.SIGKILL)
    _wait_for(
        lambda: len(_workers(server)) == 2 and victim not in _workers(server),
        "a replacement worker",
    )
    assert survivor in _workers(server)
    _wait_for(lambda: f"worker process {victim} exited unexpectedly" in server.log(), "log")
    for _ in range(10):  # both workers answer, whichever takes the connection
        assert _answers(server)


def test_stopping_the_server_stops_every_worker_gracefully(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = server_factory(None, "--workers", "2")
    _wait_for(lambda: len(_workers(server)) == 2, "two workers")
    workers = _workers(server)
    server.stop(signal.SIGTERM)
    assert server.process.returncode == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived the server"
    assert server.log().count("Application shutdown complete") == 2


def test_by_default_the_server_runs_one_worker_per_usable_cpu(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(None)
    cpus = len(os.sched_getaffinity(0))
    expected = cpus if cpus > 1 else 0  # one worker is the server process itself
    _wait_for(lambda: len(_workers(server)) == expected, f"{expected} workers")
    assert _answers(server)


def test_an_index_in_process_memory_refuses_several_workers(tmp_path: Path) -> None:
    result = run_command("--storage", "memory://", "--workers", "2", "--directory", str(tmp_path))
    assert result.returncode != 0
    assert "memory:// storage without --index postgresql:// keeps its index in each process" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr + result.stdout


def test_killing_the_server_kills_its_workers_too(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(None, "--workers", "2")
    _wait_for(lambda: len(_workers(server)) == 2, "two workers")
    workers = _workers(server)
    server.kill()
    # Workers left behind would go on answering on the dead server's port.
    _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), "workers")
    assert not _answers(server)
