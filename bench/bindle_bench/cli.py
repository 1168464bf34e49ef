"""Command line: `python bench/run.py [options]` (see --help)."""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

from bindle_bench.backends import BACKENDS, DISK, SCALE_OUT, Backend, make_backend
from bindle_bench.benchmark import benchmark, make_server, scan_server_log
from bindle_bench.common import CURL, DEFAULTS, INTERRUPTS, MIN_RUNS, BenchError
from bindle_bench.invoices import QUERY_GROUPS
from bindle_bench.peer import PEER_NOTES, PEERS
from bindle_bench.queries import MIN_QUERIES, QUERY_WARMUP
from bindle_bench.registry import registry_binary, registry_version
from bindle_bench.report import (
    NOTES,
    SCALE_OUT_NOTES,
    Report,
    Results,
    machine_facts,
    text_table,
    write_markdown,
)
from bindle_bench.server import Server


def positive(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return parse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except for options whose help already says what happens without them."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py",
        description=(
            "Benchmark a real bindle-server process (python -m bindle_server) on a free "
            "127.0.0.1 port with a fresh temporary data directory, and print the figures "
            "beside their targets with PASS/MISS. Measured: parcel upload and download "
            "with curl (median of --runs, a new invoice and random parcel each run), the "
            "server's peak RSS growth during each transfer, single-core hashlib.sha256 and "
            "the upload/hashlib ratio, invoice create/s and GET/s with --concurrency "
            "connections, _q latency p50/p99 with --invoices stored, and the start-up time "
            "with those invoices on disk (median of --restarts). --backend s3+postgresql "
            "measures the same on the scale-out backend (parcels and invoices in an S3 "
            "bucket, the index on PostgreSQL), plus the S3 engine's own PUT and GET rates "
            "for the same object size without the server. --peer docker-registry then "
            "measures the server side by side with Debian's docker-registry (CNCF "
            "distribution) on loopback: invoice create and GET against manifest PUT and GET, "
            "driven by the same client in alternating rounds, with their ratios."
        ),
        epilog=(
            "Targets: upload >= 0.5 x hashlib rate; download >= 1024 MiB/s; RSS growth < 100 "
            "MiB per transfer; _q p99 < 10 ms; start-up < 1 s at 10,000 invoices; with "
            "--peer, this server / docker-registry >= 2 for GET/s and >= 1 for create/s. Exit "
            "status: 0 all targets met, 1 some target missed, 2 the benchmark failed. "
            "Needs /usr/bin/curl and about 2 x --size-mib x --runs MiB of free disk in the "
            "work directory. --backend s3+postgresql without --storage/--index starts a "
            "throwaway single-host Ceph RGW (its OSD keeps data in RAM: about (--runs + 2) x "
            "--size-mib MiB + 1 GiB, or CEPH_MEMSTORE_BYTES) and PostgreSQL with "
            "scripts/ceph-rgw and scripts/postgres (as root), and stops them at the end, also "
            "on Ctrl-C. --markdown PATH replaces only this backend's section of a results file "
            "that has one (between <!-- bench:BACKEND:... --> markers) and appends one to a "
            "file with other backends' sections; any other file is overwritten. Full "
            "configuration: python bench/run.py --markdown bench/RESULTS.md "
            "[--backend s3+postgresql]"
        ),
        formatter_class=HelpFormatter,
    )
    add = parser.add_argument
    add(
        "--backend",
        choices=BACKENDS,
        help=f"what the server stores data in: {DISK} (the data directory; the default) or "
        f"{SCALE_OUT} (an S3 bucket and a PostgreSQL index; --storage/--index imply it)",
    )
    add(
        "--storage",
        metavar="URL",
        help="s3://BUCKET/PREFIX?endpoint=URL of a running S3 server, with an empty prefix "
        "(credentials from the AWS_* variables), instead of a throwaway Ceph RGW; needs --index",
    )
    add(
        "--index",
        metavar="URL",
        help="postgresql://... of an empty database on a running PostgreSQL, instead of a "
        "throwaway one; needs --storage",
    )
    add("--size-mib", type=positive(1), default=DEFAULTS["size_mib"], help="parcel size in MiB")
    add(
        "--runs",
        type=positive(MIN_RUNS),
        default=DEFAULTS["runs"],
        help="upload/download runs; each figure is their median",
    )
    add("--hash-mib", type=positive(1), default=DEFAULTS["hash_mib"], help="hashlib buffer, MiB")
    add(
        "--invoices",
        type=positive(QUERY_GROUPS),
        default=DEFAULTS["invoices"],
        help="invoices stored for the _q and start-up measurements",
    )
    add(
        "--creates",
        type=positive(1),
        default=DEFAULTS["creates"],
        help="invoices created for create/s (at most --invoices; they count towards it)",
    )
    add("--gets", type=positive(1), default=DEFAULTS["gets"], help="invoice GETs for GET/s")
    add(
        "--concurrency",
        type=positive(1),
        default=DEFAULTS["concurrency"],
        help="concurrent connections for creates and GETs",
    )
    add(
        "--queries",
        type=positive(MIN_QUERIES),
        default=DEFAULTS["queries"],
        help=f"measured sequential _q queries (after {QUERY_WARMUP} unmeasured warm-up ones)",
    )
    add(
        "--restarts",
        type=positive(1),
        default=DEFAULTS["restarts"],
        help="restarts for the start-up time",
    )
    add(
        "--peer",
        choices=PEERS,
        help="also measure side by side with this peer: docker-registry (from PATH; started "
        "on a free loopback port with a throwaway configuration and storage in the work "
        "directory). Its manifest PUT/s and GET/s are measured against invoice create/s and "
        "GET/s (--creates, --gets, --concurrency) in alternating rounds. Skipped, with a "
        "line saying so, when docker-registry is not installed. Local disk only",
    )
    add(
        "--peer-rounds",
        type=positive(1),
        default=DEFAULTS["peer_rounds"],
        help="rounds of the side-by-side comparison; each ratio is the median of the rounds'",
    )
    add(
        "--workers",
        type=positive(1),
        help="pass --workers N to the server (default: the server's own default)",
    )
    add(
        "--markdown",
        type=Path,
        metavar="PATH",
        help="also write the results as Markdown (with --peer, the comparison goes into a "
        "section of its own, <!-- bench:docker-registry:... -->)",
    )
    add(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="parent of the temporary work directory (default: the system temp directory)",
    )
    add("--keep", action="store_true", help="keep the work directory (data and server log)")
    add("--server-log-level", help="pass --log-level to the server (default: its own)")
    add(
        "--server-access-log",
        action="store_true",
        help="leave the server's access log on (default: --no-access-log, the one change "
        "to its defaults that issue 16's targets allow; docker-registry runs without one)",
    )
    add("--start-timeout", type=float, default=60.0, help="seconds to wait for /healthz")
    add(
        "--transfer-timeout",
        type=float,
        help="seconds allowed per curl transfer (default: 60 + 1 s per 4 MiB)",
    )
    add(
        "--phase-timeout",
        type=float,
        default=900.0,
        help="seconds allowed for each create/GET/query phase",
    )
    args = parser.parse_args(argv)
    if (args.storage is None) != (args.index is None):
        parser.error("--storage and --index go together: give both or neither")
    if args.storage is not None and args.backend == DISK:
        parser.error("--storage and --index are for --backend s3+postgresql")
    if args.backend is None:
        args.backend = DISK if args.storage is None else SCALE_OUT
    if args.peer is not None and args.backend != DISK:
        parser.error("--peer compares with the local disk backend only")
    if args.transfer_timeout is None:
        args.transfer_timeout = 60.0 + args.size_mib / 4
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.access(CURL, os.X_OK):
        print(f"{CURL} is needed", file=sys.stderr)
        return 2
    command = "python " + shlex.join(sys.argv if argv is None else ["bench/run.py", *argv])
    started = datetime.datetime.now(datetime.UTC)

    INTERRUPTS.install()

    facts = machine_facts()
    print("\n".join(facts), flush=True)
    peer: tuple[str, Results] | None = None
    if args.peer is not None:
        binary = registry_binary()
        if binary is None:
            print(
                f"{args.peer} is not installed (not on PATH): the side-by-side comparison "
                f"with it is skipped",
                flush=True,
            )
        else:
            peer = (binary, Results())
    workdir = Path(tempfile.mkdtemp(prefix="bindle-bench-", dir=args.workdir))
    results = Results()
    backend: Backend | None = None
    server: Server | None = None
    try:
        backend = make_backend(args, workdir)
        backend.start()
        server = make_server(args, workdir, backend)
        benchmark(args, server, workdir, results, backend, peer)
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        if server is not None:
            print(f"server log tail:\n{server.log_tail()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        name = INTERRUPTS.received[0] if INTERRUPTS.received else "SIGINT"
        engines = "" if backend is None or backend.key == DISK else " and the engines"
        print(f"\ninterrupted ({name}); stopping the server{engines}", file=sys.stderr)
        return 130
    finally:
        # Clean-up runs to its end: a second Ctrl-C is recorded, not raised.
        with INTERRUPTS.deferred():
            if server is not None:
                server.stop()
                scan_server_log(server, results)
            if backend is not None:
                for problem in backend.stop():
                    results.problem(problem)
            if args.keep:
                print(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)

    notes = NOTES if backend.key == DISK else NOTES + SCALE_OUT_NOTES
    print()
    print(text_table(results.rows))
    print()
    print(textwrap.fill(notes, width=100))
    if results.problems:
        print("\nProblems observed:")
        print("\n".join(f"- {text}" for text in results.problems))
    if peer is not None:
        print(f"\nSide by side with {args.peer}:\n")
        print(text_table(peer[1].rows))
        if peer[1].problems:
            print("\nProblems observed:")
            print("\n".join(f"- {text}" for text in peer[1].problems))
    if args.markdown is not None:
        report = Report(
            backend.key,
            backend.heading,
            backend.title,
            notes,
            [*facts, *backend.facts],
            server.version,
            command,
            started,
        )
        how = write_markdown(args.markdown, results, report, args)
        print(f"\n{how} {args.markdown}")
        if peer is not None:
            peer_report = Report(
                args.peer,
                f"Side by side with docker-registry (`--peer {args.peer}`)",
                f"side by side with {args.peer}",
                PEER_NOTES,
                [*facts, *backend.facts, f"Peer: {registry_version(peer[0])} (Debian's package)"],
                server.version,
                command,
                started,
            )
            how = write_markdown(args.markdown, peer[1], peer_report, args, append=True)
            print(f"{how} {args.markdown}")
    rows = [*results.rows, *(peer[1].rows if peer is not None else [])]
    return 1 if any(row.verdict == "MISS" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
