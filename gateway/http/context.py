"""Per-request plumbing: request ids bound into logs, and authentication by default."""

from __future__ import annotations

import uuid

import structlog
from aiohttp import web

from gateway.domain.model import Principal
from gateway.http.paths import is_console_path
from gateway.http.problems import Handler
from gateway.http.services import SERVICES

PRINCIPAL = web.RequestKey("principal", Principal)

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
    if needs_token(request.path):
        principal = await request.app[SERVICES].verifier.authenticate(
            request.headers.get("Authorization")
        )
        request[PRINCIPAL] = principal
        structlog.contextvars.bind_contextvars(
            org=principal.org.code, roles=sorted(role.value for role in principal.roles)
        )
    return await handler(request)


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]
