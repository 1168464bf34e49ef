"""What the server answers, as typed values: created invoices, missing labels, query pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bindle_server.client.errors import UnexpectedResponse
from bindle_server.errors import BindleError, InvalidInput
from bindle_server.model import Format, Invoice, Label, parse_invoice
from bindle_server.model.codec import describe_validation_error, load_document
from bindle_server.signing import KeyRing

_Model = TypeVar("_Model", bound=BaseModel)


@dataclass(frozen=True)
class CreatedInvoice:
    """The answer to creating an invoice: the invoice as stored and its missing parcels."""

    invoice: Invoice
    missing: list[Label]

    @property
    def complete(self) -> bool:
        """Every parcel the invoice lists is stored already (the server answered 201)."""
        return not self.missing


@dataclass(frozen=True)
class QueryPage:
    """One page of `_q` matches; `total` counts every match, `more` says a next page exists."""

    query: str
    strict: bool
    offset: int
    limit: int
    total: int
    more: bool
    yanked: bool
    invoices: list[Invoice]
    timestamp: int | None = None

    @property
    def next_offset(self) -> int:
        return self.offset + len(self.invoices)


def read_invoice(data: bytes, source: str) -> Invoice:
    """Parse invoice TOML from a local file or argument; InvalidInput says what is wrong."""
    try:
        return parse_invoice(data)
    except BindleError as exc:
        raise InvalidInput(f"{source}: {exc.message}") from None


def answered_document(data: bytes, what: str) -> dict[str, Any]:
    try:
        return load_document(data, Format.TOML)
    except BindleError as exc:
        raise UnexpectedResponse(f"{what}: {exc.message}") from None


def answered_invoice(data: bytes, what: str = "invoice") -> Invoice:
    try:
        return parse_invoice(data)
    except BindleError as exc:
        raise UnexpectedResponse(
            f"the server's {what} is not a valid invoice: {exc.message}"
        ) from None


def created_invoice(data: bytes) -> CreatedInvoice:
    document = answered_document(data, "invoice creation answer")
    return CreatedInvoice(
        _validate(Invoice, document.get("invoice"), "the created invoice"),
        _labels(document.get("missing", []), "missing"),
    )


def missing_labels(data: bytes) -> list[Label]:
    document = answered_document(data, "missing parcels answer")
    if "missing" not in document:
        raise UnexpectedResponse("the missing parcels answer has no `missing` list")
    return _labels(document["missing"], "missing")


def query_page(data: bytes) -> QueryPage:
    document = answered_document(data, "query answer")
    try:
        timestamp = document.get("timestamp")
        return QueryPage(
            query=str(document.get("query", "")),
            strict=bool(document.get("strict", True)),
            offset=int(document["offset"]),
            limit=int(document["limit"]),
            total=int(document["total"]),
            more=bool(document["more"]),
            yanked=bool(document.get("yanked", False)),
            invoices=[
                _validate(Invoice, item, f"invoices[{position}]")
                for position, item in enumerate(document.get("invoices", []))
            ],
            timestamp=None if timestamp is None else int(timestamp),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UnexpectedResponse(f"the query answer lacks or garbles {exc}") from None


def keyring(data: bytes) -> KeyRing:
    try:
        return KeyRing.loads(data.decode("utf-8", "replace"), "the server's keyring")
    except BindleError as exc:
        raise UnexpectedResponse(exc.message) from None


def error_message(data: bytes, fallback: str) -> str:
    """The `error` text of a TOML error body; the start of the body when it is something else."""
    message = bindle_error(data)
    if message is not None:
        return message
    text = data.decode("utf-8", "replace").strip()
    return text[:300] if text else fallback


def bindle_error(data: bytes) -> str | None:
    """The `error` text when the body is a Bindle error document (`error = "..."`), else None."""
    try:
        document = load_document(data, Format.TOML)
    except BindleError:
        return None
    message = document.get("error")
    return message if isinstance(message, str) and message else None


def _labels(items: Any, key: str) -> list[Label]:
    if not isinstance(items, list):
        raise UnexpectedResponse(f"`{key}` in the server's answer is not a list")
    return [_validate(Label, item, f"{key}[{position}]") for position, item in enumerate(items)]


def _validate(cls: type[_Model], value: Any, what: str) -> _Model:
    if not isinstance(value, dict):
        raise UnexpectedResponse(f"{what} in the server's answer is missing or not a table")
    try:
        return cls.model_validate(value)
    except ValidationError as exc:
        raise UnexpectedResponse(
            f"{what} in the server's answer is invalid: {describe_validation_error(exc)}"
        ) from None
