"""durable.move_into_place: a no-clobber publish where exactly one of several writers wins."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bindle_server import durable


def _temp(directory: Path, content: bytes) -> Path:
    path = directory / f".tmp-{content.hex()}"
    path.write_bytes(content)
    return path


@pytest.fixture(params=["rename", "link"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of publishing: renameat2 where the platform has it, and the link fallback."""
    if request.param == "rename":
        if durable._renameat2 is None:
            pytest.skip("no renameat2 here")
    else:
        monkeypatch.setattr(durable, "_renameat2", None)
    return str(request.param)


def test_a_new_name_is_taken_and_an_existing_one_is_left_alone(tmp_path: Path, way: str) -> None:
    target = tmp_path / "invoice.toml"
    first = _temp(tmp_path, b"first")
    assert durable.move_into_place(first, target, replace=False) is True
    assert target.read_bytes() == b"first"
    # A rename leaves no temp name behind; a link leaves it for the caller to remove.
    assert first.exists() is (way == "link")

    second = _temp(tmp_path, b"second")
    assert durable.move_into_place(second, target, replace=False) is False
    assert target.read_bytes() == b"first"
    assert second.read_bytes() == b"second"


def test_of_concurrent_writers_exactly_one_wins(tmp_path: Path, way: str) -> None:
    target = tmp_path / "parcel.dat"
    temps = [_temp(tmp_path, bytes([n]) * 100) for n in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        won = list(
            pool.map(lambda temp: durable.move_into_place(temp, target, replace=False), temps)
        )
    assert won.count(True) == 1
    assert target.read_bytes() == bytes([won.index(True)]) * 100


def test_replace_swaps_the_content(tmp_path: Path) -> None:
    target = tmp_path / "invoice.toml"
    target.write_bytes(b"live")
    assert durable.move_into_place(_temp(tmp_path, b"yanked"), target, replace=True) is True
    assert target.read_bytes() == b"yanked"


@pytest.mark.skipif(sys.platform != "linux", reason="renameat2 is Linux's")
def test_linux_publishes_by_renameat2() -> None:
    assert durable._renameat2 is not None
