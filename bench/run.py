#!/usr/bin/env python3
"""Benchmark a real bindle-server process on a loopback port.

Starts `python -m bindle_server` on a fresh temporary data directory and measures parcel
upload and download throughput (with curl), the server's RSS growth per transfer, invoice
create and GET rates under concurrency, `_q` latency with many invoices stored, and the
start-up time with those invoices on disk. Prints a table with the targets and PASS/MISS;
`--markdown PATH` also writes it as Markdown. `--backend s3+postgresql` measures the same
on the scale-out backend (an S3 bucket and a PostgreSQL index, on throwaway engines the
benchmark starts and stops). `--peer docker-registry` then measures the server side by side
with Debian's docker-registry: invoice create and GET against manifest PUT and GET, with
their ratios. See `python bench/run.py --help`.

The code is in the `bindle_bench` package beside this file:

    common      constants, targets, helpers, signal handling
    server      the server process, its RSS and CPU sampler
    backends    disk, or S3 + PostgreSQL (throwaway or running engines)
    engines     scripts/ceph-rgw and scripts/postgres: start, stop, CPU accounting
    ceiling     the S3 engine's own PUT/GET rates, without the server
    transfers   upload and download with curl, hashlib
    invoices    invoice documents and the query corpus
    rawhttp     the minimal keep-alive HTTP/1.1 client of the rate phases
    rates       invoice create/s and GET/s
    registry    the peer docker-registry: its process, blobs and manifest requests
    peer        side by side with the peer (--peer docker-registry): rounds and ratios
    queries     `_q` latency
    report      rows, text table, Markdown
    benchmark   the phases in order
    cli         options and main()
"""

from __future__ import annotations

import sys

from bindle_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
