"""The Bindle client library: typed sync and async clients, standalone bindles, push and
pull of whole bindles. The `bindle` command line is built on it."""

from bindle_server.client.async_client import AsyncBindleClient
from bindle_server.client.auth import BearerToken, token_from_file
from bindle_server.client.client import BindleClient
from bindle_server.client.concurrency import DEFAULT_CONCURRENCY
from bindle_server.client.config import DEFAULT_SERVER_URL, ClientConfig, ClientSettings
from bindle_server.client.documents import CreatedInvoice, QueryPage
from bindle_server.client.errors import (
    BadRequest,
    BindleYanked,
    ClientError,
    ConnectionFailed,
    Forbidden,
    InvoiceMismatch,
    NotABindleServer,
    ServerError,
    StandaloneError,
    Unauthorized,
    UnexpectedResponse,
    Unprocessable,
    UnsafeParcelName,
)
from bindle_server.client.fetch import (
    BindleDirectory,
    FetchReport,
    export_standalone,
    get_bindle,
    pull_bindle,
    pull_plan,
)
from bindle_server.client.invoices import invoice_differences, portable_invoice
from bindle_server.client.labels import guess_media_type, label_for_file
from bindle_server.client.progress import Progress, Silent, Transfer
from bindle_server.client.push import (
    PushReport,
    push_directory,
    push_invoice_and_parcels,
    push_standalone,
)
from bindle_server.client.retry import RetryPolicy
from bindle_server.client.selection import ArchiveReport, Resolution
from bindle_server.client.standalone import (
    StandaloneBindle,
    open_standalone,
    write_standalone,
    write_tarball,
)
from bindle_server.client.tree import DirectoryBindle, invoice_from_directory
from bindle_server.errors import (
    AlreadyExists,
    DigestMismatch,
    IntegrityError,
    InvalidInput,
    InvoiceExists,
    InvoiceNotFound,
    NotFound,
    ParcelExists,
    ParcelNotFound,
    ResponseError,
    SizeMismatch,
)

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_SERVER_URL",
    "AlreadyExists",
    "ArchiveReport",
    "AsyncBindleClient",
    "BadRequest",
    "BearerToken",
    "BindleClient",
    "BindleDirectory",
    "BindleYanked",
    "ClientConfig",
    "ClientError",
    "ClientSettings",
    "ConnectionFailed",
    "CreatedInvoice",
    "DigestMismatch",
    "DirectoryBindle",
    "FetchReport",
    "Forbidden",
    "IntegrityError",
    "InvalidInput",
    "InvoiceExists",
    "InvoiceMismatch",
    "InvoiceNotFound",
    "NotABindleServer",
    "NotFound",
    "ParcelExists",
    "ParcelNotFound",
    "Progress",
    "PushReport",
    "QueryPage",
    "Resolution",
    "ResponseError",
    "RetryPolicy",
    "ServerError",
    "Silent",
    "SizeMismatch",
    "StandaloneBindle",
    "StandaloneError",
    "Transfer",
    "Unauthorized",
    "UnexpectedResponse",
    "Unprocessable",
    "UnsafeParcelName",
    "export_standalone",
    "get_bindle",
    "guess_media_type",
    "invoice_differences",
    "invoice_from_directory",
    "label_for_file",
    "open_standalone",
    "portable_invoice",
    "pull_bindle",
    "pull_plan",
    "push_directory",
    "push_invoice_and_parcels",
    "push_standalone",
    "token_from_file",
    "write_standalone",
    "write_tarball",
]
