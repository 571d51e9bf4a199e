"""The organisation administrator's pages: the organisation's people and the roles granted
to them (add a person, grant a role, revoke a grant, each grant and revocation with its
reason), and the organisation's delivery channel and SPOC contact.

Modelled on GOV.UK Notify's "Team members" and "Settings" pages. Every page asks what the
matching API route asks and does what it does through the same calls: ``Administration``
(``gateway.services.administration``) for people, grants and the contact, and
``gateway.http.directory_actions`` for the delivery channel, so ``gateway.pipeline.access`` (its
``AUTHORITY`` table and ``check_grant``) decides here exactly as it does for the API, and
every change is audited by the same repository call. The API logs no consultation for
these reads, so neither does the console.

A person of another organisation is a 404 page, not a 403: the page does not confirm that
the person exists."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway.console import pages
from gateway.console.pages import ROLE_WORDS
from gateway.console.security import form_with_token
from gateway.console.words import when
from gateway.domain.errors import (
    AccessDenied,
    Conflict,
    InvalidMessage,
    MalformedRequest,
    NotFound,
    Violation,
)
from gateway.domain.model import DeliveryChannel, Grant, Organisation, Person, Principal, Role
from gateway.http import directory_actions
from gateway.pipeline import access
from gateway.services.administration import MAX_NAME_CHARS, MAX_REASON_CHARS, reason_from
from gateway.services.directory import BOOTSTRAP, Directory

routes = web.RouteTableDef()

Errors = dict[str, dict[str, str]]

# How each channel is described to the people choosing one (gateway.domain.model.DeliveryChannel).
CHANNEL_WORDS: Mapping[DeliveryChannel, tuple[str, str]] = {
    DeliveryChannel.PULL: ("Your systems collect messages",
                           "Your case management system reads the gateway's inbox and live "
                           "stream. Nothing else to set up."),
    DeliveryChannel.AMQP: ("Your own message queue (AMQP)",
                           "Your systems consume your organisation's RabbitMQ queue."),
    DeliveryChannel.WEBHOOK: ("The gateway sends each message to your web address (webhook)",
                              "The gateway signs and posts each message to an HTTPS address "
                              "you run, and tries again until it is accepted."),
    DeliveryChannel.MESH: ("NHS MESH mailbox",
                           "The gateway sends each message to your organisation's MESH "
                           "mailbox."),
}
GRANTABLE: tuple[Role, ...] = tuple(r for r in Role if r is not Role.SYSTEM)


def principal_of(request: web.Request) -> Principal:
    return pages.signed_in(request).principal


def csrf_token(request: web.Request) -> str:
    return pages.signed_in(request).session.csrf_token


def error(text: str, field: str) -> dict[str, str]:
    """One entry of a GOV.UK error summary, linked to the field it is about."""
    return {"text": text, "href": f"#{field}"}


# --- words --------------------------------------------------------------------------------


def actor_words(directory: Directory, actor: str | None) -> str:
    """'Laura Reid (CJIT-NFK)' for an audit actor 'CJIT-NFK/cjit-nfk.admin'."""
    if not actor:
        return ""
    if actor == BOOTSTRAP:
        return "Set up with the gateway"
    org_code, _, subject = actor.partition("/")
    person = directory.person(subject)
    if person is not None:
        return f"{person.name} ({org_code})"
    return actor


def organisation_rows(org: Organisation) -> dict[str, Any]:
    """An organisation's delivery channel and SPOC contact in words, for a summary list."""
    delivery = org.delivery
    label, _ = CHANNEL_WORDS[delivery.channel]
    where = delivery.webhook_url or delivery.mesh_mailbox
    spoc = org.spoc
    return {
        "channel": label,
        "target": where,
        "email_notices": ("Yes, to the SPOC's secure email address" if delivery.email_notices
                          else "No"),
        "contact": [line for line in (
            spoc.name, spoc.phone and f"Telephone: {spoc.phone}",
            spoc.email and f"Email: {spoc.email}",
            spoc.secure_email and f"Secure email: {spoc.secure_email}") if line],
    }


def may_grant(principal: Principal, person: Person, org: Organisation, role: Role) -> bool:
    """Whether ``access.check_grant`` (the API's rule) lets this person grant or revoke."""
    try:
        access.check_grant(principal, person, org, role)
    except AccessDenied:
        return False
    return True


def grant_row(directory: Directory, grant: Grant, may_revoke: bool) -> dict[str, Any]:
    return {
        "id": grant.id,
        "role": ROLE_WORDS[grant.role],
        "active": grant.active,
        "granted_by": actor_words(directory, grant.granted_by),
        "granted_at": when(grant.granted_at),
        "reason": grant.reason,
        "revoked_by": actor_words(directory, grant.revoked_by),
        "revoked_at": when(grant.revoked_at) if grant.revoked_at else "",
        "revocation_reason": grant.revocation_reason or "",
        "may_revoke": may_revoke and grant.active,
    }


def person_row(directory: Directory, person: Person) -> dict[str, Any]:
    return {
        "id": person.id, "name": person.name, "email": person.email,
        "roles": [ROLE_WORDS[r] for r in sorted(directory.roles_of(person.id),
                                                key=lambda r: r.value)],
    }


def back_to(principal: Principal, code: str) -> str:
    """Where an organisation's settings pages lead back to: the People page for one's own
    organisation, the directory's organisation page for an operator's look at another."""
    if code == principal.org.code:
        return "/console/people"
    return f"/console/directory/{code}"


def key_rows(jwks: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Registered public keys as the pages list them: key id (RFC 7638 thumbprint),
    algorithm and curve."""
    return [{"kid": str(k.get("kid")), "alg": str(k.get("alg", "")),
             "curve": str(k.get("crv", ""))} for k in jwks]


def registered_key(jwks: Sequence[Mapping[str, Any]], kid: str) -> dict[str, str]:
    for row in key_rows(jwks):
        if row["kid"] == kid:
            return row
    raise NotFound("no such key")


async def register_pasted_key(
    values: Mapping[str, str], register: Callable[[Any], Awaitable[object]]
) -> str | None:
    """Register the JSON Web Key pasted in the form's ``jwk`` field through ``register``
    (the service the API calls, which checks it); what is wrong, or None once it is."""
    pasted = values.get("jwk", "").strip()
    try:
        jwk = json.loads(pasted) if pasted else None
    except ValueError:
        jwk = None
    if jwk is None:
        return ("Paste the public key as a JSON Web Key, like "
                '{"kty": "OKP", "crv": "Ed25519", "x": "…"}')
    try:
        await register(jwk)
    except InvalidMessage as invalid:
        return invalid.violations[0].message if invalid.violations else invalid.detail
    except Conflict as taken:
        return taken.detail
    return None


# --- the people page ----------------------------------------------------------------------


@routes.get("/console/people")
async def people(request: web.Request) -> web.Response:
    """The organisation's people and their roles (``GET /v1/directory/{code}/people``),
    with its delivery channel and SPOC contact."""
    principal = principal_of(request)
    services = pages.services(request)
    code = principal.org.code
    found = services.administration.people_of(principal, code)
    org = services.administration.organisation(code)
    directory = services.directory
    return pages.page(request, "people.html", {
        "organisation": org,
        "people": [person_row(directory, p) for p in found],
        "may_add": access.allowed(principal, access.Action.MANAGE_PEOPLE, code),
        "settings": organisation_rows(org),
        "may_view_delivery": access.allowed(principal, access.Action.VIEW_DELIVERY, code),
        "may_change_delivery": access.allowed(principal, access.Action.CHOOSE_DELIVERY, code),
        "may_change_contact": access.allowed(principal, access.Action.EDIT_CONTACT, code),
        "changed": request.query.get("changed", ""),
    })


# --- a person -----------------------------------------------------------------------------


def _person(request: web.Request, principal: Principal) -> Person:
    """The person in the path, if this caller may see them (``see_person``, the API's
    check); anyone else's is 'not found', so a page never confirms who exists."""
    try:
        return pages.services(request).administration.see_person(
            principal, request.match_info["person_id"])
    except AccessDenied:
        raise NotFound("no such person") from None


def _offered_roles(principal: Principal, person: Person, org: Organisation) -> list[Role]:
    """Roles the caller's authority covers for this person's organisation, that the
    organisation's kind may hold and the person does not hold yet. ``check_grant`` still
    decides when the form is sent."""
    return [role for role in GRANTABLE
            if access.allowed(principal, access.GRANTED_THROUGH[role], person.org_code)
            and org.kind in access.HELD_IN[role]]


@routes.get("/console/people/{person_id}")
async def person_page(request: web.Request) -> web.Response:
    """A person's record and every grant they hold or held: who granted it, when, why."""
    principal = principal_of(request)
    person = _person(request, principal)
    services = pages.services(request)
    directory = services.directory
    org = services.administration.organisation(person.org_code)
    # Roles held now first, then the record of those revoked.
    grants = sorted(directory.grants_of(person.id), key=lambda g: (not g.active, g.granted_at))
    held = directory.roles_of(person.id)
    offered = [r for r in _offered_roles(principal, person, org) if r not in held]
    own = principal.person is not None and principal.person.id == person.id
    return pages.page(request, "people_person.html", {
        "someone": person_row(directory, person),
        "record": person,
        "organisation": org,
        "grants": [grant_row(directory, g, may_grant(principal, person, org, g.role))
                   for g in grants],
        "may_grant": bool(offered) and not own,
        "own": own,
        "back": (back_to(principal, person.org_code)
                 if access.allowed(principal, access.Action.VIEW_PEOPLE, person.org_code)
                 else "/console/"),
        "granted": request.query.get("granted", ""),
        "revoked": request.query.get("revoked", ""),
        "added": request.query.get("added", "") == "1",
        "keys": key_rows(person.jwks),
        "may_keys": access.allowed(principal, access.Action.MANAGE_PEOPLE, person.org_code),
        "key": request.query.get("key", ""),
    })


# --- adding a person ----------------------------------------------------------------------

# JSON pointer of a person's violation -> (form field, what the error summary says).
PERSON_FIELDS: Mapping[str, tuple[str, str]] = {
    "/name": ("name", f"Enter the person's full name, up to {MAX_NAME_CHARS} characters"),
    "/email": ("email", "Enter an email address in the correct format, like "
                        "jo.bloggs@cjit.example"),
    "/id": ("email", "The part of the email address before the @ must give an id of "
                     "lower-case letters, digits, dots and hyphens"),
    "/sign_in/issuer": ("issuer", "Enter the identity provider's issuer, starting with "
                                  "https://"),
    "/sign_in/subject": ("subject", "Enter the person's subject at that identity provider, "
                                    "up to 255 characters"),
}
_PERSON_ORDER = ("name", "email", "issuer", "subject")


def person_errors(violations: tuple[Violation, ...] | list[Violation]) -> Errors:
    errors: Errors = {}
    for violation in violations:
        field, text = PERSON_FIELDS.get(violation.pointer, ("name", violation.message))
        errors.setdefault(field, error(text, field))
    return dict(sorted(errors.items(), key=lambda kv: _PERSON_ORDER.index(kv[0])))


def person_document(values: Mapping[str, str]) -> dict[str, Any]:
    """The ``POST /v1/directory/{code}/people`` request the form makes: the sign-in
    identity only when either half is given, so the service names the half missing."""
    body: dict[str, Any] = {"name": values.get("name", "").strip(),
                            "email": values.get("email", "").strip()}
    issuer, subject = values.get("issuer", "").strip(), values.get("subject", "").strip()
    if issuer or subject:
        body["sign_in"] = {"issuer": issuer, "subject": subject}
    return body


def _new_person_org(request: web.Request, principal: Principal, code: str) -> Organisation:
    org = pages.services(request).administration.organisation(code)
    access.authorise(principal, access.Action.MANAGE_PEOPLE, code)
    return org


@routes.get("/console/directory/{code}/people/new")
async def new_person(request: web.Request) -> web.Response:
    principal = principal_of(request)
    org = _new_person_org(request, principal, request.match_info["code"])
    return pages.page(request, "people_new.html", {
        "organisation": org, "values": {}, "errors": {},
        "back": back_to(principal, org.code)})


@routes.post("/console/directory/{code}/people/new")
async def add_person(request: web.Request) -> web.Response:
    """What ``POST /v1/directory/{code}/people`` does, from a form."""
    principal = principal_of(request)
    org = _new_person_org(request, principal, request.match_info["code"])
    values = await form_with_token(request, csrf_token(request))
    errors: Errors = {}
    try:
        person = await pages.services(request).administration.add_person(
            principal, org.code, person_document(values))
    except InvalidMessage as invalid:
        errors = person_errors(invalid.violations)
    except Conflict as taken:
        # The id (made from the email address) or the sign-in identity is someone else's.
        field = "issuer" if "sign-in" in taken.detail else "email"
        errors = {field: error(taken.detail, field)}
    else:
        raise web.HTTPSeeOther(f"/console/people/{quote(person.id)}?added=1")
    return pages.page(request, "people_new.html", {
        "organisation": org, "values": values, "errors": errors,
        "back": back_to(principal, org.code)})


# --- granting and revoking ----------------------------------------------------------------


def _reason_error(reason: str, doing: str, field: str = "reason") -> dict[str, str] | None:
    """The reason checked by the service's own ``reason_from``, its refusal in words."""
    try:
        reason_from({"reason": reason}, doing)
    except MalformedRequest:
        if not reason.strip():
            return error(f"Enter why you {doing}", field)
        return error(f"The reason must be {MAX_REASON_CHARS} characters or fewer", field)
    return None


def _grant_context(request: web.Request, principal: Principal, person: Person,
                   values: Mapping[str, str], errors: Errors) -> dict[str, Any]:
    services = pages.services(request)
    org = services.administration.organisation(person.org_code)
    held = services.directory.roles_of(person.id)
    offered = [r for r in _offered_roles(principal, person, org) if r not in held]
    if not _offered_roles(principal, person, org):
        # No role this caller could grant here at all: the page is not theirs.
        raise AccessDenied("may not grant roles to this organisation's people")
    return {
        "someone": person_row(services.directory, person),
        "organisation": org,
        "roles": [(r.value, ROLE_WORDS[r], None) for r in offered],
        "values": values, "errors": errors, "max_reason": MAX_REASON_CHARS,
    }


@routes.get("/console/people/{person_id}/grant")
async def grant_form(request: web.Request) -> web.Response:
    principal = principal_of(request)
    person = _person(request, principal)
    return pages.page(request, "people_grant.html",
                      _grant_context(request, principal, person, {}, {}))


@routes.post("/console/people/{person_id}/grant")
async def grant(request: web.Request) -> web.Response:
    """What ``POST /v1/people/{id}/grants`` does, from a form: the refusals of
    ``access.check_grant`` (never one's own roles, a role only in the kinds of organisation
    that hold it) shown in the error summary."""
    principal = principal_of(request)
    person = _person(request, principal)
    values = await form_with_token(request, csrf_token(request))
    role, reason = values.get("role", ""), values.get("reason", "")
    errors: Errors = {}
    if not role:
        errors["role"] = error("Select the role to grant", "role")
    elif role not in {r.value for r in GRANTABLE}:
        # Not a choice the form offers (the service would name the JSON it expects).
        errors["role"] = error("Select a role from the list", "role")
    reason_problem = _reason_error(reason, "are granting this role")
    if reason_problem:
        errors["reason"] = reason_problem
    if not errors:
        try:
            await pages.services(request).administration.grant(
                principal, person.id, {"role": role, "reason": reason})
        except (AccessDenied, Conflict, MalformedRequest) as refused:
            errors["role"] = error(refused.detail, "role")
        else:
            raise web.HTTPSeeOther(
                f"/console/people/{quote(person.id)}?granted={quote(role)}")
    return pages.page(request, "people_grant.html",
                      _grant_context(request, principal, person, values, errors))


def _grant_of(request: web.Request, person: Person) -> Grant:
    found = pages.services(request).directory.grant(request.match_info["grant_id"])
    if found is None or found.person_id != person.id:
        raise NotFound("no such grant")
    return found


def _revoke_context(request: web.Request, principal: Principal, person: Person,
                    granted: Grant, reason: str, errors: Errors) -> dict[str, Any]:
    directory = pages.services(request).directory
    if not access.allowed(principal, access.GRANTED_THROUGH[granted.role], person.org_code):
        raise AccessDenied("may not revoke this role")
    return {
        "someone": person_row(directory, person),
        "grant": grant_row(directory, granted, True),
        "reason": reason, "errors": errors, "max_reason": MAX_REASON_CHARS,
    }


@routes.get("/console/people/{person_id}/grants/{grant_id}/revoke")
async def revoke_form(request: web.Request) -> web.Response:
    principal = principal_of(request)
    person = _person(request, principal)
    granted = _grant_of(request, person)
    return pages.page(request, "people_revoke.html",
                      _revoke_context(request, principal, person, granted, "", {}))


@routes.post("/console/people/{person_id}/grants/{grant_id}/revoke")
async def revoke(request: web.Request) -> web.Response:
    """What ``POST /v1/grants/{id}/revoke`` does, once a reason is given."""
    principal = principal_of(request)
    person = _person(request, principal)
    granted = _grant_of(request, person)
    values = await form_with_token(request, csrf_token(request))
    reason = values.get("reason", "")
    errors: Errors = {}
    reason_problem = _reason_error(reason, "are revoking this role")
    if reason_problem:
        errors["reason"] = reason_problem
    else:
        try:
            await pages.services(request).administration.revoke(
                principal, granted.id, {"reason": reason})
        except (AccessDenied, MalformedRequest) as refused:
            errors["reason"] = error(refused.detail, "reason")
        else:
            raise web.HTTPSeeOther(
                f"/console/people/{quote(person.id)}?revoked={quote(granted.role.value)}")
    return pages.page(request, "people_revoke.html",
                      _revoke_context(request, principal, person, granted, reason, errors))


# --- the organisation's delivery channel and SPOC contact ---------------------------------


def delivery_values(org: Organisation) -> dict[str, str]:
    settings = org.delivery
    return {"channel": settings.channel.value, "webhook_url": settings.webhook_url or "",
            "mesh_mailbox": settings.mesh_mailbox or "",
            "email_notices": "yes" if settings.email_notices else "no"}


def delivery_document(values: Mapping[str, str]) -> dict[str, Any]:
    """The ``PUT /v1/directory/{code}/delivery`` body the form makes. The address fields
    are the chosen channel's own (the form shows each under its choice), so a value left
    in the other one is not sent."""
    body: dict[str, Any] = {"email_notices": values.get("email_notices", "yes") != "no"}
    channel = values.get("channel", "")
    if channel:
        body["channel"] = channel
    if channel == DeliveryChannel.WEBHOOK.value:
        body["webhook_url"] = values.get("webhook_url", "").strip() or None
    if channel == DeliveryChannel.MESH.value:
        body["mesh_mailbox"] = values.get("mesh_mailbox", "").strip().upper() or None
    return {k: v for k, v in body.items() if v is not None}


def delivery_errors(violations: tuple[Violation, ...]) -> Errors:
    """The channel's violations, each beside the field it is about."""
    errors: Errors = {}
    for violation in violations:
        text = violation.message
        if violation.pointer == "/channel":
            field, text = "channel", "Select how the gateway delivers messages"
        elif "webhook_url" in violation.pointer or "webhook_url" in text:
            field = "webhook_url"
            text = text.replace("webhook_url", "the web address")
        elif "mesh_mailbox" in violation.pointer or "mesh_mailbox" in text:
            field = "mesh_mailbox"
            text = text.replace("mesh_mailbox", "the MESH mailbox")
        else:
            field = "channel"
        errors.setdefault(field, error(text[:1].upper() + text[1:], field))
    return errors


def _delivery_context(request: web.Request, principal: Principal, org: Organisation,
                      values: Mapping[str, str], errors: Errors) -> dict[str, Any]:
    return {
        "organisation": org,
        "settings": organisation_rows(org),
        "may_change": access.allowed(principal, access.Action.CHOOSE_DELIVERY, org.code),
        "channels": [(c.value, *CHANNEL_WORDS[c]) for c in DeliveryChannel],
        "values": values, "errors": errors, "back": back_to(principal, org.code),
        "whose": "your organisation" if org.code == principal.org.code else org.name,
    }


@routes.get("/console/directory/{code}/delivery")
async def delivery(request: web.Request) -> web.Response:
    """An organisation's delivery channel (``GET /v1/directory/{code}/delivery``), and the
    form to change it for whoever may."""
    principal = principal_of(request)
    org = directory_actions.delivery_of(pages.services(request), principal,
                                        request.match_info["code"])
    return pages.page(request, "people_delivery.html", _delivery_context(
        request, principal, org, delivery_values(org), {}))


@routes.post("/console/directory/{code}/delivery")
async def choose_delivery(request: web.Request) -> web.Response:
    """What ``PUT /v1/directory/{code}/delivery`` does, from a form: the same validation
    (``parse_channel``), the same audited change, the transport following it."""
    principal = principal_of(request)
    services = pages.services(request)
    org = directory_actions.delivery_of(services, principal, request.match_info["code"])
    access.authorise(principal, access.Action.CHOOSE_DELIVERY, org.code)
    values = await form_with_token(request, csrf_token(request))
    try:
        await directory_actions.choose_delivery(services, principal, org.code,
                                                delivery_document(values))
    except InvalidMessage as invalid:
        return pages.page(request, "people_delivery.html", _delivery_context(
            request, principal, org, values, delivery_errors(invalid.violations)))
    raise web.HTTPSeeOther(f"{back_to(principal, org.code)}?changed=delivery")


CONTACT_FIELDS: Mapping[str, str] = {
    "name": f"Enter who to contact, up to {MAX_NAME_CHARS} characters",
    "phone": "Enter a telephone number, like 01603 000 202",
    "email": "Enter an email address in the correct format, like spoc@cjit.example",
    "secure_email": "Enter a secure email address in the correct format, like "
                    "spoc@cjit.secure.example",
}


def contact_document(values: Mapping[str, str]) -> dict[str, Any]:
    """The ``PUT /v1/directory/{code}/contact`` body: blank optional fields left out."""
    body: dict[str, Any] = {"name": values.get("name", "").strip()}
    for field in ("phone", "email", "secure_email"):
        if values.get(field, "").strip():
            body[field] = values[field].strip()
    return body


def _contact_org(request: web.Request, principal: Principal) -> Organisation:
    org = pages.services(request).administration.organisation(request.match_info["code"])
    access.authorise(principal, access.Action.EDIT_CONTACT, org.code)
    return org


@routes.get("/console/directory/{code}/contact")
async def contact_form(request: web.Request) -> web.Response:
    principal = principal_of(request)
    org = _contact_org(request, principal)
    return pages.page(request, "people_contact.html", {
        "organisation": org, "values": {k: v or "" for k, v in org.spoc.as_dict().items()},
        "errors": {}, "back": back_to(principal, org.code)})


@routes.post("/console/directory/{code}/contact")
async def set_contact(request: web.Request) -> web.Response:
    """What ``PUT /v1/directory/{code}/contact`` does, from a form."""
    principal = principal_of(request)
    org = _contact_org(request, principal)
    values = await form_with_token(request, csrf_token(request))
    try:
        await pages.services(request).administration.set_contact(
            principal, org.code, contact_document(values))
    except InvalidMessage as invalid:
        errors: Errors = {}
        for violation in invalid.violations:
            field = violation.pointer.strip("/")
            if field in CONTACT_FIELDS:
                errors.setdefault(field, error(CONTACT_FIELDS[field], field))
        return pages.page(request, "people_contact.html", {
            "organisation": org, "values": values,
            "errors": dict(sorted(errors.items(), key=lambda kv: list(CONTACT_FIELDS).index(
                kv[0]))),
            "back": back_to(principal, org.code)})
    raise web.HTTPSeeOther(f"{back_to(principal, org.code)}?changed=contact")



# --- a person's keys for the command line -------------------------------------------------


def _key_holder(request: web.Request, principal: Principal) -> Person:
    """A person whose keys this caller manages (``MANAGE_PEOPLE``, as the API asks)."""
    person = _person(request, principal)
    access.authorise(principal, access.Action.MANAGE_PEOPLE, person.org_code)
    return person


def _person_key_page(person: Person, jwk: str, errors: Errors) -> dict[str, Any]:
    return {
        "caption": person.name, "heading": "Register a key for the command line",
        "intro": f"{person.name} can then sign tokens for the dipgw command with the "
                 "matching private key, and act in the roles they hold.",
        "action": f"/console/people/{person.id}/keys/new",
        "back": f"/console/people/{person.id}", "back_words": f"Back to {person.name}",
        "jwk": jwk, "errors": errors,
    }


@routes.get("/console/people/{person_id}/keys/new")
async def new_person_key(request: web.Request) -> web.Response:
    person = _key_holder(request, principal_of(request))
    return pages.page(request, "directory_key_new.html", _person_key_page(person, "", {}))


@routes.post("/console/people/{person_id}/keys/new")
async def register_person_key(request: web.Request) -> web.Response:
    """What ``POST /v1/people/{id}/keys`` does, with the key pasted as JSON."""
    principal = principal_of(request)
    person = _key_holder(request, principal)
    values = await form_with_token(request, csrf_token(request))
    administration = pages.services(request).administration
    refused = await register_pasted_key(
        values, lambda jwk: administration.add_person_key(principal, person.id, jwk))
    if refused is None:
        raise web.HTTPSeeOther(f"/console/people/{quote(person.id)}?key=added")
    return pages.page(request, "directory_key_new.html", _person_key_page(
        person, values.get("jwk", ""), {"jwk": error(refused, "jwk")}))


def _person_key_removal(person: Person, key: Mapping[str, str]) -> dict[str, Any]:
    return {
        "caption": person.name, "key": key,
        "action": f"/console/people/{person.id}/keys/{key['kid']}/remove",
        "back": f"/console/people/{person.id}", "back_words": f"Back to {person.name}",
        "whose": f"{person.name} needs another key to use the dipgw command.",
    }


@routes.get("/console/people/{person_id}/keys/{kid}/remove")
async def confirm_person_key_removal(request: web.Request) -> web.Response:
    person = _key_holder(request, principal_of(request))
    key = registered_key(person.jwks, request.match_info["kid"])
    return pages.page(request, "directory_key_remove.html", _person_key_removal(person, key))


@routes.post("/console/people/{person_id}/keys/{kid}/remove")
async def remove_person_key(request: web.Request) -> web.Response:
    """What ``DELETE /v1/people/{id}/keys/{kid}`` does: tokens the key signs are refused at
    once (audited)."""
    principal = principal_of(request)
    person = _key_holder(request, principal)
    key = registered_key(person.jwks, request.match_info["kid"])
    await form_with_token(request, csrf_token(request))
    await pages.services(request).administration.remove_person_key(
        principal, person.id, key["kid"])
    raise web.HTTPSeeOther(f"/console/people/{quote(person.id)}?key=removed")
