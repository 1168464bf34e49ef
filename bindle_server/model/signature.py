"""Signature blocks as they appear in invoices."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from bindle_server.model.base import WireModel


class SignatureRole(StrEnum):
    CREATOR = "creator"
    APPROVER = "approver"
    HOST = "host"
    PROXY = "proxy"


class Signature(WireModel):
    """One Ed25519 signature over an invoice, with who made it, in which role and when."""

    by: str
    signature: str
    key: str
    # Enum fields take their string values from TOML, so they opt out of strict mode.
    role: SignatureRole = Field(strict=False)
    at: int = Field(ge=0, le=2**63 - 1)
