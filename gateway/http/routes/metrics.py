"""``GET /metrics``: the gateway's operational metrics for Prometheus (``gateway.metrics``).

No token, since a Prometheus server scrapes with none, but only scrapers whose address is
in ``DIPGW_METRICS_NETWORKS`` are answered: the figures hold no personal data, yet
message volumes by type are not for everyone. Anyone else gets the same 404 problem as a
path that does not exist. The address is the TCP peer, or behind a proxy declared in
``DIPGW_RATE_TRUSTED_PROXIES`` the client it forwarded for (``gateway.http.limits``).

The answer is the Prometheus text exposition format 0.0.4, or OpenMetrics 1.0 when the
scraper's ``Accept`` asks for it, as Prometheus does (prometheus-client's
``choose_encoder``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from gateway.http.limits import client_ip
from gateway.http.services import SERVICES
from gateway.metrics import Backlog, StoreFigures
from gateway.storage.base import AuditRepository, MessageRepository

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    settings = services.settings
    address = client_ip(request, settings.rate_trusted_proxies)
    if address is None or not any(address in network for network in settings.metrics_networks):
        raise web.HTTPNotFound()
    # Read before rendering: the registry's collectors run synchronously and must not
    # touch the database from the event loop.
    services.metrics.store.update(
        await store_figures(services.messages, services.audit, services.clock())
    )
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(
        body=encoder(services.metrics.registry), headers={"Content-Type": content_type}
    )


async def store_figures(
    messages: MessageRepository, audit: AuditRepository, now: datetime
) -> StoreFigures:
    """The database-wide figures at ``now``; the four reads share one group commit."""
    (outbox, oldest), dispatches, entries, checkpoint = await asyncio.gather(
        messages.outbox_backlog(),
        messages.dispatch_backlog(),
        audit.size(),
        audit.newest_checkpoint_issued(),
    )
    return StoreFigures(
        outbox=Backlog(outbox, _age(now, oldest)),
        dispatches={
            channel: Backlog(count, _age(now, since))
            for channel, (count, since) in dispatches.items()
        },
        audit_entries=entries,
        checkpoint_size=checkpoint[0] if checkpoint else None,
        checkpoint_age_s=_age(now, checkpoint[1]) if checkpoint else None,
    )


def _age(now: datetime, since: datetime | None) -> float:
    """Seconds since ``since``; 0 for nothing waiting, and never negative when another
    process's clock runs slightly ahead of this one's."""
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0
