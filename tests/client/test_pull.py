"""`pull` writes parcels by name into a directory, and refuses names that escape it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bindle_server.client import BindleClient
from tests.client.cli import BindleCli
from tests.factories import ParcelData, make_invoice, parcel
from tests.servers import ServerProcess


def _publish(server: ServerProcess, version: str, parcels: list[ParcelData]) -> str:
    doc = make_invoice("example.com/pull", version, parcels=parcels)
    with BindleClient(server.url) as client:
        client.create_invoice(doc.toml())
        for p in parcels:
            client.upload_parcel(doc.bindle_id, p.sha256, p.data)
    return doc.bindle_id


@pytest.mark.parametrize(
    "names",
    [
        ["../escape.txt"],
        ["/tmp/absolute.txt"],
        ["inside/../../escape.txt"],
        ["link/escape.txt"],
        ["back\\slash.txt"],
        ["same.txt", "same.txt"],
        ["a", "a/b"],
    ],
    ids=[
        "dotdot",
        "absolute",
        "nested-dotdot",
        "through-symlink",
        "backslash",
        "clash",
        "file-dir",
    ],
)
def test_pull_refuses_names_that_escape_the_directory_and_writes_nothing(
    live_server: ServerProcess, bindle: BindleCli, work: Path, tmp_path: Path, names: list[str]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = work / "target"
    target.mkdir()
    (target / "link").symlink_to(outside)
    parcels = [parcel("safe", name="safe.txt")]
    parcels += [parcel(f"payload {index}", name=name) for index, name in enumerate(names)]
    bindle_id = _publish(live_server, f"1.0.{len(names)}", parcels)

    result = bindle.run("pull", bindle_id, "target", check=False)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("UnsafeParcelName: refusing to pull")
    assert repr(names[-1]) in last
    assert sorted(p.name for p in target.iterdir()) == ["link"]  # not even safe.txt
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists() and not (work / "escape.txt").exists()


def test_pull_writes_every_name_and_resumes_without_downloading_again(
    live_server: ServerProcess, bindle: BindleCli, work: Path
) -> None:
    tree = work / "tree"
    (tree / "static" / "css").mkdir(parents=True)
    (tree / "pkg").mkdir()
    (tree / "index.html").write_text("<h1>hi</h1>")
    (tree / "static" / "css" / "site.css").write_text("h1 { color: red }")
    (tree / "pkg" / "__init__.py").write_text("")
    (tree / "__init__.py").write_text("")  # same bytes: one parcel, two names
    bindle.run("push-dir", "tree", "--name", "example.com/site", "--version", "1.0.0")

    bindle.run("pull", "example.com/site/1.0.0", "copy")
    copied = sorted(str(p.relative_to(work / "copy")) for p in (work / "copy").rglob("*"))
    original = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    assert copied == original
    for path in tree.rglob("*"):
        if path.is_file():
            assert (work / "copy" / path.relative_to(tree)).read_bytes() == path.read_bytes()

    (work / "copy" / "index.html").write_text("damaged")
    again = bindle.run("pull", "example.com/site/1.0.0", "copy")
    assert "1 parcel(s) downloaded, 2 already there" in again.stdout
    assert (work / "copy" / "index.html").read_text() == "<h1>hi</h1>"
