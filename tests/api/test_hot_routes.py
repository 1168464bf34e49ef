"""Invoice creates and reads and `_q` are served by plain Starlette routes ahead of the
FastAPI ones (api/hot.py), without FastAPI's per-request dependency solving; the OpenAPI
document still describes them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fastapi.routing
import pytest
from fastapi.testclient import TestClient

from bindle_server.api.app import create_app
from bindle_server.config import Settings

INVOICE = b"""bindleVersion = "1.0.0"

[bindle]
name = "example.com/fast"
version = "1.0.0"
"""


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests FastAPI solved dependencies for."""
    seen: list[str] = []
    original = fastapi.routing.solve_dependencies  # type: ignore[attr-defined]

    async def counting(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["request"].url.path)
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return seen


@pytest.fixture
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(settings_factory()), base_url="http://testserver/v1") as api:
        yield api


def test_creates_reads_and_queries_skip_fastapis_dependency_solving(
    client: TestClient, solved: list[str]
) -> None:
    assert client.get("/bindle-keys").status_code == 200
    assert solved == ["/v1/bindle-keys"]  # FastAPI's routes still solve theirs

    created = client.post("/_i", content=INVOICE, headers={"Content-Type": "application/toml"})
    assert created.status_code == 201
    assert b'name = "example.com/fast"' in created.content
    refused = client.post("/_i", content=b"not toml", headers={"Content-Type": "application/toml"})
    assert refused.status_code == 400
    assert refused.content.startswith(b"error = ")

    path = "/_i/example.com/fast/1.0.0"
    answered = client.get(path)
    assert answered.status_code == 200
    assert b'name = "example.com/fast"' in answered.content
    assert client.head(path).status_code == 200
    etag = answered.headers["ETag"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/_i/example.com/fast/9.9.9").status_code == 404

    found = client.get("/_q", params={"q": "fast"})
    assert found.status_code == 200
    assert b'name = "example.com/fast"' in found.content
    assert client.head("/_q").status_code == 200
    bad = client.get("/_q", params={"l": "256"})
    assert bad.status_code == 400
    assert bad.content.startswith(b"error = ")
    assert solved == ["/v1/bindle-keys"]


def test_other_methods_on_the_same_path_reach_the_fastapi_routes(client: TestClient) -> None:
    created = client.post("/_i", content=INVOICE, headers={"Content-Type": "application/toml"})
    assert created.status_code == 201
    yanked = client.delete("/_i/example.com/fast/1.0.0")
    assert yanked.status_code == 200
    assert client.get("/_i/example.com/fast/1.0.0").status_code == 403
    assert client.get("/_i/example.com/fast/1.0.0?yanked=true").status_code == 200


def test_the_openapi_document_still_describes_reads(client: TestClient) -> None:
    document = client.get("http://testserver/openapi.json").json()
    operations = document["paths"]["/v1/_i/{path}"]
    assert {"get", "head", "post", "delete"} <= set(operations)
    assert {"get", "head"} <= set(document["paths"]["/v1/_q"])
    assert "q" in {
        parameter["name"] for parameter in document["paths"]["/v1/_q"]["get"]["parameters"]
    }


def test_request_metrics_name_the_routes_templates(client: TestClient) -> None:
    created = client.post("/_i", content=INVOICE, headers={"Content-Type": "application/toml"})
    assert created.status_code == 201
    assert client.get("/_i/example.com/fast/1.0.0").status_code == 200
    assert client.get("/_q").status_code == 200
    exposed = client.get("http://testserver/metrics").text
    requests = [line for line in exposed.splitlines() if line.startswith("bindle_http_requests")]
    assert any('route="/v1/_i"' in line and 'method="POST"' in line for line in requests)
    assert any('route="/v1/_i/{path:path}"' in line and 'method="GET"' in line for line in requests)
    assert any('route="/v1/_q"' in line and 'method="GET"' in line for line in requests)
