"""For the page tests: push bindles through the API routes, and read the pages' HTML."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

from fastapi.testclient import TestClient

from tests.factories import InvoiceDoc, ParcelData

# Elements that have no end tag in HTML.
_VOID = {"meta", "link", "input", "br", "img", "hr", "source", "wbr"}


def push(client: TestClient, doc: InvoiceDoc, *parcels: ParcelData, **headers: str) -> None:
    """Create the invoice and upload `parcels` through /v1, as a client would."""
    created = client.post("/v1/_i", content=doc.toml(), headers=headers)
    assert created.status_code in (201, 202), created.text
    for item in parcels:
        uploaded = client.post(
            f"/v1/_i/{doc.bindle_id}@{item.sha256}", content=item.data, headers=headers
        )
        assert uploaded.status_code == 200, uploaded.text


def yank(client: TestClient, bindle_id: str, **headers: str) -> None:
    answer = client.delete(f"/v1/_i/{bindle_id}", headers=headers)
    assert answer.status_code == 200, answer.text


@dataclass
class Element:
    """One parsed element: its tag, attributes, children and text (with its children's)."""

    tag: str
    attrs: dict[str, str]
    children: list[Element] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self) -> list[Element]:
        found = [self]
        for child in self.children:
            found.extend(child.iter())
        return found

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Element]:
        return [
            element
            for element in self.iter()[1:]
            if (tag is None or element.tag == tag) and (cls is None or cls in element.classes)
        ]

    def by_id(self, ident: str) -> Element:
        for element in self.iter():
            if element.attrs.get("id") == ident:
                return element
        raise AssertionError(f"no element with id {ident!r}")

    def has_id(self, ident: str) -> bool:
        return any(element.attrs.get("id") == ident for element in self.iter())


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(element)
        if tag not in _VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.parts.append(data)


def parse_page(html: str) -> Element:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root
