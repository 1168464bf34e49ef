"""Invoice endpoints through the app in-process: create, get, head, yank, missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli
from fastapi.testclient import TestClient

from bindle_server.model import Format, dump_document, parse_invoice, to_document
from tests.factories import as_submitted, make_invoice, parcel, varied_invoices

TOML = {"Content-Type": "application/toml"}


def test_create_invoice_without_parcels_returns_201_and_stored_invoice(api: TestClient) -> None:
    doc = make_invoice()
    response = api.post("/_i", content=doc.toml(), headers=TOML)
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/toml"
    body = tomli.loads(response.text)
    assert body["invoice"]["bindle"] == {"name": "example.com/hello", "version": "1.0.0"}
    assert body["missing"] == []


def test_create_invoice_with_unstored_parcels_returns_202_listing_missing(api: TestClient) -> None:
    first, second = parcel("one"), parcel("two", name="two.txt")
    response = api.post("/_i", content=make_invoice(parcels=[first, second]).toml())
    assert response.status_code == 202
    missing = tomli.loads(response.text)["missing"]
    assert [label["sha256"] for label in missing] == [first.sha256, second.sha256]
    assert missing[1] == second.label()


def test_create_invoice_is_201_when_parcels_are_stored_through_another_bindle(
    api: TestClient,
) -> None:
    shared = parcel("shared bytes")
    api.post("/_i", content=make_invoice("a", parcels=[shared]).toml())
    api.post(f"/_i/a/1.0.0@{shared.sha256}", content=shared.data)
    response = api.post("/_i", content=make_invoice("b", parcels=[shared]).toml())
    assert response.status_code == 201
    assert tomli.loads(response.text)["missing"] == []


def test_create_same_invoice_twice_returns_409(api: TestClient) -> None:
    doc = make_invoice()
    assert api.post("/_i", content=doc.toml()).status_code == 201
    response = api.post("/_i", content=doc.toml())
    assert response.status_code == 409
    assert "already exists" in tomli.loads(response.text)["error"]


def test_create_invoice_marked_yanked_returns_422(api: TestClient) -> None:
    response = api.post("/_i", content=make_invoice(yanked=True).toml())
    assert response.status_code == 422
    assert tomli.loads(response.text) == {"error": "bindle cannot be created as yanked"}
    assert api.get("/_i/example.com/hello/1.0.0").status_code == 404


def test_create_invoice_with_unknown_field_returns_400_naming_it(api: TestClient) -> None:
    response = api.post("/_i", content=make_invoice(surprise="x").toml())
    assert response.status_code == 400
    assert "surprise" in tomli.loads(response.text)["error"]


def test_create_invoice_with_bad_toml_returns_400_toml_error(api: TestClient) -> None:
    response = api.post("/_i", content=b"bindleVersion = ")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/toml"
    assert tomli.loads(response.text)["error"].startswith("invalid TOML")


def test_create_invoice_with_invalid_name_returns_400_and_stores_nothing(
    api: TestClient,
) -> None:
    response = api.post("/_i", content=make_invoice(name="../escape").toml())
    assert response.status_code == 400
    assert "segment" in tomli.loads(response.text)["error"]
    assert tomli.loads(api.get("/_q").text)["total"] == 0


def test_create_invoice_accepts_json_body(api: TestClient) -> None:
    doc = make_invoice(parcels=[parcel("x")])
    response = api.post(
        "/_i",
        content=json.dumps(doc.document()),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"
    assert response.json()["missing"][0]["sha256"] == doc.parcels[0].sha256


def test_get_invoice_returns_it_in_toml_by_default_and_json_on_request(api: TestClient) -> None:
    doc = make_invoice(parcels=[parcel("x")], annotations={"team": "core"})
    api.post("/_i", content=doc.toml())
    as_toml = api.get("/_i/example.com/hello/1.0.0")
    assert as_toml.status_code == 200
    assert as_toml.headers["content-type"] == "application/toml"
    assert as_submitted(tomli.loads(as_toml.text)) == doc.document()
    as_json = api.get("/_i/example.com/hello/1.0.0", headers={"Accept": "application/json"})
    assert as_json.headers["content-type"] == "application/json"
    body = as_json.json()
    assert body["annotations"] == {"team": "core"}
    assert body["yanked"] is None  # JSON shows absent optional fields as null, like the reference


def test_head_invoice_has_get_headers_and_no_body(api: TestClient) -> None:
    api.post("/_i", content=make_invoice().toml())
    get = api.get("/_i/example.com/hello/1.0.0")
    head = api.head("/_i/example.com/hello/1.0.0")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == get.headers["content-type"]


def test_head_unknown_invoice_is_404_like_get(api: TestClient) -> None:
    assert api.head("/_i/example.com/nothing/1.0.0").status_code == 404


def test_get_unknown_invoice_returns_404_toml_error(api: TestClient) -> None:
    response = api.get("/_i/example.com/nothing/1.0.0")
    assert response.status_code == 404
    assert "not found" in tomli.loads(response.text)["error"]


def test_get_invoice_with_invalid_id_returns_400(api: TestClient) -> None:
    for path in ("/_i/noversion", "/_i/name/1.0", "/_i/name/v1.0.0", "/_i/a/1.0.0@b@c"):
        response = api.get(path)
        assert response.status_code == 400, path
        assert tomli.loads(response.text)["error"]


def test_yank_hides_invoice_unless_yanked_true(api: TestClient) -> None:
    doc = make_invoice()
    api.post("/_i", content=doc.toml())
    response = api.delete("/_i/example.com/hello/1.0.0")
    assert response.status_code == 200
    assert tomli.loads(response.text) == {"message": "invoice yanked"}
    assert api.get("/_i/example.com/hello/1.0.0").status_code == 403
    assert api.head("/_i/example.com/hello/1.0.0").status_code == 403
    yanked = api.get("/_i/example.com/hello/1.0.0", params={"yanked": "true"})
    assert yanked.status_code == 200
    assert as_submitted(tomli.loads(yanked.text)) == {**doc.document(), "yanked": True}


def test_yank_twice_is_a_successful_no_op(api: TestClient) -> None:
    api.post("/_i", content=make_invoice().toml())
    assert api.delete("/_i/example.com/hello/1.0.0").status_code == 200
    assert api.delete("/_i/example.com/hello/1.0.0").status_code == 200


def test_yank_unknown_invoice_returns_404(api: TestClient) -> None:
    assert api.delete("/_i/example.com/nothing/1.0.0").status_code == 404


def test_recreating_a_yanked_invoice_returns_409(api: TestClient) -> None:
    doc = make_invoice()
    api.post("/_i", content=doc.toml())
    api.delete("/_i/example.com/hello/1.0.0")
    assert api.post("/_i", content=doc.toml()).status_code == 409


def test_yanked_param_must_be_a_boolean(api: TestClient) -> None:
    api.post("/_i", content=make_invoice().toml())
    response = api.get("/_i/example.com/hello/1.0.0", params={"yanked": "yes"})
    assert response.status_code == 400


def test_missing_lists_unuploaded_parcels_in_invoice_order(api: TestClient) -> None:
    parcels = [parcel("a"), parcel("b"), parcel("c")]
    api.post("/_i", content=make_invoice(parcels=parcels).toml())
    api.post(f"/_i/example.com/hello/1.0.0@{parcels[1].sha256}", content=parcels[1].data)
    response = api.get("/_r/missing/example.com/hello/1.0.0")
    assert response.status_code == 200
    missing = tomli.loads(response.text)["missing"]
    assert [label["sha256"] for label in missing] == [parcels[0].sha256, parcels[2].sha256]


def test_missing_is_an_empty_list_for_a_complete_bindle(api: TestClient) -> None:
    api.post("/_i", content=make_invoice().toml())
    response = api.get("/_r/missing/example.com/hello/1.0.0")
    assert tomli.loads(response.text) == {"missing": []}
    as_json = api.get("/_r/missing/example.com/hello/1.0.0", headers={"Accept": "application/json"})
    assert as_json.json() == {"missing": []}


def test_missing_for_yanked_or_unknown_bindle_is_403_or_404(api: TestClient) -> None:
    api.post("/_i", content=make_invoice().toml())
    api.delete("/_i/example.com/hello/1.0.0")
    assert api.get("/_r/missing/example.com/hello/1.0.0").status_code == 403
    assert api.get("/_r/missing/example.com/other/1.0.0").status_code == 404


def test_unicode_names_round_trip_through_percent_encoded_paths(api: TestClient) -> None:
    doc = make_invoice(name="example.com/käse")
    assert api.post("/_i", content=doc.toml()).status_code == 201
    response = api.get("/_i/example.com/k%C3%A4se/1.0.0")
    assert response.status_code == 200
    assert tomli.loads(response.text)["bindle"]["name"] == "example.com/käse"


def test_build_metadata_plus_works_literal_and_escaped(api: TestClient) -> None:
    doc = make_invoice(version="1.0.0+build.5")
    api.post("/_i", content=doc.toml())
    assert api.get("/_i/example.com/hello/1.0.0+build.5").status_code == 200
    assert api.get("/_i/example.com/hello/1.0.0%2Bbuild.5").status_code == 200
    assert api.get("/_i/example.com/hello/1.0.0").status_code == 404


def test_post_to_an_invoice_path_returns_405(api: TestClient) -> None:
    api.post("/_i", content=make_invoice().toml())
    response = api.post("/_i/example.com/hello/1.0.0", content=b"x")
    assert response.status_code == 405
    assert tomli.loads(response.text)["error"]


def test_unknown_route_and_method_give_toml_errors(api: TestClient) -> None:
    not_found = api.get("/nothing-here")
    assert not_found.status_code == 404
    assert "error" in tomli.loads(not_found.text)
    wrong_method = api.put("/_q")
    assert wrong_method.status_code == 405
    assert "error" in tomli.loads(wrong_method.text)


def test_healthz_reports_ok_outside_the_api_prefix(api: TestClient) -> None:
    response = api.get("http://testserver/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "OK"


def test_errors_stay_toml_when_json_is_accepted(api: TestClient) -> None:
    response = api.get("/_i/example.com/nothing/1.0.0", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/toml"
    assert "error" in tomli.loads(response.text)


def test_accept_negotiation_follows_the_reference_rules(api: TestClient) -> None:
    api.post("/_i", content=make_invoice().toml())
    cases = {
        "application/json": "application/json",
        "text/json; charset=utf-8": "application/json",
        "application/json+bindle": "application/json",
        "text/plain, application/json;q=0.1": "application/json",
        "application/toml, application/json": "application/toml",
        "*/*": "application/toml",
        "text/html": "application/toml",
    }
    for accept, expected in cases.items():
        response = api.get("/_i/example.com/hello/1.0.0", headers={"Accept": accept})
        assert response.headers["content-type"] == expected, accept


def test_error_messages_quoting_huge_input_are_truncated(api: TestClient) -> None:
    response = api.get(f"/_i/{'n' * 60_000}/1.0")
    assert response.status_code == 400
    error = tomli.loads(response.text)["error"]
    assert len(error) <= 1000
    assert error.endswith("[... truncated]")


def test_json_invoice_with_a_lone_surrogate_escape_is_refused_with_400(api: TestClient) -> None:
    body = (
        '{"bindleVersion":"1.0.0","bindle":{"name":"a","version":"1.0.0"},'
        '"annotations":{"a":"\\ud800"}}'
    )
    response = api.post("/_i", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "surrogate" in tomli.loads(response.text)["error"]


def test_label_size_contradicting_a_stored_parcel_is_refused_with_400(api: TestClient) -> None:
    stored = parcel("six b!")
    api.post("/_i", content=make_invoice("example.com/a", parcels=[stored]).toml())
    api.post(f"/_i/example.com/a/1.0.0@{stored.sha256}", content=stored.data)
    lying = make_invoice("example.com/b")
    lying.extra["parcel"] = [
        {"label": {"sha256": stored.sha256, "mediaType": "text/plain", "size": 600}}
    ]
    response = api.post("/_i", content=lying.toml())
    assert response.status_code == 400
    assert "size does not match" in tomli.loads(response.text)["error"]
    assert api.get("/_i/example.com/b/1.0.0").status_code == 404


def test_a_damaged_stored_invoice_is_a_server_error_that_names_fsck(
    api: TestClient, data_dir: Path
) -> None:
    api.post("/_i", content=make_invoice().toml())
    (stored,) = (data_dir / "invoices").glob("*/invoice.toml")
    stored.write_text("bindleVersion = [broken")
    # The worker that stored it keeps the bytes it wrote (service/rendered.py) until any
    # invoice changes; a yank of another one makes it read the damaged file.
    other = make_invoice("example.com/other")
    api.post("/_i", content=other.toml())
    assert api.delete(f"/_i/{other.bindle_id}").status_code == 200
    response = api.get("/_i/example.com/hello/1.0.0")
    assert response.status_code == 500
    assert "fsck" in tomli.loads(response.text)["error"]


def test_a_large_invoice_is_served_fresh_after_a_yank(api: TestClient) -> None:
    """Large invoices are parsed once and cached by content; a yank is a new document."""
    doc = make_invoice(parcels=[parcel(f"p{n}") for n in range(2000)])
    assert api.post("/_i", content=doc.toml()).status_code == 202
    first = doc.parcels[0]
    for _ in range(2):
        assert api.get(f"/_r/missing/{doc.bindle_id}").status_code == 200
    api.post(f"/_i/{doc.bindle_id}@{first.sha256}", content=first.data)
    assert api.delete(f"/_i/{doc.bindle_id}").status_code == 200
    assert api.get(f"/_i/{doc.bindle_id}").status_code == 403
    assert api.get(f"/_i/{doc.bindle_id}@{first.sha256}").status_code == 403


@pytest.mark.parametrize("number", range(len(varied_invoices())))
def test_a_create_answers_the_invoice_as_stored_whatever_its_shape(
    api: TestClient, number: int
) -> None:
    """The TOML answer is cut from the stored bytes (model.nested_toml), not rendered
    again: it reads as the whole answer rendered at once, missing parcels included."""
    submitted = parse_invoice(varied_invoices()[number])
    response = api.post("/_i", content=varied_invoices()[number], headers=TOML)
    assert response.status_code in (201, 202)
    path = f"/_i/{submitted.bindle.name}/{submitted.bindle.version}"
    stored = parse_invoice(api.get(path).content)
    missing = list(stored.labels)
    whole = {
        "invoice": to_document(stored, Format.TOML),
        "missing": [to_document(label, Format.TOML) for label in missing],
    }
    assert tomli.loads(response.text) == tomli.loads(dump_document(whole, Format.TOML).decode())
    assert (response.status_code == 202) == bool(missing)
