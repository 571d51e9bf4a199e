"""The gateway answers as ``/openapi.json`` says: schemathesis against a real server.

Every operation in the served document is called by schemathesis with generated requests,
valid ones and (where there is input to get wrong) invalid ones, once per identity in
``IDENTITIES``, each request under a fresh single-use token, and each answer is checked: no
5xx, no status the operation does not declare, the declared content type, a body that
conforms to the declared schema, and the declared response headers.

Bounded: at most ``MAX_EXAMPLES`` requests per operation, mode and identity, derandomised
(the same requests every run, so a failure reproduces), no example database, event streams
read until they fall silent for ``STREAM_READ_S`` (their headers may take as long as any
answer: a loaded CI machine once took more than 0.1 s to send them). About 80 seconds per
identity on a laptop-class machine.

A second, cheap check holds the bundled schemas to the files they come from: every
example message gets the same verdict from the ``Message`` component of the document as
from the gateway's own validator.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis import GenerationMode
from schemathesis.core.result import Err

from gateway.app import SCHEMA_DIR, create_app
from gateway.config import Settings
from gateway.http.openapi import document
from gateway.pipeline.validation import SCHEMA_FORMATS, SchemaSet
from tests.backends import database_for_module
from tests.conftest import EXAMPLES, credentials, load, person_credentials

TokenFactory = Callable[[Settings], str]

# Who calls, each request under a fresh token from the factory: two agency systems, and the
# demo people whose grants open the policy, audit and directory-administration operations.
IDENTITIES: dict[str, TokenFactory] = {
    "cjit-system": lambda settings: credentials(settings, "CJIT-SFK").token(),
    "police-system": lambda settings: credentials(settings, "POL-SFK-IPS").token(),
    "ig-lead": lambda settings: person_credentials(settings, "cjit-sfk.ig-lead").token(),
    "auditor": lambda settings: person_credentials(settings, "dip-assure.auditor").token(),
    "operator": lambda settings: person_credentials(settings, "dipgw-ops.operator").token(),
}

MAX_EXAMPLES = 50
STREAM_READ_S = 0.1
REQUEST_TIMEOUT_S = 30.0


class _StreamSession(requests.Session):
    """A session that waits for an event stream's headers as long as for any answer, then
    stops reading once the stream has been silent for ``STREAM_READ_S``.

    requests applies one read timeout to the headers and to every later read; an open stream
    never ends by itself, so that timeout is what ends the read, and a single short one also
    failed a stream whose headers came late on a loaded machine."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().request(*args, **kwargs)
        connection = response.raw.connection if response.raw is not None else None
        if connection is not None and connection.sock is not None:
            connection.sock.settimeout(STREAM_READ_S)
        return response


def _operations() -> dict[str, Any]:
    """Every operation of the document by label; one schemathesis cannot read fails here."""
    found = {}
    for result in schemathesis.openapi.from_dict(document()).get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        found[result.ok().label] = result.ok()
    return found


OPERATIONS = _operations()
# A refused token or a rate limit would stop the run testing the operation at all.
UNTESTED = (401, 429)
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]


@dataclass(frozen=True)
class Gateway:
    settings: Settings
    url: str


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The real app on a free port, on an event loop of its own in a thread, so that
    schemathesis's synchronous HTTP client talks to it over TCP like any client."""
    with database_for_module() as database_url:
        yield from _serve(Settings(data_dir=tmp_path_factory.mktemp("conformance"),
                                   database_url=database_url, relay_interval_s=0.05))


def _serve(settings: Settings) -> Iterator[Gateway]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    runner = web.AppRunner(create_app(settings))

    async def start() -> None:
        await runner.setup()
        await web.SockSite(runner, sock).start()

    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=60)
    try:
        yield Gateway(settings, f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def test_the_served_document_is_the_one_tested(gateway: Gateway) -> None:
    assert requests.get(f"{gateway.url}/openapi.json", timeout=30).json() == document()


def _streams(operation: Any) -> bool:
    """Whether the operation answers with an event stream, which never ends by itself."""
    return any(
        "text/event-stream" in response.get("content", {})
        for response in operation.definition.raw["responses"].values()
    )


def _has_input(operation: Any) -> bool:
    """Whether there is anything to make invalid: parameters or a body."""
    raw = operation.definition.raw
    return bool(raw.get("parameters")) or "requestBody" in raw


# Valid requests for every operation; invalid ones wherever there is input to get wrong.
RUNS = [
    pytest.param(label, mode, id=f"{label}-{mode.value}")
    for label, operation in OPERATIONS.items()
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or _has_input(operation)
]


def _send_as_caller(body: Any, token: str) -> None:
    """Name the caller as the sender of generated messages. The gateway refuses any other
    ``from`` before it reads further (``access.check_sender``), so messages from a random
    sender would only ever test that."""
    caller = jwt.decode(token, options={"verify_signature": False})["iss"]
    if not isinstance(body, dict):
        return
    messages = body.get("messages") if "messages" in body else [body]
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict) and "from" in message:
            message["from"] = caller


@pytest.mark.parametrize("identity", IDENTITIES)
@pytest.mark.parametrize(("label", "mode"), RUNS)
def test_operation_answers_as_documented(
    gateway: Gateway, label: str, mode: GenerationMode, identity: str
) -> None:
    operation = OPERATIONS[label]
    sign = IDENTITIES[identity]
    with (_StreamSession() if _streams(operation) else requests.Session()) as session:

        @hypothesis_settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(mode))
        def answers_as_documented(case: Any) -> None:
            # Negative generation also garbles Authorization; the token is never what is
            # under test here, and failed authentications would soon be rate limited.
            token = sign(gateway.settings)
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
            if mode is GenerationMode.POSITIVE:
                _send_as_caller(case.body, token)
            response = case.call(base_url=gateway.url, session=session, timeout=REQUEST_TIMEOUT_S)
            assert response.status_code not in UNTESTED, (
                f"{identity}: {response.status_code} {response.text[:300]}"
            )
            case.validate_response(response, checks=CHECKS)

        answers_as_documented()


@pytest.fixture(scope="module")
def bundled() -> Draft202012Validator:
    """The ``Message`` component, resolved inside the served document alone."""
    served = document()
    registry: Registry[Any] = Registry().with_resource(
        "urn:openapi", Resource.from_contents(served, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": "urn:openapi#/components/schemas/Message"},
        registry=registry,
        format_checker=SCHEMA_FORMATS,
    )


@pytest.mark.parametrize(
    "example",
    [p for p in sorted(EXAMPLES.glob("*/*.json")) if p.name != "expected-errors.json"],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_bundled_schemas_judge_examples_as_the_gateway_does(
    example: Path, bundled: Draft202012Validator, gateway_schemas: SchemaSet
) -> None:
    message = load(example)
    assert bundled.is_valid(message) == gateway_schemas.is_valid(message)


@pytest.fixture(scope="module")
def gateway_schemas() -> SchemaSet:
    return SchemaSet.load(SCHEMA_DIR)
