"""The UI's Jinja2 environment, its filters, and the two ways a page is answered: a
rendered template, or an HTML error page in place of the API's TOML one."""

from __future__ import annotations

import functools
import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from bindle_server import __version__
from bindle_server.model import Label
from bindle_server.model.units import format_size
from bindle_server.web.security import add_security_headers


def _when(seconds: int | None) -> str:
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def url_part(text: str) -> str:
    """A bindle name or version as a URL path: `/` and SemVer's `+` stay as they are,
    everything else that is not URL-safe is percent-encoded."""
    return quote(text, safe="/+")


def parcel_rows(labels: Sequence[Label], download: str, suffix: str) -> Markup:
    """The invoice page's parcel rows; each download link is `download` + sha256 + `suffix`.

    Built here rather than in the template: with a thousand parcels, Jinja's escaping of
    each value one by one was most of the page's time. Everything is escaped all the same.
    """
    prefix = html.escape(download)
    after = html.escape(suffix)
    rows = []
    for label in labels:
        sha = html.escape(label.sha256)
        rows.append(
            f'<tr class="parcel"><td>{html.escape(label.name or "")}</td>'
            f'<td data-label="Type">{html.escape(label.media_type)}</td>'
            f'<td class="num" data-label="Size">{html.escape(format_size(label.size))}</td>'
            f'<td><code class="sha256">{sha}</code> '
            f'<button class="copy" type="button" data-copy="{sha}" hidden>Copy</button></td>'
            f'<td><a class="download" href="{prefix}{sha}{after}">Download</a></td></tr>'
        )
    return Markup("\n".join(rows))


@functools.cache
def environment() -> Environment:
    """Templates from the package; every one autoescaped, whatever its name."""
    env = Environment(
        loader=PackageLoader("bindle_server.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["size"] = format_size
    env.filters["when"] = _when
    env.filters["urlpart"] = url_part
    env.globals["parcel_rows"] = parcel_rows
    env.globals["server_version"] = __version__
    return env


def base_url(request: Request) -> str:
    """This server's URL as the caller reached it (root path included), without a
    trailing slash: what the copy-paste commands use."""
    return str(request.base_url).rstrip("/")


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A page from `template`; `root` (the app's root path) prefixes every link."""
    page = (
        environment()
        .get_template(template)
        .render(root=request.scope.get("root_path", "").rstrip("/"), **context)
    )
    response = HTMLResponse(page, status_code=status, headers=dict(headers or {}))
    # The middleware adds these too, but a 500 page is answered outside every middleware.
    add_security_headers(response.headers)
    return response


_TITLES = {
    400: "Bad request",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    500: "Server error",
    503: "Unavailable",
}


def render_error(
    request: Request, status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """The HTML error page for a UI request (same status and headers as the API's)."""
    title = _TITLES.get(status, "Error")
    context = {"title": f"{status} {title}", "status": status, "heading": title, "message": message}
    return render(request, "error.html", context, status, headers)


async def mark_ui_request(request: Request) -> None:
    """Router dependency of every UI route: the API's exception handlers answer errors
    of marked requests with `render_error` (an HTML page) instead of a TOML body.
    `async` so that FastAPI calls it on the loop, not through its thread pool."""
    request.state.error_page = render_error
