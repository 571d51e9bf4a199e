"""``/v1/me``, ``/v1/directory/{code}/people``, ``/v1/people`` and ``/v1/grants``: who is
calling, an organisation's people, their keys, and the roles granted to them."""

from __future__ import annotations

from aiohttp import web

from gateway.http.body import read_json
from gateway.http.context import principal_of
from gateway.http.services import SERVICES

routes = web.RouteTableDef()


@routes.get("/v1/me")
async def me(request: web.Request) -> web.Response:
    """The caller as the gateway sees it: organisation, person, and the roles it acts in."""
    principal = principal_of(request)
    answer: dict[str, object] = {
        "organisation": principal.org.code,
        "kind": principal.org.kind.value,
        "subject": principal.subject,
        "roles": sorted(role.value for role in principal.roles),
        "person": None,
    }
    if principal.person is not None:
        answer["person"] = request.app[SERVICES].administration.person_view(principal.person)
    return web.json_response(answer)


@routes.get("/v1/directory/{code}/people")
async def people(request: web.Request) -> web.Response:
    administration = request.app[SERVICES].administration
    found = administration.people_of(principal_of(request), request.match_info["code"])
    return web.json_response({"people": [administration.person_view(p) for p in found]})


@routes.post("/v1/directory/{code}/people")
async def add_person(request: web.Request) -> web.Response:
    """Add a person to an organisation (its administrator, or the operator); audited."""
    administration = request.app[SERVICES].administration
    person = await administration.add_person(
        principal_of(request), request.match_info["code"], await read_json(request)
    )
    return web.json_response(
        administration.person_view(person), status=201,
        headers={"Location": f"/v1/people/{person.id}"},
    )


@routes.get("/v1/people/{person_id}")
async def person(request: web.Request) -> web.Response:
    administration = request.app[SERVICES].administration
    found = administration.see_person(principal_of(request), request.match_info["person_id"])
    return web.json_response(administration.person_view(found))


@routes.post("/v1/people/{person_id}/keys")
async def add_person_key(request: web.Request) -> web.Response:
    """Register a public key a person signs CLI tokens with; audited."""
    administration = request.app[SERVICES].administration
    updated = await administration.add_person_key(
        principal_of(request), request.match_info["person_id"], await read_json(request)
    )
    return web.json_response(administration.person_view(updated), status=201)


@routes.delete("/v1/people/{person_id}/keys/{kid}")
async def remove_person_key(request: web.Request) -> web.Response:
    """Withdraw a person's key (they themselves, or their organisation's administrator):
    tokens it signs are refused at once; audited."""
    administration = request.app[SERVICES].administration
    updated = await administration.remove_person_key(
        principal_of(request), request.match_info["person_id"], request.match_info["kid"]
    )
    return web.json_response(administration.person_view(updated))


@routes.post("/v1/people/{person_id}/grants")
async def grant(request: web.Request) -> web.Response:
    """Grant a role ({"role": …, "reason": …}); who may grant which role is in
    ``gateway.pipeline.access.GRANTED_THROUGH``."""
    granted = await request.app[SERVICES].administration.grant(
        principal_of(request), request.match_info["person_id"], await read_json(request)
    )
    return web.json_response(
        granted.as_dict(), status=201, headers={"Location": f"/v1/grants/{granted.id}"}
    )


@routes.post("/v1/grants/{grant_id}/revoke")
async def revoke(request: web.Request) -> web.Response:
    """Revoke a grant ({"reason": …}); by whoever may grant that role."""
    body = await read_json(request) if request.can_read_body else None
    revoked = await request.app[SERVICES].administration.revoke(
        principal_of(request), request.match_info["grant_id"], body
    )
    return web.json_response(revoked.as_dict())
