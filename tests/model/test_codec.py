"""The byte boundary: TOML and JSON in and out, without losing or inventing fields."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import tomli

from bindle_server.errors import InvalidInvoice
from bindle_server.model.codec import (
    Format,
    dump_document,
    dump_invoice,
    error_document,
    load_document,
    parse_invoice,
    to_document,
)
from bindle_server.model.invoice import Invoice

README = b"# Hello\n"
README_SHA256 = hashlib.sha256(README).hexdigest()
SERVER = b"\x00asm\x01\x00\x00\x00"
SERVER_SHA256 = hashlib.sha256(SERVER).hexdigest()
CLIENT = b"console.log('hi')\n"
CLIENT_SHA256 = hashlib.sha256(CLIENT).hexdigest()

MINIMAL = """\
bindleVersion = "1.0.0"

[bindle]
name = "example.com/hello"
version = "1.0.0"
"""

# Every field the format knows, each table kind at least once.
FULL = f"""\
bindleVersion = "1.0.0"
yanked = false

[bindle]
name = "example.com/weather/käse"
version = "1.2.3-rc.1+build.5"
description = "A weather app, with \\"quotes\\" and a\\nnewline"
authors = ["Ann Author <ann@example.com>", "Bob"]

[annotations]
"bindle.dev/readme" = "README.md"
"example.com/team" = "weather"

[[parcel]]
[parcel.label]
sha256 = "{README_SHA256}"
mediaType = "text/markdown"
name = "README.md"
size = {len(README)}
origin = "example.com/docs 0.1.0"
[parcel.label.annotations]
"bindle.dev/readme" = "true"
"bindle.dev/license" = "Apache-2.0"

[[parcel]]
[parcel.label]
sha256 = "{SERVER_SHA256}"
mediaType = "application/wasm"
name = "server.wasm"
size = {len(SERVER)}
[parcel.label.feature.wasm]
ram = "128"
wasi = "true"
[parcel.label.feature.empty]
[parcel.conditions]
memberOf = ["server"]
requires = ["client"]

[[parcel]]
[parcel.label]
sha256 = "{CLIENT_SHA256}"
mediaType = "text/javascript"
size = {len(CLIENT)}
[parcel.conditions]

[[group]]
name = "server"
required = true
satisfiedBy = "oneOf"

[[group]]
name = "client"
required = false
satisfiedBy = "optional"

[[group]]
name = "cli"
satisfiedBy = "allOf"

[[signature]]
by = "Ann Author <ann@example.com>"
signature = "T0cBfR7M4pJeZ8vd1n6Qy9XbLq0rHKt+Lq8oPMsaHmA="
key = "ZDhhZmRjY2U3MTI0ZmFkMmM5Yg=="
role = "creator"
at = 1611960337

[[signature]]
by = "Host <host@example.com>"
signature = "c2lnbmF0dXJlLTI="
key = "a2V5LTI="
role = "host"
at = 1611960400
"""

YANKED = (
    MINIMAL.replace('bindleVersion = "1.0.0"', 'bindleVersion = "1.0.0"\nyanked = true')
    + """
[[yankedSignature]]
by = "Host <host@example.com>"
signature = "eWFuaw=="
key = "a2V5"
role = "host"
at = 1700000000
"""
)

DOCUMENTS = {"minimal": MINIMAL, "full": FULL, "yanked": YANKED}


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def _null_paths(value: Any, path: str = "") -> set[str]:
    if isinstance(value, dict):
        paths: set[str] = set()
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            paths |= {child} if item is None else _null_paths(item, child)
        return paths
    if isinstance(value, list):
        return set().union(*(_null_paths(item, f"{path}[{i}]") for i, item in enumerate(value)))
    return set()


# Reading


def test_full_invoice_parses_every_field() -> None:
    invoice = parse_invoice(FULL.encode())

    assert invoice.is_yanked is False
    assert invoice.yanked is False
    assert invoice.bindle.name == "example.com/weather/käse"
    assert invoice.bindle.description == 'A weather app, with "quotes" and a\nnewline'
    assert invoice.bindle.authors == ["Ann Author <ann@example.com>", "Bob"]
    assert invoice.annotations == {
        "bindle.dev/readme": "README.md",
        "example.com/team": "weather",
    }
    readme, server, client = invoice.parcels
    assert readme.label.origin == "example.com/docs 0.1.0"
    assert readme.label.annotations == {
        "bindle.dev/readme": "true",
        "bindle.dev/license": "Apache-2.0",
    }
    assert readme.conditions is None
    assert server.label.feature == {"wasm": {"ram": "128", "wasi": "true"}, "empty": {}}
    assert server.conditions is not None
    assert server.conditions.member_of == ["server"]
    assert server.conditions.requires == ["client"]
    assert client.label.name is None
    assert client.conditions is not None
    assert client.conditions.member_of is None
    assert client.conditions.requires is None
    assert [(g.name, g.required, g.satisfied_by) for g in invoice.groups] == [
        ("server", True, "oneOf"),
        ("client", False, "optional"),
        ("cli", None, "allOf"),
    ]
    assert invoice.signature is not None
    assert [(s.role, s.at) for s in invoice.signature] == [
        ("creator", 1611960337),
        ("host", 1611960400),
    ]


@pytest.mark.parametrize("fmt", list(Format))
def test_invalid_utf8_is_an_invalid_invoice(fmt: Format) -> None:
    prefix = b'bindleVersion = "1.0.0"\n# '

    with pytest.raises(InvalidInvoice, match=rf"not valid UTF-8 \(byte {len(prefix)}\)"):
        parse_invoice(prefix + b"\xff\xfe broken\n", fmt)


def test_utf16_body_is_an_invalid_invoice() -> None:
    with pytest.raises(InvalidInvoice, match="UTF-8"):
        parse_invoice(MINIMAL.encode("utf-16"))


@pytest.mark.parametrize(
    "text",
    [
        "bindleVersion = \n",
        "[bindle\n",
        'bindleVersion = "1.0.0"\nbindleVersion = "1.0.0"\n',
        "this is not toml",
        '{"bindleVersion": "1.0.0"}',
        MINIMAL + "[bindle]\n",
    ],
)
def test_invalid_toml_is_an_invalid_invoice_naming_the_position(text: str) -> None:
    with pytest.raises(InvalidInvoice) as caught:
        parse_invoice(text.encode())

    assert caught.value.message.startswith("invalid TOML: ")
    assert "line" in caught.value.message


def test_an_empty_toml_body_misses_every_required_field() -> None:
    with pytest.raises(InvalidInvoice) as caught:
        parse_invoice(b"")

    assert "bindleVersion: required field is missing" in caught.value.message
    assert "bindle: required field is missing" in caught.value.message


@pytest.mark.parametrize("text", ["{", "", "nope", '{"a": 1,}'])
def test_invalid_json_is_an_invalid_invoice(text: str) -> None:
    with pytest.raises(InvalidInvoice, match=r"^invalid JSON: "):
        parse_invoice(text.encode(), Format.JSON)


@pytest.mark.parametrize("text", ["[]", '"invoice"', "1", "null"])
def test_json_that_is_not_an_object_is_an_invalid_invoice(text: str) -> None:
    with pytest.raises(InvalidInvoice, match="the body must be an object"):
        parse_invoice(text.encode(), Format.JSON)


def test_load_document_returns_the_plain_toml_document() -> None:
    assert load_document(MINIMAL.encode(), Format.TOML) == {
        "bindleVersion": "1.0.0",
        "bindle": {"name": "example.com/hello", "version": "1.0.0"},
    }


def test_json_reads_null_as_an_absent_optional_field() -> None:
    document = {
        "bindleVersion": "1.0.0",
        "yanked": None,
        "yankedSignature": None,
        "bindle": {"name": "example.com/hello", "version": "1.0.0", "description": None},
        "annotations": None,
        "parcel": [
            {
                "label": {
                    "sha256": README_SHA256,
                    "mediaType": "text/markdown",
                    "name": None,
                    "size": len(README),
                },
                "conditions": None,
            }
        ],
        "group": None,
        "signature": None,
    }

    invoice = parse_invoice(json.dumps(document).encode(), Format.JSON)

    assert invoice.yanked is None
    assert invoice.parcels[0].label.name is None
    assert invoice.parcels[0].conditions is None


@pytest.mark.parametrize("size", ["1.0", '"8"', "true", "-1", str(2**63)])
def test_json_size_must_be_a_non_negative_64_bit_integer(size: str) -> None:
    text = (
        '{"bindleVersion": "1.0.0", "bindle": {"name": "a", "version": "1.0.0"}, '
        f'"parcel": [{{"label": {{"sha256": "{README_SHA256}", "mediaType": "text/plain", '
        f'"size": {size}}}}}]}}'
    )

    with pytest.raises(InvalidInvoice, match=r"^invalid invoice: parcel\[0\]\.label\.size: "):
        parse_invoice(text.encode(), Format.JSON)


def test_json_refuses_unknown_fields_like_toml() -> None:
    text = '{"bindleVersion": "1.0.0", "bindle": {"name": "a", "version": "1.0.0", "x": 1}}'

    with pytest.raises(InvalidInvoice, match=r"bindle\.x: unknown field"):
        parse_invoice(text.encode(), Format.JSON)


def test_json_refuses_snake_case_yanked_signature() -> None:
    text = (
        '{"bindleVersion": "1.0.0", "bindle": {"name": "a", "version": "1.0.0"}, '
        '"yanked_signature": []}'
    )

    with pytest.raises(InvalidInvoice, match="yanked_signature: unknown field"):
        parse_invoice(text.encode(), Format.JSON)


# Round trips


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_toml_round_trip_gives_an_equal_model_and_the_same_document(name: str) -> None:
    original = DOCUMENTS[name]
    invoice = parse_invoice(original.encode())

    dumped = dump_invoice(invoice, Format.TOML)
    again = parse_invoice(dumped, Format.TOML)

    assert again == invoice
    assert to_document(again, Format.TOML) == to_document(invoice, Format.TOML)
    # Nothing lost and nothing invented compared with what was sent.
    assert tomli.loads(dumped.decode()) == tomli.loads(original)


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_json_round_trip_gives_an_equal_model_and_the_same_document(name: str) -> None:
    invoice = parse_invoice(DOCUMENTS[name].encode())

    dumped = dump_invoice(invoice, Format.JSON)
    again = parse_invoice(dumped, Format.JSON)

    assert again == invoice
    assert to_document(again, Format.JSON) == to_document(invoice, Format.JSON)
    assert json.loads(dumped) == to_document(invoice, Format.JSON)
    # Apart from the nulls, the JSON document is the TOML document that was sent.
    assert _without_nulls(json.loads(dumped)) == tomli.loads(DOCUMENTS[name])


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_toml_to_json_to_toml_gives_the_same_bytes(name: str) -> None:
    invoice = parse_invoice(DOCUMENTS[name].encode())
    toml_bytes = dump_invoice(invoice, Format.TOML)

    through_json = parse_invoice(dump_invoice(invoice, Format.JSON), Format.JSON)

    assert dump_invoice(through_json, Format.TOML) == toml_bytes
    assert dump_invoice(parse_invoice(toml_bytes), Format.TOML) == toml_bytes


def test_toml_omits_absent_optional_fields() -> None:
    dumped = dump_invoice(parse_invoice(MINIMAL.encode()), Format.TOML).decode()

    assert tomli.loads(dumped) == {
        "bindleVersion": "1.0.0",
        "bindle": {"name": "example.com/hello", "version": "1.0.0"},
    }
    for absent in ("yanked", "annotations", "parcel", "group", "signature", "description"):
        assert absent not in dumped


def test_json_writes_absent_optional_fields_as_null() -> None:
    document = json.loads(dump_invoice(parse_invoice(MINIMAL.encode()), Format.JSON))

    assert document == {
        "bindleVersion": "1.0.0",
        "yanked": None,
        "yankedSignature": None,
        "bindle": {
            "name": "example.com/hello",
            "version": "1.0.0",
            "description": None,
            "authors": None,
        },
        "annotations": None,
        "parcel": None,
        "group": None,
        "signature": None,
    }


def test_json_of_the_full_invoice_has_nulls_exactly_where_fields_are_absent() -> None:
    document = json.loads(dump_invoice(parse_invoice(FULL.encode()), Format.JSON))

    assert _null_paths(document) == {
        "yankedSignature",
        "parcel[0].conditions",
        "parcel[0].label.feature",
        "parcel[1].label.annotations",
        "parcel[1].label.origin",
        "parcel[2].label.name",
        "parcel[2].label.annotations",
        "parcel[2].label.feature",
        "parcel[2].label.origin",
        "parcel[2].conditions.memberOf",
        "parcel[2].conditions.requires",
        "group[2].required",
    }


def test_json_uses_the_camel_case_wire_names() -> None:
    document = json.loads(dump_invoice(parse_invoice(FULL.encode()), Format.JSON))

    assert "bindleVersion" in document
    assert "yankedSignature" in document
    assert "mediaType" in document["parcel"][0]["label"]
    assert "memberOf" in document["parcel"][1]["conditions"]
    assert "satisfiedBy" in document["group"][0]
    assert not {"bindle_version", "yanked_signature"} & document.keys()


def test_empty_conditions_table_survives_the_toml_round_trip() -> None:
    dumped = dump_invoice(parse_invoice(FULL.encode()), Format.TOML)

    assert tomli.loads(dumped.decode())["parcel"][2]["conditions"] == {}
    assert "conditions" not in tomli.loads(dumped.decode())["parcel"][0]


def test_empty_feature_table_survives_both_round_trips() -> None:
    invoice = parse_invoice(FULL.encode())

    for fmt in Format:
        again = parse_invoice(dump_invoice(invoice, fmt), fmt)
        assert again.parcels[1].label.feature == {
            "wasm": {"ram": "128", "wasi": "true"},
            "empty": {},
        }


def test_yanked_false_is_written_not_dropped() -> None:
    for fmt in Format:
        dumped = dump_invoice(parse_invoice(FULL.encode()), fmt)
        again = parse_invoice(dumped, fmt)
        assert again.yanked is False
        assert load_document(dumped, fmt)["yanked"] is False


def test_field_order_of_the_wire_document_follows_the_model() -> None:
    dumped = dump_invoice(parse_invoice(FULL.encode()), Format.TOML).decode()

    assert dumped.startswith('bindleVersion = "1.0.0"\nyanked = false\n')


def test_json_output_is_utf8_without_escapes() -> None:
    dumped = dump_invoice(parse_invoice(FULL.encode()), Format.JSON)

    assert "käse".encode() in dumped
    assert b"\\u00e4" not in dumped
    assert json.loads(dumped.decode("utf-8"))["bindle"]["name"] == "example.com/weather/käse"


def test_unicode_survives_the_toml_round_trip() -> None:
    text = MINIMAL.replace("example.com/hello", "日本語/käse").replace(
        'version = "1.0.0"', 'version = "1.0.0"\ndescription = "Grüße 😀"'
    )

    dumped = dump_invoice(parse_invoice(text.encode()), Format.TOML)

    assert tomli.loads(dumped.decode())["bindle"] == {
        "name": "日本語/käse",
        "version": "1.0.0",
        "description": "Grüße 😀",
    }


def test_the_largest_size_survives_both_round_trips() -> None:
    text = (
        MINIMAL
        + f"""
[[parcel]]
[parcel.label]
sha256 = "{README_SHA256}"
mediaType = "text/plain"
size = {2**63 - 1}
"""
    )
    invoice = parse_invoice(text.encode())

    for fmt in Format:
        assert parse_invoice(dump_invoice(invoice, fmt), fmt).parcels[0].label.size == 2**63 - 1


def test_an_as_yanked_copy_round_trips_with_yanked_true() -> None:
    yanked = parse_invoice(FULL.encode()).as_yanked()

    for fmt in Format:
        again = parse_invoice(dump_invoice(yanked, fmt), fmt)
        assert again == yanked
        assert again.is_yanked


def test_dump_invoice_defaults_to_toml() -> None:
    invoice = parse_invoice(MINIMAL.encode())

    assert dump_invoice(invoice) == dump_invoice(invoice, Format.TOML)
    assert parse_invoice(dump_invoice(invoice)) == invoice


# Documents and formats


def test_to_document_uses_wire_names_and_drops_nulls_only_for_toml() -> None:
    invoice = Invoice.model_validate(
        {"bindleVersion": "1.0.0", "bindle": {"name": "a", "version": "1.0.0"}}
    )

    assert to_document(invoice, Format.TOML) == {
        "bindleVersion": "1.0.0",
        "bindle": {"name": "a", "version": "1.0.0"},
    }
    assert to_document(invoice, Format.JSON)["yankedSignature"] is None


def test_dump_document_drops_nested_nulls_in_toml_and_keeps_them_in_json() -> None:
    document: dict[str, Any] = {
        "a": None,
        "b": {"c": None, "d": 1},
        "items": [{"x": None, "y": "z"}],
    }

    assert tomli.loads(dump_document(document, Format.TOML).decode()) == {
        "b": {"d": 1},
        "items": [{"y": "z"}],
    }
    assert json.loads(dump_document(document, Format.JSON)) == document


def test_dump_document_json_is_compact() -> None:
    assert dump_document({"a": [1, 2], "b": "c"}, Format.JSON) == b'{"a":[1,2],"b":"c"}'


@pytest.mark.parametrize(
    ("fmt", "media_type"), [(Format.TOML, "application/toml"), (Format.JSON, "application/json")]
)
def test_format_media_types(fmt: Format, media_type: str) -> None:
    assert fmt.media_type == media_type
    assert Format(fmt.value) is fmt


@pytest.mark.parametrize(
    "message",
    ["resource already exists", 'a "quoted" message', "line one\nline two", "käse 😀", ""],
)
def test_error_document_is_toml_with_a_single_error_string(message: str) -> None:
    assert tomli.loads(error_document(message).decode()) == {"error": message}


def test_error_document_matches_the_spec_example() -> None:
    assert error_document("resource already exists") == b'error = "resource already exists"\n'
