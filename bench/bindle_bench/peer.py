"""Side by side with a peer (`--peer docker-registry`): this server's invoice create and GET
against the registry's manifest PUT and GET.

Both run at once, each on its own loopback port, and are driven by the same client (the
minimal keep-alive client of the rate phases, `--concurrency` connections). Each of
`--peer-rounds` rounds creates `--creates` new invoices on the server and PUTs as many new
manifests on the registry, then sends `--gets` GETs of that round's documents to each.
Rounds alternate which side goes first; the ratio (this server / registry) is taken per
round and the figure is their median, so that load from elsewhere on a shared machine
hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bindle_bench.common import INTERRUPTS, MIB, BenchError, child_pids, pss_bytes
from bindle_bench.queries import stored_total
from bindle_bench.rates import (
    CREATED,
    PhaseStats,
    concurrent_phase,
    create_requests,
    get_requests,
    report_phase,
)
from bindle_bench.rawhttp import ConnectionPool
from bindle_bench.registry import REGISTRY, Registry, get_request
from bindle_bench.report import Results, Row, verdict
from bindle_bench.server import RssSampler, Server

PEERS: Final = (REGISTRY,)
# Targets of the issue that asked for the comparison: this server / registry.
GET_RATIO: Final = 2.0
CREATE_RATIO: Final = 1.0
SERVER: Final = "this server"

PEER_NOTES: Final = (
    "Both servers run at once on loopback, each on its own temporary directory, and are "
    "driven by the same client: the minimal HTTP/1.1 keep-alive client of the rate phases "
    "(request bytes encoded before the clock starts, one request at a time per connection). "
    "This server's counterpart of a registry manifest PUT is an invoice create (a new "
    "invoice of one parcel that is not uploaded), and of a manifest GET (by tag, "
    "`Accept: application/vnd.oci.image.manifest.v1+json`) an invoice GET. Each manifest "
    "PUT is a new OCI image manifest (a new tag and annotation) in one repository, naming "
    "a config blob and a 1 KiB layer blob uploaded once beforehand. docker-registry runs "
    "with filesystem storage, no authentication, log level warn, no access log and the "
    "in-memory blob descriptor cache of Debian's default configuration. Rounds alternate "
    "which server goes first; a ratio is this server / docker-registry, per round, and the "
    "figure is the median of the rounds' ratios. CPU per request is the server's CPU time "
    "during the phase over its requests. RSS is sampled every 20 ms during all rounds; a "
    "server with workers counts whole (supervisor and workers, their VmRSS summed, which "
    "counts the pages a forked worker shares with its supervisor once per process); PSS "
    "(/proc/PID/smaps_rollup, summed over the same processes) counts shared pages once, "
    "and is read once, after the last round. This server runs "
    "with the run's settings: its default log level (info) unless --server-log-level says "
    "otherwise, without its access log unless --server-access-log, --workers if given."
)


@dataclass
class Side:
    """One server of the comparison and its phases over the rounds."""

    name: str
    verbs: tuple[str, str]  # what its create and its GET are called in the details
    created: frozenset[int]  # the statuses of a successful create
    port: int
    pid: int
    creates: list[PhaseStats] = field(default_factory=list)
    gets: list[PhaseStats] = field(default_factory=list)


async def _phase(
    side: Side,
    requests: Sequence[tuple[int, bytes]],
    expected: frozenset[int],
    args: argparse.Namespace,
) -> PhaseStats:
    pool = await ConnectionPool.open(side.port, args.concurrency)
    try:
        return await concurrent_phase(pool, side.pid, requests, expected, args.phase_timeout)
    finally:
        pool.close()


def side_by_side(
    args: argparse.Namespace,
    server: Server,
    binary: str,
    workdir: Path,
    results: Results,
) -> None:
    """Run the rounds against `server` (stopped on entry and on return) and the registry."""
    registry = Registry(binary, workdir / "registry", args.start_timeout)
    print(f"  {REGISTRY} log {registry.log_path}", flush=True)
    try:
        _measure(args, server, registry, results)
    except BenchError as exc:
        raise BenchError(f"{exc}\n{REGISTRY} log tail:\n{registry.log_tail()}") from exc
    finally:
        with INTERRUPTS.deferred():
            registry.stop()
            server.stop()
    _scan_registry_log(registry, results)


def _measure(
    args: argparse.Namespace, server: Server, registry: Registry, results: Results
) -> None:
    empty_start = registry.start()
    template = registry.upload_blobs()
    server_start = server.start()
    stored = stored_total(server)
    results.detail(
        f"{REGISTRY} pid {registry.pid} on {registry.base_url}, started in {empty_start:.3f} s "
        f"on empty storage; this server pid {server.pid} on {server.base_url}, "
        f"restarted in {server_start:.3f} s with {stored:,} invoices stored"
    )
    workers = len(child_pids(server.pid))
    results.detail(
        f"this server runs as a supervisor with {workers} worker processes"
        if workers
        else "this server runs as one process"
    )
    ours = Side(SERVER, ("invoice create", "invoice GET"), CREATED, server.port, server.pid)
    peer = Side(
        REGISTRY, ("manifest PUT", "manifest GET"), frozenset({201}), registry.port, registry.pid
    )
    creates, gets, rounds = args.creates, args.gets, args.peer_rounds
    create_ratios: list[float] = []
    get_ratios: list[float] = []
    limit = rounds * 4 * args.phase_timeout + 30
    with RssSampler(server.pid, limit) as ours_rss, RssSampler(registry.pid, limit) as peer_rss:
        for number in range(rounds):
            # New documents each round: the invoices continue after the corpus (its indexes
            # are below --invoices), the manifests' tags after the last round's.
            invoices = range(
                args.invoices + number * creates, args.invoices + (number + 1) * creates
            )
            manifests = range(number * creates, (number + 1) * creates)
            # Every request's bytes exist before the clock starts.
            work = {
                SERVER: (
                    create_requests(server.port, invoices),
                    get_requests(server.port, invoices, gets),
                ),
                REGISTRY: (
                    template.put_requests(registry.port, manifests),
                    [
                        (index, get_request(registry.port, manifests[index % creates]))
                        for index in range(gets)
                    ],
                ),
            }
            order = [ours, peer] if number % 2 == 0 else [peer, ours]
            for side in order:
                stats = INTERRUPTS.run(_phase(side, work[side.name][0], side.created, args))
                side.creates.append(stats)
                report_phase(results, f"round {number + 1}, {side.name} {side.verbs[0]}", stats)
            for side in order:
                stats = INTERRUPTS.run(_phase(side, work[side.name][1], frozenset({200}), args))
                side.gets.append(stats)
                report_phase(results, f"round {number + 1}, {side.name} {side.verbs[1]}", stats)
            create_ratios.append(ours.creates[-1].per_second / peer.creates[-1].per_second)
            get_ratios.append(ours.gets[-1].per_second / peer.gets[-1].per_second)
            print(
                f"  round {number + 1}/{rounds} ({order[0].name} first): create/PUT ratio "
                f"{create_ratios[-1]:.2f}, GET ratio {get_ratios[-1]:.2f}",
                flush=True,
            )
    # Once, after the rounds: reading smaps_rollup walks the page tables, too costly to
    # sample every 20 ms beside the RSS.
    ours_pss = pss_bytes([server.pid, *child_pids(server.pid)])
    peer_pss = pss_bytes([registry.pid])
    registry.stop()
    stored_start = registry.start()
    results.detail(
        "per-round ratios, create/PUT: "
        + ", ".join(f"{r:.2f}" for r in create_ratios)
        + "; GET: "
        + ", ".join(f"{r:.2f}" for r in get_ratios)
    )
    _rows(args, results, ours, peer, create_ratios, get_ratios)
    results.rows.extend(
        [
            Row(f"{REGISTRY} start-up, empty storage", f"{empty_start:.3f} s"),
            Row(
                f"{REGISTRY} start-up, {rounds * creates:,} manifests stored",
                f"{stored_start:.3f} s",
            ),
            Row(
                f"This server's start-up for the rounds, {stored:,} invoices stored",
                f"{server_start:.3f} s",
            ),
            Row(
                f"Peak RSS during the rounds: this server / {REGISTRY}",
                f"{ours_rss.peak / MIB:.0f} / {peer_rss.peak / MIB:.0f} MiB",
            ),
            Row(
                f"PSS after the rounds: this server / {REGISTRY}",
                f"{ours_pss / MIB:.0f} / {peer_pss / MIB:.0f} MiB",
            ),
        ]
    )


def _median_rate(phases: list[PhaseStats]) -> str:
    rate = statistics.median(stats.per_second for stats in phases)
    bound = sum(stats.client_bound for stats in phases)
    note = f" (client-bound in {bound} of {len(phases)})" if bound else ""
    return f"{rate:,.0f}/s{note}"


def _cpu_ms(phases: list[PhaseStats]) -> float:
    requests = sum(stats.count for stats in phases)
    return 1000 * sum(stats.server_cpu for stats in phases) / requests if requests else 0.0


def _rows(
    args: argparse.Namespace,
    results: Results,
    ours: Side,
    peer: Side,
    create_ratios: list[float],
    get_ratios: list[float],
) -> None:
    rounds = f"{args.concurrency} conn., median of {args.peer_rounds} rounds"
    create_ratio = statistics.median(create_ratios)
    get_ratio = statistics.median(get_ratios)
    results.rows.extend(
        [
            Row(f"Invoice create/s, this server ({rounds})", _median_rate(ours.creates)),
            Row(f"Manifest PUT/s, {REGISTRY} ({rounds})", _median_rate(peer.creates)),
            Row(
                "Create / PUT rate, this server / registry (median of per-round ratios)",
                f"{create_ratio:.2f}",
                f">= {CREATE_RATIO:.2f}",
                verdict(create_ratio >= CREATE_RATIO),
            ),
            Row(f"Invoice GET/s, this server ({rounds})", _median_rate(ours.gets)),
            Row(f"Manifest GET/s, {REGISTRY} ({rounds})", _median_rate(peer.gets)),
            Row(
                "GET rate, this server / registry (median of per-round ratios)",
                f"{get_ratio:.2f}",
                f">= {GET_RATIO:.2f}",
                verdict(get_ratio >= GET_RATIO),
            ),
            Row(
                "CPU per create / per GET: this server",
                f"{_cpu_ms(ours.creates):.2f} / {_cpu_ms(ours.gets):.2f} ms",
            ),
            Row(
                f"CPU per PUT / per GET: {REGISTRY}",
                f"{_cpu_ms(peer.creates):.2f} / {_cpu_ms(peer.gets):.2f} ms",
            ),
        ]
    )


def _scan_registry_log(registry: Registry, results: Results) -> None:
    try:
        lines = registry.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return
    # Its log level is warn: anything at error or worse is a problem of the run.
    bad = [
        line for line in lines if "level=error" in line or "level=fatal" in line or "panic" in line
    ]
    results.detail(f"{REGISTRY} log: {len(lines)} lines, {len(bad)} at error or worse")
    if bad:
        results.problem(f"{REGISTRY} log has {len(bad)} error lines, e.g. {bad[:3]}")
