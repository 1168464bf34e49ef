"""Prometheus metrics: what a server counts, and the text a `/metrics` scrape returns.

One `Metrics` per app. In a single process its values live in a registry of its own, so
that apps built side by side (as tests do) count apart. Under `serve --workers N`,
`PROMETHEUS_MULTIPROC_DIR` is set before any worker starts (cli/server/serve.py), so
prometheus_client keeps each process's values in files there and a scrape, which any
one worker answers, sums them all: one set for the whole server.

The stored-state gauges are no process's values: each scrape reads them from the index,
which every worker (and every node, on PostgreSQL) shares, and keeps them a few seconds
so that frequent scrapes cost one query at most (a change this process makes drops them
at once; another worker's shows within those seconds).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bindle_server.events import Action, Event
from bindle_server.events.model import CHANGES
from bindle_server.search import Index
from bindle_server.search.index import IndexTotals

MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNROUTED = "unrouted"
"""The route label of requests no route matched, or that middleware answered first."""
# Seconds: API calls take milliseconds, parcel transfers up to minutes.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_REFUSAL_REASONS = frozenset({"digest", "size", "not listed", "disk full"})
_TOTALS_TTL = 5.0


def multiprocess() -> bool:
    """Whether values go to the shared files of `serve --workers N`."""
    return bool(os.environ.get(MULTIPROCESS_DIRECTORY))


class Metrics:
    """The counters and histograms of one server (every worker process of it)."""

    def __init__(self) -> None:
        self._shared = multiprocess()
        if self._shared:
            # prometheus_client picks where values live when it is first imported; the
            # server imports it before it forks its workers and sets the directory, so
            # the choice is made again here, in the worker.
            values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        # None: not registered anywhere; in multiprocess mode the values are in files.
        self.registry = None if self._shared else CollectorRegistry()
        registry = self.registry

        def counter(name: str, text: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, text, labels, registry=registry)

        self.requests = counter(
            "bindle_http_requests", "HTTP requests answered", ("route", "method", "status")
        )
        self.latency = Histogram(
            "bindle_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer",
            ("route", "method"),
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.received = counter(
            "bindle_http_received_bytes", "Request body bytes received", ("route",)
        )
        self.sent = counter("bindle_http_sent_bytes", "Response body bytes sent", ("route",))
        self.refused = counter(
            "bindle_parcel_uploads_refused",
            "Parcel uploads refused, by reason: digest, size, not listed, disk full",
            ("reason",),
        )
        self.parcels_stored = counter("bindle_parcels_uploaded", "Parcels uploaded and stored")
        self.invoices = {
            Action.INVOICE_CREATED: counter("bindle_invoices_created", "Invoices created"),
            Action.INVOICE_COMPLETED: counter(
                "bindle_invoices_completed", "Invoices whose parcels are all stored"
            ),
            Action.INVOICE_YANKED: counter("bindle_invoices_yanked", "Invoices yanked"),
            Action.INVOICE_PURGED: counter("bindle_invoices_purged", "Invoices purged"),
            Action.PENDING_EXPIRED: counter(
                "bindle_pending_expired", "Pending invoices expired unfinished"
            ),
        }
        self.gc_runs = counter("bindle_gc_runs", "Garbage collection runs completed")
        self.gc_bindles = counter("bindle_gc_removed_bindles", "Bindles garbage collection removed")
        self.gc_parcels = counter("bindle_gc_removed_parcels", "Parcels garbage collection removed")
        self.gc_bytes = counter("bindle_gc_removed_bytes", "Parcel bytes garbage collection freed")
        self.auth_failures = counter(
            "bindle_auth_failures", "Requests refused for bad or expired credentials"
        )
        self._totals: tuple[float, IndexTotals] | None = None

    def observe_request(
        self, route: str, method: str, status: int, received: int, sent: int, seconds: float
    ) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)
        if received:
            self.received.labels(route).inc(received)
        if sent:
            self.sent.labels(route).inc(sent)

    def count(self, event: Event) -> None:
        """Count what one event says happened."""
        action = event.action
        if action in CHANGES:
            self._totals = None  # this process changed them: the next scrape reads afresh
        if action in self.invoices:
            self.invoices[action].inc()
        elif action is Action.PARCEL_STORED:
            self.parcels_stored.inc()
        elif action is Action.PARCEL_REFUSED:
            reason = event.result if event.result in _REFUSAL_REASONS else "other"
            self.refused.labels(reason).inc()
        elif action is Action.GC_RUN:
            self.gc_runs.inc()
            self.gc_bindles.inc(int(event.detail.get("bindles", 0)))
        elif action is Action.GC_REMOVED:
            # Per parcel rather than from the run's summary: a run that fails half-way
            # has still removed what it removed.
            self.gc_parcels.inc()
            self.gc_bytes.inc(int(event.detail.get("size", 0)))
        elif action is Action.AUTH_REFUSED:
            self.auth_failures.inc()

    async def exposition(self, index: Index) -> bytes:
        """The scrape: every process's values, then the index's totals."""
        now = time.monotonic()
        if self._totals is None or now - self._totals[0] > _TOTALS_TTL:
            self._totals = (now, await index.totals())
        stored = CollectorRegistry()
        stored.register(_StoredTotals(self._totals[1]))
        return generate_latest(self._values()) + generate_latest(stored)

    def _values(self) -> CollectorRegistry:
        if self.registry is not None:
            return self.registry
        # Imported here, not at start-up: only the process answering a scrape needs it.
        from prometheus_client.multiprocess import MultiProcessCollector

        # Its constructor has no annotations: typed here, by what it is called with.
        sum_processes: Callable[[CollectorRegistry], object] = MultiProcessCollector
        registry = CollectorRegistry()
        sum_processes(registry)
        return registry


class EventCounter:
    """The metrics' event sink: counts, and never refuses a change (best effort)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def ready(self) -> None:
        return None

    async def record(self, event: Event) -> None:
        self._metrics.count(event)

    async def close(self) -> None:
        return None


class _StoredTotals(Collector):
    def __init__(self, totals: IndexTotals) -> None:
        self._totals = totals

    def collect(self) -> Iterator[Metric]:
        invoices = GaugeMetricFamily(
            "bindle_invoices_stored",
            "Invoices in the index, by state: committed, yanked, pending, removing",
            labels=["state"],
        )
        for state in ("committed", "yanked", "pending", "removing"):
            invoices.add_metric([state], self._totals.invoices.get(state, 0))
        yield invoices
        yield GaugeMetricFamily(
            "bindle_parcels_stored", "Parcels stored", value=self._totals.parcels
        )
        yield GaugeMetricFamily(
            "bindle_parcels_stored_bytes",
            "Bytes of the parcels stored",
            value=self._totals.parcel_bytes,
        )
