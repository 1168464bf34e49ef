"""Running the reference `bindle` CLI (deislabs/bindle) against a live server."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ENV_VAR = "BINDLE_REFERENCE_CLIENTS"
# Read-only commands whose whole result is what they print.
_PRINTING = {("info",), ("search",), ("keys", "print")}
_PRINT_ATTEMPTS = 4  # further runs of a printing command, until two print the same
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
    global_args: list[str] = field(default_factory=list)
    # HOME and XDG directories of the client, so that it never reads or writes the
    # user's real configuration (default keyring, secret keys, token).
    home: Path | None = None
    _runs: int = 0

    def run(
        self, *args: str, check: bool = True, _retried: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run one command with a fresh cache directory, so nothing is answered from cache."""
        self._runs += 1
        cache = self.work_dir / f"cache-{self._runs}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BINDLE_")}
        home = self.home or self.work_dir / "home"
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / "config"),
            XDG_CACHE_HOME=str(home / "cache"),
        )
        command = [str(self.binary), "--server", self.server_url, "-d", str(cache)]
        result = subprocess.run(
            [*command, *self.global_args, *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=env,
            cwd=self.work_dir,
            check=False,
        )
        printing = args[:1] in _PRINTING or args[:2] in _PRINTING
        if check and result.returncode == 0 and printing and not _retried:
            # The reference CLI writes its output with tokio's stdout and exits without
            # flushing it; on a busy machine the process can end before all of the write
            # lands (seen: exit 0 with empty stdout, and with only the invoice's first
            # lines). The command only reads: run it again until two runs agree.
            for _ in range(_PRINT_ATTEMPTS):
                again = self.run(*args, check=check, _retried=True)
                if again.stdout and again.stdout == result.stdout:
                    return again
                result = again
            return result
        if check and result.returncode != 0:
            raise AssertionError(
                f"bindle {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result
