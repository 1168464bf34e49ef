"""The sync client's whole-bindle helpers run their async implementations to completion;
they must work where an event loop is running already (a Jupyter cell, async code)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from bindle_server.client import BindleClient, BindleDirectory, export_standalone
from bindle_server.client.concurrency import run_to_completion
from tests.servers import ServerProcess


def test_whole_bindle_helpers_work_inside_a_running_event_loop(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    (tree / "docs").mkdir(parents=True)
    (tree / "app.wasm").write_bytes(b"\x00asm\x01\x00\x00\x00")
    (tree / "docs" / "README.md").write_text("# hello\n")

    async def notebook_cell() -> list[str]:
        # Called from a coroutine, as in a notebook: asyncio.run would refuse here.
        asyncio.get_running_loop()
        with BindleClient(live_server.url) as client:
            pushed = client.push_directory(tree, "example.com/loop", "1.0.0", concurrency=2)
            fetched = client.get_bindle(pushed.bindle_id, BindleDirectory(tmp_path / "cache"))
            pulled = client.pull_bindle(pushed.bindle_id, tmp_path / "pulled")
            tarball = export_standalone(fetched, tmp_path / "export")
            again = client.push_standalone(tarball)
        return [
            f"{len(pushed.uploaded)} uploaded",
            f"{len(fetched.downloaded)} fetched",
            f"{len(pulled.downloaded)} pulled",
            f"created again: {again.created}, {len(again.already_stored)} stored",
        ]

    assert asyncio.run(notebook_cell()) == [
        "2 uploaded",
        "2 fetched",
        "2 pulled",
        "created again: False, 2 stored",
    ]
    assert (tmp_path / "pulled" / "docs" / "README.md").read_text() == "# hello\n"


def test_run_to_completion_uses_the_callers_thread_when_no_loop_runs() -> None:
    async def where() -> str:
        return threading.current_thread().name

    assert run_to_completion(where) == threading.current_thread().name

    async def nested() -> str:
        return run_to_completion(where)

    assert asyncio.run(nested()).startswith("bindle-client")
