"""Groups: named sets of parcels with a rule for how many must be fetched."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from bindle_server.model.base import WireModel


class SatisfiedBy(StrEnum):
    ALL_OF = "allOf"
    ONE_OF = "oneOf"
    OPTIONAL = "optional"


class Group(WireModel):
    """A group of parcels; `required` groups must be satisfied by the client."""

    name: str
    required: bool | None = None
    # Enum fields take their string values from TOML, so they opt out of strict mode.
    satisfied_by: SatisfiedBy | None = Field(default=None, strict=False)
