"""Schemathesis against the server's own OpenAPI description, in-process over ASGI.

The description is what the app serves at /openapi.json (`app.openapi()`, checked below);
it is loaded at import only to parametrize the tests, without starting anything. Each test
then sends its generated requests to a fresh app on its own data directory: the ASGI
transport runs that app's lifespan (stores and index open there) on the first request,
and the schemathesis pytest plugin shuts it down when the test ends.

`schemathesis.pytest.from_fixture` would load the schema from a fixture instead, but
schemathesis 4.32 sets `request.node._nodeid`, which pytest 9 no longer has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance

from bindle_server.api.app import create_app
from bindle_server.config import Settings

# deadline=None: the first request of each operation pays for the app's start-up.
# database=None: no `.hypothesis/` examples folder in the working tree.
BOUNDED = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Operations that answer 200 to any request, so their documented content type is checked
# on every run (the others answer 400/404 to generated ids, which the schema leaves open).
ALWAYS_200 = ["/v1/_q", "/v1/bindle-keys"]
# Generic over the operation's parameter, response and schema types; the tests read none.
OpenApiCase = schemathesis.Case[Any]


def _description() -> dict[str, object]:
    # Building the app touches no disk: the directory is only used by the lifespan.
    return create_app(Settings(directory=Path("unused"))).openapi()


@schemathesis.serializer("application/toml")
def _toml_body(context: object, value: object) -> bytes:
    """Invoices are TOML documents: send generated strings as they are (mostly invalid TOML,
    which must get a 400), and anything else as its text."""
    return value.encode() if isinstance(value, str) else str(value).encode()


# An event stream does not end by itself, so a fuzzed request to it would never finish;
# tests/events/test_stream.py checks its parameters against a live server instead.
STREAMS = ["/v1/_events"]
schema = schemathesis.openapi.from_dict(_description()).exclude(path=STREAMS)


@pytest.fixture
def app(data_dir: Path) -> FastAPI:
    return create_app(Settings(directory=data_dir))


def test_fuzzed_description_is_the_one_the_server_serves(api: TestClient) -> None:
    response = api.get("http://testserver/openapi.json")
    assert response.status_code == 200
    assert response.json() == _description()


@schema.parametrize()
@BOUNDED
def test_no_operation_answers_with_a_server_error(app: FastAPI, case: OpenApiCase) -> None:
    case.call_and_validate(app=app, checks=[not_a_server_error])


@schema.exclude(path=ALWAYS_200).parametrize()
@BOUNDED
def test_responses_have_the_documented_content_type(app: FastAPI, case: OpenApiCase) -> None:
    case.call_and_validate(app=app, checks=[not_a_server_error, content_type_conformance])


@schema.include(path=ALWAYS_200).parametrize()
@BOUNDED
def test_query_and_keys_responses_have_the_documented_content_type(
    app: FastAPI, case: OpenApiCase
) -> None:
    case.call_and_validate(app=app, checks=[not_a_server_error, content_type_conformance])
