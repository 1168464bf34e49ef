"""Invoice validation: field types, unknown fields at every level and the invoice-wide rules."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from bindle_server.errors import InvalidInput, InvalidInvoice
from bindle_server.model.codec import parse_invoice
from bindle_server.model.group import SatisfiedBy
from bindle_server.model.ids import BindleId
from bindle_server.model.invoice import BINDLE_VERSION, Invoice
from bindle_server.model.parcel import MAX_PARCEL_SIZE
from bindle_server.model.signature import SignatureRole

HELLO = b"hello\n"
HELLO_SHA256 = hashlib.sha256(HELLO).hexdigest()
WORLD_SHA256 = hashlib.sha256(b"world\n").hexdigest()

MINIMAL = b"""\
bindleVersion = "1.0.0"

[bindle]
name = "example.com/hello"
version = "1.0.0"
"""


def _document(
    *,
    invoice: str = "",
    bindle: str = "",
    parcel: str = "",
    label: str = "",
    conditions: str = "",
    group: str = "",
    signature: str = "",
) -> str:
    """An invoice with one table of every kind; each argument adds lines to that table."""
    return f"""\
bindleVersion = "1.0.0"
{invoice}

[bindle]
name = "example.com/hello"
version = "1.0.0"
{bindle}

[[parcel]]
{parcel}

[parcel.label]
sha256 = "{HELLO_SHA256}"
mediaType = "text/plain"
name = "hello.txt"
size = 6
{label}

[parcel.conditions]
memberOf = ["extras"]
{conditions}

[[group]]
name = "extras"
{group}

[[signature]]
by = "Ann <ann@example.com>"
signature = "c2lnbmF0dXJl"
key = "a2V5"
role = "creator"
at = 1611960337
{signature}
"""


def _replaced(old: str, new: str) -> bytes:
    """The every-table document with one exact line replaced."""
    document = _document()
    assert document.count(old) == 1, old
    return document.replace(old, new).encode()


def _refusal(data: bytes) -> str:
    with pytest.raises(InvalidInvoice) as caught:
        parse_invoice(data)
    return caught.value.message


def test_the_every_table_document_is_valid() -> None:
    invoice = parse_invoice(_document().encode())

    assert invoice.bindle.name == "example.com/hello"
    assert invoice.parcels[0].label.sha256 == HELLO_SHA256
    assert invoice.parcels[0].label.size == len(HELLO)
    assert invoice.groups[0].name == "extras"
    assert invoice.signature is not None
    assert invoice.signature[0].role is SignatureRole.CREATOR


def test_a_minimal_invoice_needs_only_bindle_version_name_and_version() -> None:
    invoice = parse_invoice(MINIMAL)

    assert invoice.bindle_version == BINDLE_VERSION == "1.0.0"
    assert invoice.bindle_id == BindleId("example.com/hello", "1.0.0")
    assert invoice.parcel is None
    assert invoice.parcels == []
    assert invoice.groups == []
    assert invoice.labels == []
    assert invoice.signature is None
    assert invoice.yanked is None
    assert not invoice.is_yanked


# Unknown fields, at every level


@pytest.mark.parametrize(
    ("level", "path"),
    [
        ("invoice", "extra"),
        ("bindle", "bindle.extra"),
        ("parcel", "parcel[0].extra"),
        ("label", "parcel[0].label.extra"),
        ("conditions", "parcel[0].conditions.extra"),
        ("group", "group[0].extra"),
        ("signature", "signature[0].extra"),
    ],
)
def test_unknown_field_is_refused_at_every_level(level: str, path: str) -> None:
    message = _refusal(_document(**{level: 'extra = "surprise"'}).encode())

    assert (
        message == f"invalid invoice: {path}: unknown field (not part of the Bindle invoice format)"
    )


@pytest.mark.parametrize(
    ("level", "line", "path"),
    [
        # The spec's spelling; the reference (and so every client) knows only yankedSignature.
        ("invoice", "yanked_signature = []", "yanked_signature"),
        ("invoice", 'yanked_reason = "broken"', "yanked_reason"),
        ("invoice", 'timestamp = "2021-01-01"', "timestamp"),
        ("label", 'sha512 = "00"', "parcel[0].label.sha512"),
        ("label", "Size = 6", "parcel[0].label.Size"),
        ("bindle", 'Name = "x"', "bindle.Name"),
    ],
)
def test_fields_the_reference_does_not_know_are_refused(level: str, line: str, path: str) -> None:
    message = _refusal(_document(**{level: line}).encode())

    assert f"{path}: unknown field" in message


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ('bindleVersion = "1.0.0"', 'bindle_version = "1.0.0"', "bindle_version"),
        ('mediaType = "text/plain"', 'media_type = "text/plain"', "parcel[0].label.media_type"),
        ('memberOf = ["extras"]', 'member_of = ["extras"]', "parcel[0].conditions.member_of"),
    ],
)
def test_python_field_names_are_refused_on_the_wire(old: str, new: str, path: str) -> None:
    message = _refusal(_replaced(old, new))

    assert f"{path}: unknown field" in message


def test_snake_case_yanked_signature_is_refused_even_with_signature_tables() -> None:
    document = (
        MINIMAL.decode()
        + """
[[yanked_signature]]
by = "Ann <ann@example.com>"
signature = "c2lnbmF0dXJl"
key = "a2V5"
role = "host"
at = 1611960337
"""
    )

    message = _refusal(document.encode())

    assert "yanked_signature: unknown field" in message


def test_camel_case_yanked_signature_is_accepted() -> None:
    document = (
        MINIMAL.decode().replace(
            'bindleVersion = "1.0.0"', 'bindleVersion = "1.0.0"\nyanked = true'
        )
        + """
[[yankedSignature]]
by = "Host <host@example.com>"
signature = "c2lnbmF0dXJl"
key = "a2V5"
role = "host"
at = 1611960337
"""
    )

    invoice = parse_invoice(document.encode())

    assert invoice.is_yanked
    assert invoice.yanked_signature is not None
    assert invoice.yanked_signature[0].role is SignatureRole.HOST


def test_unknown_field_in_a_yanked_signature_is_refused() -> None:
    document = (
        MINIMAL.decode()
        + """
[[yankedSignature]]
by = "Host"
signature = "c2ln"
key = "a2V5"
role = "host"
at = 1
note = "extra"
"""
    )

    assert "yankedSignature[0].note: unknown field" in _refusal(document.encode())


def test_unknown_field_in_the_second_parcel_names_its_index() -> None:
    document = (
        _document()
        + f"""
[[parcel]]
[parcel.label]
sha256 = "{WORLD_SHA256}"
mediaType = "text/plain"
size = 6
colour = "blue"
"""
    )

    assert "parcel[1].label.colour: unknown field" in _refusal(document.encode())


def test_annotation_tables_accept_any_keys() -> None:
    invoice = parse_invoice(
        _document(
            invoice='annotations = { "bindle.dev/readme" = "README.md", "x-anything" = "ok" }',
            label='annotations = { "bindle.dev/license" = "MIT", whatever = "fine" }',
        ).encode()
    )

    assert invoice.annotations == {"bindle.dev/readme": "README.md", "x-anything": "ok"}
    assert invoice.parcels[0].label.annotations == {"bindle.dev/license": "MIT", "whatever": "fine"}


# Strict types


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("size = 6", 'size = "6"', "parcel[0].label.size"),
        ("size = 6", "size = 6.0", "parcel[0].label.size"),
        ("size = 6", "size = true", "parcel[0].label.size"),
        ("size = 6", "size = -1", "parcel[0].label.size"),
        ("size = 6", "size = 9223372036854775808", "parcel[0].label.size"),
        ('bindleVersion = "1.0.0"', "bindleVersion = 1", "bindleVersion"),
        ('name = "example.com/hello"', "name = 5", "bindle.name"),
        ('version = "1.0.0"', "version = 1.0", "bindle.version"),
        (f'sha256 = "{HELLO_SHA256}"', f'sha256 = ["{HELLO_SHA256}"]', "parcel[0].label.sha256"),
        ('mediaType = "text/plain"', "mediaType = 1", "parcel[0].label.mediaType"),
        ('name = "hello.txt"', "name = false", "parcel[0].label.name"),
        ('memberOf = ["extras"]', 'memberOf = "extras"', "parcel[0].conditions.memberOf"),
        ('memberOf = ["extras"]', "memberOf = [1]", "parcel[0].conditions.memberOf[0]"),
        ('name = "extras"', "name = 1", "group[0].name"),
        ("at = 1611960337", 'at = "1611960337"', "signature[0].at"),
        ("at = 1611960337", "at = -1", "signature[0].at"),
        ("at = 1611960337", "at = 1611960337.5", "signature[0].at"),
        ('role = "creator"', "role = 1", "signature[0].role"),
        ('by = "Ann <ann@example.com>"', "by = 1", "signature[0].by"),
        ('key = "a2V5"', "key = []", "signature[0].key"),
        ("[[group]]", "[group]", "group"),
    ],
)
def test_wrong_types_are_refused_with_the_field_path(old: str, new: str, path: str) -> None:
    message = _refusal(_replaced(old, new))

    assert message.startswith(f"invalid invoice: {path}: ")


def test_size_as_string_is_refused_and_named_by_its_path() -> None:
    message = _refusal(_replaced("size = 6", 'size = "3"'))

    assert message == "invalid invoice: parcel[0].label.size: Input should be a valid integer"


@pytest.mark.parametrize(
    ("line", "path"),
    [
        ('yanked = "false"', "yanked"),
        ("yanked = 0", "yanked"),
        ("annotations = { key = 1 }", "annotations.key"),
        ('annotations = ["a"]', "annotations"),
    ],
)
def test_wrong_types_of_top_level_fields_are_refused(line: str, path: str) -> None:
    message = _refusal(_document(invoice=line).encode())

    assert message.startswith(f"invalid invoice: {path}: ")


@pytest.mark.parametrize(
    ("level", "line", "path"),
    [
        ("bindle", 'authors = "Ann"', "bindle.authors"),
        ("bindle", "authors = [1]", "bindle.authors[0]"),
        ("bindle", "description = 1", "bindle.description"),
        ("label", 'origin = ["a"]', "parcel[0].label.origin"),
        ("label", 'feature = { wasm = "x" }', "parcel[0].label.feature.wasm"),
        ("label", "feature = { wasm = { ram = 128 } }", "parcel[0].label.feature.wasm.ram"),
        ("label", "annotations = { a = true }", "parcel[0].label.annotations.a"),
        ("conditions", "requires = [true]", "parcel[0].conditions.requires[0]"),
        ("group", 'required = "true"', "group[0].required"),
        ("group", "required = 1", "group[0].required"),
        ("group", "satisfiedBy = 1", "group[0].satisfiedBy"),
    ],
)
def test_wrong_types_of_optional_fields_are_refused(level: str, line: str, path: str) -> None:
    message = _refusal(_document(**{level: line}).encode())

    assert message.startswith(f"invalid invoice: {path}: ")


def test_the_largest_toml_integer_is_a_valid_size() -> None:
    invoice = parse_invoice(_replaced("size = 6", f"size = {MAX_PARCEL_SIZE}"))

    assert invoice.parcels[0].label.size == MAX_PARCEL_SIZE == 2**63 - 1


def test_a_zero_size_parcel_is_valid() -> None:
    empty_sha256 = hashlib.sha256(b"").hexdigest()
    data = _replaced("size = 6", "size = 0").replace(HELLO_SHA256.encode(), empty_sha256.encode())

    assert parse_invoice(data).parcels[0].label.size == 0


# Required fields


@pytest.mark.parametrize(
    ("line", "path"),
    [
        ('bindleVersion = "1.0.0"', "bindleVersion"),
        ('name = "example.com/hello"', "bindle.name"),
        ('version = "1.0.0"', "bindle.version"),
        (f'sha256 = "{HELLO_SHA256}"', "parcel[0].label.sha256"),
        ('mediaType = "text/plain"', "parcel[0].label.mediaType"),
        ("size = 6", "parcel[0].label.size"),
        ('by = "Ann <ann@example.com>"', "signature[0].by"),
        ('signature = "c2lnbmF0dXJl"', "signature[0].signature"),
        ('key = "a2V5"', "signature[0].key"),
        ('role = "creator"', "signature[0].role"),
        ("at = 1611960337", "signature[0].at"),
    ],
)
def test_missing_required_field_is_refused_with_its_path(line: str, path: str) -> None:
    message = _refusal(_replaced(line, ""))

    assert f"{path}: required field is missing" in message


def test_missing_bindle_table_is_refused() -> None:
    message = _refusal(b'bindleVersion = "1.0.0"\n')

    assert message == "invalid invoice: bindle: required field is missing"


def test_missing_label_is_refused() -> None:
    document = MINIMAL.decode() + "\n[[parcel]]\n[parcel.conditions]\nmemberOf = []\n"

    assert "parcel[0].label: required field is missing" in _refusal(document.encode())


def test_missing_group_name_is_refused() -> None:
    document = MINIMAL.decode() + "\n[[group]]\nrequired = true\n"

    assert "group[0].name: required field is missing" in _refusal(document.encode())


def test_label_name_is_optional() -> None:
    invoice = parse_invoice(_replaced('name = "hello.txt"\n', ""))

    label = invoice.parcels[0].label
    assert label.name is None
    assert label.sha256 == HELLO_SHA256


def test_label_name_is_kept_as_sent() -> None:
    invoice = parse_invoice(_replaced('name = "hello.txt"', 'name = "dir/Hällo Wörld.txt"'))

    assert invoice.parcels[0].label.name == "dir/Hällo Wörld.txt"


def test_several_problems_are_all_reported_in_one_message() -> None:
    data = _replaced("size = 6", 'size = "6"').replace(b"at = 1611960337", b"at = -5")

    message = _refusal(data)

    assert "parcel[0].label.size: " in message
    assert "signature[0].at: " in message
    assert "; " in message


# Invoice values


@pytest.mark.parametrize("value", ["1.0", "0.9.0", "2.0.0", "1.0.1", "1.0.0 ", "v1.0.0", ""])
def test_bindle_version_other_than_1_0_0_is_refused(value: str) -> None:
    message = _refusal(_replaced('bindleVersion = "1.0.0"', f'bindleVersion = "{value}"'))

    assert message.startswith("invalid invoice: bindleVersion: unsupported bindleVersion")
    assert repr(value) in message


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bindle:hello", "reserved"),
        ("/hello", "start or end with '/'"),
        ("a/../b", "'..' path segment"),
        ("hello world", "' '"),
        ("", "empty"),
        ("a" * 513, "longer than 512 bytes"),
    ],
)
def test_invalid_bindle_name_is_refused_with_the_reason(name: str, reason: str) -> None:
    message = _refusal(_replaced('name = "example.com/hello"', f'name = "{name}"'))

    assert message.startswith("invalid invoice: bindle.name: ")
    assert reason in message


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.0.0", "1.0.0.0", "latest", ""])
def test_invalid_bindle_version_is_refused(version: str) -> None:
    message = _refusal(_replaced('version = "1.0.0"', f'version = "{version}"'))

    assert message.startswith("invalid invoice: bindle.version: ")
    assert "SemVer" in message


@pytest.mark.parametrize(
    "digest",
    [
        HELLO_SHA256.upper(),
        HELLO_SHA256[:63],
        HELLO_SHA256 + "0",
        "../../etc/passwd",
        "",
    ],
)
def test_invalid_label_digest_is_refused(digest: str) -> None:
    message = _refusal(_replaced(f'sha256 = "{HELLO_SHA256}"', f'sha256 = "{digest}"'))

    assert message.startswith("invalid invoice: parcel[0].label.sha256: ")
    assert "64 lowercase hexadecimal" in message


@pytest.mark.parametrize(
    "media_type", ["", "text/plain\\r\\nX-Evil: 1", "text/pla\u0131n", "a\\tb"]
)
def test_media_type_that_is_not_a_header_value_is_refused(media_type: str) -> None:
    message = _refusal(_replaced('mediaType = "text/plain"', f'mediaType = "{media_type}"'))

    assert message.startswith("invalid invoice: parcel[0].label.mediaType: ")


@pytest.mark.parametrize(
    "media_type", ["application/octet-stream", "text/plain; charset=utf-8", "application/wasm"]
)
def test_media_types_with_parameters_are_accepted(media_type: str) -> None:
    invoice = parse_invoice(_replaced('mediaType = "text/plain"', f'mediaType = "{media_type}"'))

    assert invoice.parcels[0].label.media_type == media_type


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("allOf", SatisfiedBy.ALL_OF),
        ("oneOf", SatisfiedBy.ONE_OF),
        ("optional", SatisfiedBy.OPTIONAL),
    ],
)
def test_satisfied_by_accepts_the_three_spec_values(value: str, expected: SatisfiedBy) -> None:
    invoice = parse_invoice(_document(group=f'satisfiedBy = "{value}"').encode())

    assert invoice.groups[0].satisfied_by is expected
    assert invoice.groups[0].satisfied_by == value


@pytest.mark.parametrize("value", ["AllOf", "all_of", "all", "oneof", "anyOf", ""])
def test_satisfied_by_refuses_other_values(value: str) -> None:
    message = _refusal(_document(group=f'satisfiedBy = "{value}"').encode())

    assert message.startswith("invalid invoice: group[0].satisfiedBy: ")
    assert "'allOf', 'oneOf' or 'optional'" in message


def test_group_required_and_satisfied_by_are_optional() -> None:
    group = parse_invoice(_document().encode()).groups[0]

    assert group.required is None
    assert group.satisfied_by is None


@pytest.mark.parametrize("role", ["creator", "approver", "host", "proxy"])
def test_signature_roles_of_the_spec_are_accepted(role: str) -> None:
    invoice = parse_invoice(_replaced('role = "creator"', f'role = "{role}"'))

    assert invoice.signature is not None
    assert invoice.signature[0].role is SignatureRole(role)


@pytest.mark.parametrize("role", ["Creator", "owner", ""])
def test_unknown_signature_role_is_refused(role: str) -> None:
    message = _refusal(_replaced('role = "creator"', f'role = "{role}"'))

    assert message.startswith("invalid invoice: signature[0].role: ")


# Invoice-wide rules


def test_duplicate_parcel_digests_are_refused() -> None:
    document = (
        _document()
        + f"""
[[parcel]]
[parcel.label]
sha256 = "{HELLO_SHA256}"
mediaType = "application/octet-stream"
name = "copy.txt"
size = 6
"""
    )

    message = _refusal(document.encode())

    assert f"parcel {HELLO_SHA256} is listed more than once" in message


def test_two_parcels_with_different_digests_are_accepted() -> None:
    document = (
        _document()
        + f"""
[[parcel]]
[parcel.label]
sha256 = "{WORLD_SHA256}"
mediaType = "text/plain"
size = 6
"""
    )

    invoice = parse_invoice(document.encode())

    assert [label.sha256 for label in invoice.labels] == [HELLO_SHA256, WORLD_SHA256]


def test_member_of_naming_an_undefined_group_is_refused() -> None:
    message = _refusal(_replaced('memberOf = ["extras"]', 'memberOf = ["extras", "ghost"]'))

    assert f"parcel {HELLO_SHA256} names group 'ghost' in memberOf" in message
    assert "defines no such group" in message


def test_requires_naming_an_undefined_group_is_refused() -> None:
    message = _refusal(_document(conditions='requires = ["ghost"]').encode())

    assert f"parcel {HELLO_SHA256} names group 'ghost' in requires" in message


def test_conditions_naming_groups_of_an_invoice_without_groups_are_refused() -> None:
    document = (
        MINIMAL.decode()
        + f"""
[[parcel]]
[parcel.label]
sha256 = "{HELLO_SHA256}"
mediaType = "text/plain"
size = 6
[parcel.conditions]
requires = ["extras"]
"""
    )

    assert "names group 'extras' in requires" in _refusal(document.encode())


def test_requires_naming_a_defined_group_is_accepted() -> None:
    invoice = parse_invoice(_document(conditions='requires = ["extras"]').encode())

    conditions = invoice.parcels[0].conditions
    assert conditions is not None
    assert conditions.member_of == ["extras"]
    assert conditions.requires == ["extras"]


def test_groups_may_be_defined_after_the_parcels_that_name_them() -> None:
    document = (
        MINIMAL.decode()
        + f"""
[[parcel]]
[parcel.label]
sha256 = "{HELLO_SHA256}"
mediaType = "text/plain"
size = 6
[parcel.conditions]
memberOf = ["late"]

[[group]]
name = "late"
"""
    )

    assert parse_invoice(document.encode()).groups[0].name == "late"


def test_empty_conditions_mean_the_global_group() -> None:
    invoice = parse_invoice(_replaced('memberOf = ["extras"]', "memberOf = []"))

    conditions = invoice.parcels[0].conditions
    assert conditions is not None
    assert conditions.member_of == []


def test_duplicate_group_names_are_refused() -> None:
    message = _refusal(_document(group='\n[[group]]\nname = "extras"\nrequired = true').encode())

    assert "group 'extras' is defined more than once" in message


def test_group_names_differing_in_case_are_different_groups() -> None:
    invoice = parse_invoice(_document(group='\n[[group]]\nname = "Extras"').encode())

    assert [group.name for group in invoice.groups] == ["extras", "Extras"]


def test_invoice_rule_errors_are_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        parse_invoice(_document(conditions='requires = ["ghost"]').encode())


# Invoice behaviour


def test_label_for_finds_a_listed_parcel_and_nothing_else() -> None:
    invoice = parse_invoice(_document().encode())

    label = invoice.label_for(HELLO_SHA256)
    assert label is not None
    assert label.name == "hello.txt"
    assert invoice.label_for(WORLD_SHA256) is None


def test_bindle_id_comes_from_the_bindle_table() -> None:
    invoice = parse_invoice(_replaced('version = "1.0.0"', 'version = "2.0.0-rc.1+b.7"'))

    assert str(invoice.bindle_id) == "example.com/hello/2.0.0-rc.1+b.7"
    assert invoice.bindle_id.key == hashlib.sha256(b"example.com/hello/2.0.0-rc.1+b.7").hexdigest()


def test_yanked_false_is_not_yanked_and_yanked_true_is() -> None:
    assert not parse_invoice(_document(invoice="yanked = false").encode()).is_yanked
    assert parse_invoice(_document(invoice="yanked = true").encode()).is_yanked


def test_as_yanked_returns_a_yanked_copy_and_leaves_the_original_alone() -> None:
    invoice = parse_invoice(_document().encode())

    yanked = invoice.as_yanked()

    assert yanked.is_yanked
    assert yanked.yanked is True
    assert not invoice.is_yanked
    assert yanked.signature == invoice.signature
    assert yanked.parcel == invoice.parcel
    assert yanked.model_copy(update={"yanked": None}) == invoice


def test_invoices_are_frozen() -> None:
    invoice = parse_invoice(MINIMAL)

    with pytest.raises(ValidationError):
        invoice.yanked = True  # type: ignore[misc]  # the point: frozen models refuse assignment
    assert invoice.yanked is None


def test_equal_documents_give_equal_invoices() -> None:
    assert parse_invoice(_document().encode()) == parse_invoice(_document().encode())
    assert parse_invoice(_document().encode()) != parse_invoice(MINIMAL)


def test_invoice_model_validates_python_documents_by_wire_name() -> None:
    invoice = Invoice.model_validate(
        {"bindleVersion": "1.0.0", "bindle": {"name": "hello", "version": "0.1.0"}}
    )

    assert invoice.bindle_id == BindleId("hello", "0.1.0")
