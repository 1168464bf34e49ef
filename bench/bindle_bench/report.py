"""The results: rows with targets and verdicts, details, problems; as text and Markdown."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bindle_bench.common import (
    CLIENT_BOUND,
    CURL,
    DEFAULTS,
    command_output,
    cpu_model,
    read_meminfo,
)

NOTES: Final = (
    "Throughput is the parcel size over curl's own `time_total` (the transfer, without curl "
    "reading its input file; the wall-clock rate around the curl process is in the details). "
    "RSS growth is the server's peak VmRSS during a transfer minus its VmRSS just before it, "
    "sampled every 20 ms (with workers, and its CPU time too, summed over the supervisor "
    "and its workers). Invoice create/s and GET/s use a minimal HTTP/1.1 keep-alive client "
    "(one request at a time per connection, request bytes encoded before the clock starts); "
    "their latency is measured by the client. `_q` latency too, with the same client on one "
    "connection, one query at a time (c=1); the pages are checked after the last answer. "
    "Start-up is from spawning the process until /healthz answers 200. "
    "'(client-bound)' marks a rate during which the benchmark's own process used at least "
    f"{CLIENT_BOUND:.0%} of a core: the server could go faster than shown; its CPU per "
    "request is the better figure there."
)


@dataclass(frozen=True)
class Row:
    figure: str
    value: str
    target: str = ""
    verdict: str = ""  # PASS, MISS, or "" for figures without a target


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def text_table(rows: Sequence[Row]) -> str:
    header = Row("Figure", "Value", "Target", "Result")
    widths = [
        max(len(getattr(row, attr)) for row in (header, *rows))
        for attr in ("figure", "value", "target", "verdict")
    ]

    def line(row: Row) -> str:
        cells = (row.figure, row.value, row.target, row.verdict)
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row).rstrip() for row in rows)])


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| Figure | Value | Target | Result |", "|---|---:|---|---|"]
    for row in rows:
        cells = (row.figure, row.value, row.target, f"**{row.verdict}**" if row.verdict else "")
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def detail(self, text: str) -> None:
        self.details.append(text)
        print(f"  {text}", flush=True)

    def problem(self, text: str) -> None:
        self.problems.append(text)
        print(f"  PROBLEM: {text}", flush=True)


def machine_facts() -> list[str]:
    meminfo = read_meminfo()
    total_gib = meminfo.get("MemTotal", 0) / 1024 / 1024
    available_gib = meminfo.get("MemAvailable", 0) / 1024 / 1024
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"CPUs: {os.cpu_count()} (os.cpu_count), {len(os.sched_getaffinity(0))} usable; "
        f"{cpu_model()}",
        f"Memory: MemTotal {total_gib:.1f} GiB, MemAvailable {available_gib:.1f} GiB "
        "(/proc/meminfo)",
        f"Load average at start: {load}",
        f"Kernel: {platform.system()} {platform.release()} ({platform.machine()})",
        f"Python: {platform.python_implementation()} {platform.python_version()}",
        f"curl: {command_output([CURL, '--version'])}",
    ]


SECTION_BEGIN: Final = "<!-- bench:{key}:begin (written by bench/run.py) -->"
SECTION_END: Final = "<!-- bench:{key}:end -->"
ANY_SECTION: Final = "<!-- bench:"


@dataclass(frozen=True)
class Report:
    """What the Markdown report says about the run, besides its rows and details."""

    key: str  # the backend: which section of a shared results file is this run's
    heading: str  # the section's heading when it is added to a file with other sections
    title: str  # after "bindle-server benchmark results" in a file of its own ("" for disk)
    notes: str
    facts: Sequence[str]
    server_version: str
    command: str
    started: datetime.datetime


def write_markdown(
    path: Path,
    results: Results,
    report: Report,
    args: argparse.Namespace,
    append: bool = False,
) -> str:
    """Write the report to `path`; return how ("wrote", "updated the section ... of").

    A file that already has this backend's section (between its `<!-- bench:KEY:... -->`
    markers) keeps everything else, hand-written analysis included; a file with only
    other backends' sections gets this one appended; any other file is replaced by a
    report of its own, unless `append` (a second report of the same run) adds it as a
    section.
    """
    begin, end = SECTION_BEGIN.format(key=report.key), SECTION_END.format(key=report.key)
    try:
        existing = path.read_text()
    except FileNotFoundError:
        existing = ""
    # The markers are found by their start, whatever follows on their line.
    start = existing.find(begin.partition(" (")[0])
    stop = existing.find(end.removesuffix(" -->"), start)
    body_start = existing.find("\n", start) + 1
    if start >= 0 and 0 < body_start <= stop:
        body = "\n".join(_body(results, report, args, level=3))
        path.write_text(f"{existing[:body_start]}{body}{existing[stop:]}")
        return f"updated the {report.key} section of"
    if ANY_SECTION in existing or append:
        body = "\n".join(_body(results, report, args, level=3))
        section = f"## {report.heading}\n\n{begin}\n{body}{end}\n"
        path.write_text(f"{existing.rstrip()}\n\n{section}")
        return f"added a {report.key} section to"
    title = "# bindle-server benchmark results"
    if report.title:
        title += f": {report.title}"
    path.write_text("\n".join([title, "", *_body(results, report, args, level=2)]))
    return "wrote"


def _body(results: Results, report: Report, args: argparse.Namespace, level: int) -> list[str]:
    here = str(Path(__file__).resolve().parent)
    git = command_output(["git", "-C", here, "rev-parse", "HEAD"])
    # command_output gives the first line, or "unknown" when there is none (a clean tree).
    changed = command_output(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"])
    if changed != "unknown":
        git += " + uncommitted changes"
    differs = [
        f"--{name.replace('_', '-')} {getattr(args, name)}"
        for name, default in DEFAULTS.items()
        if getattr(args, name) != default
    ]
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    lines = [
        f"- Date: {report.started.isoformat(timespec='seconds')}",
        f"- Command: `{report.command}`",
        f"- Server: bindle-server {report.server_version} (git {git})",
        *(f"- {fact}" for fact in report.facts),
        f"- Load average at end: {load}",
        "",
    ]
    if differs:
        lines += [
            "> **Not the full configuration**: "
            + ", ".join(differs)
            + " differ from the defaults.",
            "",
        ]
    lines += [markdown_table(results.rows), ""]
    heading = "#" * level
    lines += [
        report.notes,
        "",
        f"{heading} Details",
        "",
        *(f"- {text}" for text in results.details),
        "",
        f"{heading} Problems observed",
        "",
        *([f"- {text}" for text in results.problems] or ["- none"]),
        "",
    ]
    return lines


SCALE_OUT_NOTES: Final = (
    " On the scale-out backend the server keeps invoices and parcels in the S3 bucket and "
    "the query index on PostgreSQL; everything else is measured as on disk. The 'alone' "
    "rows measure the S3 engine without bindle-server: the benchmark process PUTs an object "
    "of the parcel's size as a multipart upload with the server's part size (one part in "
    "flight, as the server sends them, and 4 in flight) and GETs it back in one stream "
    "(botocore, 1 MiB reads); each is deleted once measured. 'Engines CPU' in the details "
    "is the CPU time the S3 engine's processes and PostgreSQL (postmaster and its backends) "
    "used during the phase, in % of one core (the machine has the cores listed above, "
    "shared by the engines, the server, curl and the benchmark)."
)


def write_section(path: Path, markers: tuple[str, str], heading: str, body: Sequence[str]) -> None:
    """Put `body` between the `markers` (begin, end) of `path`, replacing what was there;
    without them, append a new section under `heading`, markers included. The lines
    around a section (its analysis, written by hand) stay as they are."""
    begin, end = markers
    existing = path.read_text() if path.exists() else ""
    start, stop = existing.find(begin), existing.find(end)
    text = "\n".join(body)
    if 0 <= start < stop:
        path.write_text(existing[: start + len(begin)] + "\n" + text + existing[stop:])
    else:
        section = f"## {heading}\n\n{begin}\n{text}{end}\n"
        path.write_text(f"{existing.rstrip()}\n\n{section}")
