"""Local pushes to names the mirror serves from upstream are refused, unless allowed."""

from __future__ import annotations

import httpx
import tomli

from tests.factories import make_invoice
from tests.mirror.conftest import MirrorFactory, kill_upstream, pushed
from tests.servers import ServerProcess


def test_a_local_push_of_a_name_the_upstream_serves_is_refused_with_403(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    doc, _ = pushed(upstream)
    mirror = mirror_factory(upstream.url)
    response = httpx.post(f"{mirror.url}/_i", content=make_invoice(doc.name, "2.0.0").toml())
    assert response.status_code == 403
    error = tomli.loads(response.text)["error"]
    assert doc.name in error and "--upstream-allow-local" in error
    assert httpx.get(f"{upstream.url}/_i/{doc.name}/2.0.0").status_code == 404


def test_a_local_push_of_a_name_the_upstream_lacks_is_stored(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    pushed(upstream, "example.com/upstream-only")
    mirror = mirror_factory(upstream.url)
    # A name that only contains the upstream's name as a search term is not its name.
    local = make_invoice("example.com/upstream-only-fork", "1.0.0")
    response = httpx.post(f"{mirror.url}/_i", content=local.toml())
    assert response.status_code == 201, response.text
    assert httpx.get(f"{mirror.url}/_i/{local.bindle_id}").status_code == 200


def test_upstream_allow_local_accepts_pushes_of_names_the_upstream_serves(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    doc, _ = pushed(upstream)
    mirror = mirror_factory(upstream.url, extra=("--upstream-allow-local",))
    local = make_invoice(doc.name, "2.0.0")
    assert httpx.post(f"{mirror.url}/_i", content=local.toml()).status_code == 201
    assert httpx.get(f"{mirror.url}/_i/{local.bindle_id}").status_code == 200


def test_a_push_is_refused_with_503_while_the_upstream_cannot_be_asked(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    mirror = mirror_factory(upstream.url)
    kill_upstream(upstream)
    response = httpx.post(f"{mirror.url}/_i", content=make_invoice().toml())
    assert response.status_code == 503
    assert "cannot tell" in tomli.loads(response.text)["error"]
