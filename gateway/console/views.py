"""The console's pages. Each asks ``gateway.access`` exactly what the matching API route
asks, reads through the same services, and logs the read as a consultation before
showing it (DPA 2018 s.62(1)(b))."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import aiohttp_jinja2
import structlog
from aiohttp import web

from gateway import access
from gateway.console.security import form_with_token
from gateway.console.sessions import SessionManager, SignedIn
from gateway.console.words import alert_clock, body_fields, subject_lines, when
from gateway.directory import Directory
from gateway.errors import AccessDenied, NotFound
from gateway.http.consultation import consulted
from gateway.http.services import SERVICES, Services
from gateway.model import Principal, Role
from gateway.storage.base import InboxItem
from gateway.timescales import breaches

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)

MANAGER = web.RequestKey("console_sessions", SessionManager)
SIGNED_IN = web.RequestKey("console_signed_in", SignedIn)

# Before sign-in there is no session to hold a CSRF token: the sign-in form's token is
# also set in a cookie only this page's form is sent with, and the two must match.
SIGN_IN_CSRF_COOKIE = "dipgw_sign_in_csrf"
INBOX_PAGE = 500
CHANNEL = "console"
_MESSAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

ROLE_WORDS: Mapping[Role, str] = {
    Role.SPOC: "Single point of contact (SPOC)",
    Role.IG_LEAD: "Information governance lead",
    Role.ORG_ADMIN: "Organisation administrator",
    Role.AUDITOR: "Auditor",
    Role.DIRECTORY_ADMIN: "Directory operator",
    Role.SYSTEM: "System",
}


def _page(request: web.Request, template: str, context: dict[str, Any],
          status: int = 200) -> web.Response:
    signed_in = request.get(SIGNED_IN)
    return aiohttp_jinja2.render_template(template, request, {
        "signed_in": signed_in,
        "person": signed_in.principal.person if signed_in else None,
        "csrf_token": signed_in.session.csrf_token if signed_in else "",
        "may_receive": signed_in is not None and access.allowed(
            signed_in.principal, access.Action.RECEIVE, signed_in.principal.org.code),
        "path": request.path,
        **context,
    }, status=status)


ERROR_PAGES: Mapping[int, tuple[str, str]] = {
    400: ("Sorry, there is a problem with the form",
          "The form had expired or was not sent from this page. Nothing was changed. Go back, "
          "reload the page and try again."),
    403: ("You do not have permission to see this page",
          "Your roles do not include this. If you need it, ask your organisation's "
          "administrator."),
    404: ("Page not found",
          "If you typed the web address, check it is correct. If you pasted the web address, "
          "check you copied the entire address."),
}


def error_page(request: web.Request, status: int) -> web.Response:
    """A GOV.UK error page that names no resource and no rule (nothing leaks)."""
    title, text = ERROR_PAGES.get(status, (
        "Sorry, there is a problem with the service", "Try again later."))
    return _page(request, "error.html", {"title": title, "text": text}, status=status)


def _signed_in(request: web.Request) -> SignedIn:
    if SIGNED_IN not in request:
        raise web.HTTPSeeOther("/console/sign-in")
    return request[SIGNED_IN]


def _services(request: web.Request) -> Services:
    return request.app[SERVICES]


@routes.get("/")
async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/console/")


@routes.get("/console")
async def console_root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/console/")


# --- sign-in and sign-out --------------------------------------------------------------


def _demo_sign_in_allowed(request: web.Request) -> None:
    """The demo sign-in exists only outside production: there it is a 404 page."""
    if _services(request).settings.is_production:
        raise web.HTTPNotFound


def _demo_people(directory: Directory) -> list[dict[str, Any]]:
    people = []
    for org in directory.all():
        for person in sorted(directory.people_of(org.code), key=lambda p: p.id):
            roles = directory.roles_of(person.id)
            people.append({
                "id": person.id, "name": person.name, "organisation": org.name,
                "org_code": org.code,
                "roles": [ROLE_WORDS[r] for r in sorted(roles, key=lambda r: r.value)],
            })
    return people


@routes.get("/console/sign-in")
async def sign_in_page(request: web.Request) -> web.Response:
    _demo_sign_in_allowed(request)
    token = secrets.token_urlsafe(32)
    response = _page(request, "sign_in.html", {
        "people": _demo_people(_services(request).directory), "sign_in_token": token,
    })
    manager = request[MANAGER]
    response.set_cookie(
        SIGN_IN_CSRF_COOKIE, token, path="/console/sign-in", httponly=True,
        samesite="Strict", secure=manager.production,
    )
    return response


@routes.post("/console/sign-in")
async def sign_in(request: web.Request) -> web.Response:
    _demo_sign_in_allowed(request)
    form = await form_with_token(request, request.cookies.get(SIGN_IN_CSRF_COOKIE, ""))
    services = _services(request)
    person = services.directory.person(form.get("person", ""))
    if person is None:
        raise web.HTTPNotFound
    manager = request[MANAGER]
    previous = request.get(SIGNED_IN)
    if previous is not None:
        await manager.end(previous.session)
    secret, session = await manager.start(person.id)
    log.info("console_signed_in", person=person.id, session=session.id[:16], how="demo")
    response = web.HTTPSeeOther("/console/")
    manager.set_cookie(response, secret)
    response.del_cookie(SIGN_IN_CSRF_COOKIE, path="/console/sign-in")
    raise response


@routes.post("/console/sign-out")
async def sign_out(request: web.Request) -> web.Response:
    signed_in = _signed_in(request)
    await form_with_token(request, signed_in.session.csrf_token)
    manager = request[MANAGER]
    await manager.end(signed_in.session)
    log.info("console_signed_out", person=signed_in.session.person_id,
             session=signed_in.session.id[:16])
    response = web.HTTPSeeOther("/console/signed-out")
    manager.clear_cookie(response)
    raise response


@routes.get("/console/signed-out")
async def signed_out(request: web.Request) -> web.Response:
    return _page(request, "signed_out.html", {
        "demo": not _services(request).settings.is_production})


# --- home --------------------------------------------------------------------------------


@routes.get("/console/")
async def home(request: web.Request) -> web.Response:
    principal = _signed_in(request).principal
    org = principal.org
    may = [action.value[:1].upper() + action.value[1:]
           for action in access.Action
           if (may_handle_consent(principal) if action is access.Action.HANDLE_CONSENT
               else access.allowed(principal, action, org.code))]
    return _page(request, "home.html", {
        "organisation": org,
        "roles": [ROLE_WORDS[r] for r in sorted(principal.roles, key=lambda r: r.value)],
        "may": may,
        "may_consent": may_handle_consent(principal),
    })


def may_handle_consent(principal: Principal) -> bool:
    """Whether the consent pages are this person's: the API's own check, not a copy."""
    try:
        access.check_consent_handler(principal)
    except AccessDenied:
        return False
    return True



# --- inbox, message, acknowledge -----------------------------------------------------------


def _inbox_owner(request: web.Request) -> Principal:
    """The question ``GET /v1/inbox`` asks: may this caller read its organisation's inbox?"""
    principal = _signed_in(request).principal
    access.authorise(principal, access.Action.RECEIVE, principal.org.code)
    return principal


def _row(services: Services, item: InboxItem, limit: timedelta) -> dict[str, Any]:
    sender = services.directory.get(item.sender)
    schema = services.schemas.documents.get(item.message_type, {})
    return {
        "id": item.message_id,
        "type": str(schema.get("title") or item.message_type),
        "sender": sender.name if sender else item.sender,
        "received": when(item.delivered_at),
        "clock": alert_clock(item.message_type, item.delivered_at, services.clock(), limit,
                             item.escalated),
        "escalated": item.escalated,
    }


@routes.get("/console/inbox")
async def inbox(request: web.Request) -> web.Response:
    principal = _inbox_owner(request)
    services = _services(request)
    items = await services.messages.inbox(principal.org.code, INBOX_PAGE)
    await consulted(services, principal, "inbox",
                    message_ids=tuple(i.message_id for i in items), channel=CHANNEL)
    limit = timedelta(seconds=services.settings.alert_escalation_s)
    acknowledged = request.query.get("acknowledged", "")
    return _page(request, "inbox.html", {
        "rows": [_row(services, item, limit) for item in items],
        "acknowledged": acknowledged if _MESSAGE_ID.fullmatch(acknowledged) else None,
    })


def _message_id(request: web.Request) -> str:
    message_id = request.match_info["message_id"].lower()
    if not _MESSAGE_ID.fullmatch(message_id):
        raise NotFound("no such message")
    return message_id


@routes.get("/console/messages/{message_id}")
async def message(request: web.Request) -> web.Response:
    principal = _inbox_owner(request)
    services = _services(request)
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
    limit = timedelta(seconds=services.settings.alert_escalation_s)
    names = {code: org.name for code, org in services.directory.by_code().items()}
    return _page(request, "message.html", {
        "row": _row(services, item, limit),
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
    })


@routes.post("/console/messages/{message_id}/acknowledge")
async def acknowledge(request: web.Request) -> web.Response:
    """What ``POST /v1/inbox/{id}/ack`` does, from a form."""
    principal = _inbox_owner(request)
    await form_with_token(request, _signed_in(request).session.csrf_token)
    services = _services(request)
    message_id = _message_id(request)
    ack = await services.messages.acknowledge(
        message_id, principal.org.code, principal.actor, services.clock(), services.audit,
    )
    log.info("message_acknowledged", message_id=message_id, first_time=ack.first_time,
             channel=CHANNEL)
    raise web.HTTPSeeOther(f"/console/inbox?acknowledged={message_id}")

