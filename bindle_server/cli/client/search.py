"""`bindle search`: query the server's bindles by name and version."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from bindle_server.cli.client.output import print_document
from bindle_server.cli.client.session import current_session
from bindle_server.client.documents import QueryPage
from bindle_server.model import Format, to_document


class SearchFormat(StrEnum):
    JSON = "json"
    TOML = "toml"
    TABLE = "table"


def search(
    ctx: typer.Context,
    query: Annotated[
        str | None, typer.Option("-q", "--query", help="Terms the bindle name must contain")
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(
            "-b",
            "--bindle-version",
            help="A version or SemVer range the version must match (e.g. 1.2.3, ^1.2, >=1.0.0 <2)",
        ),
    ] = None,
    offset: Annotated[
        int | None, typer.Option("--offset", min=0, help="Where the page of results starts")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=0, max=255, help="Results per page")
    ] = None,
    strict: Annotated[
        str | None, typer.Option("--strict", metavar="BOOL", help="Use strict matching: true|false")
    ] = None,
    yanked: Annotated[
        str | None,
        typer.Option("--yanked", metavar="BOOL", help="Include yanked bindles: true|false"),
    ] = None,
    output_format: Annotated[
        SearchFormat, typer.Option("-f", "--output-format", help="Output format")
    ] = SearchFormat.TABLE,
) -> None:
    """Search for bindles by name and version."""
    session = current_session(ctx)
    with session.client() as client:
        page = client.query(
            query,
            version,
            offset=offset,
            limit=limit,
            strict=_boolean(strict, "--strict"),
            yanked=_boolean(yanked, "--yanked"),
        )
    if output_format is SearchFormat.TABLE:
        _print_table(page)
    else:
        fmt = Format(output_format.value)
        print_document(_page_document(page, fmt), fmt)


def _page_document(page: QueryPage, fmt: Format) -> dict[str, object]:
    document: dict[str, object] = {
        "query": page.query,
        "strict": page.strict,
        "offset": page.offset,
        "limit": page.limit,
        "total": page.total,
        "more": page.more,
        "yanked": page.yanked,
        "invoices": [to_document(invoice, fmt) for invoice in page.invoices],
    }
    if page.timestamp is not None:
        document["timestamp"] = page.timestamp
    return document


def _print_table(page: QueryPage) -> None:
    """The reference client's table: `ID:<TAB>description` lines and a trailer."""
    for invoice in page.invoices:
        description = invoice.bindle.description or "[no description available]"
        typer.echo(f"{invoice.bindle_id}:\t{description}")
    last = page.offset + len(page.invoices)
    if page.total > 0:
        more = f" - More results are available with --offset={last}" if page.more else ""
        typer.echo(
            f"=== Showing results {page.offset + 1} to {last} of {page.total} "
            f"(limit: {page.limit}){more}"
        )
    else:
        typer.echo("No matching bindles were found")


def _boolean(text: str | None, option: str) -> bool | None:
    if text is None:
        return None
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise typer.BadParameter(f"expected true or false, not {text!r}", param_hint=option)
