"""What happened: one record per change, per refused authentication and per completion.

Every observer reads the same record: the audit log keeps them all, metrics count them,
and the journal keeps the public ones (`PUBLIC`) for the event stream and webhooks.
Who caused it comes from `CALLER`, which the API sets per request and the maintenance
commands set once, so that the service need not pass callers through every verb.
"""

from __future__ import annotations

import json
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    INVOICE_CREATED = "invoice.created"
    INVOICE_COMPLETED = "invoice.completed"
    """Every parcel the invoice lists is stored: the bindle can be fetched whole."""
    INVOICE_YANKED = "invoice.yanked"
    INVOICE_PURGED = "invoice.purged"
    PARCEL_STORED = "parcel.stored"
    PARCEL_REFUSED = "parcel.refused"
    GC_RUN = "gc.run"
    GC_REMOVED = "gc.removed"
    PENDING_EXPIRED = "pending.expired"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    AUTH_REFUSED = "auth.refused"


# What the event stream and webhooks carry; the rest is for the audit log and metrics.
PUBLIC = frozenset(
    {
        Action.INVOICE_CREATED,
        Action.INVOICE_COMPLETED,
        Action.INVOICE_YANKED,
        Action.INVOICE_PURGED,
    }
)
# What changes stored state: each is audited before it is acknowledged.
CHANGES = frozenset(Action) - {Action.AUTH_REFUSED, Action.PARCEL_REFUSED, Action.GC_RUN}


@dataclass(frozen=True)
class Caller:
    """Who acts: `user:NAME`, `token:NAME`, an OIDC subject, `anonymous`, or a local command."""

    actor: str
    address: str = ""


SYSTEM = Caller("system")
CALLER: ContextVar[Caller] = ContextVar("bindle_caller", default=SYSTEM)


@dataclass(frozen=True)
class Event:
    """One record. `id` is the journal's sequence number (0 until journaled)."""

    action: Action
    bindle: str = ""
    digest: str = ""
    result: str = "ok"
    actor: str = ""
    address: str = ""
    time: float = field(default_factory=time.time)
    detail: dict[str, Any] = field(default_factory=dict)
    id: int = 0

    @classmethod
    def now(
        cls,
        action: Action,
        *,
        bindle: str = "",
        digest: str = "",
        result: str = "ok",
        **detail: Any,
    ) -> Event:
        """An event caused by the current `CALLER`."""
        caller = CALLER.get()
        return cls(
            action,
            bindle=bindle,
            digest=digest,
            result=result,
            actor=caller.actor,
            address=caller.address,
            detail=detail,
        )

    # Names contain slashes (`example.com/app`), versions never do.
    @property
    def name(self) -> str:
        return self.bindle.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.bindle.rpartition("/")[2]

    def as_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "time": self.time,
            "action": self.action.value,
            "actor": self.actor,
            "address": self.address,
            "bindle": self.bindle,
            "digest": self.digest,
            "result": self.result,
        }
        if self.id:
            entry["id"] = self.id
        if self.detail:
            entry["detail"] = self.detail
        return entry

    def public_fields(self) -> dict[str, Any]:
        """What webhook receivers and event-stream readers are told of every event (each
        adds the time in its own form, and who did it where the reader may know)."""
        return {
            "id": self.id,
            "action": self.action.value,
            "bindle": self.bindle,
            "name": self.name,
            "version": self.version,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> Event:
        return cls(
            Action(entry["action"]),
            bindle=entry.get("bindle", ""),
            digest=entry.get("digest", ""),
            result=entry.get("result", "ok"),
            actor=entry.get("actor", ""),
            address=entry.get("address", ""),
            time=float(entry["time"]),
            detail=dict(entry.get("detail") or {}),
            id=int(entry.get("id", 0)),
        )


def iso_time(unix: float) -> str:
    """`unix` seconds as UTC ISO 8601 to the microsecond: `2026-05-01T12:00:00.123456Z`."""
    moment = datetime.fromtimestamp(unix, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
