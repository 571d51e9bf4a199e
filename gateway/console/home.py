"""The console's front door: ``/`` sends a browser here, and the home page says who the
person is, what their grants let them do, and where to go."""

from __future__ import annotations

from aiohttp import web

from gateway.console import pages
from gateway.console.navigation import may_handle_consent, menu_for
from gateway.console.pages import ROLE_WORDS
from gateway.pipeline import access

routes = web.RouteTableDef()


@routes.get("/")
async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/console/")


@routes.get("/console")
async def console_root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/console/")


@routes.get("/console/")
async def home(request: web.Request) -> web.Response:
    principal = pages.signed_in(request).principal
    org = principal.org
    may = [action.value[:1].upper() + action.value[1:]
           for action in access.Action
           if (may_handle_consent(principal) if action is access.Action.HANDLE_CONSENT
               else access.allowed(principal, action, org.code))]
    return pages.page(request, "home.html", {
        "organisation": org,
        "roles": [ROLE_WORDS[r] for r in sorted(principal.roles, key=lambda r: r.value)],
        "may": may,
        "places": menu_for(principal, request.path),
    })
