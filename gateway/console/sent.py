"""The organisation's sent messages and each one's status timeline (issue 12): what ``GET
/v1/messages/{id}`` answers its sender, as pages.

The same access question (``READ_STATUS`` on one's own organisation), the same read
(``MessageRepository``), the same view of it (``visible_status``: a sender sees every
recipient) and the same consultation (``message_status``, DPA 2018 s.62(1)(b)) as the API.
These pages are the sender's: a message another organisation sent is "not found" whoever
received it (its recipients read it in their inbox), so nothing tells an id's existence.
The timeline says in words what the history's steps mean (README, "Message status").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.console import pages
from gateway.console.inbox import org_name, type_title
from gateway.console.pages import CHANNEL
from gateway.console.words import when
from gateway.domain.errors import NotFound
from gateway.domain.model import MessageStatus, Principal, StatusEvent, recipient_status
from gateway.http.body import whole_number
from gateway.http.consultation import consulted
from gateway.http.routes.messages import visible_status
from gateway.http.services import Services
from gateway.pipeline import access
from gateway.storage.base import MessageRecord

routes = web.RouteTableDef()

SENT_PAGE = 25
MAX_PAGE = 10_000
_MESSAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# A status as the sender reads it, and its GOV.UK tag colour. A share still "accepted" has
# not reached its recipient yet: it is queued (the outbox, or a push being retried).
STATUS_TAGS: Mapping[MessageStatus, tuple[str, str]] = {
    MessageStatus.ACCEPTED: ("Queued", "light-blue"),
    MessageStatus.DELIVERED: ("Delivered", "blue"),
    MessageStatus.ACKNOWLEDGED: ("Acknowledged", "green"),
    MessageStatus.REFUSED: ("Not sent", "red"),
    MessageStatus.DEAD_LETTERED: ("Undelivered", "red"),
    MessageStatus.EXPIRED: ("Expired", "orange"),
    MessageStatus.WITHDRAWN: ("Withdrawn", "grey"),
}


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the timeline: when, what happened in words, by whom, and why if said."""

    at: str
    what: str
    by: str
    why: str | None = None


def _status_reader(request: web.Request) -> Principal:
    """The question ``GET /v1/messages/{id}`` asks first: may this caller read its
    organisation's messages' status?"""
    principal = pages.signed_in(request).principal
    access.authorise(principal, access.Action.READ_STATUS, principal.org.code)
    return principal


def tag(status: MessageStatus) -> dict[str, str]:
    text, colour = STATUS_TAGS.get(status, (status.value.replace("_", " ").capitalize(), "grey"))
    return {"text": text, "colour": colour}


def _recipients(services: Services, record: MessageRecord) -> str:
    return ", ".join(org_name(services, code) for code in record.recipients) or "No one"


@routes.get("/console/sent")
async def sent(request: web.Request) -> web.Response:
    principal = _status_reader(request)
    services = pages.services(request)
    number = whole_number(request.query.get("page", "1").strip() or "1",
                          minimum=1, maximum=MAX_PAGE)
    if number is None:
        raise NotFound("no such page")
    org = principal.org.code
    records = await services.messages.sent(org, SENT_PAGE + 1, (number - 1) * SENT_PAGE)
    more, records = len(records) > SENT_PAGE, records[:SENT_PAGE]
    if number > 1 and not records:
        raise NotFound("no such page")
    await consulted(services, principal, "sent", message_ids=tuple(
        r.message_id for r in records), channel=CHANNEL)
    rows = []
    for record in records:
        _, _, status = visible_status(record, org)
        rows.append({
            "id": record.message_id,
            "type": type_title(services, record.message_type),
            "to": _recipients(services, record),
            "sent": when(record.received_at),
            "status": tag(status),
        })
    return pages.page(request, "sent.html", {
        "rows": rows,
        "page_number": number,
        "previous": f"/console/sent?page={number - 1}" if number > 1 else None,
        "next": f"/console/sent?page={number + 1}" if more else None,
    })


@routes.get("/console/sent/{message_id}")
async def timeline(request: web.Request) -> web.Response:
    principal = _status_reader(request)
    services = pages.services(request)
    message_id = request.match_info["message_id"].lower()
    if not _MESSAGE_ID.fullmatch(message_id):
        raise NotFound("no such message")
    record = await services.messages.get(message_id)
    org = principal.org.code
    # Fail closed: unknown and someone else's look the same.
    if record is None or record.sender != org:
        raise NotFound("no such message")
    recipients, history, status = visible_status(record, org)
    await consulted(services, principal, "message_status", message_ids=(message_id,),
                    channel=CHANNEL)
    return pages.page(request, "sent_message.html", {
        "id": record.message_id,
        "type": type_title(services, record.message_type),
        "sent": when(record.received_at),
        "status": tag(status),
        "recipients": [_recipient(services, history, code) for code in recipients],
        "steps": [_step(services, record, event) for event in history],
    })


def _recipient(services: Services, history: tuple[StatusEvent, ...],
               code: str) -> dict[str, Any]:
    status = recipient_status(history, code)
    latest = [e for e in history if e.recipient == code and e.status is status]
    return {"name": org_name(services, code), "status": tag(status),
            "since": when(latest[-1].at) if latest else None}


def _by(services: Services, actor: str | None, code: str) -> str:
    """Who acknowledged: the person by name where the directory knows them, else the
    organisation's system (``Principal.actor`` is ``ORG/person-id`` or ``ORG/system``)."""
    organisation = org_name(services, code)
    if actor is None:
        return organisation
    person = services.directory.person(actor.partition("/")[2])
    if person is not None and person.org_code == code:
        return f"{person.name}, {organisation}"
    return f"{organisation} (its own system)"


def _step(services: Services, record: MessageRecord, event: StatusEvent) -> Step:
    at = when(event.at)
    sender = org_name(services, record.sender)
    code = event.recipient
    if code is None:
        if event.status is MessageStatus.REFUSED:
            return Step(at, "Refused by the sharing policy: sent to no one", "DIP gateway",
                        event.detail)
        return Step(at, "Sent, and accepted by the gateway", sender)
    name = org_name(services, code)
    words: Mapping[MessageStatus, tuple[str, str, bool]] = {
        MessageStatus.DELIVERED: (f"Delivered to {name}", "DIP gateway", False),
        MessageStatus.ACKNOWLEDGED: (
            f"Acknowledged by {name}", _by(services, record.acknowledged_by.get(code), code),
            bool(event.detail)),
        MessageStatus.REFUSED: (f"Not sent to {name}: the sharing policy refused it",
                                "DIP gateway", True),
        MessageStatus.DEAD_LETTERED: (f"Not delivered to {name}", "DIP gateway", True),
        # Delivered or not, an expired share was never acknowledged (close_delivery).
        MessageStatus.EXPIRED: (f"Expired before {name} acknowledged it", "DIP gateway",
                                True),
        MessageStatus.WITHDRAWN: (
            f"Withdrawn from {name}'s inbox unread: the person withdrew their consent",
            "DIP gateway", False),
        MessageStatus.CONSENT_WITHDRAWN: (
            f"{name} told the person withdrew their consent (it had acknowledged it)",
            "DIP gateway", False),
        MessageStatus.ESCALATED: (
            f"Escalated: {name} had not acknowledged it in time", "DIP gateway", False),
        MessageStatus.ATTEMPT_FAILED: (
            f"A delivery attempt to {name} failed; it will be tried again", "DIP gateway",
            True),
        MessageStatus.NOTIFIED: (f"{name}'s single point of contact was e-mailed a notice",
                                 "DIP gateway", False),
    }
    what, by, why = words.get(event.status, (
        f"{event.status.value.replace('_', ' ').capitalize()} ({name})", "DIP gateway", True))
    return Step(at, what, by, event.detail if why else None)
