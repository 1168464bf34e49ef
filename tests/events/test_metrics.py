"""`/metrics`: scraped and parsed with prometheus_client's own parser, from live servers
and in-process apps on both backends."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from bindle_server.api.app import create_app
from bindle_server.auth import Policy, TokenFile
from bindle_server.config import Settings
from bindle_server.errors import InvalidAuthConfig
from bindle_server.lifecycle.collector import CollectorSettings, collect
from bindle_server.model import BindleId
from tests.auth.conftest import bearer, write_policy
from tests.factories import make_invoice, parcel
from tests.lifecycle.conftest import TOML, push
from tests.servers import ServerProcess

App = Callable[..., TestClient]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# How long a live server's other worker may show index totals it read before a change.
GAUGE_DEADLINE = 15.0


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("bindle_"), family.name
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape_live(server: ServerProcess, headers: dict[str, str] | None = None) -> Samples:
    answer = httpx.get(f"{server.base_url}/metrics", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == CONTENT_TYPE
    return parse(answer.text)


def scrape(api: TestClient) -> Samples:
    answer = api.get("http://testserver/metrics")
    assert answer.status_code == 200, answer.text
    return parse(answer.text)


def stored(samples: Samples) -> tuple[float, float, float]:
    return (
        value(samples, "bindle_invoices_stored", state="committed"),
        value(samples, "bindle_parcels_stored"),
        value(samples, "bindle_parcels_stored_bytes"),
    )


def test_two_workers_report_one_set_that_a_push_moves(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    server = server_factory(None, "--workers", "2", env={"TMPDIR": str(temporary)})
    # The workers' shared values: a directory of this run's own, gone when it ends.
    assert [path.name[:15] for path in temporary.iterdir()] == ["bindle-metrics-"]
    before = scrape_live(server)
    assert stored(before) == (0, 0, 0)
    first, second = parcel("first parcel"), parcel(b"\x00" * 1000)
    doc = make_invoice("example.com/metered", "1.0.0", parcels=[first, second])
    created = httpx.post(f"{server.url}/_i", content=doc.toml(), headers=TOML)
    assert created.status_code == 202
    for item in (first, second):
        url = f"{server.url}/_i/{doc.bindle_id}@{item.sha256}"
        assert httpx.post(url, content=item.data).status_code == 200
    queries = 12  # fresh connections: the two workers share them out between them
    for _ in range(queries):
        assert httpx.get(f"{server.url}/_q").status_code == 200

    after = scrape_live(server)
    create = {"route": "/v1/_i", "method": "POST"}
    upload = {"route": "/v1/_i/{path:path}", "method": "POST"}
    query = {"route": "/v1/_q", "method": "GET", "status": "200"}
    name = "bindle_http_requests_total"
    assert value(after, name, **create, status="202") - value(before, name, **create) == 1
    assert value(after, name, **upload, status="200") == 2
    # Every worker's requests, summed: one set for the server, not one worker's share.
    assert value(after, name, **query) - value(before, name, **query) == queries
    assert value(after, "bindle_http_request_duration_seconds_count", **upload) == 2
    assert value(after, "bindle_invoices_created_total") == 1
    assert value(after, "bindle_invoices_completed_total") == 1
    assert value(after, "bindle_parcels_uploaded_total") == 2
    received = value(after, "bindle_http_received_bytes_total", route="/v1/_i/{path:path}")
    assert received == first.size + second.size
    assert value(after, "bindle_http_received_bytes_total", route="/v1/_i") == len(doc.toml())
    assert value(after, "bindle_http_sent_bytes_total", route="/v1/_q") > 0
    # No raw paths or made-up methods as labels: they would grow without bound.
    assert not any(doc.name in dict(labels).get("route", "") for _, labels in after)
    assert httpx.request("PROPFIND", f"{server.url}/_q").status_code == 405
    unusual = scrape_live(server)
    assert value(unusual, name, route="/v1/_q", method="other", status="405") == 1

    want = (1, 2, first.size + second.size)
    deadline = time.monotonic() + GAUGE_DEADLINE
    while stored(after) != want and time.monotonic() < deadline:
        time.sleep(0.2)
        after = scrape_live(server)
    assert stored(after) == want
    server.stop()
    assert list(temporary.iterdir()) == []


def test_refusals_yanks_purges_and_collections_are_counted(app_factory: App) -> None:
    api = app_factory()
    kept, doomed = parcel("kept"), parcel("doomed parcel")
    doc = make_invoice("example.com/counted", "1.0.0", parcels=[kept, doomed])
    assert api.post("/_i", content=doc.toml(), headers=TOML).status_code == 202
    target = f"/_i/{doc.bindle_id}@{doomed.sha256}"
    assert api.post(target, content=b"x" * doomed.size).status_code >= 400  # wrong digest
    assert api.post(target, content=doomed.data + b"!").status_code >= 400  # wrong size
    stranger = parcel("not in the invoice")
    refused = api.post(f"/_i/{doc.bindle_id}@{stranger.sha256}", content=stranger.data)
    assert refused.status_code >= 400
    counted = scrape(api)
    for reason in ("digest", "size", "not listed"):
        assert value(counted, "bindle_parcel_uploads_refused_total", reason=reason) == 1
    assert stored(counted) == (1, 0, 0)

    for item in (kept, doomed):
        assert api.post(f"/_i/{doc.bindle_id}@{item.sha256}", content=item.data).is_success
    other = make_invoice("example.com/counted", "2.0.0", parcels=[kept])
    push(api, other)
    assert stored(scrape(api)) == (2, 2, kept.size + doomed.size)

    assert api.delete(f"/_i/{other.bindle_id}").status_code == 200
    service = api.app.state.service  # type: ignore[attr-defined]
    assert api.portal is not None
    api.portal.call(service.purge, BindleId.parse(doc.bindle_id))
    api.portal.call(collect, service, CollectorSettings(grace=0.0))
    after = scrape(api)
    assert value(after, "bindle_invoices_yanked_total") == 1
    assert value(after, "bindle_invoices_purged_total") == 1
    assert value(after, "bindle_gc_runs_total") == 1
    assert value(after, "bindle_gc_removed_parcels_total") == 1
    assert value(after, "bindle_gc_removed_bytes_total") == doomed.size
    # The kept parcel is still listed by the yanked invoice.
    assert value(after, "bindle_invoices_stored", state="yanked") == 1
    assert stored(after) == (0, 1, kept.size)


def test_parcels_stored_before_the_index_recorded_them_are_counted(
    settings_factory: Callable[..., Settings], data_dir: Path
) -> None:
    item = parcel("stored earlier")
    with TestClient(create_app(settings_factory()), base_url="http://testserver/v1") as api:
        push(api, make_invoice("example.com/older", "1.0.0", parcels=[item]))
    # A data directory from before parcels were recorded on disk, or with a lost index.
    for index_file in data_dir.glob("index.sqlite3*"):
        index_file.unlink()
    with TestClient(create_app(settings_factory()), base_url="http://testserver/v1") as api:
        assert stored(scrape(api)) == (1, 1, item.size)


def _token(data: Path, name: str) -> str:
    path = data / "tokens.toml"
    tokens = TokenFile.load(path) if path.exists() else TokenFile()
    value = tokens.create(name, None, datetime.now(UTC))
    tokens.save(path)
    return value


def test_with_authentication_scraping_needs_the_metrics_verb(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    prometheus, ci = _token(data, "prometheus"), _token(data, "ci")
    policy = write_policy(
        tmp_path / "policy.toml",
        {"subjects": ["token:prometheus"], "verbs": ["metrics"]},
        {"subjects": ["token:ci"], "prefixes": ["*"], "verbs": ["read", "create"]},
    )
    server = server_factory(data, "--auth-policy", str(policy), "--anonymous-read")
    metrics = f"{server.base_url}/metrics"
    anonymous = httpx.get(metrics)
    assert anonymous.status_code == 401  # anonymous read does not reach the metrics
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(metrics, headers=bearer(ci)).status_code == 403
    before = scrape_live(server, bearer(prometheus))
    for _ in range(2):
        assert httpx.get(f"{server.url}/_q", headers=bearer("bindle_wrong")).status_code == 401
    assert httpx.get(metrics, headers=bearer("bindle_wrong")).status_code == 401
    after = scrape_live(server, bearer(prometheus))
    failures = "bindle_auth_failures_total"
    assert value(after, failures) - value(before, failures) == 3
    denied = value(
        after, "bindle_http_requests_total", route="/metrics", method="GET", status="403"
    )
    assert denied == 1


def test_without_a_policy_every_authenticated_caller_may_scrape(
    settings_factory: Callable[..., Settings], data_dir: Path
) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    token = _token(data_dir, "anyone")
    app = create_app(settings_factory(anonymous_read=True))
    with TestClient(app, base_url="http://testserver") as api:
        assert api.get("/metrics").status_code == 401
        assert api.get("/metrics", headers=bearer(token)).status_code == 200


def test_a_policy_grants_metrics_to_named_subjects_only() -> None:
    policy = Policy.from_document({"rule": [{"subjects": ["user:prom"], "verbs": ["metrics"]}]})
    assert policy.rules[0].prefixes == ("*",)
    with pytest.raises(InvalidAuthConfig, match="only be granted read"):
        Policy.from_document({"rule": [{"subjects": ["anonymous"], "verbs": ["metrics"]}]})
    with pytest.raises(InvalidAuthConfig, match="prefixes"):  # names bindles: needs prefixes
        Policy.from_document({"rule": [{"subjects": ["user:x"], "verbs": ["metrics", "read"]}]})
