"""Per-request plumbing: request ids bound into logs, and authentication by default."""

from __future__ import annotations

import uuid

import structlog
from aiohttp import web

from gateway.domain.model import Principal, TokenUse
from gateway.http.paths import is_console_path
from gateway.http.problems import Handler
from gateway.http.services import SERVICES

PRINCIPAL = web.RequestKey("principal", Principal)
TOKEN_USE = web.RequestKey("token_use", TokenUse)
# Requests whose handler records the token's use in its own transaction (TOKEN_USE), by
# method and route: a submission, an acknowledgement, and an inbox read's consultation.
RECORDED_WITH_THE_REQUEST = frozenset({
    ("POST", "/v1/messages"),
    ("POST", "/v1/inbox/{message_id}/ack"),
    ("GET", "/v1/inbox"),
})

# Everything else requires a valid token: deny by default. The web console's paths
# (gateway.http.paths) authenticate by session instead, in the console's middleware.
# /metrics answers only scrapers in DIPGW_METRICS_NETWORKS (gateway.http.routes.metrics).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/metrics"})


def needs_token(path: str) -> bool:
    return path not in PUBLIC_PATHS and not is_console_path(path)


@web.middleware
async def request_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-ID") or str(uuid.uuid4())
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        request_id=request_id[:64], method=request.method, path=request.path
    )
    response = await handler(request)
    response.headers["X-Request-ID"] = request_id[:64]
    return response


@web.middleware
async def authentication_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request but the public ones needs a valid token, used once (RFC 7519 section
    4.1.7). The use is recorded before the request is handled, except by the handlers of
    ``RECORDED_WITH_THE_REQUEST``, which record it in the transaction they write anyway
    (the message's, the acknowledgement's, the consultation's): one transaction and
    commit fewer per request. Whatever that handler did, a use it did not record is
    recorded after it, before anything is answered: a refused document or an empty inbox
    burns its token as any request does, and a replayed token is answered 401 whatever
    the handler found."""
    if not needs_token(request.path):
        return await handler(request)
    verifier = request.app[SERVICES].verifier
    principal, use = verifier.verify(request.headers.get("Authorization"))
    request[PRINCIPAL] = principal
    structlog.contextvars.bind_contextvars(
        org=principal.org.code, roles=sorted(role.value for role in principal.roles)
    )
    if (request.method, _route(request)) not in RECORDED_WITH_THE_REQUEST:
        await verifier.record(use)
        return await handler(request)
    request[TOKEN_USE] = use
    try:
        return await handler(request)
    finally:
        if not use.recorded:
            await verifier.record(use)


def _route(request: web.Request) -> str | None:
    """The path template the request matched (``/v1/inbox/{message_id}/ack``), if any."""
    resource = request.match_info.route.resource
    return None if resource is None else resource.canonical


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]
