"""Property-based tests: invoices round-trip TOML and JSON; malformed bodies are a 400.

The strategies build invoices by the rules of `model/` (names per ids.py, SemVer versions,
64-hex digests, conditions that name defined groups), so every generated invoice is valid
and any failure of the round trip is a codec bug, not a strategy bug.
"""

from __future__ import annotations

import hashlib
import json
import string
from typing import Any

import httpx
import pytest
import tomli
import tomli_w
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bindle_server.model.codec import Format, dump_invoice, parse_invoice
from bindle_server.model.ids import MAX_NAME_BYTES, name_problem
from bindle_server.model.invoice import Invoice
from bindle_server.model.version import Version

# deadline=None and no speed or size health checks: a slow CI machine must not fail a
# test whose property holds. database=None: no examples folder in the working tree.
BOUNDED = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# The app (the `api` fixture) is shared by all examples of a test, which is the point:
# whatever one malformed body did must not break the next one.
THROUGH_THE_APP = settings(
    BOUNDED,
    max_examples=150,
    suppress_health_check=[*BOUNDED.suppress_health_check, HealthCheck.function_scoped_fixture],
)
MAX_INT64 = 2**63 - 1
# The statuses POST /_i may give a body that happens to be a valid invoice (section 4).
CREATE_STATUSES = {201, 202, 409, 422}

# --- strategies for valid invoices ------------------------------------------------------------

# Any character TOML and JSON can carry: everything but lone surrogates.
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
_name_segment = st.text(
    st.characters(categories=["L", "N", "M"], include_characters="_-."), min_size=1, max_size=16
).filter(lambda segment: segment not in (".", ".."))


@st.composite
def bindle_names(draw: st.DrawFn) -> str:
    name = "/".join(draw(st.lists(_name_segment, min_size=1, max_size=4)))
    # Four segments of 16 characters of up to 4 bytes each stay below the limit.
    assert len(name.encode()) <= MAX_NAME_BYTES
    return name


_number = st.integers(min_value=0, max_value=10**12).map(str)
_alphanumeric_id = st.text(
    string.ascii_letters + string.digits + "-", min_size=1, max_size=8
).filter(lambda part: not part.isdigit())
_pre_release_id = st.one_of(_number, _alphanumeric_id)
_build_id = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=8)


@st.composite
def semver_versions(draw: st.DrawFn) -> str:
    version = ".".join(draw(st.tuples(_number, _number, _number)))
    pre = draw(st.lists(_pre_release_id, max_size=3))
    build = draw(st.lists(_build_id, max_size=3))
    if pre:
        version += "-" + ".".join(pre)
    if build:
        version += "+" + ".".join(build)
    return version


digests = st.binary(max_size=64).map(lambda data: hashlib.sha256(data).hexdigest())
_media_types = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1)
_string_tables = st.dictionaries(_text, _text, max_size=3)


def _optional(document: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        document[key] = value


@st.composite
def labels(draw: st.DrawFn, sha256: str) -> dict[str, Any]:
    label: dict[str, Any] = {
        "sha256": sha256,
        "mediaType": draw(_media_types),
        "size": draw(st.integers(min_value=0, max_value=MAX_INT64)),
    }
    _optional(label, "name", draw(st.none() | _text))
    _optional(label, "annotations", draw(st.none() | _string_tables))
    _optional(
        label, "feature", draw(st.none() | st.dictionaries(_text, _string_tables, max_size=3))
    )
    _optional(label, "origin", draw(st.none() | _text))
    return label


@st.composite
def signatures(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "by": draw(_text),
        "signature": draw(_text),
        "key": draw(_text),
        "role": draw(st.sampled_from(["creator", "approver", "host", "proxy"])),
        "at": draw(st.integers(min_value=0, max_value=MAX_INT64)),
    }


@st.composite
def invoice_documents(draw: st.DrawFn, *, with_signatures: bool = True) -> dict[str, Any]:
    """A valid invoice as a wire document (camelCase keys, optional keys omitted)."""
    bindle: dict[str, Any] = {"name": draw(bindle_names()), "version": draw(semver_versions())}
    _optional(bindle, "description", draw(st.none() | _text))
    _optional(bindle, "authors", draw(st.none() | st.lists(_text, max_size=3)))
    document: dict[str, Any] = {"bindleVersion": "1.0.0", "bindle": bindle}

    group_names = draw(st.lists(_text, unique=True, max_size=4))
    # An empty `group = []` / `parcel = []` array is worth a round trip too.
    empty_arrays = draw(st.booleans())
    if group_names or empty_arrays:
        groups = []
        for name in group_names:
            group: dict[str, Any] = {"name": name}
            _optional(group, "required", draw(st.none() | st.booleans()))
            _optional(
                group,
                "satisfiedBy",
                draw(st.none() | st.sampled_from(["allOf", "oneOf", "optional"])),
            )
            groups.append(group)
        document["group"] = groups

    parcel_digests = draw(st.lists(digests, unique=True, max_size=4))
    if parcel_digests or empty_arrays:
        parcels = []
        for sha256 in parcel_digests:
            entry: dict[str, Any] = {"label": draw(labels(sha256))}
            if draw(st.booleans()):
                conditions: dict[str, Any] = {}
                referenced = st.none() | st.lists(st.sampled_from(group_names), unique=True)
                if group_names:
                    _optional(conditions, "memberOf", draw(referenced))
                    _optional(conditions, "requires", draw(referenced))
                entry["conditions"] = conditions
            parcels.append(entry)
        document["parcel"] = parcels

    _optional(document, "annotations", draw(st.none() | _string_tables))
    _optional(document, "yanked", draw(st.none() | st.booleans()))
    if with_signatures:
        _optional(document, "signature", draw(st.none() | st.lists(signatures(), max_size=2)))
        _optional(document, "yankedSignature", draw(st.none() | st.lists(signatures(), max_size=2)))
    return document


invoices = invoice_documents().map(Invoice.model_validate)

# --- the round trip ---------------------------------------------------------------------------


@BOUNDED
@given(bindle_names(), semver_versions())
def test_generated_names_and_versions_follow_the_id_rules(name: str, version: str) -> None:
    assert name_problem(name) is None
    assert str(Version.parse(version)) == version


@BOUNDED
@given(invoices)
def test_invoice_round_trips_through_toml_unchanged(invoice: Invoice) -> None:
    dumped = dump_invoice(invoice, Format.TOML)
    parsed = parse_invoice(dumped, Format.TOML)
    assert parsed == invoice
    assert dump_invoice(parsed, Format.TOML) == dumped


@BOUNDED
@given(invoices)
def test_invoice_round_trips_through_json_unchanged(invoice: Invoice) -> None:
    dumped = dump_invoice(invoice, Format.JSON)
    parsed = parse_invoice(dumped, Format.JSON)
    assert parsed == invoice
    assert dump_invoice(parsed, Format.JSON) == dumped


@BOUNDED
@given(invoices)
def test_toml_and_json_carry_the_same_invoice(invoice: Invoice) -> None:
    from_toml = parse_invoice(dump_invoice(invoice, Format.TOML), Format.TOML)
    from_json = parse_invoice(dump_invoice(invoice, Format.JSON), Format.JSON)
    assert from_toml == from_json


@BOUNDED
@given(invoice_documents())
def test_parsed_invoice_dumps_back_to_the_submitted_document(document: dict[str, Any]) -> None:
    # The stored invoice must be exactly what the client sent: nothing dropped or added.
    invoice = parse_invoice(tomli_w.dumps(document).encode(), Format.TOML)
    assert tomli.loads(dump_invoice(invoice, Format.TOML).decode()) == document
    as_json = json.loads(dump_invoice(invoice, Format.JSON))
    assert _without_nulls(as_json) == document


def _without_nulls(value: Any) -> Any:
    # JSON writes absent optional fields as null (section 1), TOML omits them.
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


# --- malformed bodies through the app ---------------------------------------------------------


def _assert_toml_error(response: httpx.Response) -> None:
    assert response.headers["content-type"] == "application/toml"
    document = tomli.loads(response.text)
    assert list(document) == ["error"]
    assert isinstance(document["error"], str)


def _post(api: TestClient, body: bytes, content_type: str = "application/toml") -> httpx.Response:
    response: httpx.Response = api.post("/_i", content=body, headers={"Content-Type": content_type})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        _assert_toml_error(response)
    return response


# Tables that refuse unknown keys, found in a document by their path.
_STRICT_TABLES = ("", "bindle", "parcel.label", "parcel.conditions", "group", "signature")
_REQUIRED_KEYS = (
    ("bindleVersion",),
    ("bindle",),
    ("bindle", "name"),
    ("bindle", "version"),
    ("parcel", "label"),
    ("parcel", "label", "sha256"),
    ("parcel", "label", "mediaType"),
    ("parcel", "label", "size"),
    ("group", "name"),
    ("signature", "by"),
    ("signature", "at"),
)


def _tables(document: dict[str, Any], path: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every table at `path`, descending into arrays of tables."""
    tables = [document]
    for key in path:
        found: list[dict[str, Any]] = []
        for table in tables:
            value = table.get(key)
            if isinstance(value, dict):
                found.append(value)
            elif isinstance(value, list):
                found.extend(item for item in value if isinstance(item, dict))
        tables = found
    return tables


def _scalar_paths(document: dict[str, Any]) -> list[tuple[dict[str, Any], str, Any]]:
    """(table, key, value) of every value in a strict table, the place to plant a wrong type."""
    places: list[tuple[dict[str, Any], str, Any]] = []
    for path in _STRICT_TABLES:
        for table in _tables(document, tuple(filter(None, path.split(".")))):
            places.extend((table, key, value) for key, value in table.items())
    return places


def _wrong_type(value: Any) -> st.SearchStrategy[Any]:
    candidates: list[st.SearchStrategy[Any]] = [
        st.integers(),
        st.floats(allow_nan=False),
        st.booleans(),
        _text,
        st.lists(st.integers(), max_size=2),
        st.dictionaries(_text, st.integers(), max_size=2),
    ]

    def differs(candidate: Any) -> bool:
        # bool is an int subclass, and a list or table differs from a value of the other shape.
        return type(candidate) is not type(value)

    return st.one_of(candidates).filter(differs)


@THROUGH_THE_APP
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_posted_as_invoice_give_400(api: TestClient, body: bytes) -> None:
    assert _post(api, body).status_code == 400


@THROUGH_THE_APP
@given(st.text(max_size=2048).map(lambda text: text.encode("utf-8", "surrogatepass")))
def test_arbitrary_text_posted_as_invoice_gives_400(api: TestClient, body: bytes) -> None:
    assert _post(api, body).status_code == 400


@THROUGH_THE_APP
@given(st.binary(max_size=1024))
def test_arbitrary_bytes_posted_as_json_invoice_give_400(api: TestClient, body: bytes) -> None:
    assert _post(api, body, "application/json").status_code == 400


@THROUGH_THE_APP
@given(invoice_documents(with_signatures=False), st.data())
def test_invoice_missing_a_required_key_gives_400(
    api: TestClient, document: dict[str, Any], data: st.DataObject
) -> None:
    present = [
        (table, path[-1])
        for path in _REQUIRED_KEYS
        for table in _tables(document, path[:-1])
        if path[-1] in table
    ]
    table, key = data.draw(st.sampled_from(present))
    del table[key]
    assert _post(api, tomli_w.dumps(document).encode()).status_code == 400


@THROUGH_THE_APP
@given(invoice_documents(with_signatures=False), st.data())
def test_invoice_with_a_wrongly_typed_value_gives_400(
    api: TestClient, document: dict[str, Any], data: st.DataObject
) -> None:
    table, key, value = data.draw(st.sampled_from(_scalar_paths(document)))
    table[key] = data.draw(_wrong_type(value))
    assert _post(api, tomli_w.dumps(document).encode()).status_code == 400


@THROUGH_THE_APP
@given(invoice_documents(with_signatures=False), st.data())
def test_invoice_with_an_unknown_key_gives_400(
    api: TestClient, document: dict[str, Any], data: st.DataObject
) -> None:
    tables = [
        table
        for path in _STRICT_TABLES
        for table in _tables(document, tuple(filter(None, path.split("."))))
    ]
    table = data.draw(st.sampled_from(tables))
    table["unknown-" + data.draw(_text)] = data.draw(_text | st.integers() | st.booleans())
    assert _post(api, tomli_w.dumps(document).encode()).status_code == 400


@st.composite
def _broken(draw: st.DrawFn, text: str) -> bytes:
    """The document with one edit: cut short, a character dropped, inserted or replaced."""
    position = draw(st.integers(min_value=0, max_value=len(text)))
    edit = draw(st.sampled_from(["cut", "drop", "insert", "replace"]))
    inserted = draw(st.sampled_from(list("[]{}=\"'\\\n#.,\x00\x7f")) | st.characters())
    if edit == "cut":
        text = text[:position]
    elif edit == "drop":
        text = text[:position] + text[position + 1 :]
    elif edit == "insert":
        text = text[:position] + inserted + text[position:]
    else:
        text = text[:position] + inserted + text[position + 1 :]
    return text.encode("utf-8", "surrogatepass")


@THROUGH_THE_APP
@given(invoice_documents(with_signatures=False), st.data())
def test_invoice_with_broken_syntax_gives_400_unless_still_valid(
    api: TestClient, document: dict[str, Any], data: st.DataObject
) -> None:
    body = data.draw(_broken(tomli_w.dumps(document)))
    response = _post(api, body)
    assert response.status_code in CREATE_STATUSES | {400}, response.text
    if response.status_code != 400:
        # Only an edit that left a valid invoice may get through.
        parse_invoice(body)


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"x = " + b"[" * 1000 + b"]" * 1000, "application/toml"),
        (b"x = " + b"{a = " * 1000 + b"}" * 1000, "application/toml"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b'{"a":' * 100_000 + b"}" * 100_000, "application/json"),
    ],
    ids=["toml-arrays", "toml-inline-tables", "json-arrays", "json-objects"],
)
def test_deeply_nested_body_gives_400(api: TestClient, body: bytes, content_type: str) -> None:
    client = TestClient(api.app, base_url="http://testserver/v1", raise_server_exceptions=False)
    response: httpx.Response = client.post(
        "/_i", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400, response.text
    _assert_toml_error(response)
