"""`bindle-server mirror --from URL`: copy a set of bindles ahead of time, resumably."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.factories import make_invoice, parcel
from tests.mirror.conftest import kill_upstream, push, pushed
from tests.servers import ServerProcess, run_command, start_server


def test_mirror_copies_the_matching_bindles_which_are_then_served_without_the_upstream(
    upstream: ServerProcess, tmp_path: Path
) -> None:
    wanted, item = pushed(upstream, "example.com/cmd", "1.0.0")
    newer, _ = pushed(upstream, "example.com/cmd", "2.0.0")
    other, _ = pushed(upstream, "example.com/unrelated", "1.0.0")
    destination = tmp_path / "air-gapped"

    result = run_command(
        "mirror", "--from", upstream.url, "--q", "example.com/cmd", "--v", "^1",
        "--directory", str(destination), "--progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "parcels: 1 copied" in result.stdout
    assert "invoices: 1 copied, 0 already there" in result.stdout
    assert "mirroring" in result.stdout + result.stderr  # the progress bar
    kill_upstream(upstream)

    server = start_server(destination, tmp_path / "served.log")
    try:
        fetched = httpx.get(f"{server.url}/_i/{wanted.bindle_id}@{item.sha256}")
        assert fetched.status_code == 200
        assert fetched.content == item.data
        assert httpx.get(f"{server.url}/_i/{newer.bindle_id}").status_code == 404
        assert httpx.get(f"{server.url}/_i/{other.bindle_id}").status_code == 404
    finally:
        server.stop()


def test_mirror_resumes_skipping_what_is_stored_and_reports_what_failed(
    upstream: ServerProcess, tmp_path: Path
) -> None:
    first, second = parcel(b"first parcel\n" * 100), parcel(b"second parcel\n" * 100)
    doc = make_invoice("example.com/resumed", "1.0.0", [first, second])
    push(upstream, doc, [first])  # the second is not uploaded yet
    destination = tmp_path / "copy"
    arguments = ("mirror", "--from", upstream.url, "--directory", str(destination))

    interrupted = run_command(*arguments)
    assert interrupted.returncode == 1
    assert second.sha256 in interrupted.stderr
    assert "parcels: 1 copied" in interrupted.stdout
    assert "invoices: 1 copied" in interrupted.stdout

    push_second = httpx.post(
        f"{upstream.url}/_i/{doc.bindle_id}@{second.sha256}", content=second.data
    )
    assert push_second.status_code == 200
    resumed = run_command(*arguments)
    assert resumed.returncode == 0, resumed.stderr
    assert "parcels: 1 copied" in resumed.stdout
    assert "1 already there; invoices: 0 copied, 1 already there" in resumed.stdout
    assert (destination / "parcels" / second.sha256 / "parcel.dat").read_bytes() == second.data


def test_mirror_with_an_unreachable_upstream_fails_in_one_line(tmp_path: Path) -> None:
    result = run_command(
        "mirror", "--from", "http://127.0.0.1:9/v1", "--directory", str(tmp_path / "copy")
    )
    assert result.returncode != 0
    assert "127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr
