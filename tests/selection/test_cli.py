"""`bindle pull --group/--feature` and `bindle get --archive` against a live server."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import httpx

from tests.client.cli import BindleCli
from tests.selection.conftest import publish_live
from tests.selection.invoices import multi_platform, spin_app
from tests.servers import ServerProcess


def _files(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file()
    }


def _tar_names(path: Path) -> list[str]:
    with tarfile.open(path, mode="r:") as archive:
        return archive.getnames()


def test_pull_with_group_writes_only_the_selection(
    live_server: ServerProcess, bindle_cli: BindleCli
) -> None:
    bindle = publish_live(live_server, multi_platform())
    bindle_cli.run("pull", bindle.bindle_id, "win", "--group", "windows-amd64", "--group", "docs")
    files = _files(bindle_cli.work_dir / "win")
    assert files == {
        name: bindle.part(name).data
        for name in ("README.md", "LICENSE", "bin/windows-amd64/tool.exe", "docs/manual.html")
    }


def test_pull_with_features_picks_the_matching_platform_and_its_requires_chain(
    live_server: ServerProcess, bindle_cli: BindleCli
) -> None:
    bindle = publish_live(live_server, multi_platform())
    bindle_cli.run(
        "pull",
        bindle.bindle_id,
        "arm",
        "--feature",
        "platform.os=linux",
        "--feature",
        "platform.arch=arm64",
    )
    assert sorted(_files(bindle_cli.work_dir / "arm")) == [
        "LICENSE",
        "README.md",
        "bin/linux-arm64/tool",
        "lib/libcrypto.so",
        "lib/libz.so",
    ]


def test_pull_of_unsatisfiable_selection_fails_naming_the_rule_and_writes_nothing(
    live_server: ServerProcess, bindle_cli: BindleCli
) -> None:
    bindle = publish_live(live_server, multi_platform())
    result = bindle_cli.run(
        "pull", bindle.bindle_id, "out", "--group", "linux-amd64", "--group", "windows-amd64",
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "unsatisfiable selection (oneOf)" in result.stderr.strip().splitlines()[-1]
    assert _files(bindle_cli.work_dir / "out") == {}


def test_pull_without_selection_still_writes_every_parcel(
    live_server: ServerProcess, bindle_cli: BindleCli
) -> None:
    bindle = publish_live(live_server, spin_app())
    bindle_cli.run("pull", bindle.bindle_id, "all")
    assert len(_files(bindle_cli.work_dir / "all")) == len(bindle.parts)


def test_get_archive_saves_the_verified_tar_and_never_overwrites(
    live_server: ServerProcess, bindle_cli: BindleCli
) -> None:
    bindle = publish_live(live_server, spin_app())
    result = bindle_cli.run("get", bindle.bindle_id, "--archive", "app.tar")
    assert "Wrote archive of spin-hello/1.0.0" in result.stdout
    target = bindle_cli.work_dir / "app.tar"
    assert _tar_names(target) == ["invoice.toml", *sorted(p.name or "" for p in bindle.parts)]
    assert not (bindle_cli.work_dir / "app.tar.part").exists()
    again = bindle_cli.run("get", bindle.bindle_id, "--archive", "app.tar", check=False)
    assert again.returncode == 1 and "not overwriting" in again.stderr


def test_get_archive_of_a_group_holds_only_the_selection(
    live_server: ServerProcess, bindle_cli: BindleCli
) -> None:
    bindle = publish_live(live_server, multi_platform())
    bindle_cli.run("get", bindle.bindle_id, "--archive", "win.tar", "--group", "windows-amd64")
    assert _tar_names(bindle_cli.work_dir / "win.tar") == [
        "invoice.toml",
        "LICENSE",
        "README.md",
        "bin/windows-amd64/tool.exe",
    ]


def test_get_archive_resumes_from_a_partial_file(
    live_server: ServerProcess, bindle_cli: BindleCli
) -> None:
    bindle = publish_live(live_server, multi_platform())
    whole = httpx.get(f"{live_server.url}/_r/archive/{bindle.bindle_id}")
    work = bindle_cli.work_dir
    (work / "tool.tar.part").write_bytes(whole.content[:3000])
    (work / "tool.tar.part.etag").write_text(whole.headers["etag"] + "\n")
    result = bindle_cli.run("get", bindle.bindle_id, "--archive", "tool.tar")
    assert "resumed after 3000 bytes" in result.stdout
    assert (work / "tool.tar").read_bytes() == whole.content
    assert not (work / "tool.tar.part.etag").exists()


def test_get_archive_with_a_stale_part_downloads_it_all_again(
    live_server: ServerProcess, bindle_cli: BindleCli
) -> None:
    bindle = publish_live(live_server, spin_app())
    whole = httpx.get(f"{live_server.url}/_r/archive/{bindle.bindle_id}").content
    work = bindle_cli.work_dir
    (work / "app.tar.part").write_bytes(b"x" * 5000)
    (work / "app.tar.part.etag").write_text('"an-old-archive"\n')
    result = bindle_cli.run("get", bindle.bindle_id, "--archive", "app.tar")
    assert "resumed" not in result.stdout
    assert (work / "app.tar").read_bytes() == whole


def test_get_archive_with_a_corrupt_part_fails_verification_and_drops_it(
    live_server: ServerProcess, bindle_cli: BindleCli
) -> None:
    bindle = publish_live(live_server, spin_app())
    whole = httpx.get(f"{live_server.url}/_r/archive/{bindle.bindle_id}")
    work = bindle_cli.work_dir
    # The right ETag but damaged bytes inside the first parcel (after invoice.toml).
    first = whole.content[:3000]
    with tarfile.open(fileobj=io.BytesIO(whole.content), mode="r:") as archive:
        member = archive.getmembers()[1]
    damaged = bytearray(first)
    damaged[member.offset_data] ^= 0xFF
    (work / "app.tar.part").write_bytes(bytes(damaged))
    (work / "app.tar.part.etag").write_text(whole.headers["etag"] + "\n")
    result = bindle_cli.run("get", bindle.bindle_id, "--archive", "app.tar", check=False)
    assert result.returncode == 1
    assert "DigestMismatch" in result.stderr.strip().splitlines()[-1]
    assert not (work / "app.tar").exists() and not (work / "app.tar.part").exists()


def test_get_group_without_archive_is_a_usage_error(bindle_cli: BindleCli) -> None:
    result = bindle_cli.run("get", "a/1.0.0", "--group", "x", check=False)
    assert result.returncode == 2 and "--archive" in result.stderr
