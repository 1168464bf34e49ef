"""Where invoices and parcels live under a store's root: the reference server's layout.

The disk store, the S3 store (as object keys) and the client's bindle directory all use
it, so a data directory, a bucket and a client cache can be read by one another's tools.
"""

from __future__ import annotations

INVOICES = "invoices"
PARCELS = "parcels"
INVOICE_FILE = "invoice.toml"
PARCEL_FILE = "parcel.dat"


def invoice_parts(key: str) -> tuple[str, str, str]:
    """`invoices/<key>/invoice.toml`, where `key` is the SHA-256 of `NAME/VERSION`."""
    return INVOICES, key, INVOICE_FILE


def parcel_parts(sha256: str) -> tuple[str, str, str]:
    """`parcels/<sha256>/parcel.dat`."""
    return PARCELS, sha256, PARCEL_FILE
