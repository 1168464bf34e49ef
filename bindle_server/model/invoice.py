"""Invoices: the immutable manifest of a bindle, and the rules that span the whole document."""

from __future__ import annotations

from pydantic import field_validator, model_validator

from bindle_server.model.base import WireModel
from bindle_server.model.group import Group
from bindle_server.model.ids import BindleId, name_problem
from bindle_server.model.parcel import Label, Parcel
from bindle_server.model.signature import Signature, SignatureRole
from bindle_server.model.version import Version

BINDLE_VERSION = "1.0.0"


def _latest_host_signature(signatures: list[Signature] | None) -> int | None:
    times = [s.at for s in signatures or () if s.role == SignatureRole.HOST]
    return max(times) if times else None


class BindleSpec(WireModel):
    """The `[bindle]` table: who the bindle is (name and version) and who made it."""

    name: str
    version: str
    description: str | None = None
    authors: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        problem = name_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("version")
    @classmethod
    def _valid_version(cls, value: str) -> str:
        Version.parse(value)
        return value


class Invoice(WireModel):
    """A bindle's invoice. Frozen: once stored, only a yank may produce a changed copy."""

    bindle_version: str
    yanked: bool | None = None
    yanked_signature: list[Signature] | None = None
    bindle: BindleSpec
    annotations: dict[str, str] | None = None
    parcel: list[Parcel] | None = None
    group: list[Group] | None = None
    signature: list[Signature] | None = None

    @field_validator("bindle_version")
    @classmethod
    def _supported_version(cls, value: str) -> str:
        if value != BINDLE_VERSION:
            raise ValueError(
                f"unsupported bindleVersion {value!r}; this server speaks {BINDLE_VERSION!r}"
            )
        return value

    @model_validator(mode="after")
    def _invoice_rules(self) -> Invoice:
        group_names: set[str] = set()
        for group in self.groups:
            if group.name in group_names:
                raise ValueError(f"group {group.name!r} is defined more than once")
            group_names.add(group.name)
        digests: set[str] = set()
        for parcel in self.parcels:
            digest = parcel.label.sha256
            if digest in digests:
                raise ValueError(f"parcel {digest} is listed more than once")
            digests.add(digest)
            conditions = parcel.conditions
            if conditions is None:
                continue
            for field, names in (
                ("memberOf", conditions.member_of),
                ("requires", conditions.requires),
            ):
                for name in names or ():
                    if name not in group_names:
                        raise ValueError(
                            f"parcel {digest} names group {name!r} in {field}, "
                            "but the invoice defines no such group"
                        )
        return self

    @property
    def bindle_id(self) -> BindleId:
        return BindleId(self.bindle.name, self.bindle.version)

    @property
    def parcels(self) -> list[Parcel]:
        return self.parcel or []

    @property
    def groups(self) -> list[Group]:
        return self.group or []

    @property
    def labels(self) -> list[Label]:
        return [parcel.label for parcel in self.parcels]

    @property
    def is_yanked(self) -> bool:
        return bool(self.yanked)

    def label_for(self, sha256: str) -> Label | None:
        """The label of the listed parcel with this digest, or None when it is not listed."""
        for parcel in self.parcels:
            if parcel.label.sha256 == sha256:
                return parcel.label
        return None

    @property
    def created_at(self) -> int | None:
        """When the host signed it (unix seconds): when this server accepted it."""
        return _latest_host_signature(self.signature)

    @property
    def yanked_at(self) -> int | None:
        """When the host signed its yank (unix seconds)."""
        return _latest_host_signature(self.yanked_signature)

    def content(self) -> Invoice:
        """The invoice without its signatures and yank: what its creator pushed."""
        return self.model_copy(update={"signature": None, "yanked": None, "yanked_signature": None})

    def differences(self, other: Invoice) -> list[str]:
        """What differs between the contents of two invoices, in words (empty: the same)."""
        mine, theirs = self.content(), other.content()
        found = []
        for field in ("bindle", "annotations", "group"):
            if getattr(mine, field) != getattr(theirs, field):
                found.append(f"{field} differs")
        own = {parcel.label.sha256: parcel for parcel in mine.parcels}
        their = {parcel.label.sha256: parcel for parcel in theirs.parcels}
        added, removed = len(set(their) - set(own)), len(set(own) - set(their))
        if added or removed:
            found.append(f"{added} parcel(s) added and {removed} removed")
        elif any(own[digest] != their[digest] for digest in own):
            found.append("parcel labels or conditions differ")
        return found

    def as_yanked(self) -> Invoice:
        """A copy with `yanked = true`, everything else (signatures included) unchanged."""
        return self.model_copy(update={"yanked": True})
