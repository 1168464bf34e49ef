"""Tombstones: what stays of a purged bindle, so that its id never returns with other content."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import tomli
import tomli_w

from bindle_server.model.invoice import Invoice


def content_digest(invoice: Invoice) -> str:
    """SHA-256 of an invoice's content (signatures and yank left out), as canonical JSON
    (keys sorted): a re-signed copy of the same bindle, or one with its tables written in
    another order, has the same digest; anything else a different one."""
    content = invoice.content().model_dump(mode="json", by_alias=True, exclude_none=True)
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Tombstone:
    """The record of one purge. `content` is empty when the purged invoice was unreadable,
    and then no content may come back under the id."""

    bindle_id: str
    purged_at: str
    """ISO 8601, UTC."""
    content: str
    reason: str

    def allows(self, invoice: Invoice) -> bool:
        """Whether `invoice` may be pushed under the purged id: only the same content."""
        return bool(self.content) and content_digest(invoice) == self.content

    def dump(self) -> bytes:
        return tomli_w.dumps(
            {
                "bindle": self.bindle_id,
                "purged": self.purged_at,
                "content": self.content,
                "reason": self.reason,
            }
        ).encode()

    @classmethod
    def parse(cls, data: bytes) -> Tombstone:
        """Read a stored tombstone; an unreadable one still counts, with unknown content."""
        try:
            document = tomli.loads(data.decode())
        except (UnicodeDecodeError, tomli.TOMLDecodeError):
            document = {}
        return cls(
            bindle_id=str(document.get("bindle", "")),
            purged_at=str(document.get("purged", "an unknown time")),
            content=str(document.get("content", "")),
            reason=str(document.get("reason", "")),
        )
