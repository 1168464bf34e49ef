"""Error statuses become typed exceptions, chosen by status, target and the TOML body; the
names the server shares are one class on both sides."""

from __future__ import annotations

import pytest

import bindle_server.errors as domain
from bindle_server import client
from bindle_server.client.documents import error_message
from bindle_server.client.errors import Addressed, error_for_status

SHARED = [
    "InvalidInput",
    "IntegrityError",
    "SizeMismatch",
    "DigestMismatch",
    "ResponseError",
    "NotFound",
    "InvoiceNotFound",
    "ParcelNotFound",
    "AlreadyExists",
    "InvoiceExists",
    "ParcelExists",
]


@pytest.mark.parametrize(
    ("status", "message", "addressed", "expected"),
    [
        (400, "invalid ID given", Addressed.INVOICE, client.BadRequest),
        (401, "unauthorized", Addressed.OTHER, client.Unauthorized),
        (403, "access denied", Addressed.INVOICE, client.Forbidden),
        (403, "invoice a/1.0.0 is yanked", Addressed.INVOICE, client.BindleYanked),
        (404, "invoice a/1.0.0 not found", Addressed.INVOICE, client.InvoiceNotFound),
        (404, "invoice a/1.0.0 not found", Addressed.PARCEL, client.InvoiceNotFound),
        (404, "parcel 00 has not been uploaded", Addressed.PARCEL, client.ParcelNotFound),
        (404, "no route", Addressed.OTHER, client.NotFound),
        (409, "resource already exists", Addressed.INVOICE, client.InvoiceExists),
        (409, "resource already exists", Addressed.PARCEL, client.ParcelExists),
        (422, "bindle cannot be created as yanked", Addressed.INVOICE, client.Unprocessable),
        (500, "internal server error", Addressed.OTHER, client.ServerError),
        (507, "insufficient storage", Addressed.PARCEL, client.ServerError),
        (418, "teapot", Addressed.OTHER, client.ResponseError),
    ],
)
def test_status_target_and_message_choose_the_error_class(
    status: int, message: str, addressed: Addressed, expected: type[client.ResponseError]
) -> None:
    error = error_for_status(status, message, "GET", "http://127.0.0.1/v1/x", addressed)
    assert type(error) is expected
    assert isinstance(error, client.ClientError)
    assert error.status == status
    assert error.server_message == message
    assert (error.method, error.url) == ("GET", "http://127.0.0.1/v1/x")
    assert message in str(error) and str(status) in str(error)


def test_error_message_reads_the_toml_error_body_and_falls_back_to_the_text() -> None:
    assert error_message(b'error = "invoice x not found"\n', "Not Found") == "invoice x not found"
    assert error_message(b"Method Not Allowed", "x") == "Method Not Allowed"
    assert error_message(b"", "Not Found") == "Not Found"
    assert error_message(b"\xff\xfe", "x") == "\ufffd\ufffd"


@pytest.mark.parametrize("name", SHARED)
def test_a_name_the_server_shares_is_one_class_that_client_error_catches(name: str) -> None:
    shared = getattr(client, name)
    assert shared is getattr(domain, name)
    assert issubclass(shared, client.ClientError) and issubclass(shared, domain.BindleError)


def test_the_client_catches_what_the_server_raises_by_the_same_class() -> None:
    # The server raises with what it knows; the client rebuilds the answer it got.
    raised = domain.InvoiceNotFound("example.com/a/1.0.0")
    received = error_for_status(404, raised.message, "GET", "http://h/v1/_i/x", Addressed.INVOICE)
    for error in (raised, received):
        with pytest.raises(client.InvoiceNotFound):
            raise error
        assert isinstance(error, client.NotFound) and isinstance(error, client.ResponseError)
    assert raised.status is None and received.status == 404
    assert received.server_message == "invoice example.com/a/1.0.0 not found"

    integrity = [domain.SizeMismatch("ab", 3, 4), domain.DigestMismatch("ab", "cd", "a.bin")]
    assert all(isinstance(error, client.IntegrityError) for error in integrity)
    assert [error.sha256 for error in integrity] == ["ab", "ab"]


def test_size_and_digest_mismatches_word_an_upload_and_a_local_read_differently() -> None:
    assert domain.SizeMismatch("ab", 3, 5, at_least=True).message == (
        "parcel size does not match invoice: label of ab says 3 bytes, upload has at least 5"
    )
    assert domain.SizeMismatch("ab", 3, 5, "x.bin").message == (
        "x.bin: parcel ab should have 3 bytes, got more than 3"
    )
    assert domain.DigestMismatch("ab", "cd").message == (
        "digest does not match: expected sha256 ab, upload has cd"
    )
    assert domain.DigestMismatch("ab", "cd", "x.bin").message == (
        "x.bin: expected sha256 ab, the bytes hash to cd"
    )


def test_a_received_error_can_be_reworded_and_keeps_its_answer() -> None:
    yanked = error_for_status(403, "a/1.0.0 is yanked", "GET", "http://h/v1/x", Addressed.INVOICE)
    reworded = yanked.reworded("a/1.0.0 is yanked; add -y")
    assert type(reworded) is client.BindleYanked
    assert (reworded.status, reworded.method, reworded.url) == (403, "GET", "http://h/v1/x")
    assert reworded.message == "a/1.0.0 is yanked; add -y (GET http://h/v1/x answered 403)"
    with pytest.raises(ValueError, match="received"):
        domain.InvoiceExists("a/1.0.0").reworded("not an answer")
