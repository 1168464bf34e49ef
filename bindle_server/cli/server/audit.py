"""`bindle-server audit`: read the audit log; and the recording of the changes that the
local commands (purge, gc, token) make, with the operator's OS user as the actor."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from bindle_server.cli.server.options import STORE, settings_options
from bindle_server.config import Settings
from bindle_server.errors import BindleError
from bindle_server.events import CALLER, Action, Caller, Event, EventSink, NullSink, Recorder
from bindle_server.events.audit import AuditQuery, audit_entry, open_audit_reader
from bindle_server.events.audit import open_audit as _open_audit
from bindle_server.events.model import iso_time
from bindle_server.model.duration import parse_duration

# The settings of the audit log, besides where the store is (STORE), for the commands that
# change the store or the tokens.
AUDITED = ("audit_log", "audit_rotate_bytes")

_TIME_HELP = (
    "an ISO 8601 time (2026-01-31T12:00:00Z, 2026-01-31; UTC unless it names a zone) or a "
    "duration ago (30m, 1h, 7d)"
)


@settings_options(*STORE)
def audit(
    settings: Settings,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="TIME", help=f"Records at or after {_TIME_HELP}"),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="TIME", help=f"Records before {_TIME_HELP}")
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--actor",
            metavar="ACTOR",
            help="Records of this actor: user:NAME, token:NAME, an OIDC subject, anonymous, "
            "local:OSUSER, system; a value ending in ':' matches every actor it begins "
            "(user:)",
        ),
    ] = None,
    bindle: Annotated[
        str | None,
        typer.Option(
            "--bindle", metavar="PREFIX", help="Records of bindle ids starting with PREFIX"
        ),
    ] = None,
    actions: Annotated[
        list[str] | None,
        typer.Option(
            "--action",
            metavar="ACTION",
            help="Records of this action (repeatable): " + ", ".join(a.value for a in Action),
        ),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="table (one aligned line per record) or json (one JSON object per line, "
            "as the log keeps it)",
        ),
    ] = "table",
) -> None:
    """Print the audit log, oldest first: every change (invoices, parcels, yanks, purges,
    garbage collection, pending expiry, tokens) and every refused authentication, with
    its time, actor, client address, bindle, digest and result.

    Reads the files under DIRECTORY/audit/, or the `audit` table with --index
    postgresql://, so it takes the same backend options as `serve`.
    """
    if output not in ("table", "json"):
        raise typer.BadParameter("expected table or json", param_hint="--format")
    if settings.index is None and not settings.directory.is_dir():
        raise typer.BadParameter(f"{settings.directory} does not exist", param_hint="--directory")
    query = AuditQuery(
        since=_moment(since, "--since"),
        until=_moment(until, "--until"),
        actor=actor,
        bindle=bindle,
        actions=frozenset(_action(text) for text in actions or ()),
    )
    show = _json_line if output == "json" else _table_line

    async def run() -> int:
        reader = await open_audit_reader(settings.index, settings.directory)
        try:
            async for event in reader.entries(query):
                typer.echo(show(event))
            return reader.skipped
        finally:
            await reader.close()

    try:
        skipped = asyncio.run(run())
    except BindleError as exc:
        raise typer.BadParameter(exc.message) from None
    if skipped:
        typer.echo(f"skipped {skipped} unreadable line(s) in the audit log", err=True)


def _moment(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        return time.time() - parse_duration(text).total_seconds()
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"expected {_TIME_HELP}", param_hint=option) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _action(text: str) -> Action:
    try:
        return Action(text)
    except ValueError:
        choices = ", ".join(action.value for action in Action)
        raise typer.BadParameter(
            f"unknown action {text!r}: {choices}", param_hint="--action"
        ) from None


def _json_line(event: Event) -> str:
    return json.dumps(audit_entry(event), ensure_ascii=False, separators=(",", ":"))


def _table_line(event: Event) -> str:
    when = iso_time(event.time)[:19] + "Z"  # to the second: the JSON format has the rest
    detail = " ".join(f"{key}={value}" for key, value in event.detail.items())
    rest = " ".join(
        part for part in (event.bindle, event.digest[:12], event.result, detail) if part
    )
    return f"{when}  {event.actor:<20} {event.address or '-':<15} {event.action:<17} {rest}"


def local_caller() -> Caller:
    """The operator running a command on the server's machine: `local:<OS user>`."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):  # no user name for the uid (a bare container)
        name = str(os.getuid())
    return Caller(f"local:{name}")


async def open_audit(settings: Settings) -> EventSink:
    """The audit log the server of `settings` writes to (a NullSink with --no-audit-log)."""
    if not settings.audit_log:
        return NullSink()
    return await _open_audit(settings.index, settings.directory, settings.audit_rotate_bytes)


@asynccontextmanager
async def command_recorder(settings: Settings, directory: Path | None) -> AsyncIterator[Recorder]:
    """The recorder a maintenance command's changes go to, as a server's would: the audit
    log, then the journal (the event stream and webhooks) of the data `directory`, with
    the operator as the actor. The audit log first, as in the server: a change whose
    audit record fails is then neither streamed nor sent to webhooks."""
    from bindle_server.events.journal import JournalSink, open_journal

    CALLER.set(local_caller())
    recorder = Recorder()
    try:
        recorder.add(await open_audit(settings), required=True)
        recorder.add(JournalSink(await open_journal(settings.index, directory)), required=True)
        yield recorder
    finally:
        await recorder.close()


def audited(settings: Settings, action: Action, change: Callable[[], dict[str, Any]]) -> None:
    """Make a local change that has no service behind it (the token file) as the service
    makes its own: refused when its record cannot be written, then recorded with the
    detail `change` returns. Raises StorageUnavailable when the log cannot be written."""

    async def run() -> None:
        CALLER.set(local_caller())
        sink = await open_audit(settings)
        try:
            await sink.ready()
            detail = change()
            await sink.record(Event.now(action, **detail))
        finally:
            await sink.close()

    asyncio.run(run())
