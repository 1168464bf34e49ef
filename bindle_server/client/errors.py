"""The client's exception tree: every error the client raises on purpose is a ClientError.

ClientError                      = bindle_server.errors.BindleError, the server's root too
├── InvalidInput             (1) an argument or local file is malformed (bindle id, invoice)
│   └── IntegrityError       (1) bytes do not match the label that names them
│       ├── DigestMismatch   (1) they hash to another sha256
│       └── SizeMismatch     (1) there are more or fewer of them than the label's size
├── ConnectionFailed             no HTTP answer (refused, reset, timed out), after the retries
├── UnexpectedResponse           an answer that breaks the protocol (not TOML, keys missing)
│   └── NotABindleServer         a 404 without a Bindle error: the URL is not an API root
├── ResponseError            (1) the server answered with an error status; `.status`, `.message`
│   ├── BadRequest               400: the server refused what was sent
│   ├── Unauthorized             401: credentials were sent and refused
│   ├── Forbidden                403: not allowed
│   │   └── BindleYanked         403 because the bindle is yanked (ask for yanked bindles)
│   ├── NotFound             (1) 404
│   │   ├── InvoiceNotFound  (1) no such invoice
│   │   └── ParcelNotFound   (1) the invoice lists the parcel but its bytes are not uploaded
│   ├── AlreadyExists        (1) 409
│   │   ├── InvoiceExists    (1) invoices are immutable; this one is stored already
│   │   └── ParcelExists     (1) the parcel's bytes are stored already
│   ├── Unprocessable            422: e.g. an invoice submitted with `yanked = true`
│   └── ServerError              5xx, after the retries for calls that may be repeated
├── InvoiceMismatch              push: the server holds a different invoice under this id
├── StandaloneError              a standalone bindle on disk is malformed or incomplete
└── UnsafeParcelName             pull: a parcel name would write outside the target directory

(1) defined once, in `bindle_server.errors`, and raised by the server as well: the client
rebuilds a 404 or 409 answer into the class the server raised (`ResponseError.answered`).

Statuses map to classes by `error_for_status`, from the status code, what the request
addressed (an invoice or a parcel) and the `error = "..."` TOML body the server sent.
"""

from __future__ import annotations

from enum import Enum

from bindle_server.errors import (
    AlreadyExists,
    BindleError,
    InvoiceExists,
    InvoiceNotFound,
    NotFound,
    ParcelExists,
    ParcelNotFound,
    ResponseError,
)

# One root for both sides: `except ClientError` also catches the classes the server shares.
ClientError = BindleError


class ConnectionFailed(ClientError):
    """The server could not be reached or the connection broke, also after retrying."""


class UnexpectedResponse(ClientError):
    """The server's answer does not follow the Bindle protocol."""


class NotABindleServer(UnexpectedResponse):
    """A 404 without a Bindle error document: the server URL is not a Bindle API root.

    Usually the URL lacks the API's path (`/v1`), so the request reached the server's
    root, where nothing is routed.
    """


class BadRequest(ResponseError):
    """400: the server refused the request or what it carried."""


class Unauthorized(ResponseError):
    """401: the credentials that were sent are not valid."""


class Forbidden(ResponseError):
    """403: the request is not allowed."""


class BindleYanked(Forbidden):
    """403: the bindle is yanked; it is served only to requests that ask for yanked bindles."""


class Unprocessable(ResponseError):
    """422: the request is well-formed but cannot be applied."""


class ServerError(ResponseError):
    """5xx: the server failed."""


class InvoiceMismatch(ClientError):
    """Push: the server already stores a different invoice under this bindle id.

    Invoices are immutable, so uploading parcels for the local one would leave a bindle
    that is not what the user built (deislabs/bindle#335).
    """

    def __init__(self, bindle_id: str, differences: list[str]) -> None:
        super().__init__(
            f"the server already has an invoice for {bindle_id} and it differs from the local "
            f"one in: {', '.join(differences)}. Invoices cannot change: publish a new version"
        )
        self.bindle_id = bindle_id
        self.differences = differences


class StandaloneError(ClientError):
    """A standalone bindle on disk is malformed, or a parcel file does not hash to its name."""


class UnsafeParcelName(ClientError):
    """Pull: a parcel name is absolute, climbs with `..`, or leads through a symlink outside."""

    def __init__(self, names: list[str], directory: str) -> None:
        listed = ", ".join(repr(name) for name in names)
        super().__init__(
            f"refusing to pull: parcel name(s) {listed} would be written outside {directory}"
        )
        self.names = names


class Addressed(Enum):
    """What a request addressed, which decides the error class a status maps to."""

    INVOICE = "invoice"
    PARCEL = "parcel"
    OTHER = "other"


_BY_STATUS: dict[int, type[ResponseError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: AlreadyExists,
    422: Unprocessable,
}


def error_for_status(
    status: int, message: str, method: str, url: str, addressed: Addressed
) -> ResponseError:
    """The most specific ResponseError for a status, the request's target and the message."""
    cls: type[ResponseError]
    lowered = message.lower()
    if status >= 500:
        cls = ServerError
    elif status == 403 and "yank" in lowered:
        cls = BindleYanked
    elif status == 404 and addressed is Addressed.INVOICE:
        cls = InvoiceNotFound
    elif status == 404 and addressed is Addressed.PARCEL:
        # Both an unknown bindle and a listed-but-absent parcel answer 404 here.
        cls = InvoiceNotFound if "invoice" in lowered else ParcelNotFound
    elif status == 409 and addressed is Addressed.INVOICE:
        cls = InvoiceExists
    elif status == 409 and addressed is Addressed.PARCEL:
        cls = ParcelExists
    else:
        cls = _BY_STATUS.get(status, ResponseError)
    return cls.answered(status, message, method, url)
