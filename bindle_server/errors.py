"""The domain's exception tree; the HTTP layer maps each class to one status code.

The client raises the same classes when a server answers with them (and its own,
drawn in `client/errors.py`, for what only a client meets), so one `except` clause
catches an error wherever it arose.

BindleError                      the client's ClientError is this class
├── InvalidInput                 a request, an argument or a local file is malformed
│   ├── InvalidBindleId          not NAME/VERSION, bad name or bad SemVer version
│   ├── InvalidDigest            not 64 lowercase hex characters
│   ├── InvalidInvoice           the invoice document does not parse or breaks a rule
│   ├── InvalidQuery             an unparsable `_q` parameter or SemVer filter
│   ├── ParcelNotInInvoice       the digest is not listed by the invoice it is reached through
│   └── IntegrityError           bytes do not match the label that names them
│       ├── SizeMismatch         they are more or fewer than the label's size
│       └── DigestMismatch       they do not hash to the parcel's digest
├── ResponseError                what a server answers with its status; a client rebuilds it
│   ├── NotFound
│   │   ├── InvoiceNotFound
│   │   ├── InvoicePending       atomic pushes: the invoice waits for parcels, hidden until then
│   │   └── ParcelNotFound       listed by the invoice but not uploaded yet
│   └── AlreadyExists
│       ├── InvoiceExists
│       │   ├── InvoiceConflict  another invoice is pending under this bindle id
│       │   └── InvoicePurged    the id was purged; only the purged content may come back
│       └── ParcelExists
├── InvoiceYanked                the invoice is yanked and the caller did not ask for yanked
├── YankedOnCreate               an invoice submitted with `yanked = true`
├── RangeNotSatisfiable          a `Range` that lies outside the parcel
├── PayloadTooLarge              a body, header block or invoice over the server's limits
├── BodyTimeout                  the client stopped sending the request body
├── InsufficientStorage          the disk is full
├── StorageUnavailable           the object store cannot be reached or refuses the server
├── StoredInvoiceDamaged         a stored invoice file no longer parses (run fsck)
├── StoredParcelDamaged          a stored parcel's length is not its label's size (run fsck)
├── Unauthenticated              credentials missing where required, or not valid
├── AccessDenied                 authenticated, but the policy does not allow the verb here
├── PurgeDisabled                purge over HTTP on a server without authentication
├── InvalidAuthConfig            an htpasswd, token or policy file the server cannot use
├── InvalidRetentionPolicy       a retention policy file the server cannot use
└── AuthProviderUnavailable      the OIDC provider cannot be reached or answers nonsense
"""

from __future__ import annotations

from typing import Self


class BindleError(Exception):
    """Base class of every error the server or the client raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(BindleError):
    """Something named or carried is malformed: a request, an argument or a local file."""


class InvalidBindleId(InvalidInput):
    """A bindle id is not NAME/VERSION with a valid name and SemVer version."""


class InvalidDigest(InvalidInput):
    """A parcel digest is not 64 lowercase hexadecimal characters."""


class InvalidInvoice(InvalidInput):
    """An invoice does not parse or breaks one of the invoice rules."""


class InvalidQuery(InvalidInput):
    """A query parameter or SemVer filter cannot be understood."""


class ParcelNotInInvoice(InvalidInput):
    """A parcel is reached through an invoice that does not list it."""

    def __init__(self, bindle_id: str, sha256: str) -> None:
        super().__init__(f"parcel {sha256} is not listed in invoice {bindle_id}")
        self.bindle_id = bindle_id
        self.sha256 = sha256


class IntegrityError(InvalidInput):
    """Bytes do not match the label that names them (the parcel `sha256`)."""

    def __init__(self, message: str, sha256: str) -> None:
        super().__init__(message)
        self.sha256 = sha256


class SizeMismatch(IntegrityError):
    """The bytes are more or fewer than the label's `size`.

    Without `where` the message speaks of an upload (the server's check); with it, of the
    bytes the client read from `where` (a download, a local file).
    """

    def __init__(
        self,
        sha256: str,
        expected: int,
        actual: int,
        where: str | None = None,
        *,
        at_least: bool = False,
    ) -> None:
        if where is None:
            got = f"at least {actual}" if at_least else str(actual)
            message = (
                f"parcel size does not match invoice: label of {sha256} says {expected} bytes, "
                f"upload has {got}"
            )
        else:
            got = f"more than {expected}" if actual > expected else str(actual)
            message = f"{where}: parcel {sha256} should have {expected} bytes, got {got}"
        super().__init__(message, sha256)
        self.expected = expected
        self.actual = actual


class DigestMismatch(IntegrityError):
    """The bytes do not hash to the parcel's digest (`where` as for SizeMismatch)."""

    def __init__(self, expected: str, actual: str, where: str | None = None) -> None:
        if where is None:
            message = f"digest does not match: expected sha256 {expected}, upload has {actual}"
        else:
            message = f"{where}: expected sha256 {expected}, the bytes hash to {actual}"
        super().__init__(message, expected)
        self.expected = expected
        self.actual = actual


class ResponseError(BindleError):
    """An error a server reports in its answer: a status and an `error = "..."` text.

    The server raises the domain's kinds (NotFound, AlreadyExists) and answers with their
    status; a client rebuilds an answer with `answered`, which sets `status`, `method`,
    `url` and `server_message` (None where the error was raised, not received). A rebuilt
    error carries only the answer: fields a subclass's own constructor sets (a bindle
    id, a digest) are the server's and are not set.
    """

    status: int | None = None
    method: str | None = None
    url: str | None = None
    server_message: str | None = None

    @classmethod
    def answered(cls, status: int, message: str, method: str, url: str) -> Self:
        """The error a client received: `message` is the answer's `error` text."""
        # Not `cls(...)`: a subclass's constructor takes what the server knew, not the answer.
        error = cls.__new__(cls)
        ResponseError.__init__(error, f"{message} ({method} {url} answered {status})")
        error.status, error.method, error.url = status, method, url
        error.server_message = message
        return error

    def reworded(self, message: str) -> Self:
        """The same answer with another message, from a caller that knows what it means."""
        if self.status is None or self.method is None or self.url is None:
            raise ValueError("only an error a client received can be reworded")
        return self.answered(self.status, message, self.method, self.url)


class NotFound(ResponseError):
    """Something named by the request is not stored."""


class InvoiceNotFound(NotFound):
    """No invoice is stored under this bindle id."""

    def __init__(self, bindle_id: str, purged_at: str | None = None) -> None:
        note = f": it was purged at {purged_at}" if purged_at else ""
        super().__init__(f"invoice {bindle_id} not found{note}")
        self.bindle_id = bindle_id


class InvoicePending(NotFound):
    """With atomic pushes, an invoice whose parcels are not all stored yet is not served."""

    def __init__(self, bindle_id: str, missing: int) -> None:
        super().__init__(
            f"bindle {bindle_id} is pending: {missing} parcel(s) missing; it becomes "
            f"visible once they are uploaded (GET /v1/_r/missing/{bindle_id} lists them)"
        )
        self.bindle_id = bindle_id
        self.missing = missing


class ParcelNotFound(NotFound):
    """The parcel is listed by the invoice but its bytes have not been uploaded."""

    def __init__(self, sha256: str) -> None:
        super().__init__(f"parcel {sha256} has not been uploaded")
        self.sha256 = sha256


class InvoiceYanked(BindleError):
    """The invoice is yanked; it is served only to callers who ask for yanked bindles."""

    def __init__(self, bindle_id: str) -> None:
        super().__init__(f"invoice {bindle_id} is yanked (add ?yanked=true to read it anyway)")
        self.bindle_id = bindle_id


class AlreadyExists(ResponseError):
    """The resource is immutable and already stored."""


class InvoiceExists(AlreadyExists):
    """An invoice with this bindle id already exists; invoices are never overwritten."""

    def __init__(self, bindle_id: str) -> None:
        super().__init__(f"resource already exists: invoice {bindle_id}")
        self.bindle_id = bindle_id


class InvoiceConflict(InvoiceExists):
    """A different invoice is pending under the bindle id being created."""

    def __init__(self, bindle_id: str, difference: str) -> None:
        AlreadyExists.__init__(
            self,
            f"resource already exists: a different invoice {bindle_id} is pending "
            f"({difference}); re-send the same invoice to resume its push",
        )
        self.bindle_id = bindle_id
        self.difference = difference


class InvoicePurged(InvoiceExists):
    """The bindle id was purged; it may be pushed again only with the purged content."""

    def __init__(self, bindle_id: str, purged_at: str) -> None:
        AlreadyExists.__init__(
            self,
            f"resource already exists: bindle {bindle_id} was purged at {purged_at} and its "
            "id cannot be reused with other content (an operator may lift this with "
            f"`bindle-server purge --forget {bindle_id}`)",
        )
        self.bindle_id = bindle_id
        self.purged_at = purged_at


class ParcelExists(AlreadyExists):
    """The parcel's bytes are already stored."""

    def __init__(self, sha256: str) -> None:
        super().__init__(f"resource already exists: parcel {sha256}")
        self.sha256 = sha256


class YankedOnCreate(BindleError):
    """An invoice was submitted with `yanked = true`."""

    def __init__(self) -> None:
        super().__init__("bindle cannot be created as yanked")


class RangeNotSatisfiable(BindleError):
    """The requested byte range lies outside the parcel."""

    def __init__(self, size: int) -> None:
        super().__init__(f"requested range not satisfiable: the parcel has {size} bytes")
        self.size = size


class PayloadTooLarge(BindleError):
    """A request body, its headers or an invoice's parcel list is over the server's limit."""


class BodyTimeout(BindleError):
    """The request body stalled: no bytes arrived within the server's body timeout."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"request body timed out: nothing arrived for {seconds:g} seconds")
        self.seconds = seconds


class InsufficientStorage(BindleError):
    """The data directory ran out of space while storing something."""

    def __init__(self) -> None:
        super().__init__("insufficient storage: the server's disk is full")


class StorageUnavailable(BindleError):
    """The storage backend (an object store) cannot be reached or refuses the server (503)."""


class Unauthenticated(BindleError):
    """Credentials are missing where the request needs them, or they are not valid.

    The message is the same whatever the reason (unknown user, bad password, unknown or
    expired token), so that the answer tells nobody which user names exist.
    `challenges` are the `WWW-Authenticate` values the answer carries.
    """

    def __init__(self, message: str, challenges: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.challenges = challenges


class AccessDenied(BindleError):
    """The caller is authenticated but the authorization policy does not allow the request."""

    def __init__(self, subject: str, verb: str, name: str | None = None) -> None:
        where = f" {name}" if name is not None else ""
        super().__init__(f"access denied: {subject} may not {verb}{where}")
        self.subject = subject
        self.verb = verb
        self.name = name


class PurgeDisabled(BindleError):
    """Purge over HTTP is refused on a server that does not authenticate its callers."""

    def __init__(self) -> None:
        super().__init__(
            "purge over HTTP needs authentication (and the `purge` verb in the policy); "
            "on this server an operator purges with `bindle-server purge ID`"
        )


class InvalidRetentionPolicy(BindleError):
    """A retention policy file cannot be used; found at start-up or by `gc`."""


class InvalidAuthConfig(BindleError):
    """An htpasswd, token or policy file cannot be used; found at start-up."""


class AuthProviderUnavailable(BindleError):
    """The OIDC provider could not be reached or answered something unusable (502)."""


class StoredInvoiceDamaged(BindleError):
    """A stored invoice file does not parse: damage on the server's side, not the client's."""

    def __init__(self, bindle_id: str) -> None:
        super().__init__(
            f"the stored invoice of {bindle_id} is damaged; the operator should run "
            "bindle-server fsck"
        )
        self.bindle_id = bindle_id


class StoredParcelDamaged(BindleError):
    """A stored parcel's length is not its label's size: damage on the server's side."""

    def __init__(self, sha256: str, expected: int, actual: str) -> None:
        super().__init__(
            f"stored parcel {sha256} has {actual} bytes but its label says {expected}; "
            "the operator should run bindle-server fsck"
        )
        self.sha256 = sha256
