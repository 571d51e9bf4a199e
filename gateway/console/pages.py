"""What every console page shares: the page template's context, error pages, the signed-in
person, and the services. Each page asks ``gateway.pipeline.access`` exactly what the matching API
route asks, reads through the same services, and logs the read as a consultation before
showing it (DPA 2018 s.62(1)(b), ``gateway.http.consultation``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from gateway.console.navigation import menu_for
from gateway.console.sessions import SessionManager, SignedIn
from gateway.domain.model import Role
from gateway.http.services import SERVICES, Services

MANAGER = web.RequestKey("console_sessions", SessionManager)
SIGNED_IN = web.RequestKey("console_signed_in", SignedIn)

# The channel the console's consultations are logged under, beside the API's.
CHANNEL = "console"

ROLE_WORDS: Mapping[Role, str] = {
    Role.SPOC: "Single point of contact (SPOC)",
    Role.IG_LEAD: "Information governance lead",
    Role.ORG_ADMIN: "Organisation administrator",
    Role.AUDITOR: "Auditor",
    Role.DIRECTORY_ADMIN: "Directory operator",
    Role.SYSTEM: "System",
}


def page(request: web.Request, template: str, context: dict[str, Any],
          status: int = 200) -> web.Response:
    """A page in the GOV.UK template, with what every page shows of the signed-in person."""
    current = request.get(SIGNED_IN)
    return aiohttp_jinja2.render_template(template, request, {
        "signed_in": current,
        "person": current.principal.person if current else None,
        "csrf_token": current.session.csrf_token if current else "",
        "menu": menu_for(current.principal, request.path) if current else [],
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
    return page(request, "error.html", {"title": title, "text": text}, status=status)


def signed_in(request: web.Request) -> SignedIn:
    """The signed-in person, or a redirect to sign in."""
    if SIGNED_IN not in request:
        raise web.HTTPSeeOther("/console/sign-in")
    return request[SIGNED_IN]


def services(request: web.Request) -> Services:
    """The services the HTTP API calls: the console never has its own copy of a rule."""
    return request.app[SERVICES]
