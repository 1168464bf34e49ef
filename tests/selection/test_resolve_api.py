"""`GET /v1/_r/resolve/ID`: the labels a selection needs, TOML or JSON, and its refusals."""

from __future__ import annotations

import json
import tomllib
from typing import Any

from fastapi.testclient import TestClient

from tests.selection.conftest import Publish
from tests.selection.invoices import multi_platform, spin_app


def _names(document: dict[str, Any]) -> list[str]:
    return [label["name"] for label in document["labels"]]


def test_resolve_spin_app_lists_global_parcels_and_required_files(
    api: TestClient, publish: Publish
) -> None:
    bindle = publish(spin_app())
    response = api.get(f"/_r/resolve/{bindle.bindle_id}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/toml")
    document = tomllib.loads(response.text)
    assert _names(document) == ["spin.toml", "hello.wasm", "static/index.html", "static/style.css"]
    assert document["groups"] == ["files-hello"]
    assert document["size"] == sum(label["size"] for label in document["labels"])
    assert document["labels"][0]["mediaType"] == "application/vnd.fermyon.spin+toml"


def test_resolve_answers_json_when_asked(api: TestClient, publish: Publish) -> None:
    bindle = publish(multi_platform())
    response = api.get(
        f"/_r/resolve/{bindle.bindle_id}",
        params={"groups": "windows-amd64"},
        headers={"Accept": "application/json"},
    )
    assert response.headers["content-type"].startswith("application/json")
    document = json.loads(response.text)
    assert _names(document) == ["README.md", "LICENSE", "bin/windows-amd64/tool.exe"]
    assert document["chosen"] == {"binary": bindle.part("bin/windows-amd64/tool.exe").sha256}


def test_resolve_takes_repeated_and_comma_separated_groups_and_features(
    api: TestClient, publish: Publish
) -> None:
    bindle = publish(multi_platform())
    response = api.get(
        f"/_r/resolve/{bindle.bindle_id}?groups=docs&features=platform.os=linux,"
        "platform.arch=arm64&features=platform.os=linux"
    )
    assert response.status_code == 200, response.text
    names = _names(tomllib.loads(response.text))
    assert "bin/linux-arm64/tool" in names and "docs/manual.html" in names
    assert names[-3:] == ["lib/libcrypto.so", "lib/libz.so", "docs/manual.html"]


def test_resolve_unsatisfiable_one_of_is_400_naming_the_rule(
    api: TestClient, publish: Publish
) -> None:
    bindle = publish(multi_platform())
    response = api.get(f"/_r/resolve/{bindle.bindle_id}?groups=linux-amd64,windows-amd64")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/toml")
    assert tomllib.loads(response.text)["error"].startswith("unsatisfiable selection (oneOf)")


def test_resolve_unknown_group_and_bad_feature_are_400(api: TestClient, publish: Publish) -> None:
    bindle = publish(spin_app())
    unknown = api.get(f"/_r/resolve/{bindle.bindle_id}?groups=nope")
    assert unknown.status_code == 400 and "(unknown group)" in unknown.text
    syntax = api.get(f"/_r/resolve/{bindle.bindle_id}?features=os-linux")
    assert syntax.status_code == 400 and "(feature syntax)" in syntax.text


def test_resolve_of_missing_bindle_is_404(api: TestClient) -> None:
    assert api.get("/_r/resolve/example.com/none/1.0.0").status_code == 404


def test_resolve_of_yanked_bindle_needs_yanked_true(api: TestClient, publish: Publish) -> None:
    bindle = publish(spin_app())
    assert api.delete(f"/_i/{bindle.bindle_id}").status_code == 200
    assert api.get(f"/_r/resolve/{bindle.bindle_id}").status_code == 403
    assert api.get(f"/_r/resolve/{bindle.bindle_id}?yanked=true").status_code == 200


def test_resolve_lists_labels_even_when_parcels_are_not_uploaded(
    api: TestClient, publish: Publish
) -> None:
    bindle = publish(spin_app(), skip=("hello.wasm",))
    response = api.get(f"/_r/resolve/{bindle.bindle_id}")
    assert response.status_code == 200
    assert "hello.wasm" in _names(tomllib.loads(response.text))


def test_resolve_head_has_length_and_no_body(api: TestClient, publish: Publish) -> None:
    bindle = publish(spin_app())
    full = api.get(f"/_r/resolve/{bindle.bindle_id}")
    head = api.head(f"/_r/resolve/{bindle.bindle_id}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(full.content))


def test_openapi_documents_the_selection_routes(api: TestClient) -> None:
    paths = api.get("http://testserver/openapi.json").json()["paths"]
    resolve = next(item for path, item in paths.items() if path.startswith("/v1/_r/resolve/"))
    archive = next(item for path, item in paths.items() if path.startswith("/v1/_r/archive/"))
    assert {p["name"] for p in resolve["get"]["parameters"]} >= {"groups", "features", "yanked"}
    assert "application/x-tar" in archive["get"]["responses"]["200"]["content"]
    assert "206" in archive["get"]["responses"]
