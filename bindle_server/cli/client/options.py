"""The arguments and options several `bindle` commands share."""

from __future__ import annotations

from typing import Annotated, Any

import typer

BindleArg = Annotated[
    str, typer.Argument(metavar="BINDLE", help="The bindle id, e.g. example.com/mybindle/1.2.3")
]

YankedOpt = Annotated[
    bool,
    typer.Option(
        "-y", "--yanked", help="Fetch the bindle even if it is yanked (otherwise that is an error)"
    ),
]

ConcurrencyOpt = Annotated[
    int,
    typer.Option(
        "--concurrency", metavar="N", min=1, max=256, help="Parcels transferred at the same time"
    ),
]

ParcelNameOpt = Annotated[
    str | None, typer.Option("-n", "--name", help="The parcel name [default: the file name]")
]

MediaTypeOpt = Annotated[
    str | None,
    typer.Option("-m", "--media-type", help="The media type [default: guessed from the name]"),
]


def output_option(what: str) -> Any:
    """`-o/--output FILE` of a command that writes one file and never overwrites it."""
    return typer.Option("-o", "--output", help=f"Where to write the {what} (not overwritten)")
