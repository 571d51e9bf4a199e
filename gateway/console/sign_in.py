"""Signing in and out of the console.

People sign in with their organisation's account: OpenID Connect against the provider
their organisation registered in the directory (``gateway.console.oidc``), matched to their
directory record by issuer and subject, with exactly the roles their grants give them. In
development a "sign in as a demo person" page lists the directory's people beside it; in
production that part is absent and posting to it is a 404 page. Sign-in, sign-out and
sign-out of every device are audited (DPA 2018 s.62); log lines carry ids only.
"""

from __future__ import annotations

import secrets
from typing import Any, TypeVar

import structlog
from aiohttp import web

from gateway.console import oidc, pages
from gateway.console.pages import ROLE_WORDS
from gateway.console.security import CONTENT_SECURITY_POLICY, form_with_token
from gateway.domain.model import Organisation
from gateway.pipeline.audit import AuditAction, AuditEvent
from gateway.services.directory import Directory

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)
R = TypeVar("R", bound=web.StreamResponse)

# Before sign-in there is no session to hold a CSRF token: the sign-in forms' token is
# also set in a cookie only those forms are sent with, and the two must match.
SIGN_IN_CSRF_COOKIE = "dipgw_sign_in_csrf"
# The cookie binding an OpenID Connect sign-in under way to this browser (its secret's
# SHA-256 names the stored attempt). SameSite=Lax: the provider sends the browser back
# with a top-level GET, which Lax cookies go with.
OIDC_COOKIE = "dipgw_oidc"
OIDC_PRODUCTION_COOKIE = "__Host-dipgw_oidc"
CALLBACK_PATH = "/console/sign-in/callback"

# What a refused sign-in says, by reason: never who the provider said the person was.
REFUSALS: dict[str, tuple[int, str, str]] = {
    "not_registered": (
        403, "You are not registered to use this service",
        "Your organisation's account worked, but it is not linked to anyone in the "
        "gateway's directory. Ask your organisation's administrator to add you."),
    "no_mfa": (
        403, "You need to sign in with a second factor",
        "Your organisation's sign-in did not confirm a second factor, such as a code from "
        "an app or a security key. Sign in again using one. If you are not offered one, "
        "contact your organisation's IT service desk."),
    "expired": (
        400, "Your sign-in has expired or was not started here",
        "Nothing was changed. Start again from the sign-in page."),
    "provider_error": (
        400, "Sign-in was not completed",
        "Your organisation's sign-in service did not confirm who you are. Start again "
        "from the sign-in page."),
    "provider_unreachable": (
        503, "Sorry, your organisation's sign-in service is not available",
        "Try again later. If it keeps happening, contact your organisation's IT service "
        "desk."),
}
DEFAULT_REFUSAL = (
    400, "Sign-in was not completed",
    "Your organisation's sign-in could not be checked. Start again from the sign-in page.")


def _production(request: web.Request) -> bool:
    return pages.services(request).settings.is_production


def _demo_sign_in_allowed(request: web.Request) -> None:
    """The demo sign-in exists only outside production: there it is a 404 page."""
    if _production(request):
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


def _with_provider(directory: Directory) -> list[Organisation]:
    """Organisations whose people can sign in with their own account, by name."""
    return sorted((org for org in directory.all() if org.identity_provider is not None),
                  key=lambda org: org.name)


@routes.get("/console/sign-in")
async def sign_in_page(request: web.Request) -> web.Response:
    return _sign_in_page(request)


def _sign_in_page(request: web.Request, error: str | None = None) -> web.Response:
    directory = pages.services(request).directory
    production = _production(request)
    organisations = _with_provider(directory)
    token = secrets.token_urlsafe(32)
    response = pages.page(request, "sign_in.html", {
        "organisations": [{"value": o.code, "text": o.name} for o in organisations],
        "people": [] if production else _demo_people(directory),
        "demo": not production,
        "sign_in_token": token,
        "error": error,
    }, status=400 if error else 200)
    response.set_cookie(
        SIGN_IN_CSRF_COOKIE, token, path="/console/sign-in", httponly=True,
        samesite="Strict", secure=production,
    )
    # The organisation form's answer redirects to the provider: CSP form-action applies to
    # a form's redirects too, so this page allows the registered providers, and only them.
    origins = sorted({oidc.origin_of(o.identity_provider.issuer) for o in organisations
                      if o.identity_provider is not None})
    if origins:
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
            "form-action 'self'", "form-action 'self' " + " ".join(origins))
    return response


@routes.post("/console/sign-in")
async def sign_in(request: web.Request) -> web.Response:
    """Development only: sign in as a demo person, audited as such."""
    _demo_sign_in_allowed(request)
    form = await form_with_token(request, request.cookies.get(SIGN_IN_CSRF_COOKIE, ""))
    services = pages.services(request)
    person = services.directory.person(form.get("person", ""))
    if person is None:
        raise web.HTTPNotFound
    response = web.HTTPSeeOther("/console/")
    await _start_session(request, response, person.id, {"method": "demo"})
    raise response


@routes.post("/console/sign-in/oidc")
async def begin_oidc(request: web.Request) -> web.Response:
    """Send the browser to the chosen organisation's provider (OIDC Core 1.0 section
    3.1.2.1, PKCE S256), holding state, nonce and verifier server-side."""
    form = await form_with_token(request, request.cookies.get(SIGN_IN_CSRF_COOKIE, ""))
    services = pages.services(request)
    org = services.directory.get(form.get("organisation", ""))
    if org is None or org.identity_provider is None:
        return _sign_in_page(request, error="Select your organisation")
    provider = org.identity_provider
    try:
        if not oidc.transport_allowed(provider.issuer, production=_production(request)):
            raise oidc.SignInRefused("provider_insecure")
        metadata = await oidc.CLIENT.metadata(provider.issuer)
    except oidc.SignInRefused as refused:
        log.warning("console_sign_in_provider_failed", organisation=org.code,
                    reason=refused.reason)
        return _refusal_page(request, "provider_unreachable")
    now = services.clock()
    cookie_secret, attempt = oidc.new_attempt(org.code, now)
    await services.sessions.begin_sign_in(attempt, now - oidc.ATTEMPT_LIFETIME)
    production = _production(request)
    response = web.HTTPSeeOther(oidc.authorization_url(
        metadata, provider, attempt, _redirect_uri(request),
        services.settings.oidc_mfa_acr if production else None,
    ))
    response.set_cookie(
        _oidc_cookie(production), cookie_secret, path="/", httponly=True, samesite="Lax",
        secure=production, max_age=int(oidc.ATTEMPT_LIFETIME.total_seconds()),
    )
    response.del_cookie(SIGN_IN_CSRF_COOKIE, path="/console/sign-in")
    log.info("console_sign_in_started", organisation=org.code, attempt=attempt.id[:16])
    raise response


@routes.get(CALLBACK_PATH)
async def oidc_callback(request: web.Request) -> web.Response:
    """The provider's answer (OIDC Core 1.0 section 3.1.2.5): the attempt this browser
    began, taken once; the state compared; the code exchanged with the PKCE verifier; the
    ID token validated; the person matched by issuer and subject to their directory
    record, in an organisation that registered this provider. Deny by default."""
    services = pages.services(request)
    production = _production(request)
    cookie_secret = request.cookies.get(_oidc_cookie(production), "")
    attempt = None
    if cookie_secret and len(cookie_secret) <= 100:
        attempt = await services.sessions.take_sign_in(oidc.binding_id(cookie_secret))
    now = services.clock()
    if (
        attempt is None
        or now - attempt.created_at >= oidc.ATTEMPT_LIFETIME
        or not oidc.same(attempt.state, request.query.get("state"))
    ):
        # Nothing the provider said is looked at without the attempt this browser began.
        log.info("console_sign_in_refused", reason="expired")
        return _clear_oidc(_refusal_page(request, "expired"), production)
    org = services.directory.get(attempt.org_code)
    try:
        if request.query.get("error") or not request.query.get("code"):
            raise oidc.SignInRefused("provider_error")
        if org is None or org.identity_provider is None:
            raise oidc.SignInRefused("provider_mismatch")
        provider = org.identity_provider
        if not oidc.transport_allowed(provider.issuer, production=production):
            raise oidc.SignInRefused("provider_insecure")
        metadata = await oidc.CLIENT.metadata(provider.issuer)
        id_token = await oidc.CLIENT.exchange(
            metadata, provider, services.settings.oidc_client_secrets.get(org.code),
            request.query["code"], _redirect_uri(request), attempt.code_verifier,
        )
        verified = await oidc.CLIENT.verify(metadata, provider, id_token, attempt.nonce, now)
        person = services.directory.person_signing_in(verified.sign_in)
        home = services.directory.get(person.org_code) if person else None
        # The person's own organisation must have registered this very provider and
        # client: an identity at one organisation's provider never opens another's.
        if person is None or home is None or home.identity_provider != provider:
            raise oidc.SignInRefused("not_registered")
        if production and not verified.multi_factor(services.settings.oidc_mfa_acr):
            raise oidc.SignInRefused("no_mfa")
    except oidc.SignInRefused as refused:
        await services.audit.record(AuditEvent(
            action=AuditAction.CONSOLE_SIGN_IN_REFUSED, at=now,
            actor=f"{attempt.org_code}/sign-in",
            details={"organisation": attempt.org_code, "method": "oidc",
                     "reason": refused.reason},
        ))
        log.info("console_sign_in_refused", organisation=attempt.org_code,
                 reason=refused.reason)
        return _clear_oidc(_refusal_page(request, refused.reason), production)
    response = web.HTTPSeeOther("/console/")
    await _start_session(request, response, person.id, {
        "method": "oidc", "issuer": provider.issuer, "amr": list(verified.amr),
    })
    _clear_oidc(response, production)
    raise response


async def _start_session(
    request: web.Request, response: web.StreamResponse, person_id: str,
    details: dict[str, Any],
) -> None:
    """End any session this browser had, start the person's (a new id: no fixation),
    audited in the same transaction, and set its cookie on ``response``."""
    manager = request[pages.MANAGER]
    audit = pages.services(request).audit
    previous = request.get(pages.SIGNED_IN)
    if previous is not None:
        await manager.end(previous.session, audit)
    secret, session = await manager.start(person_id, audit, details)
    log.info("console_signed_in", person=person_id, session=session.id[:16],
             how=details["method"])
    manager.set_cookie(response, secret)
    response.del_cookie(SIGN_IN_CSRF_COOKIE, path="/console/sign-in")


def _redirect_uri(request: web.Request) -> str:
    """Where the provider sends the browser back: this gateway's public address (the
    client registration's redirect URI, compared exactly by the provider)."""
    return pages.services(request).settings.base_url + CALLBACK_PATH


def _oidc_cookie(production: bool) -> str:
    return OIDC_PRODUCTION_COOKIE if production else OIDC_COOKIE


def _clear_oidc(response: R, production: bool) -> R:
    response.del_cookie(_oidc_cookie(production), path="/", httponly=True, samesite="Lax",
                        secure=production)
    return response


def _refusal_page(request: web.Request, reason: str) -> web.Response:
    status, title, text = REFUSALS.get(reason, DEFAULT_REFUSAL)
    return pages.page(request, "sign_in_refused.html", {"title": title, "text": text},
                      status=status)


@routes.post("/console/sign-out")
async def sign_out(request: web.Request) -> web.Response:
    signed_in = pages.signed_in(request)
    await form_with_token(request, signed_in.session.csrf_token)
    manager = request[pages.MANAGER]
    await manager.end(signed_in.session, pages.services(request).audit)
    log.info("console_signed_out", person=signed_in.session.person_id,
             session=signed_in.session.id[:16])
    response = web.HTTPSeeOther("/console/signed-out")
    manager.clear_cookie(response)
    raise response


@routes.get("/console/sign-out-everywhere")
async def sign_out_everywhere_page(request: web.Request) -> web.Response:
    pages.signed_in(request)
    return pages.page(request, "sign_out_everywhere.html", {})


@routes.post("/console/sign-out-everywhere")
async def sign_out_everywhere(request: web.Request) -> web.Response:
    """End every session of the signed-in person, on every device (a lost or shared
    computer), this one included; audited with how many there were."""
    signed_in = pages.signed_in(request)
    await form_with_token(request, signed_in.session.csrf_token)
    manager = request[pages.MANAGER]
    ended = await manager.end_everywhere(signed_in.session.person_id,
                                         pages.services(request).audit)
    log.info("console_signed_out_everywhere", person=signed_in.session.person_id,
             sessions=ended)
    response = web.HTTPSeeOther("/console/signed-out?everywhere=1")
    manager.clear_cookie(response)
    raise response


@routes.get("/console/signed-out")
async def signed_out(request: web.Request) -> web.Response:
    return pages.page(request, "signed_out.html", {
        "demo": not _production(request),
        "everywhere": request.query.get("everywhere") == "1"})
