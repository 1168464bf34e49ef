"""Running the `bindle` CLI as a real process, with its own HOME, XDG directories and cache."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

TIMEOUT = 120


@dataclass
class BindleCli:
    """`python -m bindle_server.cli.client` against one server, from a work directory."""

    server_url: str
    work_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def cache(self) -> Path:
        return self.work_dir / "cache"

    @property
    def keyring(self) -> Path:
        return self.work_dir / "keyring.toml"

    def run(
        self, *args: str, check: bool = True, server: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run one command with the global flags -s, -d and -r; fail loudly unless `check`
        is off."""
        home = self.work_dir / "home"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BINDLE_")}
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / "config"),
            XDG_CACHE_HOME=str(home / "cache"),
            COLUMNS="200",
            **self.env,
        )
        command = [
            sys.executable,
            "-P",  # as the installed `bindle` script: the work directory is not on sys.path
            "-m",
            "bindle_server.cli.client",
            "-s",
            server or self.server_url,
            "-d",
            str(self.cache),
            "-r",
            str(self.keyring),
            *args,
        ]
        result = subprocess.run(
            command,
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
