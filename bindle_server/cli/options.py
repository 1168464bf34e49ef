"""Options of `bindle-server` that several commands share: the lifecycle settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

AtomicPushOption = Annotated[
    bool | None,
    typer.Option(
        "--atomic-push/--no-atomic-push",
        help="Hide an invoice created with missing parcels (pending: GET answers 404, _q "
        "leaves it out) until its last parcel is stored, then show it in one step "
        "[env: BINDLE_ATOMIC_PUSH] [default: off, as the reference server]",
        show_default=False,
    ),
]
PendingTtlOption = Annotated[
    str | None,
    typer.Option(
        "--pending-ttl",
        help="Remove a pending invoice its push left untouched this long (30s, 15m, 1h, 14d) "
        "[env: BINDLE_PENDING_TTL] [default: 24h]",
        show_default=False,
    ),
]
MaxParcelBytesOption = Annotated[
    int | None,
    typer.Option(
        "--max-parcel-bytes",
        min=1,
        help="Refuse (413) invoices that declare a larger parcel "
        "[env: BINDLE_MAX_PARCEL_BYTES] [default: unlimited]",
        show_default=False,
    ),
]
RetentionOption = Annotated[
    Path | None,
    typer.Option(
        "--retention",
        help="Retention policy (TOML [[rule]] tables: prefix, keep_last, keep, max_age, ...) "
        "that garbage collection applies [env: BINDLE_RETENTION]",
        show_default=False,
    ),
]
GcIntervalOption = Annotated[
    str | None,
    typer.Option(
        "--gc-interval",
        help="Run garbage collection this often while serving, e.g. 1h; one process or "
        "node at a time runs it [env: BINDLE_GC_INTERVAL] [default: off]",
        show_default=False,
    ),
]
GcGraceOption = Annotated[
    str | None,
    typer.Option(
        "--gc-grace",
        help="Never collect parcels stored more recently than this (uploads of pushes "
        "under way) [env: BINDLE_GC_GRACE] [default: 1h]",
        show_default=False,
    ),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Report what would be removed; change nothing")
]
