"""The Bindle domain model: pure, synchronous, no IO."""

from bindle_server.model.codec import (
    Document,
    Format,
    dump_document,
    dump_invoice,
    error_document,
    nested_toml,
    parse_invoice,
    to_document,
)
from bindle_server.model.group import Group, SatisfiedBy
from bindle_server.model.ids import BindleId, check_name, check_sha256, invoice_key, is_sha256
from bindle_server.model.invoice import BINDLE_VERSION, BindleSpec, Invoice
from bindle_server.model.parcel import Condition, Label, Parcel
from bindle_server.model.signature import Signature, SignatureRole
from bindle_server.model.version import Version

__all__ = [
    "BINDLE_VERSION",
    "BindleId",
    "BindleSpec",
    "Condition",
    "Document",
    "Format",
    "Group",
    "Invoice",
    "Label",
    "Parcel",
    "SatisfiedBy",
    "Signature",
    "SignatureRole",
    "Version",
    "check_name",
    "check_sha256",
    "dump_document",
    "dump_invoice",
    "error_document",
    "invoice_key",
    "is_sha256",
    "nested_toml",
    "parse_invoice",
    "to_document",
]
