"""The configuration every wire document of the model shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """A frozen document with camelCase wire names that refuses unknown fields.

    Strict types, because TOML already carries them: a `size = "12"` is an error, not 12.
    Unknown fields are refused as the reference does, so nothing is silently dropped.
    """

    model_config = ConfigDict(
        frozen=True,
        strict=True,
        extra="forbid",
        alias_generator=to_camel,
    )
