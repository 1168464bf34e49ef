"""The UI's pages: home and search, a bindle's versions, an invoice, the server, and the
static assets they use. Access is the API's: `get_access`, then `require` per name, and
lists filtered to the names the caller may read, as `/v1/_q` does."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response

from bindle_server import __version__
from bindle_server.api.auth import Access, AccessDep
from bindle_server.api.deps import ServiceDep, SettingsDep
from bindle_server.auth import Verb
from bindle_server.errors import InvalidQuery, NotFound
from bindle_server.model import BindleId, Invoice, check_name
from bindle_server.search.query import MAX_LIMIT, Query
from bindle_server.service import BindleService
from bindle_server.threads import run_sync
from bindle_server.web import actions
from bindle_server.web.actions import Action
from bindle_server.web.markdown import load_readme, readme_label
from bindle_server.web.templating import base_url, render
from bindle_server.web.views import (
    first_push_commands,
    invoice_commands,
    invoice_view,
    summarize,
    versions_newest_first,
)

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
STATIC = Path(__file__).parent / "static"
_ASSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\.(css|js|png|svg|ico)")
_ASSET_TYPES = {
    "css": "text/css; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "png": "image/png",
    "svg": "image/svg+xml",
    "ico": "image/x-icon",
}
# Asset URLs carry the server version (`?v=`), so an upgrade is fetched at once.
_ASSET_CACHE = "public, max-age=604800"


def _require_some_read(access: Access) -> None:
    # As /v1/_q: an anonymous caller who may read nothing is asked for credentials; an
    # authenticated one who may read nothing sees an empty list.
    if access.identity.is_anonymous:
        access.require_any(Verb.READ)


def _search_query(request: Request, access: Access) -> Query:
    """The search form's fields as a `_q` query (InvalidQuery for a bad range or offset)."""
    params = request.query_params
    fields = [("q", params.get("q", "")), ("v", params.get("v", ""))]
    if params.get("o"):
        fields.append(("o", params["o"]))
    if params.get("yanked") == "true":
        fields.append(("yanked", "true"))
    query = Query.from_params(fields)
    return dataclasses.replace(query, limit=PAGE_SIZE, name_prefixes=access.readable_prefixes())


def _page_link(request: Request, offset: int) -> str:
    given = request.query_params
    params = [(key, given[key]) for key in ("q", "v") if given.get(key)]
    if given.get("yanked") == "true":
        params.append(("yanked", "true"))
    if offset:
        params.append(("o", str(offset)))
    return "?" + urlencode(params) if params else "?"


@router.get("/")
async def home(request: Request, service: ServiceDep, access: AccessDep) -> Response:
    """Search by name terms and SemVer range; with nothing to read, how to push."""
    _require_some_read(access)
    params = request.query_params
    context: dict[str, object] = {
        "title": "Bindles",
        "q": params.get("q", ""),
        "v": params.get("v", ""),
        "yanked": params.get("yanked") == "true",
        "error": None,
        "results": [],
        "total": 0,
        "prev_link": None,
        "next_link": None,
        "first_push": None,
    }
    try:
        query = _search_query(request, access)
    except InvalidQuery as exc:
        context["error"] = exc.message
        return render(request, "home.html", context, status=400)
    result = await service.query(query)
    context["results"] = [summarize(invoice) for invoice in result.invoices]
    context["total"] = result.total
    context["offset"] = query.offset
    if query.offset > 0:
        context["prev_link"] = _page_link(request, max(0, query.offset - PAGE_SIZE))
    if result.more:
        context["next_link"] = _page_link(request, query.offset + len(result.invoices))
    searched = bool(query.terms or query.version_filter or query.offset)
    if result.total == 0 and not searched:
        everything = dataclasses.replace(query, yanked=True, limit=0)
        if query.yanked or (await service.query(everything)).total == 0:
            context["first_push"] = first_push_commands(base_url(request))
    return render(request, "home.html", context)


async def _versions_of(service: BindleService, name: str) -> list[Invoice]:
    """Every stored version of exactly `name`, yanked ones included."""
    # The prefix narrows the index scan to this name and longer names starting with it.
    query = Query(yanked=True, limit=MAX_LIMIT, name_prefixes=(name,))
    found: list[Invoice] = []
    while True:
        result = await service.query(query)
        found.extend(invoice for invoice in result.invoices if invoice.bindle.name == name)
        if not result.more or not result.invoices:
            return found
        query = dataclasses.replace(query, offset=query.offset + len(result.invoices))


@router.get("/bindle/{name:path}")
async def bindle_page(
    name: str, request: Request, service: ServiceDep, access: AccessDep
) -> Response:
    """Every version of one bindle name, newest first by SemVer precedence."""
    check_name(name)
    access.require(Verb.READ, name)
    invoices = await _versions_of(service, name)
    if not invoices:
        raise NotFound(f"no bindle named {name} is stored")
    context = {"title": name, "name": name, "versions": versions_newest_first(invoices)}
    return render(request, "bindle.html", context)


def _target(path: str) -> tuple[BindleId, Action | None]:
    """`NAME/VERSION`, or `NAME/VERSION/yank` and `.../purge` (no version is a word)."""
    for action in Action:
        suffix = f"/{action.value}"
        if path.endswith(suffix):
            return BindleId.parse(path.removesuffix(suffix)), action
    return BindleId.parse(path), None


@router.get("/invoice/{path:path}")
async def invoice_page(
    path: str, request: Request, service: ServiceDep, access: AccessDep
) -> Response:
    """An invoice with its parcels, groups, signatures and README; or a confirmation."""
    bindle_id, action = _target(path)
    if action is not None:
        return await actions.confirm_page(request, service, access, action, bindle_id)
    access.require(Verb.READ, bindle_id.name)
    invoice = await service.get_invoice(bindle_id, allow_yanked=True)
    stored = await service.stores.invoices.read(bindle_id.key)
    view = invoice_view(invoice, service.signing.keyring, stored)
    label = readme_label(view.labels)
    readme = await load_readme(service, bindle_id, label) if label is not None else None
    context = {
        "title": str(bindle_id),
        "view": view,
        "name": bindle_id.name,
        "version": bindle_id.version,
        "commands": invoice_commands(base_url(request), bindle_id.name, bindle_id.version),
        "readme": readme,
        "may_yank": not invoice.is_yanked and actions.may(access, Action.YANK, bindle_id.name),
        "may_purge": actions.may(access, Action.PURGE, bindle_id.name),
    }
    return render(request, "invoice.html", context)


@router.post("/invoice/{path:path}")
async def invoice_action(
    path: str,
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    access: AccessDep,
) -> Response:
    """Yank or purge, from the confirmation page's form."""
    bindle_id, action = _target(path)
    if action is None:
        raise InvalidQuery("only /yank and /purge take a form")
    return await actions.perform(request, service, settings, access, action, bindle_id)


# The kind of backend only: its URL would tell any reader paths, hosts and bucket names.
_STORAGE_KINDS = {"file": "local disk", "memory": "memory", "s3": "S3-compatible bucket"}
_INDEX_KINDS = {"": "SQLite (embedded)", "postgresql": "PostgreSQL", "postgres": "PostgreSQL"}


def _kind_of(url: str, kinds: dict[str, str]) -> str:
    scheme = urlsplit(url).scheme.lower().split("+", 1)[0]
    return kinds.get(scheme, scheme or kinds.get("", "unknown"))


@router.get("/server")
async def server_page(
    request: Request, service: ServiceDep, settings: SettingsDep, access: AccessDep
) -> Response:
    """What this server runs on, and how much of it the caller may read."""
    _require_some_read(access)
    readable = Query(limit=0, name_prefixes=access.readable_prefixes())
    live = (await service.query(readable)).total
    every = (await service.query(dataclasses.replace(readable, yanked=True))).total
    signing = service.signing
    authorizer = access.setup.authorizer
    context = {
        "title": "Server",
        "version": __version__,
        "storage": _kind_of(service.stores.description, _STORAGE_KINDS),
        "index": _kind_of(settings.index, _INDEX_KINDS) if settings.index else _INDEX_KINDS[""],
        "live": live,
        "yanked_count": every - live,
        "strategy": signing.strategy.name,
        "require_signatures": signing.require_signatures,
        "trusted": len(signing.keyring.entries),
        "auth_enabled": access.setup.enabled,
        "anonymous_read": authorizer.open_access or authorizer.anonymous_read,
        "host_keys": service.published_keys().entries,
        "read_only": settings.read_only,
    }
    return render(request, "server.html", context)


@router.get("/assets/{file}")
async def asset(file: str) -> Response:
    """A stylesheet or script of the UI, from the package (never a path outside it)."""
    match = _ASSET_NAME.fullmatch(file)
    path = STATIC / file
    if match is None or not await run_sync(path.is_file):
        raise NotFound(f"no asset named {file}")
    return FileResponse(
        path,
        media_type=_ASSET_TYPES[match[1]],
        headers={"Cache-Control": _ASSET_CACHE, "X-Content-Type-Options": "nosniff"},
    )
