"""The web console: server-rendered GOV.UK Design System pages for the gateway's people.

It calls the services the HTTP API calls, asks ``gateway.pipeline.access`` the same questions, and
logs every read as a consultation as the API does (``gateway.http.consultation``). People
sign in with OpenID Connect at the identity provider their organisation registered
(``gateway.console.oidc``), or in development as a demo person, to a stored, revocable
session (``gateway.console.sessions``). One module per area (``FEATURES``): each page asks
what the matching API route asks and calls the same service.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web

from gateway.console import (
    admin,
    audit_pages,
    compose,
    consents,
    home,
    inbox,
    operator,
    pages,
    policy_pages,
    sent,
    sign_in,
)
from gateway.console.security import CsrfRefused, secure
from gateway.console.sessions import SessionManager
from gateway.domain.errors import AccessDenied, GatewayError, NotFound
from gateway.http.paths import ASSETS_PREFIX, CONSOLE_PREFIX, is_console_path
from gateway.http.problems import Handler, status_for
from gateway.http.services import SERVICES

__all__ = ["is_console_path", "setup_console"]

# One module per area of the console, each with its own routes and templates.
FEATURES = (home, sign_in, inbox, compose, sent, consents, policy_pages, admin, operator,
            audit_pages)
HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
GOVUK = STATIC / "govuk"
log = structlog.get_logger(__name__)


def setup_console(app: web.Application) -> None:
    """Add the console's routes, templates and middleware to the gateway's app."""
    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["service_name"] = "DIP gateway"
    for feature in FEATURES:
        app.add_routes(feature.routes)
    app.router.add_static(f"{CONSOLE_PREFIX}/static", STATIC, follow_symlinks=False)
    if (GOVUK / "assets").is_dir():
        app.router.add_static(ASSETS_PREFIX, GOVUK / "assets", follow_symlinks=False)
    else:
        log.warning("console_assets_missing", hint="run 'make assets' (npm ci) to build them")
    app.middlewares.append(console_middleware)


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Console requests: the session loaded, GOV.UK error pages instead of problem
    documents, and the security headers on every answer."""
    if not is_console_path(request.path):
        return await handler(request)
    services = request.app[SERVICES]
    production = services.settings.is_production
    manager = SessionManager(
        services.sessions, services.directory, services.clock, production=production
    )
    request[pages.MANAGER] = manager
    signed_in = await manager.load(request)
    if signed_in is not None:
        request[pages.SIGNED_IN] = signed_in
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            secure(exc, production=production)
            raise
        response = pages.error_page(request, exc.status)
    except CsrfRefused:
        response = pages.error_page(request, 400)
    except AccessDenied:
        response = pages.error_page(request, 403)
    except NotFound:
        response = pages.error_page(request, 404)
    except GatewayError as error:
        response = pages.error_page(request, status_for(error))
    static = request.path.startswith((f"{CONSOLE_PREFIX}/static/", f"{ASSETS_PREFIX}/"))
    secure(response, production=production, cache=static)
    return response
