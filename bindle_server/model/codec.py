"""The one boundary between bytes and documents: TOML (the default) and JSON.

Every document the server reads or writes passes through here, so the wire names, the
treatment of absent fields and the error messages are decided in one place.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import tomli
import tomli_w
from pydantic import BaseModel, ValidationError

from bindle_server.errors import InvalidInvoice
from bindle_server.model.invoice import Invoice

Document = dict[str, Any]


class Format(StrEnum):
    TOML = "toml"
    JSON = "json"

    @property
    def media_type(self) -> str:
        return f"application/{self.value}"


def load_document(data: bytes, fmt: Format) -> Document:
    """Parse bytes into a plain document; raise InvalidInvoice with the parser's reason."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInvoice(f"the body is not valid UTF-8 (byte {exc.start})") from None
    if fmt is Format.JSON:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInvoice(f"invalid JSON: {exc}") from None
        except RecursionError:
            raise InvalidInvoice("invalid JSON: nested too deeply") from None
        if not isinstance(document, dict):
            raise InvalidInvoice("invalid JSON: the body must be an object")
        try:
            # \ud800-style escapes decode to lone surrogates, which no UTF-8 document
            # (and no signature's cleartext) can hold.
            json.dumps(document, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise InvalidInvoice("invalid JSON: a string holds a lone surrogate escape") from None
        return document
    try:
        return tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        raise InvalidInvoice(f"invalid TOML: {exc}") from None
    except RecursionError:
        raise InvalidInvoice("invalid TOML: nested too deeply") from None


def parse_invoice(data: bytes, fmt: Format = Format.TOML) -> Invoice:
    """Parse and validate an invoice; every problem becomes one readable InvalidInvoice."""
    document = load_document(data, fmt)
    try:
        # Wire names only: the Python names (`yanked_signature`, `media_type`) are unknown
        # fields on the wire, as in the reference.
        return Invoice.model_validate(document)
    except ValidationError as exc:
        raise InvalidInvoice(f"invalid invoice: {describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the field by its wire path (`parcel[0].label.size`)."""
    problems = []
    for error in exc.errors(include_url=False):
        path = ""
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (not part of the Bindle invoice format)"
        elif error["type"] == "missing":
            message = "required field is missing"
        problems.append(f"{path}: {message}" if path else message)
    return "; ".join(problems)


def to_document(model: BaseModel, fmt: Format) -> Document:
    """A model as a plain document with wire names.

    TOML has no null, so absent optional fields are omitted there; JSON writes them as
    null, as the reference does.
    """
    return model.model_dump(mode="json", by_alias=True, exclude_none=fmt is Format.TOML)


def dump_document(document: Document, fmt: Format) -> bytes:
    if fmt is Format.JSON:
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return tomli_w.dumps(_without_none(document)).encode()


def dump_invoice(invoice: Invoice, fmt: Format = Format.TOML) -> bytes:
    return dump_document(to_document(invoice, fmt), fmt)


def nested_toml(standalone: bytes, table: str, *, array: bool = False) -> bytes:
    """A TOML document written by dump_document, as the table `table` of another one (an
    element of the array of tables `table` when `array`), without parsing or rendering it
    again: its header, then its own keys, then its tables with `table.` put in front of
    their names. It goes after the other document's top-level keys.
    """
    # At the start of a line, `[` only ever opens a table header: the writer puts array
    # items on indented lines and writes no multi-line strings.
    prefix = table.encode() + b"."
    lines = [b"[[" + table.encode() + b"]]" if array else b"[" + table.encode() + b"]"]
    for line in standalone.split(b"\n"):
        if line.startswith(b"[["):
            line = b"[[" + prefix + line[2:]
        elif line.startswith(b"["):
            line = b"[" + prefix + line[1:]
        lines.append(line)
    return b"\n".join(lines)


def error_document(message: str) -> bytes:
    """The spec's error body: a TOML document with a single `error` string."""
    return tomli_w.dumps({"error": message}).encode()


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_none(item) for item in value]
    return value
