"""README and license parcels as sanitised HTML: markdown-it-py with raw HTML off, links
limited to safe schemes, images left out, and only the first bytes of the parcel read."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup, escape

from bindle_server.errors import ParcelNotFound
from bindle_server.model import BindleId, Label
from bindle_server.service import BindleService
from bindle_server.threads import run_sync

# Enough for any real README; a bigger parcel is shown cut off, never read whole.
MAX_README_BYTES = 256 * 1024
README_KEY = "bindle.dev/readme"
_MARKDOWN_TYPES = ("text/markdown", "text/x-markdown")
_SAFE_SCHEMES = ("http", "https", "mailto")


@dataclass(frozen=True)
class Readme:
    """A rendered README: its label, the HTML, and whether it was cut off."""

    label: Label
    html: Markup
    truncated: bool


def _media_essence(label: Label) -> str:
    return label.media_type.split(";", 1)[0].strip().lower()


def readme_label(labels: Sequence[Label]) -> Label | None:
    """The parcel to show as the README: one marked `bindle.dev/readme` (an annotation or
    a feature group) first, else the first markdown parcel."""
    for label in labels:
        if README_KEY in (label.annotations or {}) or README_KEY in (label.feature or {}):
            return label
    for label in labels:
        if _media_essence(label) in _MARKDOWN_TYPES:
            return label
    return None


def _valid_link(url: str) -> bool:
    # Only web and mail links, or links within the page/server; never javascript:, data:,
    # vbscript: or file:, however they are spelled (markdown-it has normalised the URL).
    scheme = urlsplit(url.strip()).scheme.lower()
    return scheme == "" or scheme in _SAFE_SCHEMES


def _link_open(
    renderer: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    # markdown-it-py calls render rules as methods of its renderer.
    tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
    rendered: str = renderer.renderToken(tokens, idx, options, env)
    return rendered


@functools.cache
def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    # Images would load from wherever the README points; the CSP blocks them anyway.
    parser.disable("image")
    parser.validateLink = _valid_link  # type: ignore[method-assign]  # the documented hook
    parser.add_render_rule("link_open", _link_open)
    return parser


def render_markdown(text: str) -> Markup:
    """Markdown to HTML; any HTML in `text` comes out as escaped text."""
    return Markup(_parser().render(text))


def render_plain(text: str) -> Markup:
    return Markup("<pre>") + escape(text) + Markup("</pre>")


class _RenderedCache:
    """Recently rendered READMEs by parcel digest. Parcels are content-addressed, so an
    entry never goes stale; rendering a big README takes long enough to be worth keeping."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, bool], tuple[Markup, bool]] = OrderedDict()

    def get(self, key: tuple[str, bool]) -> tuple[Markup, bool] | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: tuple[str, bool], value: tuple[Markup, bool]) -> None:
        self._entries[key] = value
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


_RENDERED = _RenderedCache()


async def load_readme(service: BindleService, bindle_id: BindleId, label: Label) -> Readme | None:
    """The rendered README parcel, or None when its bytes are not stored."""
    try:
        stored = await service.stored_parcel(bindle_id, label.sha256, allow_yanked=True)
    except ParcelNotFound:
        return None
    markdown = _media_essence(label) in _MARKDOWN_TYPES
    key = (label.sha256, markdown)
    cached = _RENDERED.get(key)
    if cached is None:
        end = min(stored.size, MAX_README_BYTES)
        chunks = [chunk async for chunk in service.read_parcel(label.sha256, 0, end)]
        text = b"".join(chunks)[:MAX_README_BYTES].decode("utf-8", errors="replace")
        # Hundreds of KiB of markdown take a second to render: off the event loop.
        html = await run_sync(render_markdown if markdown else render_plain, text)
        cached = (html, stored.size > MAX_README_BYTES)
        _RENDERED.put(key, cached)
    html, truncated = cached
    return Readme(label, html, truncated)
