"""View models: what each page shows, built from the service's results and nothing else.

Pages stay logic-free this way: templates loop and escape, these functions decide order,
sizes, trust and the copy-paste commands. None of them does IO.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bindle_server.model import Invoice, Label, Version, dump_invoice
from bindle_server.signing import KeyRing
from bindle_server.web.templating import url_part


@dataclass(frozen=True)
class InvoiceSummary:
    """One invoice as a search result or a version row."""

    name: str
    version: str
    description: str
    parcels: int
    size: int
    yanked: bool
    prerelease: bool


def summarize(invoice: Invoice) -> InvoiceSummary:
    bindle = invoice.bindle
    labels = [parcel.label for parcel in invoice.parcels]
    return InvoiceSummary(
        name=bindle.name,
        version=bindle.version,
        description=bindle.description or "",
        parcels=len(labels),
        size=sum(label.size for label in labels),
        yanked=invoice.is_yanked,
        prerelease="-" in bindle.version.split("+", 1)[0],
    )


def versions_newest_first(invoices: Iterable[Invoice]) -> list[InvoiceSummary]:
    """Every version of one name, newest first by SemVer precedence; versions equal in
    precedence (they differ only in build metadata) in reverse text order, for a stable page."""
    ordered = sorted(invoices, key=lambda invoice: invoice.bindle.version, reverse=True)
    ordered.sort(key=lambda invoice: Version.parse(invoice.bindle.version), reverse=True)
    return [summarize(invoice) for invoice in ordered]


@dataclass(frozen=True)
class GroupView:
    name: str
    required: bool
    satisfied_by: str
    members: list[str]


@dataclass(frozen=True)
class FeatureView:
    parcel: str
    group: str
    key: str
    value: str


@dataclass(frozen=True)
class SignatureView:
    by: str
    role: str
    key: str
    at: int
    trusted: bool


@dataclass(frozen=True)
class Command:
    title: str
    text: str


@dataclass(frozen=True)
class InvoiceView:
    """Everything the invoice page shows (the README is loaded apart: it needs IO)."""

    summary: InvoiceSummary
    authors: list[str]
    annotations: list[tuple[str, str]]
    labels: list[Label]
    groups: list[GroupView]
    features: list[FeatureView]
    signatures: list[SignatureView]
    raw: str


def _parcel_name(label: Label) -> str:
    return label.name or label.sha256[:12]


def _groups(invoice: Invoice) -> list[GroupView]:
    members: dict[str, list[str]] = {group.name: [] for group in invoice.groups}
    for parcel in invoice.parcels:
        for group in (parcel.conditions.member_of if parcel.conditions else None) or ():
            members.setdefault(group, []).append(_parcel_name(parcel.label))
    return [
        GroupView(
            group.name,
            bool(group.required),
            (group.satisfied_by.value if group.satisfied_by else "allOf"),
            members[group.name],
        )
        for group in invoice.groups
    ]


def _features(labels: Sequence[Label]) -> list[FeatureView]:
    return [
        FeatureView(_parcel_name(label), group, key, value)
        for label in labels
        for group, values in (label.feature or {}).items()
        for key, value in values.items()
    ]


def _signatures(invoice: Invoice, keyring: KeyRing) -> list[SignatureView]:
    # Trust as the server decides it when verifying: the key must be in its keyring for
    # the role the signature claims (section 14 item 14).
    return [
        SignatureView(s.by, s.role.value, s.key, s.at, keyring.trusts(s.key, s.role))
        for s in invoice.signature or ()
    ]


def invoice_view(invoice: Invoice, keyring: KeyRing, stored: bytes | None = None) -> InvoiceView:
    """The page's view of `invoice`; `stored` is its stored TOML document, shown as is
    (serialising 1,000 parcels again would cost more than the rest of the page)."""
    labels = invoice.labels
    return InvoiceView(
        summary=summarize(invoice),
        authors=list(invoice.bindle.authors or ()),
        annotations=sorted((invoice.annotations or {}).items()),
        labels=labels,
        groups=_groups(invoice),
        features=_features(labels),
        signatures=_signatures(invoice, keyring),
        raw=(stored if stored is not None else dump_invoice(invoice)).decode("utf-8", "replace"),
    )


def invoice_commands(base: str, name: str, version: str) -> list[Command]:
    """How to fetch this bindle, with this server's URL."""
    api = f"{base}/v1"
    bindle = f"{name}/{version}"
    directory = "./" + name.rsplit("/", 1)[-1]
    quoted = shlex.quote
    return [
        Command("bindle get", f"bindle -s {quoted(api)} get {quoted(bindle)}"),
        Command(
            "bindle pull", f"bindle -s {quoted(api)} pull {quoted(bindle)} {quoted(directory)}"
        ),
        Command("curl", f"curl -fsS {quoted(f'{api}/_i/{url_part(bindle)}')}"),
        Command(
            "curl (whole bindle)",
            f"curl -fsSO {quoted(f'{base}/download/{url_part(bindle)}.tar.gz')}",
        ),
    ]


def first_push_commands(base: str) -> list[Command]:
    """How to push a first bindle to this server."""
    api = f"{base}/v1"
    return [
        Command(
            "bindle",
            f"export BINDLE_URL={shlex.quote(api)}\n"
            "bindle push-dir ./site --name example.com/site --version 0.1.0\n"
            "bindle search -q site",
        ),
        Command(
            "curl",
            "printf 'hello, bindle\\n' > hello.txt\n"
            "SHA=$(sha256sum hello.txt | cut -d' ' -f1)\n"
            "cat > invoice.toml <<EOF\n"
            'bindleVersion = "1.0.0"\n\n'
            "[bindle]\n"
            'name = "example.com/hello"\n'
            'version = "1.0.0"\n\n'
            "[[parcel]]\n"
            "[parcel.label]\n"
            'sha256 = "$SHA"\n'
            'mediaType = "text/plain"\n'
            'name = "hello.txt"\n'
            "size = $(stat -c %s hello.txt)\n"
            "EOF\n"
            f"B={shlex.quote(api)}\n"
            "curl -s -X POST -H 'Content-Type: application/toml' "
            "--data-binary @invoice.toml $B/_i\n"
            'curl -s -X POST --data-binary @hello.txt "$B/_i/example.com/hello/1.0.0@$SHA"',
        ),
    ]
