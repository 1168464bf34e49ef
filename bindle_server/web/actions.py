"""Yank and purge from the UI: a confirmation page, then a form POST with a CSRF token.

CSRF defence is a double-submit cookie: the confirmation page sets a random token in an
HttpOnly, SameSite=Strict cookie and puts the same value in the form; the POST must bring
both, equal. Another site can make a browser send the cookie (not even that, with
SameSite=Strict) but cannot read it to fill in the form. Nothing is kept on the server,
so any worker process can check a token another one issued. An `Origin` (or `Referer`)
naming another host is refused as well.

The access checks and service calls are those of the API's DELETE route.
"""

from __future__ import annotations

import hmac
import secrets
from enum import StrEnum
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from bindle_server.api.auth import Access
from bindle_server.api.body import read_body
from bindle_server.auth import Verb
from bindle_server.config import Settings
from bindle_server.errors import PurgeDisabled
from bindle_server.model import BindleId
from bindle_server.service import BindleService
from bindle_server.web.templating import render, render_error

CSRF_COOKIE = "bindle_csrf"
CSRF_FIELD = "csrf"
_TOKEN_BYTES = 32
# The form holds one token; anything much bigger is not our form.
_MAX_FORM_BYTES = 4096


class Action(StrEnum):
    YANK = "yank"
    PURGE = "purge"


def require_action(access: Access, action: Action, bindle_id: BindleId) -> None:
    """The API's checks for DELETE (with `?purge=true` for a purge)."""
    if action is Action.PURGE:
        if not access.setup.enabled:
            raise PurgeDisabled()
        access.require(Verb.PURGE, bindle_id.name)
    else:
        access.require(Verb.YANK, bindle_id.name)


def may(access: Access, action: Action, name: str) -> bool:
    """Whether to offer `action` to this caller (the same rules, without raising)."""
    if action is Action.PURGE and not access.setup.enabled:
        return False
    verb = Verb.PURGE if action is Action.PURGE else Verb.YANK
    return access.setup.authorizer.allows(access.identity, verb, name)


def _valid_token(value: str) -> bool:
    # token_urlsafe(32) gives 43 characters of the URL-safe alphabet.
    return len(value) == 43 and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)


def _cookie_path(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/") + "/"


async def confirm_page(
    request: Request,
    service: BindleService,
    access: Access,
    action: Action,
    bindle_id: BindleId,
) -> Response:
    """The confirmation form, with the caller's CSRF token (a new one if it has none)."""
    require_action(access, action, bindle_id)
    invoice = await service.get_invoice(bindle_id, allow_yanked=True)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    token = cookie if _valid_token(cookie) else secrets.token_urlsafe(_TOKEN_BYTES)
    context = {
        "title": f"{action.value.capitalize()} {bindle_id}",
        "action": action.value,
        "bindle_id": str(bindle_id),
        "name": bindle_id.name,
        "version": bindle_id.version,
        "already_yanked": invoice.is_yanked,
        "csrf": token,
    }
    response = render(request, "confirm.html", context)
    if token != cookie:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            path=_cookie_path(request),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


def _foreign_origin(request: Request) -> bool:
    """Whether the request says it comes from a page of another host."""
    own = request.base_url.netloc
    origin = request.headers.get("origin")
    if origin is not None:
        # Browsers send the literal "null" for opaque origins (sandboxed frames, ...).
        return origin == "null" or urlsplit(origin).netloc != own
    referer = request.headers.get("referer")
    return referer is not None and urlsplit(referer).netloc != own


async def _csrf_problem(request: Request, settings: Settings) -> str | None:
    if _foreign_origin(request):
        return "the form was sent from another site"
    body = await read_body(request, _MAX_FORM_BYTES, settings.body_timeout, "form")
    fields = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    sent = fields.get(CSRF_FIELD, "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not _valid_token(cookie) or not _valid_token(sent):
        return "the form's security token is missing; reload the confirmation page"
    if not hmac.compare_digest(sent.encode(), cookie.encode()):
        return "the form's security token does not match; reload the confirmation page"
    return None


async def perform(
    request: Request,
    service: BindleService,
    settings: Settings,
    access: Access,
    action: Action,
    bindle_id: BindleId,
) -> Response:
    """Check access and the CSRF token, then yank or purge, and show what happened."""
    require_action(access, action, bindle_id)
    problem = await _csrf_problem(request, settings)
    if problem is not None:
        return render_error(request, 403, f"not done: {problem}")
    if action is Action.PURGE:
        await service.purge(bindle_id, reason=f"purged by {access.identity.subject}")
        message = f"{bindle_id} is purged: it is gone for good."
    else:
        await service.yank_invoice(bindle_id)
        message = f"{bindle_id} is yanked: it is hidden from search, and still readable."
    context = {
        "title": f"{action.value.capitalize()} {bindle_id}",
        "action": action.value,
        "message": message,
        "name": bindle_id.name,
        "version": bindle_id.version,
    }
    return render(request, "result.html", context)
