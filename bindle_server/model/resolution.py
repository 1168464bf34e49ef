"""Which of an invoice's parcels a selection of groups and features needs.

The Bindle spec gives invoices groups and conditions so that a client can fetch a
subset, but leaves the resolution to clients (BINDLE-PROTOCOL.md section 3); none
implemented it. These are the rules this server applies, in one place:

1. Features filter labels. A requested feature `NS.KEY=VALUE` drops every label that
   declares `feature.NS.KEY` with another value; labels that do not declare that key
   stay. Filtered-out parcels count as absent from every group below.
2. The global group, the parcels without `memberOf`, is always needed.
3. Every `required` group and every group the caller names is needed.
4. A needed parcel's `requires` makes those groups needed too, transitively.
5. How a needed group is satisfied depends on its `satisfiedBy`:
   - `allOf` (the default): all its members. If it has members but features
     filtered out every one, the selection is unsatisfiable.
   - `oneOf`: exactly one member. A member the selection already takes is it (the
     caller names a member by naming another group it belongs to); else the first
     member, in invoice order, that passes the features. None left, or two taken:
     unsatisfiable.
   - `optional`: its members only when the caller names it; needed otherwise
     (required, or required by a parcel), it is satisfied by none.
6. Naming a group the invoice does not define is unsatisfiable.

Every refusal is an UnsatisfiableSelection whose message names the rule it breaks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bindle_server.errors import InvalidInput
from bindle_server.model.group import Group, SatisfiedBy
from bindle_server.model.invoice import Invoice
from bindle_server.model.parcel import Label, Parcel

# Names quoted in a message are cut to this many, so an answer stays short.
_MAX_QUOTED = 10


class UnsatisfiableSelection(InvalidInput):
    """The groups and features asked for cannot be satisfied by the invoice (400).

    `rule` is the short name of the broken rule (`unknown group`, `oneOf`, `allOf`,
    `feature syntax`), which the message also starts with.
    """

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"unsatisfiable selection ({rule}): {detail}")
        self.rule = rule


@dataclass(frozen=True)
class Feature:
    """One requested feature: `namespace.key = value` (a label's `feature` table)."""

    namespace: str
    key: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Feature:
        """`NS.KEY=VALUE`; the namespace ends at the first dot, the key at the first `=`."""
        left, equals, value = text.partition("=")
        namespace, dot, key = left.partition(".")
        if not equals or not dot or not namespace or not key:
            raise UnsatisfiableSelection(
                "feature syntax", f"{_quote(text)} is not NS.KEY=VALUE (e.g. wasm.os=linux)"
            )
        return cls(namespace, key, value)

    def admits(self, label: Label) -> bool:
        """Whether the label passes: it does not declare this key, or with this value."""
        declared = (label.feature or {}).get(self.namespace, {}).get(self.key)
        return declared is None or declared == self.value

    def __str__(self) -> str:
        return f"{self.namespace}.{self.key}={self.value}"


@dataclass(frozen=True)
class Selection:
    """What a selection needs: its labels in invoice order, and the groups it satisfies.

    `chosen` maps each needed `oneOf` group to the sha256 of the member that satisfies it.
    """

    labels: tuple[Label, ...]
    groups: tuple[str, ...]
    chosen: dict[str, str]

    @property
    def size(self) -> int:
        return sum(label.size for label in self.labels)


def parse_features(texts: Iterable[str]) -> list[Feature]:
    """Parse `NS.KEY=VALUE` texts; two values for one key cannot both hold (400)."""
    features: dict[tuple[str, str], Feature] = {}
    for text in texts:
        feature = Feature.parse(text)
        earlier = features.setdefault((feature.namespace, feature.key), feature)
        if earlier.value != feature.value:
            raise UnsatisfiableSelection(
                "feature syntax",
                f"{feature.namespace}.{feature.key} is asked for as both "
                f"{_quote(earlier.value)} and {_quote(feature.value)}",
            )
    return list(features.values())


def resolve(
    invoice: Invoice, groups: Sequence[str] = (), features: Sequence[Feature] = ()
) -> Selection:
    """The labels `invoice` needs for the named `groups` and `features` (rules above)."""
    return _Resolution(invoice, groups, features).run()


class _Resolution:
    """One resolution's state: the parcels taken and the groups still to satisfy."""

    def __init__(self, invoice: Invoice, named: Sequence[str], features: Sequence[Feature]) -> None:
        self.groups = {group.name: group for group in invoice.groups}
        unknown = [name for name in dict.fromkeys(named) if name not in self.groups]
        if unknown:
            defined = ", ".join(_quote(name) for name in list(self.groups)[:_MAX_QUOTED])
            raise UnsatisfiableSelection(
                "unknown group",
                f"the invoice defines no group {', '.join(_quote(n) for n in unknown)} "
                f"(it defines: {defined or 'no groups'})",
            )
        self.named = set(named)
        self.features = features
        self.parcels = invoice.parcels
        self.admitted = [all(f.admits(p.label) for f in features) for p in self.parcels]
        self.members: dict[str, list[int]] = {name: [] for name in self.groups}
        for index, parcel in enumerate(self.parcels):
            for name in dict.fromkeys(_member_of(parcel)):
                self.members[name].append(index)
        self.taken: set[int] = set()  # indexes into self.parcels
        self.needed: dict[str, None] = {}  # insertion-ordered set
        self.pending: list[str] = []
        self.one_of: list[str] = []

    def run(self) -> Selection:
        for group in self.groups.values():
            if group.required or group.name in self.named:
                self._need(group.name)
        for index, parcel in enumerate(self.parcels):
            if not _member_of(parcel) and self.admitted[index]:
                self._take(index)
        while self.pending or self.one_of:
            while self.pending:
                self._satisfy(self.groups[self.pending.pop(0)])
            # oneOf groups are settled last, so that a member another group takes is
            # recognised as the chosen one rather than a second choice.
            if self.one_of:
                self._choose(self.groups[self.one_of.pop(0)])
        chosen = {name: self._check_one_of(name) for name in self.needed if self._is_one_of(name)}
        labels = tuple(self.parcels[index].label for index in sorted(self.taken))
        return Selection(labels, tuple(self.needed), chosen)

    def _need(self, name: str) -> None:
        if name in self.needed:
            return
        self.needed[name] = None
        if self._is_one_of(name):
            self.one_of.append(name)
        else:
            self.pending.append(name)

    def _take(self, index: int) -> None:
        if index in self.taken:
            return
        self.taken.add(index)
        conditions = self.parcels[index].conditions
        for name in (conditions.requires if conditions else None) or ():
            self._need(name)

    def _satisfy(self, group: Group) -> None:
        if group.satisfied_by is SatisfiedBy.OPTIONAL and group.name not in self.named:
            return
        members = self.members[group.name]
        admitted = [index for index in members if self.admitted[index]]
        if members and not admitted and group.satisfied_by is not SatisfiedBy.OPTIONAL:
            raise UnsatisfiableSelection(
                "allOf",
                f"group {_quote(group.name)} {self._why_needed(group)}, but the features "
                f"{self._features()} exclude all {len(members)} of its parcels",
            )
        for index in admitted:
            self._take(index)

    def _choose(self, group: Group) -> None:
        members = self.members[group.name]
        if any(index in self.taken for index in members):
            return  # checked once everything is taken
        admitted = [index for index in members if self.admitted[index]]
        if not admitted:
            reason = (
                f"the features {self._features()} exclude all {len(members)} of its parcels"
                if members
                else "it has no parcels"
            )
            raise UnsatisfiableSelection(
                "oneOf",
                f"group {_quote(group.name)} {self._why_needed(group)} and needs exactly "
                f"one parcel, but {reason}",
            )
        self._take(admitted[0])

    def _check_one_of(self, name: str) -> str:
        taken = [index for index in self.members[name] if index in self.taken]
        if len(taken) != 1:
            names = ", ".join(_quote(self._describe(index)) for index in taken[:_MAX_QUOTED])
            raise UnsatisfiableSelection(
                "oneOf",
                f"group {_quote(name)} allows exactly one of its parcels, but the selection "
                f"takes {len(taken)}: {names}",
            )
        return self.parcels[taken[0]].label.sha256

    def _is_one_of(self, name: str) -> bool:
        return self.groups[name].satisfied_by is SatisfiedBy.ONE_OF

    def _why_needed(self, group: Group) -> str:
        if group.name in self.named:
            return "is named"
        return "is required" if group.required else "is required by a selected parcel"

    def _features(self) -> str:
        return ", ".join(str(feature) for feature in self.features)

    def _describe(self, index: int) -> str:
        label = self.parcels[index].label
        return label.name or label.sha256


def _member_of(parcel: Parcel) -> list[str]:
    conditions = parcel.conditions
    return (conditions.member_of if conditions else None) or []


def _quote(text: str) -> str:
    return repr(text if len(text) <= 100 else text[:97] + "...")
