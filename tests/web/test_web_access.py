"""The UI under authentication: the API's access rules, and yank/purge forms with CSRF."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import tomli
from fastapi.testclient import TestClient

from bindle_server.api.app import create_app
from bindle_server.auth import TokenFile
from bindle_server.config import Settings
from tests.auth.conftest import USERS, basic, bcrypt_entry, write_policy
from tests.factories import make_invoice
from tests.web.pages_support import Element, parse_page, push

ALICE = basic("alice", "alice-secret")  # everything: read; team: yank and purge
BOB = basic("bob", "bob-secret")  # team and public: read only
TEAM = "example.com/team/"
POLICY = [
    {"subjects": ["user:alice"], "prefixes": ["*"], "verbs": ["read", "create"]},
    {"subjects": ["user:alice"], "prefixes": [TEAM], "verbs": ["yank", "purge"]},
    {"subjects": ["user:bob"], "prefixes": [TEAM, "public/"], "verbs": ["read"]},
]
BINDLES = [f"{TEAM}app", f"{TEAM}lib", "example.com/other/app", "public/tools"]
TEAM_APP = f"{TEAM}app/1.0.0"


@pytest.fixture
def htpasswd_file(tmp_path: Path) -> Path:
    path = tmp_path / "htpasswd"
    path.write_text("".join(f"{bcrypt_entry(user, secret)}\n" for user, secret in USERS.items()))
    return path


@pytest.fixture
def ui(
    settings_factory: Callable[..., Settings], htpasswd_file: Path, tmp_path: Path
) -> Iterator[TestClient]:
    """A server with users, a policy and anonymous read off, holding BINDLES at 1.0.0
    and 2.0.0."""
    policy = write_policy(tmp_path / "policy.toml", *POLICY)
    settings = settings_factory(htpasswd_file=htpasswd_file, auth_policy=policy)
    with TestClient(create_app(settings)) as client:
        for name in BINDLES:
            for version in ("1.0.0", "2.0.0"):
                push(client, make_invoice(name, version), **ALICE)
        yield client


def _page(client: TestClient, path: str, headers: dict[str, str]) -> Element:
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return parse_page(response.text)


def _is_yanked(client: TestClient, bindle_id: str) -> bool:
    answer = client.get(f"/v1/_i/{bindle_id}", params={"yanked": "true"}, headers=ALICE)
    assert answer.status_code == 200, answer.text
    return bool(tomli.loads(answer.text).get("yanked"))


@pytest.mark.parametrize(
    "path",
    ["/", "/server", f"/bindle/{TEAM}app", f"/invoice/{TEAM_APP}", f"/invoice/{TEAM_APP}/yank"],
)
def test_anonymous_browser_gets_a_401_html_page_with_the_basic_challenge(
    ui: TestClient, path: str
) -> None:
    response = ui.get(path)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert 'Basic realm="bindle"' in response.headers.get_list("www-authenticate")[0]
    assert "Content-Security-Policy" in response.headers
    assert parse_page(response.text).by_id("error-message").text


def test_wrong_password_gets_the_401_page_too(ui: TestClient) -> None:
    response = ui.get("/", headers=basic("alice", "wrong"))
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["www-authenticate"].startswith("Basic")


def test_a_user_sees_only_the_names_they_may_read_in_search_versions_and_counts(
    ui: TestClient,
) -> None:
    page = _page(ui, "/", BOB)
    names = {a.text for a in page.find_all("a", "bindle-link")}
    assert names == {f"{TEAM}app", f"{TEAM}lib", "public/tools"}
    assert page.find_all("p", "count")[0].text.startswith("6 invoices")
    assert not [row for row in page.find_all("tr", "result") if "other" in row.text]
    assert _page(ui, "/?q=app", BOB).find_all("a", "bindle-link")[0].text == f"{TEAM}app"
    assert {a.text for a in _page(ui, "/?q=app", ALICE).find_all("a", "bindle-link")} == {
        f"{TEAM}app",
        "example.com/other/app",
    }

    server = _page(ui, "/server", BOB)
    assert server.by_id("invoice-count").text == "6"
    assert _page(ui, "/server", ALICE).by_id("invoice-count").text == "8"

    for path in ("/bindle/example.com/other/app", "/invoice/example.com/other/app/1.0.0"):
        refused = ui.get(path, headers=BOB)
        assert refused.status_code == 403, path
        assert refused.headers["content-type"].startswith("text/html")
        assert "other/app" not in parse_page(refused.text).by_id("main").text.replace(
            "may not read example.com/other/app", ""
        )
    versions = _page(ui, f"/bindle/{TEAM}app", BOB).find_all("a", "invoice-link")
    assert [a.text for a in versions] == ["2.0.0", "1.0.0"]


def test_yank_and_purge_links_are_shown_only_to_callers_allowed_to_use_them(
    ui: TestClient,
) -> None:
    alice_team = _page(ui, f"/invoice/{TEAM_APP}", ALICE)
    assert alice_team.by_id("yank").attrs["href"] == f"/invoice/{TEAM_APP}/yank"
    assert alice_team.by_id("purge").attrs["href"] == f"/invoice/{TEAM_APP}/purge"
    alice_other = _page(ui, "/invoice/example.com/other/app/1.0.0", ALICE)
    assert not alice_other.has_id("yank") and not alice_other.has_id("purge")
    bob_team = _page(ui, f"/invoice/{TEAM_APP}", BOB)
    assert not bob_team.has_id("yank") and not bob_team.has_id("purge")
    # The confirmation pages refuse them as well.
    assert ui.get(f"/invoice/{TEAM_APP}/yank", headers=BOB).status_code == 403
    assert ui.get("/invoice/example.com/other/app/1.0.0/purge", headers=ALICE).status_code == 403


def _confirmation(client: TestClient, action: str) -> str:
    page = _page(client, f"/invoice/{TEAM_APP}/{action}", ALICE)
    form = page.by_id(f"confirm-{action}")
    assert form.attrs["method"] == "post"
    assert form.attrs["action"] == f"/invoice/{TEAM_APP}/{action}"
    (field,) = [i for i in form.find_all("input") if i.attrs.get("name") == "csrf"]
    assert field.attrs["type"] == "hidden"
    return field.attrs["value"]


def test_yank_through_the_form_with_its_csrf_token_yanks(ui: TestClient) -> None:
    token = _confirmation(ui, "yank")
    cookie = ui.cookies.get("bindle_csrf")
    assert cookie == token
    set_cookie = ui.get(f"/invoice/{TEAM}lib/1.0.0/yank", headers=ALICE)
    assert "set-cookie" not in set_cookie.headers  # the same token serves every form
    answer = ui.post(f"/invoice/{TEAM_APP}/yank", data={"csrf": token}, headers=ALICE)
    assert answer.status_code == 200, answer.text
    assert "yanked" in parse_page(answer.text).by_id("result").text
    assert _is_yanked(ui, TEAM_APP)


def test_confirmation_sets_a_strict_httponly_cookie(ui: TestClient) -> None:
    response = ui.get(f"/invoice/{TEAM_APP}/yank", headers=ALICE)
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie


@pytest.mark.parametrize(
    ("form", "cookie", "origin"),
    [
        ({}, True, None),  # no token in the form
        ({"csrf": "x" * 43}, True, None),  # a wrong token
        ({"csrf": "SAME"}, False, None),  # no cookie
        ({"csrf": "SAME"}, True, "https://evil.example"),  # sent from another site
    ],
    ids=["missing-token", "wrong-token", "missing-cookie", "foreign-origin"],
)
def test_yank_without_a_matching_csrf_token_is_refused_with_403_and_yanks_nothing(
    ui: TestClient, form: dict[str, str], cookie: bool, origin: str | None
) -> None:
    token = _confirmation(ui, "yank")
    if not cookie:
        ui.cookies.clear()
    data = {key: token if value == "SAME" else value for key, value in form.items()}
    headers = {**ALICE, **({"Origin": origin} if origin else {})}
    answer = ui.post(f"/invoice/{TEAM_APP}/yank", data=data, headers=headers)
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("text/html")
    assert not _is_yanked(ui, TEAM_APP)


def test_yank_by_a_caller_without_the_right_is_refused_even_with_a_token(
    ui: TestClient,
) -> None:
    token = _confirmation(ui, "yank")
    assert ui.post(f"/invoice/{TEAM_APP}/yank", data={"csrf": token}).status_code == 401
    denied = ui.post(f"/invoice/{TEAM_APP}/yank", data={"csrf": token}, headers=BOB)
    assert denied.status_code == 403
    assert not _is_yanked(ui, TEAM_APP)


def test_purge_through_the_form_removes_the_invoice(ui: TestClient) -> None:
    token = _confirmation(ui, "purge")
    answer = ui.post(f"/invoice/{TEAM_APP}/purge", data={"csrf": token}, headers=ALICE)
    assert answer.status_code == 200, answer.text
    assert "purged" in parse_page(answer.text).by_id("result").text
    assert ui.get(f"/v1/_i/{TEAM_APP}", headers=ALICE).status_code == 404
    assert ui.get(f"/invoice/{TEAM_APP}", headers=ALICE).status_code == 404


def test_purge_is_refused_on_a_server_without_authentication(
    settings_factory: Callable[..., Settings],
) -> None:
    with TestClient(create_app(settings_factory())) as client:
        push(client, make_invoice("example.com/app", "1.0.0"))
        assert not parse_page(client.get("/invoice/example.com/app/1.0.0").text).has_id("purge")
        refused = client.get("/invoice/example.com/app/1.0.0/purge")
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")


def test_a_token_only_server_offers_browsers_no_basic_challenge(
    settings_factory: Callable[..., Settings], data_dir: Path
) -> None:
    # The README says so: with only bearer tokens, a browser cannot sign in.
    tokens = TokenFile()
    token = tokens.create("ci", None, datetime.now(UTC))
    tokens.save(data_dir / "tokens.toml")
    with TestClient(create_app(settings_factory())) as client:
        refused = client.get("/")
        assert refused.status_code == 401
        assert refused.headers.get_list("www-authenticate") == ['Bearer realm="bindle"']
        assert refused.headers["content-type"].startswith("text/html")
        assert client.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
