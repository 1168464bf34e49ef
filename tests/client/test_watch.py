"""`bindle watch` as a real process against live servers: pushes, a yank, a restart."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.client.cli import BindleCli
from tests.factories import make_invoice, parcel
from tests.servers import ServerProcess, start_server

WAIT = 30.0  # a generous bound on every wait; no test relies on how long anything takes
NAME = "example.com/app"
TOML = {"Content-Type": "application/toml"}

# What --exec runs: it records its argument, $BINDLE_ID and the files of its directory.
RECORDER = """
import os, sys
record, bindle_id = sys.argv[1], sys.argv[2]
files = ",".join(sorted(os.listdir(".")))
with open(record, "a") as out:
    out.write(f"{bindle_id} {os.environ['BINDLE_ID']} {files}\\n")
"""


@contextmanager
def watching(url: str, work: Path, *args: str) -> Iterator[tuple[Path, Path]]:
    """`bindle watch NAME ARGS` running; yields its stdout and stderr files."""
    home = work / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BINDLE_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), PYTHONUNBUFFERED="1")
    stdout, stderr = work / "watch.out", work / "watch.err"
    command = [sys.executable, "-P", "-m", "bindle_server.cli.client", "-s", url, "watch", NAME]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen([*command, *args], stdout=out, stderr=err, env=env, cwd=work)
    try:
        yield stdout, stderr
    finally:
        process.terminate()
        try:
            process.wait(WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(WAIT)


def wait_for_lines(path: Path, expected: list[str]) -> None:
    """Poll `path` until it holds exactly `expected`, or fail once WAIT has passed."""
    deadline = time.monotonic() + WAIT
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if lines == expected or len(lines) > len(expected):
            break
        time.sleep(0.05)
    assert lines == expected


def push(url: str, version: str, *, upload: bool = True) -> str:
    """Push NAME/version with one parcel, `app.txt` (left for later unless `upload`)."""
    item = parcel(f"app {version}", name="app.txt", media_type="text/plain")
    doc = make_invoice(NAME, version, parcels=[item])
    answer = httpx.post(f"{url}/_i", content=doc.toml(), headers=TOML)
    assert answer.status_code == 202, answer.text
    if upload:
        upload_parcel(url, doc.bindle_id, item.data)
    return doc.bindle_id


def upload_parcel(url: str, bindle_id: str, data: bytes) -> None:
    sha = parcel(data).sha256
    assert httpx.post(f"{url}/_i/{bindle_id}@{sha}", content=data).status_code == 200


def test_watch_pulls_and_runs_each_newer_complete_version_and_rolls_back_a_yank(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    url = live_server.url
    record = tmp_path / "record.txt"
    command = shlex.join([sys.executable, "-c", RECORDER, str(record)])
    pulled = tmp_path / "pulled"
    first = push(url, "1.0.0")

    def ran(*bindle_ids: str) -> list[str]:
        return [f"{bindle_id} {bindle_id} app.txt" for bindle_id in bindle_ids]

    with watching(url, tmp_path, "--range", "^1", "--pull", str(pulled), "--exec", command) as (
        stdout,
        _,
    ):
        wait_for_lines(record, ran(first))  # the newest existing match, at start
        second = push(url, "1.1.0")
        wait_for_lines(record, ran(first, second))
        push(url, "2.0.0")  # outside the range
        pending_id = push(url, "1.2.0", upload=False)  # not complete yet: passed over
        third = push(url, "1.1.5")
        wait_for_lines(record, ran(first, second, third))
        upload_parcel(url, pending_id, b"app 1.2.0")  # now it is complete
        wait_for_lines(record, ran(first, second, third, pending_id))
        assert httpx.delete(f"{url}/_i/{pending_id}").status_code == 200
        wait_for_lines(record, ran(first, second, third, pending_id, third))  # rollback
        assert stdout.read_text().splitlines() == [first, second, third, pending_id, third]
    assert (pulled / "1.1.5" / "app.txt").read_text() == "app 1.1.5"
    assert not (pulled / "2.0.0").exists()


def test_watch_resumes_from_its_last_event_after_the_server_restarts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    servers: list[ServerProcess] = []

    def start(log: str, port: int | None = None) -> ServerProcess:
        servers.append(start_server(data, tmp_path / log, port=port))
        return servers[-1]

    try:
        server = start("first.log")
        first = push(server.url, "1.0.0")
        with watching(server.url, tmp_path) as (stdout, stderr):
            wait_for_lines(stdout, [first])
            server.stop()
            # Meanwhile, the registry moves on elsewhere (here: the same data, another
            # port): a watch that reconnected without Last-Event-ID would miss this push.
            elsewhere = start("elsewhere.log")
            second = push(elsewhere.url, "1.1.0")
            elsewhere.stop()
            start("restarted.log", port=server.port)
            wait_for_lines(stdout, [first, second])
            assert "reconnecting" in stderr.read_text()
    finally:
        for process in servers:
            process.stop()


def test_watch_explains_itself_and_refuses_a_bad_range(bindle: BindleCli) -> None:
    shown = bindle.run("watch", "--help").stdout
    for option in ("--range", "--pull", "--exec", "BINDLE_ID", "rollback"):
        assert option in shown
    refused = bindle.run("watch", NAME, "--range", "not a range", check=False)
    assert refused.returncode == 1
    assert "invalid version filter" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
