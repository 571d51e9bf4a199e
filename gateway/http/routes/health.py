"""Liveness and readiness for orchestrators; no authentication, no personal data."""

from __future__ import annotations

from aiohttp import web

from gateway import __version__
from gateway.http.services import SERVICES
from gateway.transport.base import TransportState

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    transport = services.transport.state
    try:
        await services.messages.ping()
        database = "ready"
    except Exception:
        database = "unavailable"
    # While the transport is degraded the gateway still accepts into the outbox.
    ready = database == "ready" and transport is not TransportState.STOPPED
    degraded = ready and transport is TransportState.DEGRADED
    return web.json_response(
        {
            "status": "degraded" if degraded else "ready" if ready else "not_ready",
            "database": database,
            "transport": {"name": services.transport.name, "state": transport.value},
        },
        status=200 if ready else 503,
    )
