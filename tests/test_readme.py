"""The README's first-run steps work as written, against a live server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.servers import ServerProcess

README = Path(__file__).parents[1] / "README.md"


def _shell_block_after(heading: str) -> list[str]:
    text = README.read_text()
    section = text[text.index(heading) :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, f"no sh block after {heading!r}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_development_registry_steps_run_as_written(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    lines = _shell_block_after("### Use 1: a development registry")
    assert lines[0].startswith("./scripts/serve &")  # the live server stands in for it
    script = [re.sub(r"http://127\.0\.0\.1:8080/v1", live_server.url, line) for line in lines[1:]]
    # The steps run from a checkout: its .venv (the one running these tests) and a site.
    (tmp_path / ".venv").symlink_to(sys.prefix)
    (tmp_path / "site" / "css").mkdir(parents=True)
    (tmp_path / "site" / "index.html").write_text("<h1>hello</h1>\n")
    (tmp_path / "site" / "css" / "main.css").write_text("h1 { color: teal }\n")
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    result = subprocess.run(
        ["bash", "-e", "-c", "\n".join(script)],
        cwd=tmp_path,
        env={**environment, **{k: v for k, v in os.environ.items() if k == "TMPDIR"}},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "example.com/site/0.1.0" in result.stdout
    copy = tmp_path / "site-copy"
    assert (copy / "index.html").read_text() == "<h1>hello</h1>\n"
    assert (copy / "css" / "main.css").read_text() == "h1 { color: teal }\n"
