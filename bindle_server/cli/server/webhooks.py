"""`bindle-server webhooks`: recent webhook deliveries and failures, from the outbox."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated

import typer

from bindle_server.cli.server.maintenance import existing_store
from bindle_server.cli.server.options import STORE, settings_options
from bindle_server.config import Settings
from bindle_server.events.model import iso_time

if TYPE_CHECKING:
    from bindle_server.events.outbox import Delivery


@settings_options(*STORE)
def webhooks(
    settings: Settings,
    failures: Annotated[
        bool,
        typer.Option(
            "--failures",
            help="Only deliveries given up on, or whose last attempt failed (and that are "
            "waiting for their next one)",
        ),
    ] = False,
    limit: Annotated[
        int,
        typer.Option("--limit", min=1, metavar="N", help="Show at most this many, newest first"),
    ] = 50,
    output: Annotated[
        str,
        typer.Option("--format", metavar="FORMAT", help="A table, or a JSON array: table or json"),
    ] = "table",
) -> None:
    """List recent webhook deliveries, newest first: the event, the webhook, its state
    (pending, delivered, failed), the attempts so far and the last answer or error.

    Reads the outbox that servers of the same storage share (the data directory's
    events.sqlite3, or PostgreSQL with --index); safe while they serve.
    """
    if output not in ("table", "json"):
        raise typer.BadParameter("expected table or json", param_hint="--format")
    existing_store(settings)
    deliveries = asyncio.run(_recent(settings, limit, failures))
    if output == "json":
        typer.echo(json.dumps([item.as_dict() for item in deliveries], indent=2))
        return
    if not deliveries:
        typer.echo("no webhook deliveries" + (" failed" if failures else ""))
        return
    rows = [("TIME", "WEBHOOK", "EVENT", "STATE", "ATTEMPTS", "LAST ANSWER")]
    rows.extend(_row(item) for item in deliveries)
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1]]).rstrip())


def _row(item: Delivery) -> tuple[str, str, str, str, str, str]:
    answer = item.error or (f"HTTP {item.status}" if item.status is not None else "")
    state = item.state.value
    if state == "pending" and item.attempts:
        state = f"pending (next {iso_time(item.next_attempt)})"
    return (
        iso_time(item.updated),
        item.webhook,
        f"{item.action} {item.bindle}",
        state,
        str(item.attempts),
        answer,
    )


async def _recent(settings: Settings, limit: int, failures: bool) -> list[Delivery]:
    from bindle_server.backend import open_backend
    from bindle_server.events.journal import open_journal
    from bindle_server.events.outbox import open_outbox

    async with open_backend(settings.storage_url, settings.index, start_stores=False) as backend:
        journal = await open_journal(settings.index, backend.directory)
        try:
            outbox = await open_outbox(journal)
            try:
                return await outbox.recent(limit, failures)
            finally:
                await outbox.close()
        finally:
            await journal.close()
