"""The OpenAPI 3.1 description of the HTTP API, served at ``/openapi.json``.

The document is self-contained, so any OpenAPI tool (schemathesis, code generators,
validating proxies) can use it without fetching anything:

* Every JSON Schema the gateway validates with (``schemas/*.schema.json`` and
  ``schemas/api/*.schema.json``, the files :class:`gateway.pipeline.validation.SchemaSet` and the
  consent route load) is bundled under ``components/schemas`` by its file name, with its
  ``$id`` and ``$schema`` dropped and every ``$ref`` rewritten to a local
  ``#/components/schemas/...`` pointer. The files stay the only copy: the bundle is made
  from them when the document is built. ``jsonSchemaDialect`` says the schemas are JSON
  Schema 2020-12, the dialect the files declare.
* ``Message`` is the envelope with each type's body schema attached by ``type``: exactly
  what ``POST /v1/messages`` accepts (``SchemaSet.is_valid``).
* Every error is an RFC 9457 problem document (``application/problem+json``, schema
  ``Problem``), one shared response per status under ``components/responses``.

How an operation's statuses are declared, so that none can be forgotten
-----------------------------------------------------------------------

``_operation(summary, responses, errors=(...), ...)`` lists an operation's successful
answers in ``responses`` and, in ``errors``, only the problem statuses its own handler
can choose (a role or ownership check: 403; a lookup: 404; a stored-state clash: 409;
a document check: 422; a bad query or header: 400; no active policy: 503). The statuses
every operation of a kind can answer are added by ``_answers`` from what the operation
declares, never by hand:

* authenticated (not ``public=True``): 401 (token missing, invalid or replayed) and 429
  (rate limit, ``gateway.http.limits``, with ``Retry-After``);
* with a request body (``body=``): 400 (not JSON, too deep), 408 (body too slow),
  413 (too large), 415 (not JSON media type);
* with a path parameter: 404 (nothing by that name);
* with any parameter (path or query): 400 (a NUL character, ``%00``, in the address:
  ``gateway.http.problems`` refuses it before any handler).

A new operation is one entry in ``document()['paths']``; ``tests/test_openapi.py`` fails
while a route is undescribed and ``tests/test_openapi_conformance.py`` fails when an
operation answers a status or a body its entry does not declare.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway import __version__
from gateway.domain.model import MessageType
from gateway.sdjwt.envelope import MEDIA_TYPE as SD_JWT_MEDIA_TYPE

routes = web.RouteTableDef()

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _schema(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# Bundling the schema files ---------------------------------------------------------------

def bundled_schemas(directory: Path = SCHEMA_DIR) -> dict[str, Any]:
    """Each schema file under ``directory`` (and ``directory/api``) by file name, with local
    ``$ref``s; an unresolvable reference or a clash of names stops the build."""
    documents: dict[str, Mapping[str, Any]] = {}
    for path in [*sorted(directory.glob("*.schema.json")),
                 *sorted((directory / "api").glob("*.schema.json"))]:
        name = path.name.removesuffix(".schema.json")
        if name in documents:
            raise ValueError(f"two schema files are named {name}: rename one")
        documents[name] = json.loads(path.read_text(encoding="utf-8"))
    local = {str(doc["$id"]): f"#/components/schemas/{name}" for name, doc in documents.items()}
    return {
        name: {key: _localised(value, local[str(doc["$id"])], local)
               for key, value in doc.items() if key not in ("$id", "$schema")}
        for name, doc in documents.items()
    }


def _localised(node: Any, here: str, local: Mapping[str, str]) -> Any:
    """``node`` with references rewritten; ``here`` is where its own file now lives."""
    if isinstance(node, list):
        return [_localised(item, here, local) for item in node]
    if not isinstance(node, dict):
        return node
    nested = {"$id", "$anchor", "$dynamicRef", "$dynamicAnchor"} & node.keys()
    if nested:
        # A nested resource or anchor would change what a pointer means; none is used yet.
        raise ValueError(f"cannot bundle a schema using {', '.join(sorted(nested))}")
    return {
        key: _local_ref(value, here, local) if key == "$ref" else _localised(value, here, local)
        for key, value in node.items()
    }


def _local_ref(ref: str, here: str, local: Mapping[str, str]) -> str:
    base, _, fragment = ref.partition("#")
    target = here if base == "" else local.get(base)
    if target is None or (fragment and not fragment.startswith("/")):
        raise ValueError(f"cannot bundle $ref {ref!r}: only pointers into the schema files")
    return target + fragment


def _message_schema() -> dict[str, Any]:
    """The envelope, with the body schema of its ``type`` (RFC 6901 pointers as served)."""
    return {
        "description": "A message as POST /v1/messages accepts it: the envelope, and a body "
                       "valid against the schema of its type.",
        "allOf": [_schema("envelope")],
        "oneOf": [
            {"properties": {"type": {"const": kind.value}, "body": _schema(kind.value)}}
            for kind in MessageType
        ],
    }


# Problems and the statuses every operation of a kind can answer -------------------------

_PROBLEM_SCHEMA = {
    "description": "RFC 9457 problem details; members other than these may be added",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "format": "uri-reference"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object",
            "required": ["pointer", "message"],
            "properties": {"pointer": {"type": "string",
                                       "description": "RFC 6901 JSON pointer"},
                           "message": {"type": "string"}},
        }},
    },
}

# Status: (component name, when it is answered). Headers for those that carry one.
_PROBLEMS: Mapping[int, tuple[str, str]] = {
    400: ("MalformedRequest", "The request cannot be read: the body is not JSON or is nested "
                              "too deeply, or a query parameter or header is malformed"),
    401: ("Unauthenticated", "No valid single-use bearer token: missing, malformed, expired, "
                             "badly signed, or already used"),
    403: ("Forbidden", "The caller's organisation or role may not do this, or the sharing "
                       "policy refused the message"),
    404: ("NotFound", "Nothing by that name is visible to the caller"),
    408: ("RequestTimeout", "The body did not arrive in time; the connection is closed"),
    409: ("Conflict", "Clashes with what is stored, e.g. a message_id reused for other content"),
    413: ("PayloadTooLarge", "The body, or the batch, is larger than allowed"),
    415: ("UnsupportedMediaType", "The body is not sent as application/json"),
    422: ("Unprocessable", "The document breaks its schema or rules; errors lists every "
                          "violation with an RFC 6901 pointer"),
    429: ("TooManyRequests", "Rate limit reached for the address or the organisation; "
                            "retry after Retry-After seconds"),
    503: ("Unavailable", "The gateway cannot decide now (e.g. no approved policy is active), "
                         "or, with Retry-After, delivery is behind intake (overloaded): "
                         "nothing was stored; send again after the wait"),
}
_PROBLEM_HEADERS: Mapping[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {
        "description": "RFC 6750 section 3: the Bearer scheme and why the token failed",
        "required": True, "schema": {"type": "string"}}},
    429: {"Retry-After": {
        "description": "RFC 9110 section 10.2.3: seconds to wait before retrying",
        "required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
    503: {"Retry-After": {
        "description": "RFC 9110 section 10.2.3: seconds to wait before sending again; "
                       "present when delivery is behind intake (gateway.services.backpressure)",
        "required": False, "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
}

AUTHENTICATED_ANSWERS = (401, 429)
BODY_ANSWERS = (400, 408, 413, 415)
PATH_PARAMETER_ANSWERS = (404,)
PARAMETER_ANSWERS = (400,)


def _problem_responses() -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (name, description) in _PROBLEMS.items():
        response: dict[str, Any] = {
            "description": f"{status}: {description} (an RFC 9457 problem document)",
            "content": {"application/problem+json": {"schema": _schema("Problem")}},
        }
        if status in _PROBLEM_HEADERS:
            response["headers"] = _PROBLEM_HEADERS[status]
        responses[name] = response
    return responses


def _answers(
    own: Iterable[int], *, public: bool, has_body: bool, has_path_parameter: bool,
    has_parameter: bool,
) -> list[int]:
    """Every problem status an operation can answer: its own and those of its kind."""
    statuses = set(own)
    if not public:
        statuses.update(AUTHENTICATED_ANSWERS)
    if has_body:
        statuses.update(BODY_ANSWERS)
    if has_path_parameter:
        statuses.update(PATH_PARAMETER_ANSWERS)
    if has_parameter:
        statuses.update(PARAMETER_ANSWERS)
    unknown = statuses - _PROBLEMS.keys()
    if unknown:
        raise ValueError(f"no shared problem response for {sorted(unknown)}")
    return sorted(statuses)


def _operation(
    summary: str,
    responses: dict[str, Any],
    *,
    errors: Iterable[int] = (),
    public: bool = False,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    body_required: bool = True,
) -> dict[str, Any]:
    """One operation; ``errors`` are the problem statuses only its handler chooses."""
    parameters = parameters or []
    operation: dict[str, Any] = {"summary": summary, "responses": dict(responses)}
    for status in _answers(
        errors, public=public, has_body=body is not None,
        has_path_parameter=any(p["in"] == "path" for p in parameters),
        has_parameter=bool(parameters),
    ):
        operation["responses"].setdefault(
            str(status), {"$ref": f"#/components/responses/{_PROBLEMS[status][0]}"}
        )
    if public:
        operation["security"] = []
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": body}},
        }
    return operation


# Parameters and bodies shared by several operations --------------------------------------

# A sender-signed envelope: the compact SD-JWT (RFC 9901 section 4) without key binding.
_SIGNED_MESSAGE = {
    "type": "string",
    "description": "The sender's SD-JWT of the envelope, every disclosure included "
                   "(README, 'Sender-signed messages')",
    "pattern": r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+~([A-Za-z0-9_-]+~)*$",
}


def _also_signed(operation: dict[str, Any]) -> dict[str, Any]:
    """The operation taking the envelope's SD-JWT (``application/sd-jwt``) as well."""
    operation["requestBody"]["content"][SD_JWT_MEDIA_TYPE] = {"schema": _SIGNED_MESSAGE}
    return operation


_MESSAGE_ID = {
    "name": "message_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
_CODE_PARAMETER = {"name": "code", "in": "path", "required": True,
                   "schema": {"type": "string"}}


def _query_int(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": "integer", "minimum": 0}}


def _query_text(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": "string"}}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


_POLICY_TEXT = {
    "type": "object",
    "required": ["text"],
    "properties": {"text": {"type": "string", "description": "The policy YAML"},
                   "cases": {"type": "string"}, "limit": {"type": "integer"},
                   "reason": {"type": "string", "maxLength": 1000,
                              "description": "Why the version is proposed (audited)"}},
}
_POLICY_NAMED = {
    "description": "A stored version by name, or a draft as YAML text; the active policy "
                   "when left out",
    "oneOf": [
        {"type": "object", "required": ["version"], "properties": {"version": {"type": "string"}}},
        {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
    ],
}

_REASON = {"type": "object", "required": ["reason"],
           "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}}}
_PUBLIC_JWK = {
    "description": "A public Ed25519 (OKP) or P-256 (EC) JSON Web Key (RFC 7517); never 'd'",
    "type": "object", "required": ["kty"],
    "properties": {"kty": {"enum": ["OKP", "EC"]}, "crv": {"enum": ["Ed25519", "P-256"]},
                   "x": {"type": "string"}, "y": {"type": "string"}},
}
_PERSON_BODY = {
    "type": "object", "required": ["name", "email"], "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "description": "Default: ORG.local-part-of-email"},
        "name": {"type": "string"}, "email": {"type": "string", "format": "email"},
        "sign_in": {"type": "object", "required": ["issuer", "subject"], "properties": {
            "issuer": {"type": "string"}, "subject": {"type": "string"}}},
        "keys": {"type": "array", "maxItems": 5, "items": _PUBLIC_JWK},
    },
}
_GRANT_BODY = {
    "type": "object", "required": ["role", "reason"],
    "properties": {"role": {"enum": ["spoc", "ig_lead", "org_admin", "auditor",
                                     "directory_admin"]},
                   "reason": {"type": "string", "minLength": 1, "maxLength": 500}},
}
_CONTACT_BODY = {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "phone": {"type": "string"},
                   "email": {"type": "string"}, "secure_email": {"type": "string"}},
}
_IDENTITY_PROVIDER_BODY = {
    "type": "object", "required": ["issuer", "client_id"], "additionalProperties": False,
    "properties": {"issuer": {"type": "string", "format": "uri"},
                   "client_id": {"type": "string"}},
}
_KID_PARAMETER = _path("kid")
_PERSON_PARAMETER = _path("person_id")

_NOTE = {"200": {"description": "A C2SP tlog-checkpoint in a signed note",
                 "content": {"text/plain": {"schema": {"type": "string"}}}}}

_DECISION = {
    "type": "object",
    "required": ["decision", "consent", "consent_satisfied", "redactions", "rule",
                 "legal_basis", "policy_version"],
    "properties": {
        "decision": {"enum": ["permit", "deny"]},
        "consent": {"enum": ["not_required", "required", "written_required"]},
        "consent_satisfied": {"type": "boolean"},
        "redactions": {"type": "array", "items": {"type": "string"}},
        "rule": {"type": "string"},
        "legal_basis": {"type": "string"},
        "policy_version": {"type": "string"},
    },
}
_TIMESCALE_BREACHES = {
    "description": "Handbook timescales the message reports as missed (24-hour outreach, five "
                   "working days to the follow-up, the police appointment's 24/48 hours, the "
                   "DIR before the follow-up). The message is delivered all the same; each "
                   "recipient's inbox item names the same breaches.",
    "type": "array",
    "items": {
        "type": "object",
        "required": ["pointer", "limit", "handbook", "detail"],
        "properties": {"pointer": {"type": "string"}, "limit": {"type": "string"},
                       "handbook": {"type": "string"}, "detail": {"type": "string"}},
    },
}
_RECEIPT = {
    "type": "object",
    "required": ["message_id", "status", "recipients", "decision", "audit_index"],
    "properties": {
        "message_id": {"type": "string", "format": "uuid"},
        "status": {"enum": ["accepted", "refused"]},
        "recipients": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "decision": _DECISION},
            },
        },
        "decision": {"type": "object"},
        "audit_index": {"type": ["integer", "null"]},
        "receipt": {"$ref": "#/components/schemas/AuditReceipt"},
        "timescale_breaches": _TIMESCALE_BREACHES,
    },
}
_BASE64 = {"type": "string", "contentEncoding": "base64"}
# gateway.tlog.receipt: "dipgw-receipt/1". Pending (a 202, an inbox item): index and
# entry hash; proved (GET /v1/messages/{id}/receipt): with the entry and inclusion.
_AUDIT_RECEIPT = {
    "type": "object",
    "required": ["format", "index", "entry_hash"],
    "additionalProperties": False,
    "properties": {
        "format": {"const": "dipgw-receipt/1"},
        "origin": {"type": "string"},
        "index": {"type": "integer", "minimum": 0},
        "entry": {**_BASE64, "description": "the entry's canonical JSON (RFC 8785)"},
        "entry_hash": {**_BASE64, "description": "RFC 6962 leaf hash SHA-256(0x00||entry)"},
        "inclusion": {
            "type": "object",
            "required": ["size", "proof", "checkpoint"],
            "additionalProperties": False,
            "properties": {
                "size": {"type": "integer", "minimum": 1},
                "proof": {"type": "array", "items": _BASE64,
                          "description": "RFC 9162 §2.1.3.1 inclusion proof"},
                "checkpoint": {"type": "string",
                               "description": "C2SP signed checkpoint note"},
            },
        },
    },
}
_ACCEPTED = {
    "description": "Accepted; delivery follows",
    "headers": {
        "Location": {"description": "The message's status resource",
                     "required": True, "schema": {"type": "string"}},
        "Idempotent-Replayed": {"description": "'true' when this is an identical earlier "
                                               "submission's answer",
                                "schema": {"type": "string", "enum": ["true"]}},
    },
    "content": {"application/json": {"schema": _schema("Receipt")}},
}

_BATCH_RESULTS = {
    "type": "object",
    "required": ["results"],
    "properties": {"results": {"type": "array", "items": {
        "type": "object",
        "required": ["index", "status", "body"],
        "properties": {
            "index": {"type": "integer", "description": "Position in the submitted batch"},
            "status": {"type": "integer",
                       "description": "What POST /v1/messages would have answered: 202, 403, "
                                      "409, 422, 503 (or 500: resend the item)"},
            "replayed": {"type": "boolean",
                         "description": "With 202: an identical earlier submission's answer "
                                        "(Idempotent-Replayed)"},
            "body": {"description": "The receipt (202) or the RFC 9457 problem document",
                     "oneOf": [_schema("Receipt"), _schema("Problem")]},
        },
    }}},
}


def document() -> dict[str, Any]:
    """The whole description, bundled from the schema files as they are now."""
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": JSON_SCHEMA_DIALECT,
        "info": {
            "title": "dipgw — Drug Interventions Programme gateway",
            "version": __version__,
            "description": (
                "Validated, policy-checked, audited exchange of DIP messages between police "
                "custody, CJITs, prison CARAT teams, probation and courts. Every call except "
                "health, readiness and this document needs a single-use bearer JWT signed "
                "with a key registered to one of an organisation's systems or people "
                "(EdDSA or ES256). What a caller may do is what the gateway granted it; a "
                "token's role claim can only narrow that."
            ),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
            "schemas": {
                **bundled_schemas(),
                "Message": _message_schema(),
                "Receipt": _RECEIPT,
                "AuditReceipt": _AUDIT_RECEIPT,
                "Problem": _PROBLEM_SCHEMA,
            },
            "responses": _problem_responses(),
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/messages": {"post": _also_signed(_operation(
                "Submit one message: the envelope (application/json), or the sender's "
                "SD-JWT of it (application/sd-jwt)",
                {"202": _ACCEPTED},
                errors=(403, 409, 422, 503),
                body=_schema("Message"),
            ))},
            "/v1/messages/batch": {"post": _operation(
                "Submit 1 to 500 messages under one token; each answered as POST /v1/messages "
                "would answer it",
                {"200": _json("One result per message, in order", _BATCH_RESULTS)},
                errors=(403, 422, 503),
                body={"type": "object", "required": ["messages"], "properties": {
                    "messages": {"type": "array", "minItems": 1, "maxItems": 500,
                                 "items": {"anyOf": [_schema("Message"), _SIGNED_MESSAGE]}}}},
            )},
            "/v1/messages/{message_id}": {"get": _operation(
                "Status and history of a message (its sender or a recipient)",
                {"200": _json("Status and history")},
                errors=(403,),
                parameters=[_MESSAGE_ID],
            )},
            "/v1/messages/{message_id}/receipt": {"get": _operation(
                "Audit receipt of the caller's part in a message: its log entry and an "
                "inclusion proof in the newest signed checkpoint, or the one of ?size "
                "(its sender: the acceptance; a recipient: its delivery)",
                {"200": _json("The receipt", _schema("AuditReceipt"))},
                errors=(403, 404),
                parameters=[_MESSAGE_ID, _query_int("size")],
            )},
            "/v1/policy/decide": {"post": _operation(
                "The decision the gateway would take, without sending",
                {"200": _json("Decisions per recipient")},
                errors=(403, 422, 503),
                body=_schema("Message"),
            )},
            "/v1/inbox": {"get": _operation(
                "Delivered, unacknowledged messages for the caller's organisation",
                {"200": _json("Oldest first")},
                errors=(400, 403),
                parameters=[
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    {"name": "org", "in": "query", "description": "The caller's own code; "
                     "any other is refused", "schema": {"type": "string"}},
                ],
            )},
            "/v1/inbox/{message_id}/ack": {"post": _operation(
                "Acknowledge a delivered message (idempotent)",
                {"200": _json("Acknowledged")},
                errors=(403,),
                parameters=[_MESSAGE_ID],
            )},
            "/v1/inbox/stream": {"get": _operation(
                "Server-sent events: waiting messages, then each new one",
                {"200": {"description": "An event stream",
                         "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
                errors=(400, 403),
                parameters=[{"name": "Last-Event-ID", "in": "header",
                             "schema": {"type": "string"}}],
            )},
            "/v1/directory": {"get": _operation(
                "Organisations in the directory",
                {"200": _json("Organisations")},
                parameters=[{"name": "kind", "in": "query", "schema": {
                    "enum": ["police", "cjit", "carat", "probation", "court", "oversight",
                             "operator"]}}],
            )},
            "/v1/directory/residence": {"get": _operation(
                "The CJIT serving an area of residence (H 4.7.4)",
                {"200": _json("The CJIT")},
                errors=(400, 404),
                parameters=[{"name": "area", "in": "query", "required": True,
                             "schema": {"type": "string"}}],
            )},
            "/v1/directory/import": {"post": _operation(
                "Preview (apply false) or propose (apply true) the CJIT SPOC list as CSV "
                "(operator); a second operator person applies a proposal",
                {"200": _json("Preview: added, changed, unchanged, not in file"),
                 "202": _json("Proposed, awaiting a second operator person's approval")},
                errors=(403, 422),
                body={"type": "object", "required": ["csv"],
                      "properties": {"csv": {"type": "string"}, "apply": {"type": "boolean"}}},
            )},
            "/v1/directory/imports/{import_id}": {"get": _operation(
                "A proposed or applied directory import (operator)",
                {"200": _json("The import and its plan")},
                errors=(403,),
                parameters=[_path("import_id")],
            )},
            "/v1/directory/imports/{import_id}/approve": {"post": _operation(
                "Apply an import another operator person proposed, as previewed",
                {"200": _json("Applied")},
                errors=(403, 409, 422),
                parameters=[_path("import_id")],
            )},
            "/v1/directory/{code}/contact": {"put": _operation(
                "Change an organisation's SPOC contact (its IG lead or administrator, or the "
                "operator; audited)",
                {"200": _json("The organisation as listed")},
                errors=(403, 422),
                parameters=[_CODE_PARAMETER],
                body=_CONTACT_BODY,
            )},
            "/v1/directory/{code}/identity-provider": {
                "put": _operation(
                    "Register the OpenID Provider the organisation's people sign in to the "
                    "console with (its administrator, or the operator; audited)",
                    {"200": _json("The organisation as listed")},
                    errors=(403, 422),
                    parameters=[_CODE_PARAMETER],
                    body=_IDENTITY_PROVIDER_BODY,
                ),
                "delete": _operation(
                    "Remove the organisation's OpenID Provider (audited)",
                    {"200": _json("The organisation as listed")},
                    errors=(403,),
                    parameters=[_CODE_PARAMETER],
                ),
            },
            "/v1/directory/{code}/keys": {
                "post": _operation(
                    "Register a public key for the organisation's systems (audited)",
                    {"201": _json("The organisation's key ids")},
                    errors=(403, 409, 422),
                    parameters=[_CODE_PARAMETER],
                    body=_PUBLIC_JWK,
                ),
                "get": _operation(
                    "The public keys of the organisation's systems (a JWKS): what its signed "
                    "messages are checked with",
                    {"200": _json("A JWKS", {"type": "object", "required": ["keys"],
                                             "properties": {"keys": {"type": "array"}}})},
                    errors=(404,),
                    parameters=[_CODE_PARAMETER],
                ),
            },
            "/v1/directory/{code}/signing": {"put": _operation(
                "Refuse (true) or accept again (false) the organisation's unsigned messages "
                "(its administrator, or the operator; audited)",
                {"200": _json("Whether the organisation must sign")},
                errors=(403, 422),
                parameters=[_CODE_PARAMETER],
                body={"type": "object", "required": ["signed_messages_required"],
                      "properties": {"signed_messages_required": {"type": "boolean"}}},
            )},
            "/v1/directory/{code}/keys/{kid}": {"delete": _operation(
                "Remove a key of the organisation's systems (audited)",
                {"200": _json("The organisation's key ids")},
                errors=(403,),
                parameters=[_CODE_PARAMETER, _KID_PARAMETER],
            )},
            "/v1/directory/{code}/people": {
                "get": _operation(
                    "An organisation's people and their roles (its administrator or IG lead, "
                    "or the operator)",
                    {"200": _json("People")},
                    errors=(403,),
                    parameters=[_CODE_PARAMETER],
                ),
                "post": _operation(
                    "Add a person to an organisation (its administrator, or the operator)",
                    {"201": _json("The person")},
                    errors=(403, 409, 422),
                    parameters=[_CODE_PARAMETER],
                    body=_PERSON_BODY,
                ),
            },
            "/v1/me": {"get": _operation(
                "Who the gateway takes the caller for: organisation, person, roles",
                {"200": _json("The caller")},
            )},
            "/v1/people/{person_id}": {"get": _operation(
                "A person, their keys and grants (themselves, or who may see their "
                "organisation's people)",
                {"200": _json("The person")},
                errors=(403,),
                parameters=[_PERSON_PARAMETER],
            )},
            "/v1/people/{person_id}/keys": {"post": _operation(
                "Register a public key a person signs with (audited)",
                {"201": _json("The person")},
                errors=(403, 409, 422),
                parameters=[_PERSON_PARAMETER],
                body=_PUBLIC_JWK,
            )},
            "/v1/people/{person_id}/keys/{kid}": {"delete": _operation(
                "Withdraw a person's key: themselves or their administrator (audited)",
                {"200": _json("The person")},
                errors=(403,),
                parameters=[_PERSON_PARAMETER, _KID_PARAMETER],
            )},
            "/v1/people/{person_id}/grants": {"post": _operation(
                "Grant a person a role, saying why (audited); see gateway/pipeline/access.py",
                {"201": _json("The grant")},
                errors=(403, 409),
                parameters=[_PERSON_PARAMETER],
                body=_GRANT_BODY,
            )},
            "/v1/grants/{grant_id}/revoke": {"post": _operation(
                "Revoke a grant, saying why (audited)",
                {"200": _json("The revoked grant")},
                errors=(403,),
                parameters=[_path("grant_id")],
                body=_REASON,
            )},
            "/v1/directory/{code}/delivery": {
                "get": _operation(
                    "An organisation's delivery channel (the organisation, or the operator)",
                    {"200": _json("channel, webhook_url, mesh_mailbox, email_notices")},
                    errors=(403,),
                    parameters=[_CODE_PARAMETER],
                ),
                "put": _operation(
                    "Choose an organisation's delivery channel (its IG lead or administrator, "
                    "or the operator; audited)",
                    {"200": _json("The channel now in force")},
                    errors=(403, 422),
                    parameters=[_CODE_PARAMETER],
                    body={"type": "object", "required": ["channel"],
                          "additionalProperties": False,
                          "properties": {
                              "channel": {"enum": ["pull", "amqp", "webhook", "mesh"]},
                              "webhook_url": {"type": "string", "format": "uri"},
                              "mesh_mailbox": {"type": "string"},
                              "email_notices": {"type": "boolean"}}},
                ),
            },
            "/v1/delivery/keys": {"get": _operation(
                "The gateway's public keys that signed webhook pushes verify with (JWKS)",
                {"200": _json("{keys: [JWK]}")},
            )},
            "/v1/schemas": {"get": _operation(
                "The message schemas", {"200": _json("Schema ids by type")})},
            "/v1/schemas/{type}": {"get": _operation(
                "One JSON Schema (2020-12)",
                {"200": {"description": "The schema", "content": {
                    "application/schema+json": {"schema": {"type": "object"}}}}},
                parameters=[_path("type")],
            )},
            "/v1/consents": {
                "post": _operation(
                    "Record a person's consent to share (FHIR Consent shape)",
                    {"201": _json("The FHIR Consent resource")},
                    errors=(403, 422),
                    body=_schema("consent_request"),
                ),
                "get": _operation(
                    "A person's consent records, by PNC ID or by name and date of birth",
                    {"200": _json("FHIR Consent resources")},
                    errors=(400, 403),
                    parameters=[
                        {"name": name, "in": "query", "schema": {"type": "string"}}
                        for name in ("pnc_id", "given_name", "family_name", "date_of_birth")
                    ],
                ),
            },
            "/v1/consents/{consent_id}/withdraw": {"post": _operation(
                "Withdraw a consent, saying why (the recording organisation or the CJIT "
                "managing the person); each waiting share that rested on it is decided again",
                {"200": _json("The withdrawn consent; the stopped shares; every affected share "
                              "with its outcome (kept, stopped, withdrawn, notified)")},
                errors=(403,),
                parameters=[_path("consent_id")],
                body=_REASON,
            )},
            "/v1/policy": {"get": _operation(
                "The active sharing policy: version and rules", {"200": _json("Policy")},
                errors=(503,),
            )},
            "/v1/policy/versions": {
                "get": _operation("Policy versions (IG lead)", {"200": _json("Versions")},
                                  errors=(403,)),
                "post": _operation(
                    "Propose a policy version (IG lead); a second IG lead must approve it",
                    {"201": _json("The proposed version")},
                    errors=(403, 409, 422),
                    body=_POLICY_TEXT,
                ),
            },
            "/v1/policy/versions/{version}/approve": {"post": _operation(
                "Approve another IG lead's proposed version, from an effective time",
                {"200": _json("The approved version")},
                errors=(403, 409),
                parameters=[_path("version")],
                body={"type": "object", "properties": {
                    "effective_from": {"type": "string", "format": "date-time"}}},
                body_required=False,
            )},
            "/v1/policy/validate": {"post": _operation(
                "Check a policy document (IG lead)", {"200": _json("Valid")},
                errors=(403, 422),
                body=_POLICY_TEXT,
            )},
            "/v1/policy/test": {"post": _operation(
                "Run a policy's own cases (IG lead)", {"200": _json("Case results")},
                errors=(403, 422),
                body=_POLICY_TEXT,
            )},
            "/v1/policy/diff": {"post": _operation(
                "Every situation two policy versions decide differently (IG lead)",
                {"200": _json("Changes")},
                errors=(403, 422, 503),
                body={"type": "object",
                      "properties": {"before": _POLICY_NAMED, "after": _POLICY_NAMED}},
            )},
            "/v1/policy/simulate": {"post": _operation(
                "Replay recorded traffic through a draft policy (IG lead)",
                {"200": _json("Changes")},
                errors=(403, 422),
                body=_POLICY_TEXT,
            )},
            "/v1/audit/checkpoint": {
                "get": _operation("The newest signed checkpoint with the witnesses' cosignature "
                                  "lines (C2SP tlog-cosignature) appended (any organisation, "
                                  "auditor)", _NOTE,
                                  errors=(403, 404)),
                "post": _operation("Sign a checkpoint now (auditor)", _NOTE, errors=(403, 404)),
            },
            "/v1/audit/keys": {"get": _operation(
                "Verifier keys, current and retired, one a line",
                {"200": {"description": "C2SP verifier keys",
                         "content": {"text/plain": {"schema": {"type": "string"}}}}},
            )},
            "/v1/audit/proof/inclusion": {"get": _operation(
                "RFC 9162 inclusion proof of an entry in a signed checkpoint (hashes only: any "
                "organisation, auditor)",
                {"200": _json("Proof with the signed checkpoint")},
                errors=(400, 403, 404),
                parameters=[_query_int("index"), _query_int("size")],
            )},
            "/v1/audit/proof/consistency": {"get": _operation(
                "RFC 9162 consistency proof between two signed checkpoints (hashes only: any "
                "organisation, auditor)",
                {"200": _json("Proof with both checkpoints")},
                errors=(400, 403, 404),
                parameters=[_query_int("from"), _query_int("to")],
            )},
            "/v1/audit/entries": {"get": _operation(
                "Audit entries by index (auditor)", {"200": _json("Entries")},
                errors=(400, 403),
                parameters=[_query_int("from"), _query_int("to")],
            )},
            "/v1/audit/export": {"get": _operation(
                "Offline-verifiable bundle (C2SP tlog-tiles layout, tar.gz) (auditor)",
                {"200": {"description": "The bundle",
                         "content": {"application/gzip": {"schema": {"type": "string",
                                                                      "format": "binary"}}}}},
                errors=(400, 403, 404),
                parameters=[_query_int("from"), _query_int("to")],
            )},
            "/v1/audit/disclosures": {"get": _operation(
                "Every disclosure and consultation about one person, with who, when, to whom, "
                "rule and legal basis (DPA 2018 s.62; auditor; the read is audited): "
                "?pnc_id=…, or ?given_name=…&family_name=…&date_of_birth=YYYY-MM-DD",
                {"200": _json("The disclosure report")},
                errors=(400, 403),
                parameters=[_query_text("pnc_id"), _query_text("given_name"),
                            _query_text("family_name"), _query_text("date_of_birth")],
            )},
            "/healthz": {"get": _operation(
                "Liveness", {"200": _json("Alive")}, public=True)},
            "/readyz": {"get": _operation(
                "Readiness, with database and transport state",
                {"200": _json("Ready"), "503": _json("Not ready")}, public=True)},
            "/openapi.json": {"get": _operation(
                "This document", {"200": _json("OpenAPI 3.1")}, public=True)},
            "/metrics": {"get": _operation(
                "Operational metrics for Prometheus: the text format 0.0.4, or OpenMetrics "
                "1.0 when Accept asks for it; no personal data. Only scrapers in "
                "DIPGW_METRICS_NETWORKS are answered, anyone else gets 404",
                {"200": {"description": "The metrics",
                         "content": {
                             "text/plain": {"schema": {"type": "string"}},
                             "application/openmetrics-text": {"schema": {"type": "string"}},
                         }}},
                errors=(404,), public=True)},
        },
    }


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())
