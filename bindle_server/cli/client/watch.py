"""`bindle watch`: follow a bindle name and act on each new version as it lands."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from bindle_server.cli.client.session import Session, current_session
from bindle_server.client import ClientConfig
from bindle_server.client.watch import Watcher
from bindle_server.model import Invoice

# How long a command that is being replaced may take to exit after SIGTERM.
STOP_TIMEOUT = 10.0


class Deployment:
    """What the watch does with each newest version: print its id, pull it, run CMD.

    A CMD still running from the previous version is stopped first (SIGTERM, then
    SIGKILL after STOP_TIMEOUT): a server started by CMD is replaced by the new one.
    """

    def __init__(self, session: Session, command: list[str], pull: Path | None) -> None:
        self.session = session
        self.command = command
        self.pull = pull
        self.process: subprocess.Popen[bytes] | None = None

    def __call__(self, invoice: Invoice | None) -> None:
        if invoice is None:
            self.stop()
            self.session.stderr.print("no matching version is left; waiting for one")
            return
        bindle_id = str(invoice.bindle_id)
        workdir = None
        if self.pull is not None:
            workdir = self.pull / invoice.bindle.version
            workdir.mkdir(parents=True, exist_ok=True)
            with self.session.client() as client:
                client.pull_bindle(bindle_id, workdir, check=self.session.check)
        typer.echo(bindle_id)
        if not self.command:
            return
        self.stop()
        environment: dict[str, str] = os.environ | {
            "BINDLE_ID": bindle_id,
            "BINDLE_NAME": invoice.bindle.name,
            "BINDLE_VERSION": invoice.bindle.version,
        }
        if workdir is not None:
            environment["BINDLE_PULL_DIR"] = str(workdir.resolve())
        self.process = subprocess.Popen([*self.command, bindle_id], cwd=workdir, env=environment)

    def stop(self) -> None:
        """Stop the command started for the previous version, if it still runs."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)


def watch(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The bindle name, e.g. example.com/app")
    ],
    version_range: Annotated[
        str,
        typer.Option(
            "-r",
            "--range",
            metavar="RANGE",
            help="SemVer range the version must match, as `search -b` takes it "
            "(e.g. ^1.2, >=1.0.0 <2, 1.x)",
        ),
    ] = "*",
    pull: Annotated[
        Path | None,
        typer.Option(
            "--pull",
            metavar="DIR",
            help="Pull each version's parcels into DIR/VERSION/ before running CMD "
            "(CMD then runs in that directory)",
        ),
    ] = None,
    command: Annotated[
        str | None,
        typer.Option(
            "--exec",
            metavar="CMD",
            help="Run CMD (split like a shell line, not run by a shell) with the bindle id "
            "as its last argument and in $BINDLE_ID (also $BINDLE_NAME, $BINDLE_VERSION, "
            "$BINDLE_PULL_DIR); a CMD still running for the previous version is stopped first",
        ),
    ] = None,
) -> None:
    """Act each time a newer, complete, non-yanked version of NAME matching RANGE lands.

    On start it acts on the newest existing match. Each action prints the bindle id on a
    line of its own; with --pull it first writes the parcels into DIR/VERSION/, with
    --exec it then runs CMD. If the version acted on is yanked, it acts on the newest
    remaining match (a rollback). Follows the server's event stream (/v1/_events) and
    reconnects after network errors without missing events. Runs until interrupted.
    """
    session = current_session(ctx)
    argv = shlex.split(command) if command else []
    if command is not None and not argv:
        raise typer.BadParameter("CMD is empty", param_hint="--exec")
    deployment = Deployment(session, argv, pull)
    config = ClientConfig.of(session.server, auth=session.auth, insecure=session.insecure)
    watcher = Watcher(
        config,
        name,
        version_range,
        deployment,
        report=lambda line: session.stderr.print(line, markup=False, highlight=False),
    )
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        watcher.run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        deployment.stop()


def _exit_on_sigterm(number: int, frame: FrameType | None) -> None:
    """SIGTERM ends the watch as Ctrl-C does: the running CMD is stopped first."""
    sys.exit(128 + number)
