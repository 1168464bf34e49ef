#!/usr/bin/env python3
"""What the audit log and a webhook cost a push: invoice create/s with both on, against off.

Two servers run side by side on local disk, each on its own data directory, in their
default configuration otherwise: one with `--no-audit-log` and no webhook ("off"), one
with the audit log (the default) and one `--webhook` to a receiver on loopback that
answers 204 at once ("on"). Rounds alternate which server is measured first; each round
creates `--creates` fresh invoices on each, over `--concurrency` keep-alive connections.
The figure is the median over rounds of on/off, so that the machine's noise (it is
shared) hits both sides alike.

Target (issue "Operators and runners see what happens"): create rate with audit log and
webhook on at most 10% below off, that is on/off >= 0.90. `--markdown PATH` writes the
figures into PATH's `<!-- bench:observability:... -->` section (or appends one).
`--variant audit` or `--variant webhook` turns on only one of the two, to tell which one
costs what. CPU figures count every process a server runs (its webhook delivery process
included).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import multiprocessing
import statistics
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

from bindle_bench.common import LOOPBACK, cpu_seconds
from bindle_bench.rates import CREATED, PhaseStats, concurrent_phase, create_requests
from bindle_bench.rawhttp import ConnectionPool
from bindle_bench.report import machine_facts, write_section
from bindle_bench.server import Server

BEGIN = "<!-- bench:observability:begin (written by bench/observability.py) -->"
END = "<!-- bench:observability:end -->"
TARGET = 0.90
# --variant: (audit log on, one webhook on) for the 'on' server.
VARIANTS = {"both": (True, True), "audit": (True, False), "webhook": (False, True)}


class _Receiver(BaseHTTPRequestHandler):
    """A webhook endpoint that takes every delivery at once."""

    # Keeps connections open, as the web servers that receive webhooks do: one
    # connection per delivery would charge the server a TCP set-up for each event.
    protocol_version = "HTTP/1.1"
    received: Synchronized[int]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self.send_response(204)
        self.end_headers()
        with _Receiver.received.get_lock():
            _Receiver.received.value += 1

    def log_message(self, format: str, *args: object) -> None:
        return  # deliveries are counted, not logged


def _receive(port: multiprocessing.SimpleQueue[int], received: Synchronized[int]) -> None:
    _Receiver.received = received
    server = ThreadingHTTPServer((LOOPBACK, 0), _Receiver)
    port.put(server.server_address[1])
    server.serve_forever()


def _start_receiver() -> tuple[multiprocessing.Process, Synchronized[int], str]:
    """The receiver runs in a process of its own: in this one, its threads would take the
    interpreter lock from the client that measures the 'on' server, and its cost would
    be counted as the server's."""
    received: Synchronized[int] = multiprocessing.Value("q", 0)
    port: multiprocessing.SimpleQueue[int] = multiprocessing.SimpleQueue()
    process = multiprocessing.Process(target=_receive, args=(port, received), daemon=True)
    process.start()
    return process, received, f"http://{LOOPBACK}:{port.get()}/hook"


async def _creates(server: Server, first: int, count: int, args: argparse.Namespace) -> PhaseStats:
    requests = create_requests(server.port, range(first, first + count))
    pool = await ConnectionPool.open(server.port, args.concurrency)
    try:
        return await concurrent_phase(pool, server.pid, requests, CREATED, args.phase_timeout)
    finally:
        pool.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds [5]")
    parser.add_argument("--creates", type=int, default=1500, help="invoices per round [1500]")
    parser.add_argument("--concurrency", type=int, default=64, help="connections [64]")
    parser.add_argument("--phase-timeout", type=float, default=300.0, help="seconds [300]")
    parser.add_argument("--markdown", type=Path, help="write the figures into this file")
    parser.add_argument(
        "--workdir", type=Path, help="where the data directories go [default: a temp dir]"
    )
    parser.add_argument(
        "--variant",
        choices=sorted(VARIANTS),
        default="both",
        help="what the 'on' server has on: the audit log, one webhook, or both [both]; "
        "the target is for both, the others tell where the cost goes",
    )
    args = parser.parse_args()
    if args.markdown and args.variant != "both":
        parser.error("--markdown records the target's figure: only with --variant both")

    receiver, received, hook = _start_receiver()
    workdir = Path(tempfile.mkdtemp(prefix="bindle-observability-bench-", dir=args.workdir))
    quiet = ("--log-level", "warning")
    audit, webhook = VARIANTS[args.variant]
    on_flags = (*quiet, *(() if audit else ("--no-audit-log",)))
    if webhook:
        on_flags += ("--webhook", hook, "--webhook-secret", "bench-secret")
    servers = {
        "off": Server(workdir / "off", workdir / "off.log", 60.0, (*quiet, "--no-audit-log")),
        "on": Server(workdir / "on", workdir / "on.log", 60.0, on_flags),
    }
    rates: dict[str, list[float]] = {"off": [], "on": []}
    ratios: list[float] = []
    try:
        for server in servers.values():
            server.data_dir.mkdir()
            server.start()
        cpu_start = {side: _tree_cpu(server.pid) for side, server in servers.items()}
        for round_number in range(args.rounds):
            order = ["off", "on"] if round_number % 2 == 0 else ["on", "off"]
            measured = {}
            for side in order:
                stats = asyncio.run(
                    _creates(servers[side], round_number * args.creates, args.creates, args)
                )
                if stats.bad:
                    raise SystemExit(f"{side}: unexpected answers: {stats.unexpected}")
                measured[side] = stats.per_second
                rates[side].append(stats.per_second)
            ratios.append(measured["on"] / measured["off"])
            print(
                f"round {round_number + 1}/{args.rounds}: off {measured['off']:,.0f}/s, "
                f"on {measured['on']:,.0f}/s, on/off {ratios[-1]:.3f}",
                flush=True,
            )
        # Deliveries trail the pushes (they are never in the request path): wait a bounded
        # time for them, to report how far behind they were.
        # One invoice.created per create: the corpus invoices' parcels are never uploaded,
        # so none of them completes.
        expected = args.rounds * args.creates
        deadline = time.monotonic() + 120
        while webhook and received.value < expected and time.monotonic() < deadline:
            time.sleep(0.5)
        audit_bytes = sum(p.stat().st_size for p in (workdir / "on" / "audit").glob("*"))
        # Every delivery is in by now: the 'on' server's CPU includes sending them all.
        cpu_ms = {
            side: (_tree_cpu(server.pid) - cpu_start[side]) * 1000 / expected
            for side, server in servers.items()
        }
    finally:
        for server in servers.values():
            server.stop()
        receiver.terminate()
        receiver.join(10)

    ratio = statistics.median(ratios)
    on = {"both": "audit log and one webhook", "audit": "audit log", "webhook": "one webhook"}
    rows = [
        ("Invoice create/s, audit log and webhook off (median of rounds)", _rate(rates["off"])),
        (f"Invoice create/s, {on[args.variant]} on (median of rounds)", _rate(rates["on"])),
        ("on / off (median of per-round ratios)", f"{ratio:.3f}"),
    ]
    verdict = "**PASS**" if ratio >= TARGET else "**MISS**"
    table = ["| Figure | Value | Target | Result |", "|---|---:|---|---|"]
    table += [f"| {name} | {value} |  |  |" for name, value in rows[:2]]
    table.append(f"| {rows[2][0]} | {rows[2][1]} | >= {TARGET:.2f} | {verdict} |")
    details = [
        f"per-round on/off: {', '.join(f'{r:.3f}' for r in ratios)}",
        f"webhook deliveries received: {received.value:,} of {expected:,} events "
        "(invoice.created for each create; their parcels are not uploaded)",
        f"audit log written by the 'on' server: {audit_bytes / 1024 / 1024:.1f} MiB",
        f"server CPU per create over the whole run (deliveries included, and every "
        f"process the server started): off "
        f"{cpu_ms['off']:.2f} ms, on {cpu_ms['on']:.2f} ms, on/off "
        f"{cpu_ms['on'] / cpu_ms['off']:.2f} (CPU time depends little on the machine's load, "
        "rates do: this is the steadier view of what the audit log and a webhook cost)",
    ]
    print("\n".join(table + [""] + [f"- {d}" for d in details]))
    if args.markdown:
        _write(args.markdown, table, details, args)
    return 0 if ratio >= TARGET else 1


def _tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and of every process under it that is still running: a server
    may deliver webhooks from a process of its own, and that work is part of its cost."""
    total = cpu_seconds(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:  # the thread ended while we read
            continue
        for child in children:
            try:
                total += _tree_cpu(int(child))
            except OSError:  # the process ended while we read
                continue
    return total


def _rate(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f}/s"


def _write(path: Path, table: list[str], details: list[str], args: argparse.Namespace) -> None:
    body = [
        f"- Date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        "- Command: `python bench/observability.py --markdown bench/RESULTS.md`"
        f" ({args.rounds} rounds of {args.creates} creates, {args.concurrency} connections)",
        *(f"- {fact}" for fact in machine_facts()),
        "",
        *table,
        "",
        *(f"- {detail}" for detail in details),
        "",
        "Both servers run at once on local disk with default settings, except that 'off' has "
        "`--no-audit-log` and 'on' has one `--webhook` to a loopback receiver answering 204. "
        "Rounds alternate which one is measured first; the ratio is taken per round, then "
        "the median, so that load from elsewhere on this shared machine hits both alike.",
        "",
    ]
    heading = "Audit log and webhooks: their cost to pushes (`bench/observability.py`)"
    write_section(path, (BEGIN, END), heading, body)


if __name__ == "__main__":
    sys.exit(main())
