"""push-dir's invoice: one parcel per file, relative names, guessed types, groups by folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bindle_server.client import InvalidInput, guess_media_type, invoice_from_directory
from bindle_server.client.tree import ALSO_NAMED, parcel_names
from tests.factories import parcel


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "web" / "css").mkdir(parents=True)
    (root / "lib").mkdir()
    (root / "app.wasm").write_bytes(b"\x00asm")
    (root / "web" / "index.html").write_text("<h1>")
    (root / "web" / "css" / "site.css").write_text("h1 {}")
    (root / "lib" / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "web" / "empty.txt").write_text("")
    return root


def test_every_file_is_a_parcel_named_by_its_relative_path(tree: Path) -> None:
    built = invoice_from_directory(tree, "example.com/tree", "1.0.0")
    labels = {label.name or "": label for label in built.invoice.labels}
    assert sorted(labels) == ["__init__.py", "app.wasm", "web/css/site.css", "web/index.html"]
    assert labels["app.wasm"].media_type == "application/wasm"
    assert labels["web/css/site.css"].media_type == "text/css"
    assert labels["app.wasm"].sha256 == parcel(b"\x00asm").sha256
    empty = labels["__init__.py"]
    assert json.loads((empty.annotations or {})[ALSO_NAMED]) == ["lib/__init__.py", "web/empty.txt"]
    assert parcel_names(empty) == ["__init__.py", "lib/__init__.py", "web/empty.txt"]
    assert built.files[empty.sha256] == tree.resolve() / "__init__.py"
    assert built.invoice.group is None


def test_groups_follow_top_level_folders_and_shared_files_stay_global(tree: Path) -> None:
    built = invoice_from_directory(tree, "example.com/tree", "1.0.0", groups=True)
    assert [group.name for group in built.invoice.groups] == ["lib", "web"]
    member_of = {
        parcel.label.name: parcel.conditions.member_of if parcel.conditions else None
        for parcel in built.invoice.parcels
    }
    assert member_of == {
        "__init__.py": None,  # also at the top: fetched whatever groups are chosen
        "app.wasm": None,
        "web/css/site.css": ["web"],
        "web/index.html": ["web"],
    }


def test_symlinks_inside_are_read_and_symlinks_outside_refused(tree: Path, tmp_path: Path) -> None:
    (tree / "alias.wasm").symlink_to(tree / "app.wasm")
    (tree / "linked-dir").symlink_to(tree / "web", target_is_directory=True)
    built = invoice_from_directory(tree, "example.com/tree", "1.0.0")
    wasm = next(label for label in built.invoice.labels if label.name == "alias.wasm")
    assert parcel_names(wasm) == ["alias.wasm", "app.wasm"]
    names = [name for label in built.invoice.labels for name in parcel_names(label)]
    assert not any(name.startswith("linked-dir") for name in names)

    secret = tmp_path / "secret.txt"
    secret.write_text("not for publishing")
    (tree / "leak.txt").symlink_to(secret)
    with pytest.raises(InvalidInput, match="outside"):
        invoice_from_directory(tree, "example.com/tree", "1.0.0")


def test_bad_names_and_versions_are_refused_before_anything_is_sent(tree: Path) -> None:
    with pytest.raises(InvalidInput, match="version"):
        invoice_from_directory(tree, "example.com/tree", "v1")
    with pytest.raises(InvalidInput, match="name"):
        invoice_from_directory(tree, "../escape", "1.0.0")
    with pytest.raises(InvalidInput, match="not a directory"):
        invoice_from_directory(tree / "app.wasm", "example.com/tree", "1.0.0")


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("spin.toml", "application/toml"),
        ("dist/app.tar.gz", "application/gzip"),
        ("README.md", "text/markdown"),
        ("photo.JPG", "image/jpeg"),
        ("no-extension", "application/octet-stream"),
    ],
)
def test_media_types_are_guessed_from_names(name: str, media_type: str) -> None:
    assert guess_media_type(name) == media_type
