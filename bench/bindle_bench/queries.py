"""`_q` latency: a repeating mix of sequential queries over the stored corpus."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

import httpx

from bindle_bench.common import BenchError
from bindle_bench.invoices import QUERY_GROUPS, QUERY_RANGE, corpus_in_range, corpus_name
from bindle_bench.rawhttp import RawConnection, RawResponse, encode_request
from bindle_bench.server import EngineCpu, RssSampler, Server

QUERY_WARMUP: Final = 20  # unmeasured queries before the measured ones
MIN_QUERIES: Final = 500


@dataclass(frozen=True)
class QuerySpec:
    kind: str
    params: dict[str, str]
    expected_total: int


STRICT_ONE: Final = "strict, 1 match"
TERM_PAGE: Final = "term,l=50"


def query_specs(count: int, invoices: int) -> Iterator[QuerySpec]:
    """A repeating mix: one name term (~1 %, a page of 50), the term plus a SemVer range, an
    empty query, and a whole name (strict, one match), as issue 16 states its targets."""
    for number in range(count):
        group = (number * 37) % QUERY_GROUPS
        term = f"grp{group:02d}x"
        members = range(group, invoices, QUERY_GROUPS)
        kind = number % 4
        if kind == 0:
            yield QuerySpec(TERM_PAGE, {"q": term, "l": "50"}, len(members))
        elif kind == 1:
            in_range = sum(1 for i in members if corpus_in_range(i))
            yield QuerySpec("term+range", {"q": term, "v": QUERY_RANGE}, in_range)
        elif kind == 2:
            yield QuerySpec("empty,l=50", {"q": "", "l": "50"}, -1)  # -1: at least `invoices`
        else:
            # From the last nine tenths: no stored name extends these (pkg123 -> pkg1234).
            first = invoices // 10
            index = first + (number * 7919) % max(1, invoices - first)
            params = {"q": corpus_name(index), "strict": "true"}
            yield QuerySpec(STRICT_ONE, params, 1)


@dataclass
class QueryStats:
    latencies_ms: dict[str, list[float]]
    unexpected: list[str]
    statuses: Counter[int]
    cpu: str
    # CPU milliseconds per query (warm-up included) by process: server, bench client, engines.
    cpu_per_query: dict[str, float] = field(default_factory=dict)

    def all_ms(self) -> list[float]:
        return [value for values in self.latencies_ms.values() for value in values]


def run_queries(
    server: Server, args: argparse.Namespace, stored: int, engines: EngineCpu | None = None
) -> QueryStats:
    latencies: dict[str, list[float]] = {}
    unexpected: list[str] = []
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + args.phase_timeout
    specs = list(query_specs(QUERY_WARMUP + args.queries, args.invoices))
    requests = [
        encode_request("GET", f"/v1/_q?{urlencode(spec.params)}", server.port) for spec in specs
    ]

    async def send_all() -> list[RawResponse]:
        # The client of the create and GET phases, one request at a time: httpx added
        # about half a millisecond of its own to each.
        connection = RawConnection(server.port)
        answered = []
        try:
            for number, (spec, request) in enumerate(zip(specs, requests, strict=True)):
                if time.monotonic() > deadline:
                    raise BenchError(f"queries did not finish in {args.phase_timeout:.0f} s")
                started = time.perf_counter()
                answered.append(await connection.request(request))
                elapsed_ms = (time.perf_counter() - started) * 1000
                if number >= QUERY_WARMUP:
                    latencies.setdefault(spec.kind, []).append(elapsed_ms)
        finally:
            connection.drop(graceful=True)
        return answered

    sampler = RssSampler(server.pid, args.phase_timeout + 30, engines)
    with sampler:
        responses = asyncio.run(send_all())
    # Checked once all are answered: parsing a page of 50 takes the client milliseconds of
    # CPU, which between requests took the core the server's next answer needed.
    for spec, response in zip(specs, responses, strict=True):
        statuses[response.status] += 1
        problem = check_query(response, spec, stored)
        if problem and len(unexpected) < 5:
            unexpected.append(f"{spec.kind} {spec.params}: {problem}")
    count = max(1, len(specs))
    per_query = {
        "server": sampler.server_cpu,
        "bench client": sampler.client_cpu,
        **sampler.engine_cpu,
    }
    return QueryStats(
        latencies,
        unexpected,
        statuses,
        sampler.cpu_summary() + sampler.engines_summary(),
        {name: 1000 * seconds / count for name, seconds in per_query.items()},
    )


EXPLAIN_REPEATS: Final = 5


def explain_postgres(index_url: str, invoices: int) -> str:
    """PostgreSQL's own time for the statements bindle-server sends for each query kind.

    The statements come from the server's own query builder; EXPLAIN ANALYZE runs each
    EXPLAIN_REPEATS times on the benchmark's index and the median (planning plus
    execution) is reported, with the plan's scan types.
    """
    import psycopg

    from bindle_server.search.query import Query
    from bindle_server.search.sql import POSTGRES, build_query

    kinds: dict[str, QuerySpec] = {}
    for spec in query_specs(3, invoices):
        kinds.setdefault(spec.kind, spec)
    parts = []
    with psycopg.connect(
        index_url, autocommit=True, connect_timeout=10, options="-c statement_timeout=10000"
    ) as db:
        for kind, spec in kinds.items():
            sql = build_query(Query.from_params(list(spec.params.items())), POSTGRES)
            statements = [("count", sql.count, sql.count_args)]
            if sql.page is not None:
                statements.append(("page", sql.page, sql.page_args))
            timings = []
            for name, statement, params in statements:
                times = []
                scans: set[str] = set()
                for _ in range(EXPLAIN_REPEATS):
                    row = db.execute(
                        f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", params
                    ).fetchone()
                    if row is None:
                        raise BenchError("EXPLAIN returned no plan")
                    plan = row[0][0]
                    times.append(float(plan["Planning Time"]) + float(plan["Execution Time"]))
                    scans |= _scan_types(plan["Plan"])
                timings.append(
                    f"{name} {statistics.median(times):.2f} ms ({', '.join(sorted(scans))})"
                )
            parts.append(f"{kind}: " + ", ".join(timings))
    return (
        "PostgreSQL's own time for the statements of one _q (EXPLAIN ANALYZE, planning "
        f"included, median of {EXPLAIN_REPEATS}): " + "; ".join(parts)
    )


def _scan_types(plan: dict[str, Any]) -> set[str]:
    found = {str(plan["Node Type"])} if "Scan" in str(plan.get("Node Type", "")) else set()
    for child in plan.get("Plans", []):
        found |= _scan_types(child)
    return found


def check_query(response: RawResponse, spec: QuerySpec, stored: int) -> str | None:
    if response.status != 200:
        return f"{response.status} {response.text()}"
    try:
        document = tomllib.loads(response.body.decode())
        total = int(document["total"])
        returned = len(document["invoices"])
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        return f"unreadable response: {exc}"
    if spec.expected_total >= 0 and total != spec.expected_total:
        return f"total {total}, expected {spec.expected_total}"
    if spec.expected_total < 0 and total < stored:
        return f"total {total}, expected at least {stored}"
    if returned != min(total, 50):
        return f"{returned} invoices in the page of a total of {total}"
    return None


def stored_total(server: Server) -> int:
    response = httpx.get(
        f"{server.base_url}/v1/_q", params={"l": "1"}, timeout=30.0, trust_env=False
    )
    if response.status_code != 200:
        raise BenchError(f"_q: {response.status_code} {response.text[:300]}")
    return int(tomllib.loads(response.text)["total"])
