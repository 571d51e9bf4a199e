"""``/v1/inbox``: what has been delivered to the caller's organisation, and acknowledgement."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiohttp import web

from gateway.domain.errors import AccessDenied, MalformedRequest
from gateway.domain.model import Organisation, Principal, isoformat
from gateway.domain.timescales import breaches
from gateway.http.body import query_int, whole_number
from gateway.http.consultation import consultation, consulted
from gateway.http.context import TOKEN_USE, principal_of
from gateway.http.services import SERVICES, Services
from gateway.pipeline import access
from gateway.sdjwt.envelope import for_recipient
from gateway.storage.base import InboxItem
from gateway.tlog.receipt import AuditReceipt

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
KEEPALIVE_S = 15.0


def item_view(item: InboxItem, organisations: Mapping[str, Organisation]) -> dict[str, Any]:
    """One delivered message, with the handbook timescales it reports as missed (read
    from what this recipient was given), so a SPOC sees them beside it; when the sender
    signed it, the sender's SD-JWT presenting exactly this envelope, which the recipient
    can check with the sender's key alone (``dipgw verify-message``); and the pending
    receipt of its delivery's audit entry."""
    return {
        "seq": item.seq,
        "message_id": item.message_id,
        "type": item.message_type,
        "from": item.sender,
        "delivered_at": isoformat(item.delivered_at),
        "decision": item.decision.as_dict(),
        "envelope": item.envelope,
        **({"sender_signature": for_recipient(item.sender_signature, item.decision.redactions)}
           if item.sender_signature is not None else {}),
        "timescale_breaches": [b.as_dict() for b in breaches(item.envelope, organisations)],
        # The delivery entry's pending receipt; GET /v1/messages/{id}/receipt proves it.
        **({"receipt": AuditReceipt(None, item.audit_index, item.entry_hash).as_json()}
           if item.audit_index is not None and item.entry_hash is not None else {}),
    }


def _inbox_owner(request: web.Request) -> Principal:
    principal = principal_of(request)
    access.authorise(principal, access.Action.RECEIVE, principal.org.code)
    requested = request.query.get("org")
    if requested is not None and requested != principal.org.code:
        raise AccessDenied("An organisation may read only its own inbox.")
    return principal


@routes.get("/v1/inbox")
async def list_inbox(request: web.Request) -> web.Response:
    """The open messages, oldest first. A read that shows messages is logged as a
    consultation of them before it is answered (DPA 2018 s.62(1)(b)); an empty one
    discloses nothing about anyone, so a system polling an empty inbox every second does
    not write an audit entry (and a commit) each time."""
    principal = _inbox_owner(request)
    limit = query_int(request, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    services = request.app[SERVICES]
    items = await services.messages.inbox(principal.org.code, limit)
    if items:
        # With the token's use: one transaction, and nothing is answered unless it commits.
        await services.audit.record(
            consultation(services, principal, "inbox",
                         message_ids=tuple(i.message_id for i in items)),
            request[TOKEN_USE],
        )
    return web.json_response(
        {"organisation": principal.org.code,
         "messages": [item_view(i, services.directory.by_code()) for i in items]}
    )


@routes.post("/v1/inbox/{message_id}/ack")
async def acknowledge(request: web.Request) -> web.Response:
    principal = _inbox_owner(request)
    services = request.app[SERVICES]
    message_id = request.match_info["message_id"].lower()
    ack = await services.messages.acknowledge(
        message_id,
        principal.org.code,
        principal.actor,
        services.clock(),
        services.audit,
        token_use=request[TOKEN_USE],
    )
    log.info("message_acknowledged", message_id=message_id, first_time=ack.first_time)
    return web.json_response(
        {
            "message_id": ack.message_id,
            "status": "acknowledged",
            "acknowledged_at": isoformat(ack.acknowledged_at),
        }
    )


@routes.get("/v1/inbox/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: first what is waiting, then each message as it arrives.

    Each event's id is the inbox sequence number; a client reconnecting with
    ``Last-Event-ID`` resumes after it.
    """
    principal = _inbox_owner(request)
    services = request.app[SERVICES]
    by_code = services.directory.by_code
    return await inbox_stream(
        request, services, principal, last_event_id(request),
        lambda item: item_view(item, by_code()),
    )


async def inbox_stream(
    request: web.Request,
    services: Services,
    principal: Principal,
    last_seq: int,
    render: Callable[[InboxItem], Mapping[str, Any]],
    *,
    headers: Mapping[str, str] | None = None,
    still_allowed: Callable[[], Awaitable[bool]] | None = None,
    channel: str | None = None,
) -> web.StreamResponse:
    """The inbox as server-sent events, for the API's stream and the console's alike: what
    arrived after ``last_seq``, then each message as it arrives, each event's id its inbox
    sequence number. Every batch read is logged as a consultation before it is sent (DPA
    2018 s.62(1)(b)), under ``channel`` when it is not the API. The caller has asked
    ``gateway.pipeline.access`` first; ``still_allowed`` is asked before every read (the console's
    session may end while its page stays open)."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **(headers or {}),
        }
    )
    await response.prepare(request)
    with contextlib.suppress(ConnectionResetError):
        await response.write(b"retry: 3000\n\n")
        async with services.notifier.subscribe(principal.org.code) as arrived:
            while not services.notifier.closed:
                arrived.clear()
                if still_allowed is not None and not await still_allowed():
                    break
                items = await services.messages.inbox(principal.org.code, MAX_LIMIT, last_seq)
                if items:
                    await _consulted_stream(services, principal, items, channel)
                for item in items:
                    data = json.dumps(render(item), ensure_ascii=False)
                    await response.write(
                        f"id: {item.seq}\nevent: message\ndata: {data}\n\n".encode()
                    )
                    last_seq = item.seq
                if items:
                    continue
                try:
                    async with asyncio.timeout(KEEPALIVE_S):
                        await arrived.wait()
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
    return response


async def _consulted_stream(
    services: Services, principal: Principal, items: list[InboxItem], channel: str | None
) -> None:
    ids = tuple(i.message_id for i in items)
    if channel is None:
        await consulted(services, principal, "inbox_stream", message_ids=ids)
    else:
        await consulted(services, principal, "inbox_stream", message_ids=ids, channel=channel)


def last_event_id(request: web.Request) -> int:
    """Where a reconnecting stream resumes: the id of the last event it was sent."""
    raw = request.headers.get("Last-Event-ID", "0").strip() or "0"
    value = whole_number(raw)
    if value is None:
        raise MalformedRequest("Last-Event-ID must be the id of an event this stream sent.")
    return value
