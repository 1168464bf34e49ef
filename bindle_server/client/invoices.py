"""What of an invoice moves between servers, and whether two invoices are the same bindle.

A server appends its own `host` signature to every invoice it stores and may mark it
yanked (with a `yankedSignature`). Those belong to that server: another server checks
every signature it is given against its keyring, so a foreign host signature would get
the invoice refused there. Exports and pushes therefore carry the *portable* invoice:
everything but host signatures and the yank fields.
"""

from __future__ import annotations

from typing import Any

from bindle_server.model import Format, Invoice, SignatureRole, to_document

_SERVER_FIELDS = ("yanked", "yankedSignature")


def portable_invoice(invoice: Invoice) -> Invoice:
    """The invoice without host signatures, `yanked` and `yankedSignature`."""
    signatures = [s for s in invoice.signature or [] if s.role is not SignatureRole.HOST]
    return invoice.model_copy(
        update={"signature": signatures or None, "yanked": None, "yanked_signature": None}
    )


def invoice_differences(local: Invoice, stored: Invoice) -> list[str]:
    """The top-level fields in which a stored invoice differs from the local one.

    The server's additions are not differences: the yank fields, and every signature the
    local invoice does not carry (the host signature the server appended, or one of an
    earlier push). A signature the local invoice carries and the stored one lacks *is* a
    difference: the stored bindle is not signed as the local one is. Parcel order
    counts, because signatures cover the parcel list in order.
    """
    mine = _document(local)
    local_signatures = mine.get("signature", [])
    theirs = _document(stored)
    kept = [s for s in theirs.get("signature", []) if s in local_signatures]
    theirs.pop("signature", None)
    if kept:
        theirs["signature"] = kept
    differing = []
    for key in sorted(mine.keys() | theirs.keys()):
        if mine.get(key) == theirs.get(key):
            continue
        if key == "bindle":
            for field in sorted(mine["bindle"].keys() | theirs["bindle"].keys()):
                if mine["bindle"].get(field) != theirs["bindle"].get(field):
                    differing.append(f"bindle.{field}")
        else:
            differing.append(key)
    return differing


def _document(invoice: Invoice) -> dict[str, Any]:
    document = to_document(invoice, Format.TOML)
    for key in _SERVER_FIELDS:
        document.pop(key, None)
    return document
