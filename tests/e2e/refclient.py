"""Running the reference `bindle` CLI (deislabs/bindle) against a live server."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ENV_VAR = "BINDLE_REFERENCE_CLIENTS"
TIMEOUT = 120


def reference_client(version: str) -> Path:
    """The reference CLI binary, or a skip saying how to provide it."""
    folder = os.environ.get(ENV_VAR)
    if not folder:
        pytest.skip(f"{ENV_VAR} is not set: point it at a folder with bindle-{version}")
    binary = Path(folder) / f"bindle-{version}"
    if not os.access(binary, os.X_OK):
        pytest.skip(f"no executable bindle-{version} in {ENV_VAR}={folder}")
    return binary


@dataclass
class ReferenceClient:
    binary: Path
    server_url: str
    work_dir: Path
    _runs: int = 0

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one command with a fresh cache directory, so nothing is answered from cache."""
        self._runs += 1
        cache = self.work_dir / f"cache-{self._runs}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BINDLE_")}
        result = subprocess.run(
            [str(self.binary), "--server", self.server_url, "-d", str(cache), *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=env,
            cwd=self.work_dir,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"bindle {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result
