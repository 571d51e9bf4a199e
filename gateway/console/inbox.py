"""A SPOC's inbox, a message shown field by field, and acknowledgement: what ``GET
/v1/inbox``, ``GET /v1/inbox/stream`` and ``POST /v1/inbox/{id}/ack`` do, as pages.

The inbox can be filtered by type, status and the days received (a GET form that works
without JavaScript), and new messages arrive in it live: ``/console/inbox/stream`` is the
API's stream (``gateway.http.routes.inbox.inbox_stream``: the same reads and consultations)
behind the console's session, and ``static/inbox-live.js`` puts each arrival in the table
and announces it. A SPOC acts on alerts within 24 hours (H 4.1.3, 4.11.3).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import structlog
from aiohttp import web

from gateway.console import pages
from gateway.console.inbox_filters import DATES, STATES, InboxQuery, read_query
from gateway.console.pages import CHANNEL
from gateway.console.security import HEADERS, form_with_token
from gateway.console.sessions import ABSOLUTE_TIMEOUT, IDLE_TIMEOUT, SignedIn
from gateway.console.words import alert_clock, body_fields, subject_lines, when
from gateway.domain.errors import NotFound
from gateway.domain.model import MessageType, Principal
from gateway.domain.timescales import breaches
from gateway.http.body import whole_number
from gateway.http.consultation import consulted
from gateway.http.routes.inbox import inbox_stream, item_view, last_event_id
from gateway.http.services import Services
from gateway.pipeline import access
from gateway.pipeline.reports import GATEWAY_SENDER, REPORT_TYPE
from gateway.services.auth import person_principal
from gateway.storage.base import InboxItem

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)

INBOX_PAGE = 500
_MESSAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
REPORT_TITLE = "Report from the gateway"


def _inbox_owner(request: web.Request) -> Principal:
    """The question ``GET /v1/inbox`` asks: may this caller read its organisation's inbox?"""
    principal = pages.signed_in(request).principal
    access.authorise(principal, access.Action.RECEIVE, principal.org.code)
    return principal


def type_title(services: Services, message_type: str) -> str:
    """A message type by its JSON Schema's title; the gateway's own reports by what they are."""
    if message_type == REPORT_TYPE:
        return REPORT_TITLE
    schema = services.schemas.documents.get(message_type, {})
    return str(schema.get("title") or message_type)


def org_name(services: Services, code: str) -> str:
    """An organisation by its directory name (the gateway by the service's)."""
    if code == GATEWAY_SENDER:
        return "DIP gateway"
    organisation = services.directory.get(code)
    return organisation.name if organisation else code


def type_choices(services: Services) -> dict[str, str]:
    """Every type a message can have, by title, for the filter's list."""
    return {t.value: type_title(services, t.value) for t in MessageType} | {
        REPORT_TYPE: REPORT_TITLE}


def _row(services: Services, item: InboxItem, limit: timedelta) -> dict[str, Any]:
    state: tuple[str, str, str | None]
    if item.withdrawn_at is not None:
        state = ("Withdrawn", "grey", f"Left the inbox unread {when(item.withdrawn_at)}")
    elif item.acknowledged_at is not None:
        state = ("Acknowledged", "green", when(item.acknowledged_at))
    else:
        state = ("Waiting", "blue", None)
    waiting = item.acknowledged_at is None and item.withdrawn_at is None
    return {
        "seq": item.seq,
        "id": item.message_id,
        # A withdrawn message is no longer the recipient's to read: named, never linked.
        "href": f"/console/messages/{item.message_id}" if item.withdrawn_at is None else None,
        "type": type_title(services, item.message_type),
        "sender": org_name(services, item.sender),
        "received": when(item.delivered_at),
        "clock": alert_clock(item.message_type, item.delivered_at, services.clock(), limit,
                             item.escalated) if waiting else None,
        "escalated": item.escalated,
        "waiting": waiting,
        "state": state[0],
        "state_colour": state[1],
        "state_words": state[2],
    }


def _limit(services: Services) -> timedelta:
    return timedelta(seconds=services.settings.alert_escalation_s)


@routes.get("/console/inbox")
async def inbox(request: web.Request) -> web.Response:
    principal = _inbox_owner(request)
    services = pages.services(request)
    types = type_choices(services)
    query = read_query(request.query, types)
    org = principal.org.code
    if query.default:
        items = await services.messages.inbox(org, INBOX_PAGE)  # what GET /v1/inbox reads
    else:
        items = await services.messages.inbox_history(
            org, query.where, INBOX_PAGE, newest_first=query.newest_first)
    acknowledged = await _acknowledged(services, org, request.query.get("acknowledged", ""))
    shown = tuple(i.message_id for i in items) + (
        (acknowledged.message_id,) if acknowledged else ())
    if query.default:
        await consulted(services, principal, "inbox", message_ids=shown, channel=CHANNEL)
    else:  # what the SPOC asked to see is part of what was read
        await consulted(services, principal, "inbox", message_ids=shown, channel=CHANNEL,
                        filter=_filter_words(query))
    limit = _limit(services)
    rows = [_row(services, item, limit) for item in items]
    return pages.page(request, "inbox.html", {
        "rows": rows,
        "query": query,
        "types": [("", "All types"), *sorted(types.items(), key=lambda t: t[1])],
        "states": STATES,
        "dates": DATES,
        "errors": list(query.problems.values()),
        "full": len(items) == INBOX_PAGE,
        # Live arrival joins the plain inbox only: a filtered list is a search, and stays.
        "live": (f"/console/inbox/stream?after={max((i.seq for i in items), default=0)}"
                 if query.default else None),
        "acknowledged": (
            f"{type_title(services, acknowledged.message_type)} from "
            f"{org_name(services, acknowledged.sender)} acknowledged"
            if acknowledged else None),
    })


def _filter_words(query: InboxQuery) -> dict[str, str]:
    """The filter as the consultation records it: what the SPOC asked to see."""
    return {"type": query.message_type, "status": query.state,
            **{k: v for k, v in query.values.items() if v}}


async def _acknowledged(services: Services, org: str, message_id: str) -> InboxItem | None:
    """The message the success banner names: one of this organisation's, acknowledged; an
    id that is not one is shown nowhere (the banner never echoes what it was given)."""
    message_id = message_id.lower()
    if not _MESSAGE_ID.fullmatch(message_id):
        return None
    item = await services.messages.inbox_item(message_id, org)
    return item if item is not None and item.acknowledged_at is not None else None


@routes.get("/console/inbox/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    """``GET /v1/inbox/stream`` for the inbox page: the same access check, reads and
    consultations, behind the session. An event carries what a row of the table shows
    (type, sender, times), never the message itself. It starts after ``after`` (the newest
    row the page showed), or ``Last-Event-ID`` when the browser reconnects, and ends when
    the session does: the stream is not activity that keeps a session alive."""
    principal = _inbox_owner(request)
    services = pages.services(request)
    signed = pages.signed_in(request)
    if "Last-Event-ID" in request.headers:
        last_seq = last_event_id(request)
    else:
        after = whole_number(request.query.get("after", "0").strip() or "0")
        if after is None:
            raise NotFound("no such stream")
        last_seq = after
    limit = _limit(services)
    headers = {**HEADERS, "Cache-Control": "no-store"}
    if services.settings.is_production:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return await inbox_stream(
        request, services, principal, last_seq, lambda item: _event(services, item, limit),
        headers=headers, still_allowed=lambda: _still_signed_in(services, signed),
        channel=CHANNEL,
    )


def _event(services: Services, item: InboxItem, limit: timedelta) -> Mapping[str, Any]:
    row = _row(services, item, limit)
    clock = row["clock"]
    return {
        **row,
        "clock": asdict(clock) if clock else None,
        "announcement": f"New message: {row['type']} from {row['sender']}, "
                        f"received {row['received']}",
    }


async def _still_signed_in(services: Services, signed: SignedIn) -> bool:
    """Whether the stream's session is still live and its person still holds the grant,
    read without touching the session (``SessionManager.load`` would keep it alive)."""
    session = await services.sessions.get(signed.session.id)
    now = services.clock()
    if (session is None or now - session.created_at >= ABSOLUTE_TIMEOUT
            or now - session.last_seen_at >= IDLE_TIMEOUT):
        return False
    person = services.directory.person(session.person_id)
    if person is None:
        return False
    principal = person_principal(services.directory, person, signed.principal.token_id)
    return access.allowed(principal, access.Action.RECEIVE, signed.principal.org.code)


def _message_id(request: web.Request) -> str:
    message_id = request.match_info["message_id"].lower()
    if not _MESSAGE_ID.fullmatch(message_id):
        raise NotFound("no such message")
    return message_id


@routes.get("/console/messages/{message_id}")
async def message(request: web.Request) -> web.Response:
    principal = _inbox_owner(request)
    services = pages.services(request)
    message_id = _message_id(request)
    item = await services.messages.inbox_item(message_id, principal.org.code)
    if item is None:
        raise NotFound("no such message")
    await consulted(services, principal, "inbox_message", message_ids=(message_id,),
                    channel=CHANNEL)
    envelope = item.envelope
    schemas = services.schemas.documents
    common = schemas.get("common", {})
    body = envelope.get("body", {})
    names = {code: org.name for code, org in services.directory.by_code().items()}
    return pages.page(request, "message.html", {
        "row": _row(services, item, _limit(services)),
        "acknowledged_at": when(item.acknowledged_at) if item.acknowledged_at else None,
        "subject": subject_lines(envelope.get("subject", {}),
                                 schemas.get("envelope", {}), common, names),
        "fields": body_fields(
            item.message_type, body if isinstance(body, Mapping) else {},
            schemas.get(item.message_type, {}), common, item.decision.redactions,
            item.decision.withheld_for, item.decision.rule, names,
        ),
        "decision": item.decision,
        "breaches": breaches(envelope, services.directory.by_code()),
        "signed": item.sender_signature is not None,
    })


@routes.get("/console/messages/{message_id}/signed.json")
async def signed_copy(request: web.Request) -> web.Response:
    """The message as the API lists it, with the sender's signature of this share: a file
    the SPOC keeps, or checks with ``dipgw verify-message`` against the sender's key."""
    principal = _inbox_owner(request)
    services = pages.services(request)
    message_id = _message_id(request)
    item = await services.messages.inbox_item(message_id, principal.org.code)
    if item is None or item.sender_signature is None:
        raise NotFound("no such signed message")
    await consulted(services, principal, "inbox_message", message_ids=(message_id,),
                    channel=CHANNEL, download=True)
    return web.json_response(
        item_view(item, services.directory.by_code()), dumps=_indented,
        headers={"Content-Disposition": f'attachment; filename="{message_id}.json"'},
    )


def _indented(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


@routes.post("/console/messages/{message_id}/acknowledge")
async def acknowledge(request: web.Request) -> web.Response:
    """What ``POST /v1/inbox/{id}/ack`` does, from a form."""
    principal = _inbox_owner(request)
    await form_with_token(request, pages.signed_in(request).session.csrf_token)
    services = pages.services(request)
    message_id = _message_id(request)
    ack = await services.messages.acknowledge(
        message_id, principal.org.code, principal.actor, services.clock(), services.audit,
    )
    log.info("message_acknowledged", message_id=message_id, first_time=ack.first_time,
             channel=CHANNEL)
    raise web.HTTPSeeOther(f"/console/inbox?acknowledged={message_id}")
