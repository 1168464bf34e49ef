"""What the path after `/_i/` names: an invoice (`NAME/VERSION`) or a parcel (`...@SHA`)."""

from __future__ import annotations

from dataclasses import dataclass

from bindle_server.errors import InvalidBindleId
from bindle_server.model import BindleId, check_sha256


@dataclass(frozen=True)
class Target:
    bindle_id: BindleId
    sha256: str | None


def parse_target(path: str) -> Target:
    """Split on '@' (section 2): none names an invoice, exactly one a parcel of it.

    The path arrives percent-decoded, so Unicode names round-trip (section 14 item 8),
    and a literal `+` of SemVer build metadata stays a `+`.
    """
    bindle, *parcel = path.split("@")
    if len(parcel) > 1:
        raise InvalidBindleId("Invalid URL. Missing Bindle ID and/or parcel SHA")
    bindle_id = BindleId.parse(bindle)
    return Target(bindle_id, check_sha256(parcel[0]) if parcel else None)
