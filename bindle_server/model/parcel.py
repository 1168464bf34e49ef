"""Labels, conditions and parcels: how an invoice describes each blob it lists."""

from __future__ import annotations

from pydantic import Field, field_validator

from bindle_server.model.base import WireModel
from bindle_server.model.ids import is_sha256

# TOML integers are signed 64-bit, so that is the largest size an invoice can state.
MAX_PARCEL_SIZE = 2**63 - 1


class Label(WireModel):
    """A parcel's metadata: its digest, size and media type, plus optional extras."""

    sha256: str
    media_type: str
    # Optional per the spec (section 14 item 7); the reference requires it.
    name: str | None = None
    size: int = Field(ge=0, le=MAX_PARCEL_SIZE)
    annotations: dict[str, str] | None = None
    feature: dict[str, dict[str, str]] | None = None
    origin: str | None = None

    @field_validator("media_type")
    @classmethod
    def _header_safe_media_type(cls, value: str) -> str:
        # Served as the parcel's Content-Type, so it must be a legal header value.
        if not value or not value.isprintable() or not value.isascii():
            raise ValueError("must be a media type of printable ASCII characters, e.g. text/plain")
        return value

    @field_validator("sha256")
    @classmethod
    def _valid_sha256(cls, value: str) -> str:
        if not is_sha256(value):
            raise ValueError("must be the parcel's sha256 as 64 lowercase hexadecimal characters")
        return value


class Condition(WireModel):
    """Which groups a parcel belongs to and which groups it needs."""

    member_of: list[str] | None = None
    requires: list[str] | None = None


class Parcel(WireModel):
    """One entry of an invoice's parcel list."""

    label: Label
    conditions: Condition | None = None
