"""Standalone bindles on disk: found in every form `push -p` accepts, packed and unpacked
safely, partial ones included."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest

from bindle_server.client import (
    StandaloneBindle,
    StandaloneError,
    open_standalone,
    write_standalone,
    write_tarball,
)
from bindle_server.client.standalone import extract_tarball
from bindle_server.model import BindleId, parse_invoice
from tests.client.cli import BindleCli
from tests.client.standalones import pack, tar_members
from tests.client.standalones import write_standalone as write_by_hand
from tests.factories import make_invoice, parcel

A, B, C = parcel("alpha", name="a.txt"), parcel("beta", name="b.txt"), parcel("gamma")
DOC = make_invoice("example.com/standalone", "1.0.0", parcels=[A, B, C])
BID = BindleId.parse(DOC.bindle_id)


def test_a_partial_standalone_lists_present_absent_and_unlisted_files(tmp_path: Path) -> None:
    folder = write_by_hand(tmp_path, DOC, [A, C])
    (folder / "parcels" / "README").write_text("not a parcel")
    standalone = StandaloneBindle.read(folder)
    assert standalone.bindle_id == BID
    assert set(standalone.parcels) == {A.sha256, C.sha256}
    assert [label.sha256 for label in standalone.absent] == [B.sha256]
    assert [path.name for path in standalone.unlisted] == ["README"]
    assert folder.name == BID.key


@pytest.mark.parametrize("form", ["parent-with-dir", "dir", "parent-with-tarball", "tarball"])
def test_open_standalone_finds_every_form_the_reference_push_accepts(
    tmp_path: Path, form: str
) -> None:
    folder = write_by_hand(tmp_path / "dirs", DOC, [A, B])
    tarball = pack(folder, tmp_path / "tarballs")
    path = {
        "parent-with-dir": tmp_path / "dirs",
        "dir": folder,
        "parent-with-tarball": tmp_path / "tarballs",
        "tarball": tarball,
    }[form]
    with open_standalone(path, BID) as standalone:
        assert set(standalone.parcels) == {A.sha256, B.sha256}
        assert standalone.parcels[A.sha256].read_bytes() == A.data
        unpacked = standalone.root
    if form.endswith("tarball"):
        assert not unpacked.exists()  # the temporary unpacking is gone


def test_open_standalone_refuses_another_bindle_and_missing_ones(tmp_path: Path) -> None:
    write_by_hand(tmp_path, DOC, [])
    with pytest.raises(StandaloneError, match="expected"):
        open_standalone(tmp_path, BindleId.parse("example.com/other/1.0.0")).__enter__()
    folder = tmp_path / BID.key
    other = BindleId.parse("example.com/standalone/2.0.0")
    with pytest.raises(StandaloneError, match=re.escape("not of example.com/standalone/2.0.0")):
        open_standalone(folder, other).__enter__()
    (folder / "invoice.toml").write_text("not = [toml")
    with pytest.raises(StandaloneError, match=re.escape("invoice.toml")):
        StandaloneBindle.read(folder)


def test_written_tarball_has_one_top_level_directory_and_round_trips(tmp_path: Path) -> None:
    invoice = parse_invoice(DOC.toml())
    sources = write_by_hand(tmp_path / "src", DOC, [A, B]) / "parcels"
    files = {p.sha256: sources / f"{p.sha256}.dat" for p in (A, B)}
    tarball = write_tarball(tmp_path / "out", DOC.toml(), invoice, files)
    assert tarball.name == f"{BID.key}.tar.gz"
    assert tar_members(tarball) == [
        BID.key,
        f"{BID.key}/invoice.toml",
        f"{BID.key}/parcels",
        *sorted(f"{BID.key}/parcels/{p.sha256}.dat" for p in (A, B)),
    ]
    root = extract_tarball(tarball, tmp_path / "unpacked")
    assert (root / "invoice.toml").read_bytes() == DOC.toml()
    assert StandaloneBindle.read(root).parcels.keys() == files.keys()

    directory = write_standalone(tmp_path / "copy", DOC.toml(), invoice, files)
    written = sorted(p.name for p in (directory / "parcels").iterdir())
    assert written == sorted(f"{sha}.dat" for sha in files)
    assert [p.name for p in tmp_path.joinpath("out").iterdir()] == [tarball.name]


def _tarball_with(tmp_path: Path, *entries: tarfile.TarInfo) -> Path:
    tarball = tmp_path / "evil.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for entry in entries:
            data = b"x" * entry.size if entry.isfile() else None
            archive.addfile(entry, io.BytesIO(data) if data is not None else None)
    return tarball


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type = kind
    entry.linkname = link
    entry.size = 1 if kind == tarfile.REGTYPE else 0
    return entry


@pytest.mark.parametrize(
    "entries",
    [
        [_entry("top/invoice.toml"), _entry("top/../../escape")],
        [_entry("/etc/passwd")],
        [_entry("top/invoice.toml"), _entry("top/parcels/link", tarfile.SYMTYPE, "/etc/passwd")],
        [_entry("top/invoice.toml"), _entry("other/invoice.toml")],
        [_entry("top/fifo", tarfile.FIFOTYPE)],
    ],
    ids=["dotdot", "absolute", "symlink", "two-tops", "fifo"],
)
def test_unsafe_tarballs_are_refused(tmp_path: Path, entries: list[tarfile.TarInfo]) -> None:
    tarball = _tarball_with(tmp_path, *entries)
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(StandaloneError, match=r"refusing|more than one top-level"):
        extract_tarball(tarball, into)
    assert not (tmp_path / "escape").exists()


def test_package_packs_a_standalone_directory_for_the_reference_layout(
    bindle: BindleCli, work: Path
) -> None:
    write_by_hand(work / "standalone", DOC, [A, C])
    result = bindle.run("package", DOC.bindle_id, "-p", "standalone", "-e", "packed")
    tarball = work / "packed" / f"{BID.key}.tar.gz"
    assert str(tarball.relative_to(work)) in result.stdout
    names = tar_members(tarball)
    assert f"{BID.key}/parcels/{A.sha256}.dat" in names
    assert f"{BID.key}/parcels/{B.sha256}.dat" not in names  # partial stays partial
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(f"{BID.key}/invoice.toml")
        assert member is not None and member.read() == DOC.toml()

    wrong = bindle.run("package", "example.com/other/1.0.0", "-p", "standalone", check=False)
    assert wrong.returncode == 1 and "StandaloneError" in wrong.stderr
