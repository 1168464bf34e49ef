"""`GET /v1/_r/archive/ID`: the selection as a deterministic tar, cached, ranged, refused."""

from __future__ import annotations

import io
import tarfile
import tomllib

import pytest
from fastapi.testclient import TestClient

from bindle_server.model import parse_invoice
from tests.selection.conftest import Publish
from tests.selection.invoices import Bindle, Part, multi_platform, spin_app


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        files: dict[str, bytes] = {}
        for member in archive.getmembers():
            extracted = archive.extractfile(member)
            assert extracted is not None and member.isfile()
            files[member.name] = extracted.read()
        return files


def test_archive_without_selection_holds_the_invoice_and_every_parcel_by_name(
    api: TestClient, publish: Publish
) -> None:
    bindle = publish(multi_platform())
    response = api.get(f"/_r/archive/{bindle.bindle_id}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-tar"
    assert response.headers["content-length"] == str(len(response.content))
    assert 'filename="example.com-tool-1.0.0.tar"' in response.headers["content-disposition"]
    files = _members(response.content)
    assert files.pop("invoice.toml") == api.get(f"/_i/{bindle.bindle_id}").content
    assert files == {part.name: part.data for part in bindle.parts}


def test_archive_of_a_selection_holds_only_its_parcels(api: TestClient, publish: Publish) -> None:
    bindle = publish(multi_platform())
    response = api.get(
        f"/_r/archive/{bindle.bindle_id}",
        params={"features": ["platform.os=linux", "platform.arch=arm64"]},
    )
    files = _members(response.content)
    assert sorted(files) == [
        "LICENSE",
        "README.md",
        "bin/linux-arm64/tool",
        "invoice.toml",
        "lib/libcrypto.so",
        "lib/libz.so",
    ]
    assert parse_invoice(files["invoice.toml"]).bindle_id.key == bindle.invoice().bindle_id.key


def test_same_selection_gives_the_same_bytes_and_etag_and_another_differs(
    api: TestClient, publish: Publish
) -> None:
    bindle = publish(spin_app())
    url = f"/_r/archive/{bindle.bindle_id}"
    first, second = api.get(url), api.get(url)
    assert first.content == second.content
    assert first.headers["etag"] == second.headers["etag"]
    assert first.headers["etag"].startswith('"')
    # No selection means every parcel; naming a group means only what it needs.
    other = api.get(url, params={"groups": "files-hello"})
    assert other.headers["etag"] != first.headers["etag"]
    assert "admin/panel.html" in _members(first.content)
    assert "admin/panel.html" not in _members(other.content)


def test_if_none_match_answers_304_with_validators_and_no_body(
    api: TestClient, publish: Publish
) -> None:
    bindle = publish(spin_app())
    url = f"/_r/archive/{bindle.bindle_id}"
    etag = api.get(url).headers["etag"]
    cached = api.get(url, headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b""
    assert cached.headers["etag"] == etag
    assert cached.headers["cache-control"] == "public, no-cache"
    assert api.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_yank_changes_the_etag_and_makes_the_archive_final(
    api: TestClient, publish: Publish
) -> None:
    bindle = publish(spin_app())
    url = f"/_r/archive/{bindle.bindle_id}"
    live = api.get(url)
    assert api.delete(f"/_i/{bindle.bindle_id}").status_code == 200
    assert api.get(url).status_code == 403
    yanked = api.get(url, params={"yanked": "true"})
    assert yanked.status_code == 200
    assert yanked.headers["etag"] != live.headers["etag"]
    assert "immutable" in yanked.headers["cache-control"]
    assert tomllib.loads(_members(yanked.content)["invoice.toml"].decode())["yanked"] is True


def test_interrupted_download_resumes_with_range_and_if_range(
    api: TestClient, publish: Publish
) -> None:
    bindle = publish(multi_platform())
    url = f"/_r/archive/{bindle.bindle_id}"
    whole = api.get(url)
    etag, size = whole.headers["etag"], len(whole.content)
    assert whole.headers["accept-ranges"] == "bytes"
    head = api.get(url, headers={"Range": "bytes=0-1500"})
    assert head.status_code == 206
    assert head.headers["content-range"] == f"bytes 0-1500/{size}"
    rest = api.get(url, headers={"Range": f"bytes={len(head.content)}-", "If-Range": etag})
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes 1501-{size - 1}/{size}"
    assert head.content + rest.content == whole.content


def test_if_range_with_a_stale_etag_sends_the_whole_archive(
    api: TestClient, publish: Publish
) -> None:
    bindle = publish(spin_app())
    url = f"/_r/archive/{bindle.bindle_id}"
    whole = api.get(url).content
    stale = api.get(url, headers={"Range": "bytes=100-", "If-Range": '"stale"'})
    assert stale.status_code == 200 and stale.content == whole


def test_range_past_the_end_is_416_with_the_size(api: TestClient, publish: Publish) -> None:
    bindle = publish(spin_app())
    url = f"/_r/archive/{bindle.bindle_id}"
    size = len(api.get(url).content)
    response = api.get(url, headers={"Range": f"bytes={size}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"


def test_head_gives_length_and_etag_without_body(api: TestClient, publish: Publish) -> None:
    bindle = publish(spin_app())
    url = f"/_r/archive/{bindle.bindle_id}"
    whole = api.get(url)
    head = api.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(whole.content))
    assert head.headers["etag"] == whole.headers["etag"]


def test_missing_selected_parcel_is_404_before_any_byte(api: TestClient, publish: Publish) -> None:
    bindle = publish(spin_app(), skip=("static/style.css", "admin/panel.html"))
    response = api.get(f"/_r/archive/{bindle.bindle_id}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/toml")
    error = tomllib.loads(response.text)["error"]
    assert "2 selected parcel(s)" in error and "'static/style.css'" in error
    # A selection that does not need the missing parcels is complete, so it is served.
    bindle_b = publish(spin_app("2.0.0"), skip=("admin/panel.html",))
    assert api.get(f"/_r/archive/{bindle_b.bindle_id}?groups=files-hello").status_code == 200


def test_unsatisfiable_selection_is_400(api: TestClient, publish: Publish) -> None:
    bindle = publish(multi_platform())
    response = api.get(f"/_r/archive/{bindle.bindle_id}?groups=linux-amd64,windows-amd64")
    assert response.status_code == 400 and "(oneOf)" in response.text


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        (["../escape"], "'..' segment"),
        (["/etc/passwd"], "absolute"),
        (["a\\b"], "backslash"),
        (["line\nbreak"], "control character"),
        (["invoice.toml"], "the archive's own invoice file"),
        (["a", "a/b"], "another selected parcel is inside it"),
        (["dir/"], "empty or '.' segment"),
    ],
)
def test_names_that_cannot_be_archive_paths_are_400(
    api: TestClient, publish: Publish, names: list[str], problem: str
) -> None:
    parts = tuple(Part(name, f"data {n}".encode()) for n, name in enumerate(names))
    bindle = publish(Bindle("example.com/unsafe", "1.0.0", parts, ()))
    response = api.get(f"/_r/archive/{bindle.bindle_id}")
    assert response.status_code == 400
    error = tomllib.loads(response.text)["error"]
    assert "cannot be archived by name" in error and problem in error


def test_two_parcels_with_one_name_are_400(api: TestClient, publish: Publish) -> None:
    parts = (Part("same", b"one"), Part("same", b"two"))
    bindle = publish(Bindle("example.com/dup", "1.0.0", parts, ()))
    response = api.get(f"/_r/archive/{bindle.bindle_id}")
    assert response.status_code == 400 and "two selected parcels have it" in response.text


def test_unnamed_parcel_is_archived_under_its_digest(api: TestClient, publish: Publish) -> None:
    part = Part(None, b"anonymous bytes")
    bindle = publish(Bindle("example.com/anon", "1.0.0", (part,), ()))
    files = _members(api.get(f"/_r/archive/{bindle.bindle_id}").content)
    assert files[part.sha256] == b"anonymous bytes"


def test_archive_of_missing_bindle_is_404(api: TestClient) -> None:
    assert api.get("/_r/archive/example.com/none/1.0.0").status_code == 404


def test_non_ascii_bindle_name_is_offered_as_an_encoded_file_name(
    api: TestClient, publish: Publish
) -> None:
    bindle = publish(Bindle("example.com/résumé", "1.0.0", (Part("cv.txt", b"cv"),), ()))
    response = api.get(f"/_r/archive/{bindle.bindle_id}")
    assert response.status_code == 200
    disposition = response.headers["content-disposition"]
    assert "filename*=UTF-8''example.com-r%C3%A9sum%C3%A9-1.0.0.tar" in disposition


def test_whole_archive_is_served_even_when_the_default_selection_is_unsatisfiable(
    api: TestClient, publish: Publish
) -> None:
    # A required oneOf group without members: no selection can be resolved, yet the
    # whole bindle (no groups, no features) applies no rule.
    groups = ({"name": "pick", "required": True, "satisfiedBy": "oneOf"},)
    bindle = publish(Bindle("example.com/odd", "1.0.0", (Part("a", b"a"),), groups))
    assert api.get(f"/_r/resolve/{bindle.bindle_id}").status_code == 400
    assert "a" in _members(api.get(f"/_r/archive/{bindle.bindle_id}").content)
