"""Invoice create/s and GET/s: many keep-alive connections, one request at a time on each."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote

from bindle_bench.common import CLIENT_BOUND, BenchError, percentile
from bindle_bench.invoices import corpus_invoice, corpus_name, corpus_version
from bindle_bench.rawhttp import ConnectionPool, RawConnection, TransportFailure, encode_request
from bindle_bench.report import Results
from bindle_bench.server import EngineCpu, RssSampler, Server


@dataclass
class PhaseStats:
    count: int
    seconds: float
    statuses: Counter[int]
    expected: frozenset[int]
    unexpected: list[str] = field(default_factory=list)
    cpu: str = ""
    rss_growth_mib: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    connections: str = ""

    def latency_summary(self) -> str:
        if not self.latencies:
            return "no latencies"
        return (
            f"latency p50 {1000 * statistics.median(self.latencies):.1f} ms, "
            f"p99 {1000 * percentile(self.latencies, 0.99):.1f} ms, "
            f"max {1000 * max(self.latencies):.1f} ms"
        )

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    @property
    def client_bound(self) -> bool:
        """The bench process itself used most of a core: the rate is the client's limit."""
        return self.client_cpu >= CLIENT_BOUND * self.seconds

    @property
    def bad(self) -> int:
        return self.count - sum(self.statuses[status] for status in self.expected)

    def rate(self) -> str:
        note = " (client-bound)" if self.client_bound else ""
        return f"{self.per_second:,.0f}/s{note}"

    def server_ms_per_request(self) -> float:
        return 1000 * self.server_cpu / self.count if self.count else 0.0


async def concurrent_phase(
    pool: ConnectionPool,
    pid: int,
    requests: Sequence[tuple[int, bytes]],
    expected: frozenset[int],
    time_limit: float,
    engines: EngineCpu | None = None,
) -> PhaseStats:
    """Send each (index, request bytes) once, one worker per connection of `pool`.

    Statuses are counted; -1 counts requests that failed on the wire.
    """
    pending = iter(requests)
    statuses: Counter[int] = Counter()
    unexpected: list[str] = []
    latencies: list[float] = []
    clock = time.perf_counter

    async def worker(connection: RawConnection) -> None:
        for index, data in pending:  # one shared iterator: each request is sent exactly once
            started = clock()
            try:
                response = await connection.request(data)
            except TransportFailure as exc:
                statuses[-1] += 1
                if len(unexpected) < 5:
                    unexpected.append(f"#{index}: {exc}")
                continue
            latencies.append(clock() - started)
            statuses[response.status] += 1
            if response.status not in expected and len(unexpected) < 5:
                unexpected.append(f"#{index}: {response.status} {response.text()}")

    opened, closed, retried = pool.counters()
    with RssSampler(pid, time_limit + 30, engines) as sampler:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(time_limit), asyncio.TaskGroup() as group:
                for connection in pool.connections:
                    group.create_task(worker(connection))
        except TimeoutError as exc:
            done = sum(statuses.values())
            raise BenchError(f"phase did not finish in {time_limit:.0f} s ({done} done)") from exc
        except ExceptionGroup as failures:
            for failure in failures.exceptions:
                if isinstance(failure, BenchError):
                    raise failure from failures
            raise
        elapsed = time.perf_counter() - started
    now_opened, now_closed, now_retried = pool.counters()
    connections = (
        f"{len(pool.connections)} keep-alive connections, {now_opened - opened} (re)opened "
        f"during the phase, {now_closed - closed} closed by the server, "
        f"{now_retried - retried} requests resent after an idle close"
    )
    return PhaseStats(
        len(requests),
        elapsed,
        statuses,
        expected,
        unexpected,
        sampler.cpu_summary() + sampler.engines_summary(),
        sampler.growth_mib,
        sampler.server_cpu,
        sampler.client_cpu,
        latencies,
        connections,
    )


CREATED: Final = frozenset({201, 202})


def create_requests(port: int, indexes: Iterable[int]) -> list[tuple[int, bytes]]:
    return [
        (index, encode_request("POST", "/v1/_i", port, corpus_invoice(index), "application/toml"))
        for index in indexes
    ]


def get_requests(port: int, targets: range, count: int) -> list[tuple[int, bytes]]:
    """`count` GETs of the corpus invoices `targets`, each in turn."""
    requests = []
    for index in range(count):
        target = targets[index % len(targets)]
        path = f"/v1/_i/{quote(corpus_name(target))}/{corpus_version(target)}"
        requests.append((index, encode_request("GET", path, port)))
    return requests


async def create_and_get(
    server: Server, args: argparse.Namespace, creates: int, engines: EngineCpu | None = None
) -> tuple[PhaseStats, PhaseStats]:
    # Every request's bytes exist before the clock starts.
    posts = create_requests(server.port, range(creates))
    gets = get_requests(server.port, range(creates), args.gets)
    pool = await ConnectionPool.open(server.port, args.concurrency)
    try:
        create_stats = await concurrent_phase(
            pool, server.pid, posts, CREATED, args.phase_timeout, engines
        )
        get_stats = await concurrent_phase(
            pool, server.pid, gets, frozenset({200}), args.phase_timeout, engines
        )
    finally:
        pool.close()
    return create_stats, get_stats


async def fill_corpus(
    server: Server, args: argparse.Namespace, first: int, engines: EngineCpu | None = None
) -> PhaseStats:
    posts = create_requests(server.port, range(first, args.invoices))
    pool = await ConnectionPool.open(server.port, args.concurrency)
    try:
        return await concurrent_phase(pool, server.pid, posts, CREATED, args.phase_timeout, engines)
    finally:
        pool.close()


def report_phase(results: Results, name: str, stats: PhaseStats) -> None:
    results.detail(
        f"{name}: {stats.count} requests in {stats.seconds:.2f} s = {stats.per_second:.0f}/s, "
        f"statuses {dict(stats.statuses)}; {stats.latency_summary()}; {stats.cpu}; "
        f"server RSS +{stats.rss_growth_mib:.1f} MiB; {stats.connections}"
    )
    if stats.bad:
        wanted = "/".join(str(status) for status in sorted(stats.expected))
        results.problem(f"{name}: {stats.bad} of {stats.count} not {wanted}: {stats.unexpected}")
