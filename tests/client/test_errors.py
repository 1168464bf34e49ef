"""Error statuses become typed exceptions, chosen by status, target and the TOML body."""

from __future__ import annotations

import pytest

from bindle_server.client import errors
from bindle_server.client.documents import error_message
from bindle_server.client.errors import Addressed, error_for_status


@pytest.mark.parametrize(
    ("status", "message", "addressed", "expected"),
    [
        (400, "invalid ID given", Addressed.INVOICE, errors.BadRequest),
        (401, "unauthorized", Addressed.OTHER, errors.Unauthorized),
        (403, "access denied", Addressed.INVOICE, errors.Forbidden),
        (403, "invoice a/1.0.0 is yanked", Addressed.INVOICE, errors.BindleYanked),
        (404, "invoice a/1.0.0 not found", Addressed.INVOICE, errors.InvoiceNotFound),
        (404, "invoice a/1.0.0 not found", Addressed.PARCEL, errors.InvoiceNotFound),
        (404, "parcel 00 has not been uploaded", Addressed.PARCEL, errors.ParcelNotFound),
        (404, "no route", Addressed.OTHER, errors.NotFound),
        (409, "resource already exists", Addressed.INVOICE, errors.InvoiceExists),
        (409, "resource already exists", Addressed.PARCEL, errors.ParcelExists),
        (422, "bindle cannot be created as yanked", Addressed.INVOICE, errors.Unprocessable),
        (500, "internal server error", Addressed.OTHER, errors.ServerError),
        (507, "insufficient storage", Addressed.PARCEL, errors.ServerError),
        (418, "teapot", Addressed.OTHER, errors.ResponseError),
    ],
)
def test_status_target_and_message_choose_the_error_class(
    status: int, message: str, addressed: Addressed, expected: type[errors.ResponseError]
) -> None:
    error = error_for_status(status, message, "GET", "http://127.0.0.1/v1/x", addressed)
    assert type(error) is expected
    assert isinstance(error, errors.ClientError)
    assert error.status == status
    assert error.server_message == message
    assert message in str(error) and str(status) in str(error)


def test_error_message_reads_the_toml_error_body_and_falls_back_to_the_text() -> None:
    assert error_message(b'error = "invoice x not found"\n', "Not Found") == "invoice x not found"
    assert error_message(b"Method Not Allowed", "x") == "Method Not Allowed"
    assert error_message(b"", "Not Found") == "Not Found"
    assert error_message(b"\xff\xfe", "x") == "\ufffd\ufffd"
