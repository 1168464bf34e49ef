"""The benchmark's phases, in order, against one server on one backend."""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Final

from bindle_bench.backends import Backend
from bindle_bench.ceiling import PARALLEL_PARTS, Ceiling, measure_ceiling
from bindle_bench.common import (
    DOWNLOAD_MIB_S,
    INTERRUPTS,
    QUERY_P99_MS,
    RSS_GROWTH_MIB,
    STARTUP_AT_INVOICES,
    STARTUP_S,
    STOP_TIMEOUT,
    STRICT_ONE_P99_MS,
    TERM_PAGE_P99_MS,
    UPLOAD_VS_HASHLIB,
    BenchError,
    clean_env,
    fmt_mib_s,
    percentile,
)
from bindle_bench.invoices import QUERY_GROUPS
from bindle_bench.peer import side_by_side
from bindle_bench.queries import (
    QUERY_WARMUP,
    STRICT_ONE,
    TERM_PAGE,
    explain_postgres,
    run_queries,
    stored_total,
)
from bindle_bench.rates import create_and_get, fill_corpus, report_phase
from bindle_bench.report import Results, Row, verdict
from bindle_bench.server import Server
from bindle_bench.transfers import TransferRun, hashlib_rates, transfer_run


def make_server(args: argparse.Namespace, workdir: Path, backend: Backend) -> Server:
    """The server on `backend`; call after `backend.start()` (it names the engines)."""
    data_dir = workdir / "data"
    data_dir.mkdir(exist_ok=True)
    extra: tuple[str, ...] = ()
    if args.server_log_level:
        extra += ("--log-level", args.server_log_level)
    if not args.server_access_log:
        extra += ("--no-access-log",)
    if args.workers:
        extra += ("--workers", str(args.workers))
    return Server(
        data_dir,
        workdir / "server.log",
        args.start_timeout,
        (*backend.server_args, *extra),
        backend.drop_env,
        backend.server_env,
    )


class Steps:
    """Prints "[N/TOTAL] what" as the phases start."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._done = 0

    def __call__(self, text: str) -> None:
        self._done += 1
        print(f"[{self._done}/{self._total}] {text}", flush=True)


def benchmark(
    args: argparse.Namespace,
    server: Server,
    workdir: Path,
    results: Results,
    backend: Backend,
    peer: tuple[str, Results] | None = None,
) -> None:
    """The phases; then, given `peer` (the peer's executable and the results of the
    comparison), the side-by-side rounds with it (see peer.py)."""
    print(f"work directory {workdir}, server log {server.log_path}", flush=True)
    step = Steps((6 if backend.s3 is None else 7) + (peer is not None))
    # (3) hashlib first, before the server exists, so that nothing competes with it.
    step(f"hashlib.sha256 over {args.hash_mib} MiB, {args.runs} times")
    hash_rates = hashlib_rates(args.hash_mib, args.runs)
    hash_rate = statistics.median(hash_rates)
    results.detail("hashlib MiB/s per run: " + ", ".join(f"{r:.0f}" for r in hash_rates))
    ceiling = None
    if backend.s3 is not None:
        # The engine's own rates, also before the server exists.
        step(
            f"{args.runs} x {backend.engine_label} alone: PUT and GET of {args.size_mib} MiB "
            "with botocore"
        )
        ceiling = measure_ceiling(
            backend.s3,
            args.size_mib,
            args.runs,
            backend.engines,
            backend.collect_garbage,
            results.detail,
            backend.engine_label,
        )
    _with_server(args, server, workdir, results, hash_rate, backend, ceiling, step)
    if peer is not None:
        binary, peer_results = peer
        step(
            f"side by side with {args.peer}, {args.peer_rounds} rounds of {args.creates} "
            f"creates/PUTs and {args.gets} GETs each, {args.concurrency} connections"
        )
        side_by_side(args, server, binary, workdir, peer_results)


def _ceiling_rows(args: argparse.Namespace, backend: Backend, ceiling: Ceiling) -> list[Row]:
    """Rows of the S3 engine's own rates, measured without the server."""
    label = f"{backend.engine_label} alone"
    size = f"{args.size_mib} MiB"
    part = f"{ceiling.part_mib:g} MiB parts"
    return [
        Row(
            f"{label}: multipart PUT {size}, {part}, 1 in flight (median of {args.runs})",
            fmt_mib_s(ceiling.put_serial),
        ),
        Row(
            f"{label}: multipart PUT {size}, {part}, {PARALLEL_PARTS} in flight "
            f"(median of {args.runs})",
            fmt_mib_s(ceiling.put_parallel),
        ),
        Row(f"{label}: GET {size}, one stream (median of {args.runs})", fmt_mib_s(ceiling.get)),
    ]


def _with_server(
    args: argparse.Namespace,
    server: Server,
    workdir: Path,
    results: Results,
    hash_rate: float,
    backend: Backend,
    ceiling: Ceiling | None,
    step: Steps,
) -> None:
    rows = results.rows
    empty_start = server.start()
    results.detail(f"server pid {server.pid} on {server.base_url}, version {server.version}")
    results.detail(f"start-up on an {backend.empty_start}: {empty_start:.3f} s")
    if backend.s3 is not None:
        found = stored_total(server)
        if found:
            raise BenchError(
                f"the index already holds {found} invoices: the benchmark needs an empty one"
            )

    # (1), (2), (4) transfers
    step(f"{args.runs} x upload and download of {args.size_mib} MiB with curl")
    runs: list[TransferRun] = []
    for run in range(args.runs):
        result = transfer_run(
            server, workdir, run, args.size_mib, args.transfer_timeout, backend.engines
        )
        runs.append(result)
        results.detail(
            f"run {run + 1}: upload {result.upload_mib_s:.0f} MiB/s "
            f"(wall {result.upload_wall_mib_s:.0f}), RSS +{result.upload_rss_mib:.1f} MiB; "
            f"download {result.download_mib_s:.0f} MiB/s "
            f"(wall {result.download_wall_mib_s:.0f}), RSS +{result.download_rss_mib:.1f} MiB; "
            f"repeat download {result.repeat_download_mib_s:.0f} MiB/s"
        )
        results.detail(f"run {run + 1} upload: {result.upload_cpu}")
        results.detail(f"run {run + 1} download: {result.download_cpu}")
    upload = statistics.median(run.upload_mib_s for run in runs)
    download = statistics.median(run.download_mib_s for run in runs)
    repeat_download = statistics.median(run.repeat_download_mib_s for run in runs)
    ratio = upload / hash_rate
    up_rss = [run.upload_rss_mib for run in runs]
    down_rss = [run.download_rss_mib for run in runs]
    rows.append(Row("hashlib.sha256, 1 core (median)", fmt_mib_s(hash_rate)))
    if ceiling is not None:
        rows += _ceiling_rows(args, backend, ceiling)
    rows += [
        Row(
            f"Upload {args.size_mib} MiB (median of {args.runs})",
            fmt_mib_s(upload),
            f">= {fmt_mib_s(UPLOAD_VS_HASHLIB * hash_rate)} (0.5 x hashlib)",
            verdict(ratio >= UPLOAD_VS_HASHLIB),
        ),
        Row(
            "Upload / hashlib",
            f"{ratio:.2f}",
            f">= {UPLOAD_VS_HASHLIB:.2f}",
            verdict(ratio >= UPLOAD_VS_HASHLIB),
        ),
    ]
    if ceiling is not None:
        rows.append(
            Row(
                f"Upload / {backend.engine_label} PUT alone, 1 in flight",
                f"{upload / ceiling.put_serial:.2f}",
            )
        )
    rows += [
        Row(
            f"Download {args.size_mib} MiB, {backend.first_download} (median of {args.runs})",
            fmt_mib_s(download),
            f">= {fmt_mib_s(DOWNLOAD_MIB_S)}",
            verdict(download >= DOWNLOAD_MIB_S),
        ),
        Row(
            f"Download {args.size_mib} MiB, {backend.repeat_download} (median of {args.runs})",
            fmt_mib_s(repeat_download),
            f">= {fmt_mib_s(DOWNLOAD_MIB_S)}",
            verdict(repeat_download >= DOWNLOAD_MIB_S),
        ),
    ]
    if ceiling is not None:
        rows.append(
            Row(
                f"Download (first) / {backend.engine_label} GET alone",
                f"{download / ceiling.get:.2f}",
            )
        )
    rows += [
        Row(
            "Server RSS growth per upload (median / worst)",
            f"{statistics.median(up_rss):.1f} / {max(up_rss):.1f} MiB",
            f"< {RSS_GROWTH_MIB:.0f} MiB each",
            verdict(max(up_rss) < RSS_GROWTH_MIB),
        ),
        Row(
            "Server RSS growth per download (median / worst)",
            f"{statistics.median(down_rss):.1f} / {max(down_rss):.1f} MiB",
            f"< {RSS_GROWTH_MIB:.0f} MiB each",
            verdict(max(down_rss) < RSS_GROWTH_MIB),
        ),
    ]

    # (5) invoice create/s and GET/s
    creates = min(args.creates, args.invoices)
    step(f"{creates} invoice creates, then {args.gets} GETs, {args.concurrency} connections")
    create_stats, get_stats = INTERRUPTS.run(create_and_get(server, args, creates, backend.engines))
    report_phase(results, "create", create_stats)
    report_phase(results, "GET", get_stats)
    rows += [
        Row(f"Invoice create/s ({args.concurrency} conn.)", create_stats.rate()),
        Row(f"Invoice GET/s ({args.concurrency} conn.)", get_stats.rate()),
        Row(
            "Server CPU per create / per GET",
            f"{create_stats.server_ms_per_request():.2f} / "
            f"{get_stats.server_ms_per_request():.2f} ms",
        ),
    ]

    # (6) _q latency with `invoices` stored
    step(f"filling the store to {args.invoices} invoices")
    if creates < args.invoices:
        fill_stats = INTERRUPTS.run(fill_corpus(server, args, creates, backend.engines))
        report_phase(results, "fill", fill_stats)
    stored = stored_total(server)
    results.detail(f"invoices stored: {stored} ({args.runs} of them from the transfers)")
    if stored < args.invoices:
        results.problem(f"only {stored} invoices stored, {args.invoices} wanted")
    step(f"{args.queries} sequential _q queries (+{QUERY_WARMUP} warm-up)")
    query_stats = run_queries(server, args, args.invoices, backend.engines)
    for text in query_stats.unexpected:
        results.problem(f"_q: {text}")
    results.detail(f"_q statuses: {dict(query_stats.statuses)}; {query_stats.cpu}")
    all_ms = query_stats.all_ms()
    p99 = percentile(all_ms, 0.99)
    rows += [
        Row(
            f"_q p50, {stored} invoices ({len(all_ms)} queries)",
            f"{statistics.median(all_ms):.2f} ms",
        ),
        Row(
            f"_q p99, {stored} invoices ({len(all_ms)} queries)",
            f"{p99:.2f} ms",
            f"< {QUERY_P99_MS:.0f} ms",
            verdict(p99 < QUERY_P99_MS),
        ),
    ]
    for kind, target_ms in ((STRICT_ONE, STRICT_ONE_P99_MS), (TERM_PAGE, TERM_PAGE_P99_MS)):
        values = query_stats.latencies_ms.get(kind, [])
        if values:
            matches = (
                "1 match" if kind == STRICT_ONE else f"{args.invoices // QUERY_GROUPS} matches"
            )
            rows.append(
                Row(
                    f"_q {kind} ({matches}), c=1, p50 / p99",
                    f"{statistics.median(values):.2f} / {percentile(values, 0.99):.2f} ms",
                    f"p99 < {target_ms:.0f} ms",
                    verdict(percentile(values, 0.99) < target_ms),
                )
            )
    for kind, values in query_stats.latencies_ms.items():
        results.detail(
            f"_q {kind}: p50 {statistics.median(values):.2f} ms, "
            f"p99 {percentile(values, 0.99):.2f} ms, max {max(values):.2f} ms, n={len(values)}"
        )
    if backend.s3 is not None:
        results.detail(
            "_q CPU per query: "
            + ", ".join(f"{name} {ms:.2f} ms" for name, ms in query_stats.cpu_per_query.items())
        )
        try:
            results.detail(explain_postgres(server.option("--index"), args.invoices))
        except Exception as exc:  # evidence only: the figures stand without it
            results.detail(f"EXPLAIN ANALYZE of the _q statements failed: {exc!r}")

    # (7) start-up with `invoices` stored
    where = "data directory" if backend.s3 is None else "bucket and index"
    step(f"{args.restarts} restarts on the same {where}")
    exit_code = server.stop()
    results.detail(f"server exit code after SIGTERM: {exit_code}")
    check_exit(results, server, exit_code)
    starts: list[float] = []
    for _ in range(args.restarts):
        starts.append(server.start())
        after = stored_total(server)
        if after != stored:
            results.problem(f"after restart _q reports {after} invoices, before {stored}")
        check_exit(results, server, server.stop())
    startup = statistics.median(starts)
    results.detail("start-up seconds per restart: " + ", ".join(f"{s:.3f}" for s in starts))
    if backend.s3 is not None:
        results.detail(startup_parts(server, args.start_timeout))
    rows += [
        Row(f"Start-up, {backend.empty_start}", f"{empty_start:.3f} s"),
        Row(
            f"Start-up, {stored} invoices (median of {args.restarts})",
            f"{startup:.3f} s",
            f"< {STARTUP_S:.0f} s at {STARTUP_AT_INVOICES:,} invoices",
            verdict(startup < STARTUP_S),
        ),
    ]


# Run in a new interpreter with the server's settings: what the scale-out backend adds to a
# start, beside the imports every start has.
STARTUP_PROBE: Final = """
import asyncio, sys, time
began = time.perf_counter()
import bindle_server.cli.server
cli = time.perf_counter()
import bindle_server.search.postgres, bindle_server.storage.s3
drivers = time.perf_counter()
from bindle_server.backend import open_backend

async def open_once():
    async with open_backend(sys.argv[1], sys.argv[2]):
        pass

opens = []
for _ in range(3):
    started = time.perf_counter()
    asyncio.run(open_once())
    opens.append(time.perf_counter() - started)
print(cli - began, drivers - cli, *opens)
"""


def startup_parts(server: Server, timeout: float) -> str:
    """Where a scale-out start's time goes, measured in a separate process."""
    storage, index = server.option("--storage"), server.option("--index")
    try:
        probe = subprocess.run(
            [sys.executable, "-c", STARTUP_PROBE, storage, index],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**clean_env(server.drop_env), **server.env},
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"start-up parts: the probe did not finish within {timeout:g} s"
    try:
        cli, drivers, *opens = (float(value) for value in probe.stdout.split())
    except ValueError:
        return f"start-up parts: the probe failed: {probe.stderr[-500:]!r}"
    return (
        "start-up parts (a separate process with the server's settings): importing the "
        f"server's CLI {cli:.3f} s, then the S3 and PostgreSQL drivers (aiobotocore, "
        f"psycopg) {drivers:.3f} s; opening the backend (bucket check with conditional PUTs, "
        "sweep of abandoned uploads, index) "
        + ", ".join(f"{value:.3f}" for value in opens)
        + " s (3 times)"
    )


def check_exit(results: Results, server: Server, exit_code: int | None) -> None:
    # uvicorn shuts down gracefully on SIGTERM and then re-raises it: -15 is a clean stop.
    if server.killed:
        results.problem(f"server ignored SIGTERM for {STOP_TIMEOUT:.0f} s and was killed")
    elif exit_code not in (0, -signal.SIGTERM, None):
        results.problem(f"server exited with {exit_code} on SIGTERM")


def scan_server_log(server: Server, results: Results) -> None:
    try:
        text = server.log_path.read_text(errors="replace")
    except OSError:
        return
    lines = text.splitlines()
    errors = [line for line in lines if " ERROR " in line or "Traceback" in line]
    server_errors = [line for line in lines if '" 5' in line and "HTTP/1.1" in line]
    results.detail(f"server log: {len(lines)} lines, {len(errors)} ERROR/Traceback lines")
    if errors:
        results.problem(f"server log has {len(errors)} ERROR/Traceback lines, e.g. {errors[:3]}")
    if server_errors:
        results.problem(f"server log has {len(server_errors)} 5xx responses: {server_errors[:3]}")
