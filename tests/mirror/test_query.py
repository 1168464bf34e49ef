"""`_q?upstream=true` answers from the mirror and its upstreams, merged and de-duplicated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import tomli
from fastapi.testclient import TestClient

from tests.auth.conftest import basic, bcrypt_entry, write_policy
from tests.mirror.conftest import MirrorFactory, kill_upstream, pushed
from tests.servers import ServerProcess


def _search(server: ServerProcess, **params: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/_q", params=params)
    assert response.status_code == 200, response.text
    return tomli.loads(response.text)


def _ids(page: dict[str, Any]) -> list[str]:
    return [f"{i['bindle']['name']}/{i['bindle']['version']}" for i in page.get("invoices", [])]


def test_upstream_true_merges_local_and_upstream_results_without_duplicates(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    shared, _ = pushed(upstream, "example.com/q/shared")
    only_up, _ = pushed(upstream, "example.com/q/upstream")
    mirror = mirror_factory(upstream.url, extra=("--upstream-allow-local",))
    assert httpx.get(f"{mirror.url}/_i/{shared.bindle_id}").status_code == 200  # mirrored
    local, _ = pushed(mirror, "example.com/q/local")

    assert _ids(_search(mirror, q="example.com/q")) == [local.bindle_id, shared.bindle_id]
    merged = _search(mirror, q="example.com/q", upstream="true")
    assert _ids(merged) == [local.bindle_id, shared.bindle_id, only_up.bindle_id]
    assert merged["total"] == 3
    assert merged["more"] is False


def test_upstream_true_pages_through_the_merged_results(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        pushed(upstream, "example.com/paged", version)
    mirror = mirror_factory(upstream.url)
    first = _search(mirror, q="paged", upstream="true", l="2")
    second = _search(mirror, q="paged", upstream="true", l="2", o="2")
    assert _ids(first) == ["example.com/paged/1.0.0", "example.com/paged/1.1.0"]
    assert first["more"] is True
    assert _ids(second) == ["example.com/paged/1.2.0"]


def test_upstream_true_leaves_out_upstream_yanked_bindles_unless_asked(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    doc, _ = pushed(upstream, "example.com/gone")
    assert httpx.delete(f"{upstream.url}/_i/{doc.bindle_id}").status_code == 200
    mirror = mirror_factory(upstream.url)
    assert _ids(_search(mirror, q="gone", upstream="true")) == []
    assert _ids(_search(mirror, q="gone", upstream="true", yanked="true")) == [doc.bindle_id]


def test_upstream_true_answers_from_the_mirror_alone_while_the_upstream_is_down(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    doc, _ = pushed(upstream, "example.com/q/kept")
    mirror = mirror_factory(upstream.url)
    assert httpx.get(f"{mirror.url}/_i/{doc.bindle_id}").status_code == 200
    kill_upstream(upstream)
    assert _ids(_search(mirror, q="example.com/q", upstream="true")) == [doc.bindle_id]


def test_upstream_must_be_true_or_false(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    mirror = mirror_factory(upstream.url)
    assert httpx.get(f"{mirror.url}/_q", params={"upstream": "yes"}).status_code == 400


def test_upstream_true_on_a_server_without_upstreams_answers_from_its_own_store(
    api: TestClient,
) -> None:
    response = api.get("/_q", params={"upstream": "true"})
    assert response.status_code == 200
    assert tomli.loads(response.text)["total"] == 0


def test_upstream_true_lists_only_what_the_caller_may_read_here(
    upstream: ServerProcess, mirror_factory: MirrorFactory, tmp_path: Path
) -> None:
    """The upstream answers the mirror, not the caller: the mirror's own policy filters."""
    team, _ = pushed(upstream, "example.com/team/app")
    pushed(upstream, "example.com/other/app")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(bcrypt_entry("bob", "bob-secret") + "\n")
    policy = write_policy(
        tmp_path / "policy.toml",
        {"subjects": ["user:bob"], "prefixes": ["example.com/team/"], "verbs": ["read"]},
    )
    mirror = mirror_factory(
        upstream.url, extra=("--htpasswd-file", str(htpasswd), "--auth-policy", str(policy))
    )
    url = f"{mirror.url}/_q"
    params = {"q": "example.com", "upstream": "true"}
    assert httpx.get(url, params=params).status_code == 401
    answer = httpx.get(url, params=params, headers=basic("bob", "bob-secret"))
    assert answer.status_code == 200, answer.text
    page = tomli.loads(answer.text)
    assert _ids(page) == [team.bindle_id]
    assert page["total"] == 1
