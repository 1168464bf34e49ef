"""`bindle-server purge` and `bindle-server gc`: remove bindles and unreferenced parcels.

Both work on the same backend as `serve` (the same options) and are safe while servers
serve it: they go through the same index transactions as the servers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import typer

from bindle_server.cli.server.audit import AUDITED, command_recorder
from bindle_server.cli.server.maintenance import existing_store
from bindle_server.cli.server.options import (
    STORE,
    ProgressOption,
    settings_options,
    show_progress,
)
from bindle_server.config import Settings
from bindle_server.errors import BindleError, InvalidBindleId, InvoiceNotFound
from bindle_server.model import BindleId
from bindle_server.service import BindleService

T = TypeVar("T")
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Report what would be removed; change nothing")
]


@asynccontextmanager
async def _service(settings: Settings) -> AsyncIterator[BindleService]:
    from bindle_server.backend import open_backend

    async with (
        open_backend(settings.storage_url, settings.index) as backend,
        # Audited and journaled as a server's changes are, with the operator as the actor.
        command_recorder(settings, backend.directory) as recorder,
    ):
        service = BindleService(backend.stores, backend.index, None, events=recorder)
        await service.recover()
        yield service


def _bindle_ids(texts: list[str]) -> list[BindleId]:
    try:
        return [BindleId.parse(text) for text in texts]
    except InvalidBindleId as exc:
        raise typer.BadParameter(exc.message, param_hint="ID") from None


@settings_options(*STORE, *AUDITED)
def purge(
    settings: Settings,
    ids: Annotated[list[str], typer.Argument(help="Bindle ids (NAME/VERSION) to purge")],
    dry_run: DryRunOption = False,
    forget: Annotated[
        bool,
        typer.Option(
            "--forget",
            help="Lift the tombstones of purged ids instead, so they may be pushed again "
            "with any content (caches that saw the old content may then disagree)",
        ),
    ] = False,
) -> None:
    """Remove bindles for good: their invoices answer 404 and leave `_q`.

    A tombstone stays, so an id never comes back with other content (a push of other
    content answers 409); the purged invoices' parcels are removed by the next `gc` unless
    other invoices list them. Safe while servers serve the same storage. Exits 1 when an
    id was not found.
    """
    existing_store(settings)
    bindle_ids = _bindle_ids(ids)

    async def run() -> int:
        failures = 0
        async with _service(settings) as service:
            for bindle_id in bindle_ids:
                failures += not await _purge_one(service, bindle_id, dry_run, forget)
        return failures

    raise typer.Exit(1 if _run(run) else 0)


async def _purge_one(
    service: BindleService, bindle_id: BindleId, dry_run: bool, forget: bool
) -> bool:
    if forget:
        if dry_run:
            typer.echo(f"would forget the purge of {bindle_id}")
            return True
        if await service.forget(bindle_id):
            typer.echo(f"forgot the purge of {bindle_id}: the id may be pushed again")
            return True
        typer.echo(f"{bindle_id} has no tombstone", err=True)
        return False
    try:
        if dry_run:
            await service.get_invoice(bindle_id, allow_yanked=True)
            typer.echo(f"would purge {bindle_id}")
        else:
            await service.purge(bindle_id, reason="purged by bindle-server purge")
            typer.echo(f"purged {bindle_id}")
    except InvoiceNotFound as exc:
        typer.echo(exc.message, err=True)
        return False
    except BindleError as exc:  # a pending invoice can be purged, not read: say why
        if dry_run:
            typer.echo(f"would purge {bindle_id} ({exc.message})")
            return True
        raise
    return True


@settings_options("retention", "pending_ttl", "gc_grace", *STORE, *AUDITED)
def gc(
    settings: Settings,
    dry_run: DryRunOption = False,
    output: Annotated[
        str, typer.Option("--format", help="Report as a table or as JSON: table or json")
    ] = "table",
    progress: ProgressOption = None,
    nice: Annotated[
        int,
        typer.Option(
            "--nice",
            min=0,
            max=19,
            help="Run at this lower CPU priority (nice(2)), so that servers on the same host "
            "stay responsive; 0 keeps the normal priority",
        ),
    ] = 10,
) -> None:
    """Collect garbage: apply the retention policy (as purges), expire pending invoices,
    then remove parcels that no invoice lists.

    Online and safe: pushes, downloads and queries go on, on every node; parcels stored
    within the grace period are never removed, and a run killed at any point leaves a
    consistent store that the next run finishes. Reports bindles and parcels removed,
    bytes freed and the time taken; --dry-run reports the same and changes nothing.
    """
    from rich.console import Console

    from bindle_server.api.app import collector_settings
    from bindle_server.lifecycle.collector import collect

    if output not in ("table", "json"):
        raise typer.BadParameter("expected table or json", param_hint="--format")
    existing_store(settings)
    try:
        gc_settings = collector_settings(settings)
    except BindleError as exc:
        raise typer.BadParameter(exc.message, param_hint="--retention") from None
    show = show_progress(progress)
    if nice:
        os.nice(nice)

    async def run() -> None:
        # A one-line progress display on standard error, when shown.
        status = Console(stderr=True).status("collecting garbage") if show else None

        def progress(phase: str, done: int) -> None:
            if status is not None:
                status.update(f"collecting garbage: {done} {phase} checked")

        async with _service(settings) as service:
            with status if status is not None else contextlib.nullcontext():
                report = await collect(service, gc_settings, dry_run=dry_run, progress=progress)
        if output == "json":
            typer.echo(report.to_json())
        else:
            for line in report.table():
                typer.echo(line)

    _run(run)


def _run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's async work; the domain's and the backend's failures become one line."""
    try:
        return asyncio.run(work())
    except BindleError as exc:
        raise typer.BadParameter(exc.message) from None
