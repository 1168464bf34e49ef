"""The invoice change mark on local disk: shared by every process on one data directory.

A worker keeps rendered invoices while the mark stays the same (service/rendered.py), so
a yank or purge made by any other process on the data directory, a sibling worker or
`bindle-server purge` run by hand, must change the mark this process reads.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bindle_server.storage.changes import ChangeMark
from bindle_server.storage.local import CHANGE_MARK, LocalStores

# Another process opens the same data directory and yanks (replaces) or removes "k1".
_OTHER_PROCESS = """
import asyncio, sys
from pathlib import Path
from bindle_server.storage.local import LocalStores

async def main(root, action):
    invoices = LocalStores(Path(root)).invoices
    if action == "replace":
        await invoices.replace("k1", b"yanked")
    else:
        await invoices.delete("k1")

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def _in_another_process(root: Path, action: str) -> None:
    command = [sys.executable, "-c", _OTHER_PROCESS, str(root), action]
    subprocess.run(command, check=True, timeout=60)


@pytest.mark.anyio
async def test_changes_made_by_another_process_change_the_mark_here(tmp_path: Path) -> None:
    invoices = LocalStores(tmp_path).invoices
    assert await invoices.create("k1", b"live")
    first = invoices.change_mark()
    assert first is not None
    assert invoices.change_mark() == first

    _in_another_process(tmp_path, "replace")
    replaced = invoices.change_mark()
    assert replaced != first
    assert await invoices.read("k1") == b"yanked"

    _in_another_process(tmp_path, "delete")
    assert invoices.change_mark() not in (first, replaced)
    assert await invoices.read("k1") is None


@pytest.mark.anyio
async def test_a_create_leaves_the_mark_alone(tmp_path: Path) -> None:
    # Only what was read can be cached, and a new invoice was not there to be read.
    invoices = LocalStores(tmp_path).invoices
    before = invoices.change_mark()
    assert await invoices.create("k2", b"new")
    assert invoices.change_mark() == before


def test_the_mark_is_kept_in_the_data_directory(tmp_path: Path) -> None:
    LocalStores(tmp_path)
    assert (tmp_path / CHANGE_MARK).stat().st_size == 8


def test_a_mark_that_cannot_be_mapped_is_none(tmp_path: Path) -> None:
    assert ChangeMark.open(tmp_path / "no-such-directory" / CHANGE_MARK) is None


def test_every_change_leaves_a_value_not_seen_before() -> None:
    mark = ChangeMark.in_process()
    seen = {mark.current()}
    for _ in range(1000):
        mark.changed()
        assert mark.current() not in seen
        seen.add(mark.current())
