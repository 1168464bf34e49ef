"""Documents (invoices, labels, search pages) written to stdout as TOML or JSON."""

from __future__ import annotations

import json

import typer

from bindle_server.model import Format, dump_document


def print_document(document: dict[str, object], fmt: Format) -> None:
    if fmt is Format.JSON:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        typer.echo(dump_document(document, Format.TOML).decode(), nl=False)
