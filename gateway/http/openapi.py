"""The OpenAPI 3.1 description of the HTTP API, served at ``/openapi.json``.

A test checks that every route the router serves is described here and vice versa.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import __version__

routes = web.RouteTableDef()

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_ENVELOPE = {"$ref": "urn:dipgw:schema:envelope:1"}
_MESSAGE_ID = {
    "name": "message_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


_POLICY_TEXT = {
    "type": "object",
    "required": ["text"],
    "properties": {"text": {"type": "string", "description": "The policy YAML"},
                   "cases": {"type": "string"}, "limit": {"type": "integer"}},
}


_NOTE = {"200": {"description": "A C2SP tlog-checkpoint in a signed note",
                 "content": {"text/plain": {"schema": {"type": "string"}}}}}


def _query_int(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": "integer", "minimum": 0}}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


_CODE_PARAMETER = {"name": "code", "in": "path", "required": True,
                   "schema": {"type": "string"}}


def _operation(
    summary: str,
    responses: dict[str, Any],
    *,
    public: bool = False,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    errors: tuple[str, ...] = ("401", "403"),
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": dict(responses)}
    for code in () if public else errors:
        operation["responses"].setdefault(code, _PROBLEM)
    if public:
        operation["security"] = []
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    return operation


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
    },
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
                                      "409, 422 (or 500: resend the item)"},
            "replayed": {"type": "boolean",
                         "description": "With 202: an identical earlier submission's answer "
                                        "(Idempotent-Replayed)"},
            "body": {"description": "The receipt (202) or the RFC 9457 problem document",
                     "oneOf": [_RECEIPT, {"$ref": "#/components/schemas/Problem"}]},
        },
    }}},
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dipgw — Drug Interventions Programme gateway",
            "version": __version__,
            "description": (
                "Validated, policy-checked, audited exchange of DIP messages between police "
                "custody, CJITs, prison CARAT teams, probation and courts. Every call except "
                "health, readiness and this document needs a single-use bearer JWT signed "
                "with the calling organisation's registered key (EdDSA or ES256)."
            ),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
            "schemas": {"Problem": {
                "type": "object",
                "required": ["type", "title", "status"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                    "errors": {"type": "array", "items": {
                        "type": "object",
                        "properties": {"pointer": {"type": "string"},
                                       "message": {"type": "string"}},
                    }},
                },
            }},
            "responses": {
                "Problem": {
                    "description": "An RFC 9457 problem document",
                    "content": {"application/problem+json": {"schema": {
                        "$ref": "#/components/schemas/Problem"}}},
                }
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/messages": {"post": _operation(
                "Submit one message",
                {"202": _json("Accepted; delivery follows", _RECEIPT), "400": _PROBLEM,
                 "409": _PROBLEM, "413": _PROBLEM, "415": _PROBLEM, "422": _PROBLEM},
                body=_ENVELOPE,
            )},
            "/v1/messages/batch": {"post": _operation(
                "Submit 1 to 500 messages under one token; each answered as POST /v1/messages "
                "would answer it",
                {"200": _json("One result per message, in order", _BATCH_RESULTS),
                 "400": _PROBLEM, "413": _PROBLEM, "415": _PROBLEM, "422": _PROBLEM},
                body={"type": "object", "required": ["messages"], "properties": {
                    "messages": {"type": "array", "minItems": 1, "maxItems": 500,
                                 "items": _ENVELOPE}}},
            )},
            "/v1/messages/{message_id}": {"get": _operation(
                "Status and history of a message (its sender or a recipient)",
                {"200": _json("Status and history"), "404": _PROBLEM},
                parameters=[_MESSAGE_ID],
            )},
            "/v1/policy/decide": {"post": _operation(
                "The decision the gateway would take, without sending",
                {"200": _json("Decisions per recipient"), "400": _PROBLEM, "422": _PROBLEM},
                body=_ENVELOPE,
            )},
            "/v1/inbox": {"get": _operation(
                "Delivered, unacknowledged messages for the caller's organisation",
                {"200": _json("Oldest first")},
                parameters=[{"name": "limit", "in": "query",
                             "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
            )},
            "/v1/inbox/{message_id}/ack": {"post": _operation(
                "Acknowledge a delivered message (idempotent)",
                {"200": _json("Acknowledged"), "404": _PROBLEM},
                parameters=[_MESSAGE_ID],
            )},
            "/v1/inbox/stream": {"get": _operation(
                "Server-sent events: waiting messages, then each new one",
                {"200": {"description": "An event stream",
                         "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
                parameters=[{"name": "Last-Event-ID", "in": "header",
                             "schema": {"type": "string"}}],
            )},
            "/v1/directory": {"get": _operation(
                "Organisations in the directory",
                {"200": _json("Organisations")},
                parameters=[{"name": "kind", "in": "query", "schema": {
                    "enum": ["police", "cjit", "carat", "probation", "court"]}}],
            )},
            "/v1/directory/residence": {"get": _operation(
                "The CJIT serving an area of residence (H 4.7.4)",
                {"200": _json("The CJIT"), "404": _PROBLEM},
                parameters=[{"name": "area", "in": "query", "required": True,
                             "schema": {"type": "string"}}],
            )},
            "/v1/directory/import": {"post": _operation(
                "Preview or apply the CJIT SPOC list as CSV (IG lead)",
                {"200": _json("Added, changed, unchanged, not in file"), "422": _PROBLEM},
                body={"type": "object", "required": ["csv"],
                      "properties": {"csv": {"type": "string"}, "apply": {"type": "boolean"}}},
            )},
            "/v1/directory/{code}/delivery": {
                "get": _operation(
                    "An organisation's delivery channel (IG lead, or the organisation)",
                    {"200": _json("channel, webhook_url, mesh_mailbox, email_notices"),
                     "403": _PROBLEM, "404": _PROBLEM},
                    parameters=[_CODE_PARAMETER],
                ),
                "put": _operation(
                    "Choose an organisation's delivery channel (IG lead; audited)",
                    {"200": _json("The channel now in force"), "404": _PROBLEM,
                     "422": _PROBLEM},
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
                    "application/schema+json": {"schema": {"type": "object"}}}},
                 "404": _PROBLEM},
                parameters=[{"name": "type", "in": "path", "required": True,
                             "schema": {"type": "string"}}],
            )},
            "/v1/consents": {
                "post": _operation(
                    "Record a person's consent to share (FHIR Consent shape)",
                    {"201": _json("The FHIR Consent resource"), "422": _PROBLEM},
                    body={"$ref": "urn:dipgw:schema:api:consent_request:1"},
                ),
                "get": _operation(
                    "A person's consent records, by PNC ID or by name and date of birth",
                    {"200": _json("FHIR Consent resources"), "400": _PROBLEM},
                    parameters=[
                        {"name": name, "in": "query", "schema": {"type": "string"}}
                        for name in ("pnc_id", "given_name", "family_name", "date_of_birth")
                    ],
                ),
            },
            "/v1/consents/{consent_id}/withdraw": {"post": _operation(
                "Withdraw a consent; stops undelivered consent-based messages of the person",
                {"200": _json("The withdrawn consent and the stopped shares"), "404": _PROBLEM},
                parameters=[_path("consent_id")],
            )},
            "/v1/policy": {"get": _operation(
                "The active sharing policy: version and rules", {"200": _json("Policy")})},
            "/v1/policy/versions": {
                "get": _operation("Policy versions (IG lead)", {"200": _json("Versions")}),
                "post": _operation(
                    "Propose a policy version (IG lead); a second IG lead must approve it",
                    {"201": _json("The proposed version"), "422": _PROBLEM},
                    body=_POLICY_TEXT,
                ),
            },
            "/v1/policy/versions/{version}/approve": {"post": _operation(
                "Approve another IG lead's proposed version, from an effective time",
                {"200": _json("The approved version"), "404": _PROBLEM},
                parameters=[_path("version")],
            )},
            "/v1/policy/validate": {"post": _operation(
                "Check a policy document (IG lead)", {"200": _json("Valid"), "422": _PROBLEM},
                body=_POLICY_TEXT,
            )},
            "/v1/policy/test": {"post": _operation(
                "Run a policy's own cases (IG lead)", {"200": _json("Case results"),
                                                       "422": _PROBLEM},
                body=_POLICY_TEXT,
            )},
            "/v1/policy/diff": {"post": _operation(
                "Every situation two policy versions decide differently (IG lead)",
                {"200": _json("Changes"), "422": _PROBLEM},
                body={"type": "object"},
            )},
            "/v1/policy/simulate": {"post": _operation(
                "Replay recorded traffic through a draft policy (IG lead)",
                {"200": _json("Changes"), "422": _PROBLEM},
                body=_POLICY_TEXT,
            )},
            "/v1/audit/checkpoint": {
                "get": _operation("The newest signed checkpoint (auditor)", _NOTE),
                "post": _operation("Sign a checkpoint now (auditor)", _NOTE),
            },
            "/v1/audit/keys": {"get": _operation(
                "Verifier keys, current and retired, one a line",
                {"200": {"description": "C2SP verifier keys",
                         "content": {"text/plain": {"schema": {"type": "string"}}}}},
            )},
            "/v1/audit/proof/inclusion": {"get": _operation(
                "RFC 9162 inclusion proof of an entry in a signed checkpoint (auditor)",
                {"200": _json("Proof with the signed checkpoint"), "404": _PROBLEM},
                parameters=[_query_int("index"), _query_int("size")],
            )},
            "/v1/audit/proof/consistency": {"get": _operation(
                "RFC 9162 consistency proof between two signed checkpoints (auditor)",
                {"200": _json("Proof with both checkpoints"), "404": _PROBLEM},
                parameters=[_query_int("from"), _query_int("to")],
            )},
            "/v1/audit/entries": {"get": _operation(
                "Audit entries by index (auditor)", {"200": _json("Entries")},
                parameters=[_query_int("from"), _query_int("to")],
            )},
            "/v1/audit/export": {"get": _operation(
                "Offline-verifiable bundle (C2SP tlog-tiles layout, tar.gz) (auditor)",
                {"200": {"description": "The bundle",
                         "content": {"application/gzip": {"schema": {"type": "string",
                                                                      "format": "binary"}}}}},
                parameters=[_query_int("from"), _query_int("to")],
            )},
            "/healthz": {"get": _operation(
                "Liveness", {"200": _json("Alive")}, public=True)},
            "/readyz": {"get": _operation(
                "Readiness, with database and transport state",
                {"200": _json("Ready"), "503": _json("Not ready")}, public=True)},
            "/openapi.json": {"get": _operation(
                "This document", {"200": _json("OpenAPI 3.1")}, public=True)},
        },
    }


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())
