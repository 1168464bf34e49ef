#!/usr/bin/env python3
"""Garbage collection on local disk: its duration, what it frees, and reads while it runs.

Fills a fresh data directory through a real server (`--names` x `--versions` invoices,
each with three parcels of its own: 10,000 invoices and 30,000 parcels by default), then:

1. copies the data directory and runs `bindle-server gc --retention ... --gc-grace 1s
   --format json` on the copy, with nothing else running: the collection's time and what
   it frees (the policy keeps the newest half of every name's versions);
2. measures `_q` (one name term) and invoice GET latency, one request at a time, for
   `--seconds` with no collection running;
3. runs the same collection on the served directory while the same requests run: their
   latency during the collection.

Targets (issue "Bindle lifecycle"): a collection under 60 s; p99 of `_q` and GET during it
under 2 x the p99 without it. `--markdown PATH` writes the figures into PATH's
`<!-- bench:gc:... -->` section (or appends one).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import tomli_w
from bindle_bench.report import machine_facts, write_section
from bindle_bench.server import Server

PARCEL_BYTES = 2048
CONCURRENCY = 32
BEGIN, END = "<!-- bench:gc:begin (written by bench/lifecycle.py) -->", "<!-- bench:gc:end -->"


def _invoice(name: str, version: str, parcels: list[bytes]) -> bytes:
    return tomli_w.dumps(
        {
            "bindleVersion": "1.0.0",
            "bindle": {"name": name, "version": version},
            "parcel": [
                {
                    "label": {
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "mediaType": "application/octet-stream",
                        "name": f"part-{n}.bin",
                        "size": len(data),
                    }
                }
                for n, data in enumerate(parcels)
            ],
        }
    ).encode()


async def _fill(base: str, names: int, versions: int) -> None:
    jobs: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for n in range(names):
        for v in range(versions):
            jobs.put_nowait((f"bench.example.com/app{n:04d}", f"1.{v}.0"))
    done = 0
    total = jobs.qsize()

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while not jobs.empty():
            name, version = jobs.get_nowait()
            parcels = [os.urandom(PARCEL_BYTES) for _ in range(3)]
            created = await client.post(
                "/_i",
                content=_invoice(name, version, parcels),
                headers={"Content-Type": "application/toml"},
            )
            if created.status_code != 202:
                raise SystemExit(f"create failed: {created.status_code} {created.text}")
            for data in parcels:
                digest = hashlib.sha256(data).hexdigest()
                upload = await client.post(f"/_i/{name}/{version}@{digest}", content=data)
                if upload.status_code != 200:
                    raise SystemExit(f"upload failed: {upload.status_code} {upload.text}")
            done += 1
            if done % 1000 == 0:
                print(f"  {done}/{total} invoices pushed", flush=True)

    async with httpx.AsyncClient(base_url=base, timeout=120, trust_env=False) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))


def _sample(base: str, names: int, versions: int, stop: threading.Event) -> dict[str, list[float]]:
    """`_q` and GET latencies (ms), one request at a time, until `stop` is set."""
    rng = random.Random(3)
    found: dict[str, list[float]] = {"_q": [], "GET": []}
    with httpx.Client(base_url=base, timeout=60, trust_env=False) as client:
        while not stop.is_set():
            n = rng.randrange(names)
            # Versions in the newer half survive the collection: the GETs stay 200.
            version = f"1.{rng.randrange(versions // 2, versions)}.0"
            for kind, path, params in (
                ("_q", "/_q", {"q": f"app{n:04d}", "strict": "true"}),
                ("GET", f"/_i/bench.example.com/app{n:04d}/{version}", {}),
            ):
                started = time.perf_counter()
                response = client.get(path, params=params)
                found[kind].append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise SystemExit(f"{path}: {response.status_code} {response.text}")
    return found


def _collect(data: Path, policy: Path) -> tuple[dict[str, Any], float]:
    """Run `bindle-server gc` on `data`; its JSON report and the process's wall clock."""
    command = [sys.executable, "-m", "bindle_server", "gc", "--retention", str(policy)]
    command += ["--gc-grace", "1s", "--format", "json", "--no-progress", "-d", str(data)]
    started = time.perf_counter()
    collected = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if collected.returncode != 0:
        raise SystemExit(f"gc failed: {collected.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(collected.stdout)
    return report, wall


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/lifecycle.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--names", type=int, default=1000, help="bindle names")
    parser.add_argument("--versions", type=int, default=10, help="versions per name")
    parser.add_argument("--seconds", type=float, default=20.0, help="baseline sampling time")
    parser.add_argument("--markdown", type=Path, help="write the figures into this file")
    parser.add_argument(
        "--workdir", type=Path, help="where the data directory goes [default: a temp dir]"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bindle-gc-bench-", dir=args.workdir))
    data = workdir / "data"
    data.mkdir()
    server = Server(data, workdir / "server.log", 60.0, ("--log-level", "warning"))
    server.start()
    try:
        invoices = args.names * args.versions
        print(f"[1/4] pushing {invoices} invoices with {3 * invoices} parcels", flush=True)
        started = time.perf_counter()
        asyncio.run(_fill(server.base_url + "/v1", args.names, args.versions))
        print(f"  pushed in {time.perf_counter() - started:.0f} s", flush=True)
        time.sleep(1.5)  # older than the collection's one-second grace

        policy = workdir / "retention.toml"
        policy.write_text(
            tomli_w.dumps(
                {"rule": [{"prefix": "bench.example.com/", "keep_last": args.versions // 2}]}
            )
        )
        print("[2/4] bindle-server gc alone, on a copy of the data directory", flush=True)
        alone = workdir / "alone"
        shutil.copytree(data, alone)
        report, wall = _collect(alone, policy)
        shutil.rmtree(alone)

        print(f"[3/4] baseline: _q and GET for {args.seconds:g} s", flush=True)
        stop = threading.Event()
        timer = threading.Timer(args.seconds, stop.set)
        timer.start()
        baseline = _sample(server.base_url + "/v1", args.names, args.versions, stop)

        print("[4/4] bindle-server gc, with _q and GET running", flush=True)
        stop = threading.Event()
        during: dict[str, list[float]] = {}
        sampler = threading.Thread(
            target=lambda: during.update(
                _sample(server.base_url + "/v1", args.names, args.versions, stop)
            )
        )
        sampler.start()
        loaded, loaded_wall = _collect(data, policy)
        stop.set()
        sampler.join()
    finally:
        server.stop()

    rows = [
        ("Invoices / parcels before", f"{invoices:,} / {3 * invoices:,}", "", ""),
        (
            "GC: bindles / parcels removed",
            f"{report['bindles_removed']:,} / {report['parcels_removed']:,}",
            "",
            "",
        ),
        ("GC: bytes freed", f"{report['bytes_freed'] / 1024 / 1024:.1f} MiB", "", ""),
        (
            "GC alone: time (its report / process wall clock)",
            f"{report['seconds']:.1f} / {wall:.1f} s",
            "< 60 s",
            "**PASS**" if wall < 60 else "**MISS**",
        ),
        (
            "GC beside the read load below (nice 10): report / wall clock",
            f"{loaded['seconds']:.1f} / {loaded_wall:.1f} s",
            "",
            "",
        ),
    ]
    for kind in ("_q", "GET"):
        before, under = _percentile(baseline[kind], 0.99), _percentile(during[kind], 0.99)
        rows.append(
            (
                f"{kind} p50 / p99 without GC ({len(baseline[kind])} requests)",
                f"{statistics.median(baseline[kind]):.2f} / {before:.2f} ms",
                "",
                "",
            )
        )
        rows.append(
            (
                f"{kind} p50 / p99 during GC ({len(during[kind])} requests)",
                f"{statistics.median(during[kind]):.2f} / {under:.2f} ms",
                "",
                "",
            )
        )
        rows.append(
            (
                f"{kind} p99 during / without GC",
                f"{under / before:.2f} x",
                "< 2 x",
                "**PASS**" if under < 2 * before else "**MISS**",
            )
        )
    table = ["| Figure | Value | Target | Result |", "|---|---:|---|---|"]
    table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    print("\n".join(table))
    if args.markdown:
        _write(args.markdown, table)
    return 0 if all(row[3] != "**MISS**" for row in rows) else 1


def _write(path: Path, table: list[str]) -> None:
    command = "python bench/lifecycle.py --markdown bench/RESULTS.md"
    body = [
        f"- Date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        f"- Command: `{command}`",
        *(f"- {fact}" for fact in machine_facts()),
        "",
        *table,
        "",
        "GC time is the `bindle-server gc` process from spawn to exit (start-up and the index "
        "check included) and, first, the collection's own report, on a copy of the data "
        "directory with nothing else running. The same collection then runs on the served "
        "directory (at its default nice 10) while one client measures `_q` and GET latency, "
        "one request at a time, on the newer half of the versions (which the collection "
        "keeps); the baseline is the same requests just before.",
        "",
    ]
    heading = "Garbage collection on local disk (`bench/lifecycle.py`)"
    write_section(path, (BEGIN, END), heading, body)


if __name__ == "__main__":
    sys.exit(main())
