#!/usr/bin/env python3
"""How long the web UI's pages take the server: the invoice page of a 1,000-parcel
invoice and the home page of a registry of 10,000 invoices.

One server runs on local disk with its default settings. Through the API (concurrently,
over keep-alive connections) the benchmark pushes an invoice of 1,000 parcels (a
README, groups, annotations; every parcel uploaded) and 10,000 one-parcel invoices.
Then it requests each page `--requests` times, one at a time over one keep-alive
connection, after `--warmup` unmeasured requests.

Server time is the server's own figure: the `bindle_http_request_duration_seconds`
histogram's sum, read from `/metrics` just before and just after each request, so the
difference is that one request's time from its arrival to the end of its answer, every
middleware included. Client-side latency over loopback is reported beside it.

Targets (issue "A web UI"): invoice page < 100 ms, home page < 50 ms, judged on the
p90 of server time. `--markdown PATH` writes the figures into PATH's
`<!-- bench:web:... -->` section (or appends one).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import tomli_w
from bindle_bench.common import BenchError, percentile
from bindle_bench.rates import CREATED, PhaseStats, concurrent_phase, create_requests
from bindle_bench.rawhttp import ConnectionPool, encode_request
from bindle_bench.report import (
    Row,
    machine_facts,
    markdown_table,
    text_table,
    verdict,
    write_section,
)
from bindle_bench.server import Server

BEGIN = "<!-- bench:web:begin (written by bench/web.py) -->"
END = "<!-- bench:web:end -->"
BIG_NAME = "bench.example/web/big-bindle"
BIG_VERSION = "1.0.0"
INVOICE_TARGET_MS = 100.0
HOME_TARGET_MS = 50.0
_SUM = re.compile(r"^bindle_http_request_duration_seconds_sum\{(?P<labels>.*)\} (?P<value>\S+)$")


def big_bindle(parcels: int) -> tuple[bytes, list[bytes]]:
    """An invoice of `parcels` parcels (one of them a README) and their bytes."""
    readme = (
        "# Big bindle\n\nA bindle with many parcels, for the web UI benchmark.\n\n"
        + "".join(
            f"- item {n}: *emphasis*, `code`, [link](https://example.com/{n})\n" for n in range(100)
        )
    ).encode()
    contents = [readme] + [f"parcel {n} ".encode() * (10 + n % 200) for n in range(1, parcels)]
    groups = [f"group-{n}" for n in range(10)]
    entries: list[dict[str, Any]] = []
    for n, data in enumerate(contents):
        label: dict[str, Any] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "mediaType": "text/markdown" if n == 0 else "application/octet-stream",
            "name": "README.md" if n == 0 else f"assets/dir-{n % 17}/file-{n:04d}.bin",
            "size": len(data),
            "annotations": {"bench.example/index": str(n)},
        }
        entry: dict[str, Any] = {"label": label}
        if n:
            entry["conditions"] = {"memberOf": [groups[n % len(groups)]]}
        entries.append(entry)
    document = {
        "bindleVersion": "1.0.0",
        "bindle": {
            "name": BIG_NAME,
            "version": BIG_VERSION,
            "description": "An invoice of many parcels",
            "authors": ["Bench <bench@example.com>"],
        },
        "annotations": {"bench.example/kind": "web"},
        "group": [{"name": name, "required": name == "group-0"} for name in groups],
        "parcel": entries,
    }
    return tomli_w.dumps(document).encode(), contents


async def _load(server: Server, args: argparse.Namespace) -> tuple[PhaseStats, PhaseStats]:
    """Push the big bindle (invoice, then its parcels) and the small invoices."""
    invoice, contents = big_bindle(args.parcels)
    pool = await ConnectionPool.open(server.port, args.concurrency)
    try:
        create = [(0, encode_request("POST", "/v1/_i", server.port, invoice, "application/toml"))]
        created = await concurrent_phase(pool, server.pid, create, CREATED, args.phase_timeout)
        if created.bad:
            raise BenchError(f"the big invoice was refused: {created.unexpected}")
        target = f"/v1/_i/{quote(BIG_NAME)}/{BIG_VERSION}"
        uploads = [
            (n, encode_request("POST", f"{target}@{hashlib.sha256(data).hexdigest()}",
                               server.port, data, "application/octet-stream"))
            for n, data in enumerate(contents)
        ]  # fmt: skip
        uploaded = await concurrent_phase(
            pool, server.pid, uploads, frozenset({200}), args.phase_timeout
        )
        posts = create_requests(server.port, range(args.invoices))
        filled = await concurrent_phase(pool, server.pid, posts, CREATED, args.phase_timeout)
    finally:
        pool.close()
    for name, stats in (("parcel uploads", uploaded), ("invoice creates", filled)):
        if stats.bad:
            raise BenchError(f"{name}: unexpected answers: {stats.unexpected}")
    return uploaded, filled


def _server_seconds(client: httpx.Client) -> float:
    """The sum of every route's request durations so far, `/metrics` itself left out."""
    response = client.get("/metrics")
    response.raise_for_status()
    total = 0.0
    for line in response.text.splitlines():
        match = _SUM.match(line)
        if match and 'route="/metrics"' not in match["labels"]:
            total += float(match["value"])
    return total


@dataclass
class Timings:
    path: str
    server_ms: list[float]
    client_ms: list[float]
    body_bytes: int

    def row(self, figure: str, target_ms: float) -> Row:
        p50, p90 = statistics.median(self.server_ms), percentile(self.server_ms, 0.90)
        return Row(
            f"{figure}: server time p50 / p90 ({len(self.server_ms)} requests)",
            f"{p50:.1f} / {p90:.1f} ms",
            f"p90 < {target_ms:.0f} ms",
            verdict(p90 < target_ms),
        )

    def client_row(self, figure: str) -> Row:
        p50, p90 = statistics.median(self.client_ms), percentile(self.client_ms, 0.90)
        return Row(f"{figure}: client latency p50 / p90", f"{p50:.1f} / {p90:.1f} ms")


def measure(
    client: httpx.Client, path: str, check: str, expected: int, args: argparse.Namespace
) -> Timings:
    """Request `path` (warm-up, then measured), each one alone between two scrapes.

    `check` is a regular expression whose matches in the page are counted: `expected`
    of them, so that the page measured is the full one, not an error or a stub.
    """
    body_bytes = 0
    for _ in range(args.warmup):
        response = client.get(path)
        if response.status_code != 200:
            raise BenchError(f"GET {path}: {response.status_code} {response.text[:300]}")
        found = len(re.findall(check, response.text))
        if found != expected:
            raise BenchError(f"GET {path}: {found} matches of {check!r}, expected {expected}")
        body_bytes = len(response.content)
    server_ms, client_ms = [], []
    for _ in range(args.requests):
        before = _server_seconds(client)
        started = time.perf_counter()
        response = client.get(path)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise BenchError(f"GET {path}: {response.status_code}")
        server_ms.append(1000 * (_server_seconds(client) - before))
        client_ms.append(1000 * elapsed)
    return Timings(path, server_ms, client_ms, body_bytes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--parcels", type=int, default=1000, help="parcels of the big invoice [1000]"
    )
    parser.add_argument("--invoices", type=int, default=10_000, help="small invoices [10000]")
    parser.add_argument("--requests", type=int, default=50, help="measured requests per page [50]")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured requests first [5]")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="connections while loading [64]"
    )
    parser.add_argument("--phase-timeout", type=float, default=900.0, help="seconds [900]")
    parser.add_argument("--markdown", type=Path, help="write the figures into this file")
    parser.add_argument("--workdir", type=Path, help="where the data directory goes [a temp dir]")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bindle-web-bench-", dir=args.workdir))
    server = Server(workdir / "data", workdir / "server.log", 60.0, ("--log-level", "warning"))
    server.data_dir.mkdir()
    try:
        server.start()
        load_started = time.perf_counter()
        uploaded, filled = asyncio.run(_load(server, args))
        load_seconds = time.perf_counter() - load_started
        print(f"loaded in {load_seconds:.0f} s: {uploaded.count:,} parcels ({uploaded.rate()}), "
              f"{filled.count:,} invoices ({filled.rate()})", flush=True)  # fmt: skip
        with httpx.Client(base_url=server.base_url, timeout=60.0, trust_env=False) as client:
            invoice_page = measure(
                client,
                f"/invoice/{quote(BIG_NAME)}/{BIG_VERSION}",
                r'<tr class="parcel"',
                args.parcels,
                args,
            )
            home_page = measure(client, "/", r'<tr class="result"', 50, args)
    finally:
        server.stop()

    rows = [
        invoice_page.row(f"Invoice page, {args.parcels:,} parcels", INVOICE_TARGET_MS),
        invoice_page.client_row("Invoice page"),
        home_page.row(f"Home page, {args.invoices + 1:,} invoices", HOME_TARGET_MS),
        home_page.client_row("Home page"),
    ]
    details = [
        f"invoice page: `GET {invoice_page.path}`, {invoice_page.body_bytes / 1024:,.0f} KiB "
        f"of HTML; server time max {max(invoice_page.server_ms):.1f} ms",
        f"home page: `GET /`, {home_page.body_bytes / 1024:,.0f} KiB of HTML (the first 50 "
        f"results); server time max {max(home_page.server_ms):.1f} ms",
        f"load (not measured): {uploaded.count:,} parcel uploads at {uploaded.rate()}, "
        f"{filled.count:,} invoice creates at {filled.rate()}, "
        f"{args.concurrency} connections, {load_seconds:.0f} s in all",
        f"server version {server.version}",
    ]
    print(text_table(rows))
    print("\n".join(f"- {detail}" for detail in details))
    if args.markdown:
        _write(args.markdown, rows, details, args)
    targets = [row for row in rows if row.verdict]
    return 0 if all(row.verdict == "PASS" for row in targets) else 1


def _write(path: Path, rows: list[Row], details: list[str], args: argparse.Namespace) -> None:
    body = [
        f"- Date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        "- Command: `python bench/web.py --markdown bench/RESULTS.md`"
        f" ({args.parcels:,} parcels, {args.invoices:,} invoices, {args.requests} measured "
        f"requests per page after {args.warmup} warm-up ones)",
        *(f"- {fact}" for fact in machine_facts()),
        "",
        markdown_table(rows),
        "",
        *(f"- {detail}" for detail in details),
        "",
        "Server time is the server's own `bindle_http_request_duration_seconds` figure for "
        "each request (the histogram's sum, scraped from `/metrics` just before and after "
        "it, `/metrics` itself left out): from the request's arrival to the end of its "
        "answer, every middleware included. Client latency is the same requests timed by "
        "the benchmark (httpx, one keep-alive connection on loopback), an upper bound.",
        "",
    ]
    write_section(path, (BEGIN, END), "Web UI pages: server time (`bench/web.py`)", body)


if __name__ == "__main__":
    sys.exit(main())
