"""A selection of a stored bindle (groups and features), resolved or as a by-name tar.

    invoice.toml          the invoice as the API serves it
    <label name>          each selected parcel under its name (its sha256 when unnamed)

The tar is a function of the invoice bytes and the selected labels only (entries sorted
by name, fixed owner, mode and mtime), so the same selection always gives the same bytes:
`tag_input` is what its ETag is computed from, and a byte range of it can be resumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bindle_server.errors import InvalidInput, NotFound
from bindle_server.model import BindleId, Invoice, Label, dump_invoice
from bindle_server.model.names import name_problem
from bindle_server.model.resolution import Selection, parse_features, resolve
from bindle_server.service.archive import INVOICE_FILE, stored_now
from bindle_server.service.core import BindleService
from bindle_server.service.tarstream import TarStream, bytes_entry, damaged, parcel_entry

# Bumped whenever the tar layout changes, so that old ETags stop matching.
_LAYOUT = b"bindle-selection-archive/1\n"
# Names quoted in one refusal are cut to this many.
_MAX_QUOTED = 10


class UnarchivableNames(InvalidInput):
    """Some selected parcels' names cannot be paths in a by-name archive (400)."""

    def __init__(self, bindle_id: str, problems: list[str]) -> None:
        shown = "; ".join(problems[:_MAX_QUOTED])
        more = f" (and {len(problems) - _MAX_QUOTED} more)" if len(problems) > _MAX_QUOTED else ""
        super().__init__(
            f"the parcels of {bindle_id} cannot be archived by name: {shown}{more}; "
            "fetch them one by one by digest instead"
        )
        self.problems = problems


class SelectedParcelsMissing(NotFound):
    """Selected parcels are listed by the invoice but not stored (404, before any byte)."""

    def __init__(self, bindle_id: str, missing: list[Label]) -> None:
        names = ", ".join(repr(label.name or label.sha256) for label in missing[:_MAX_QUOTED])
        super().__init__(
            f"{len(missing)} selected parcel(s) of {bindle_id} have not been uploaded "
            f"({names}); the archive would be incomplete"
        )
        self.missing = missing


@dataclass(frozen=True)
class Resolved:
    """A readable invoice and what a selection of it needs."""

    invoice: Invoice
    selection: Selection


@dataclass(frozen=True)
class SelectionArchive:
    """The by-name tar of a selection: its length, ETag input and bytes (`tar.stream`)."""

    resolved: Resolved
    tar: TarStream
    tag_input: bytes
    final: bool  # the invoice is yanked, so these bytes can never change again

    @property
    def filename(self) -> str:
        """A file name to offer: `NAME-VERSION.tar` with the name's slashes as dashes."""
        bindle_id = self.resolved.invoice.bindle_id
        return f"{bindle_id.name.replace('/', '-')}-{bindle_id.version}.tar"


async def resolve_selection(
    service: BindleService,
    bindle_id: BindleId,
    groups: Sequence[str] = (),
    features: Sequence[str] = (),
    *,
    allow_yanked: bool = False,
) -> Resolved:
    """The invoice, read as `get_invoice` reads it, and the labels the selection needs.

    Raises UnsatisfiableSelection (400) naming the broken rule (model.resolution).
    """
    parsed = parse_features(features)  # a malformed feature is refused before any lookup
    invoice = await service.get_invoice(bindle_id, allow_yanked=allow_yanked)
    return Resolved(invoice, resolve(invoice, groups, parsed))


async def open_selection_archive(
    service: BindleService,
    bindle_id: BindleId,
    groups: Sequence[str] = (),
    features: Sequence[str] = (),
    *,
    allow_yanked: bool = False,
) -> SelectionArchive:
    """The archive of the selection; of every parcel when no group or feature is named.

    Everything that would break the stream is refused before its first byte: names that
    cannot be paths (UnarchivableNames), parcels not stored (SelectedParcelsMissing), and
    stored sizes that differ from the labels (StoredParcelDamaged).
    """
    if groups or features:
        resolved = await resolve_selection(
            service, bindle_id, groups, features, allow_yanked=allow_yanked
        )
    else:
        # The whole bindle: no rule to apply, so none can refuse it.
        whole = await service.get_invoice(bindle_id, allow_yanked=allow_yanked)
        everything = Selection(tuple(whole.labels), tuple(g.name for g in whole.groups), {})
        resolved = Resolved(whole, everything)
    invoice, labels = resolved.invoice, resolved.selection.labels
    names = archive_names(invoice, labels)
    stored = await stored_now(service, list(labels))
    missing = [label for label in labels if label.sha256 not in stored]
    if missing:
        raise SelectedParcelsMissing(str(bindle_id), missing)
    for label in labels:
        if stored[label.sha256] != label.size:
            raise damaged(label, str(stored[label.sha256]))
    invoice_bytes = dump_invoice(invoice)
    mtime = invoice.created_at or 0
    by_name = sorted(zip(names, labels, strict=True))
    entries = [bytes_entry(INVOICE_FILE, invoice_bytes, mtime)]
    entries += [parcel_entry(name, label, mtime) for name, label in by_name]
    listing = "".join(f"{label.sha256} {name}\n" for name, label in by_name)
    return SelectionArchive(
        resolved,
        TarStream(entries, service.read_parcel),
        _LAYOUT + invoice_bytes + b"\0" + listing.encode(),
        final=invoice.is_yanked,
    )


def archive_names(invoice: Invoice, labels: Sequence[Label]) -> list[str]:
    """The path of each label in the archive; refuses names that cannot be one.

    A name must be a safe relative path (model.names), unique, not `invoice.toml`, and
    not the directory of another name: extracting the tar must give exactly one file
    per parcel, inside the directory it is extracted into.
    """
    names = [label.name or label.sha256 for label in labels]
    problems: list[str] = []
    seen: set[str] = set()
    for name in names:
        problem = name_problem(name)
        if problem is None and name == INVOICE_FILE:
            problem = "it is the archive's own invoice file"
        if problem is None and name in seen:
            problem = "two selected parcels have it"
        if problem is not None:
            problems.append(f"{name!r}: {problem}")
        seen.add(name)
    for name in seen:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in seen:
                problems.append(f"{parent!r}: another selected parcel is inside it")
    if problems:
        raise UnarchivableNames(str(invoice.bindle_id), sorted(set(problems)))
    return names
