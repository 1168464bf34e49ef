"""Domain errors to HTTP: one table of statuses, one TOML error body for every failure."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from bindle_server import errors
from bindle_server.model import error_document

log = logging.getLogger(__name__)

# Looked up along the exception's MRO, so a subclass inherits its parent's status.
STATUS_BY_ERROR: dict[type[errors.BindleError], int] = {
    errors.InvalidInput: 400,
    errors.NotFound: 404,
    errors.InvoiceYanked: 403,
    errors.AlreadyExists: 409,
    errors.YankedOnCreate: 422,
    errors.RangeNotSatisfiable: 416,
    errors.PayloadTooLarge: 413,
    errors.BodyTimeout: 408,
    errors.InsufficientStorage: 507,
    errors.StorageUnavailable: 503,
    errors.StoredInvoiceDamaged: 500,
    errors.StoredParcelDamaged: 500,  # found before the first byte; later, the stream breaks
    errors.Unauthenticated: 401,
    errors.AccessDenied: 403,
    errors.PurgeDisabled: 403,
    errors.AuthProviderUnavailable: 502,
}

TOML = "application/toml"


# Messages quote what the client sent; a 60 KB name must not come back as a 60 KB error.
MAX_MESSAGE = 1000


# The web UI's routes set `request.state.error_page` to one of these, so that their
# errors are HTML pages (same status and headers) rather than TOML bodies.
ErrorPage = Callable[[Request, int, str, Mapping[str, str] | None], Response]


def _bounded(message: str) -> str:
    if len(message) > MAX_MESSAGE:
        return message[: MAX_MESSAGE - 20] + " [... truncated]"
    return message


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        error_document(_bounded(message)), status_code=status, media_type=TOML, headers=headers
    )


def _answer(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    page: ErrorPage | None = getattr(request.state, "error_page", None)
    if page is None:
        return error_response(status, message, headers)
    return page(request, status, _bounded(message), headers)


def status_for(exc: errors.BindleError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


async def _bindle_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.BindleError)
    status = status_for(exc)
    headers = None
    if isinstance(exc, errors.RangeNotSatisfiable):
        headers = {"Content-Range": f"bytes */{exc.size}"}
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    response = _answer(request, status, exc.message, headers)
    if isinstance(exc, errors.Unauthenticated):
        # One header per scheme (RFC 9110 11.6.1), so every client finds its own.
        for challenge in exc.challenges:
            response.headers.append("WWW-Authenticate", challenge)
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _answer(request, exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
    return _answer(request, 400, f"invalid request: {problems}")


async def _client_disconnect(request: Request, exc: Exception) -> Response:
    # Nobody is left to read this answer; the upload has already been discarded.
    log.info("%s %s: client disconnected mid-request", request.method, request.url.path)
    return error_response(400, "the client disconnected before the request body was complete")


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed unexpectedly", request.method, request.url.path)
    return _answer(request, 500, "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.BindleError, _bindle_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    app.add_exception_handler(Exception, _unexpected_error)
