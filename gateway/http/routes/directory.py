"""``/v1/directory`` and ``/v1/schemas``: reference data any authenticated caller may read,
and the changes to it that only the organisation itself or the operator may make."""

from __future__ import annotations

from aiohttp import web

from gateway.domain.errors import MalformedRequest, NotFound
from gateway.http import directory_actions
from gateway.http.body import read_json
from gateway.http.context import principal_of
from gateway.http.services import SERVICES
from gateway.pipeline import access
from gateway.pipeline.directory_import import cjit_of_residence
from gateway.pipeline.validation import ENVELOPE_SCHEMA

routes = web.RouteTableDef()


@routes.get("/v1/directory")
async def directory(request: web.Request) -> web.Response:
    organisations = request.app[SERVICES].directory.all()
    kind = request.query.get("kind")
    return web.json_response(
        {
            "organisations": [
                org.public_view() for org in organisations if kind is None or org.kind == kind
            ]
        }
    )


@routes.get("/v1/directory/residence")
async def residence(request: web.Request) -> web.Response:
    """The CJIT serving a person's area of residence (H 4.7.4)."""
    area = request.query.get("area", "").strip()
    if not area:
        raise MalformedRequest("Say which area: ?area=Norwich")
    cjit = cjit_of_residence(request.app[SERVICES].directory.all(), area)
    if cjit is None:
        raise NotFound(f"No single CJIT in the directory serves {area!r}.")
    return web.json_response(cjit.public_view())


@routes.post("/v1/directory/import")
async def import_spoc_list(request: web.Request) -> web.Response:
    """Preview ({"csv": …}) or propose ({"csv": …, "apply": true}) a SPOC-list import.

    Operator people only. A proposal changes nothing until a second operator person
    approves it (``POST /v1/directory/imports/{id}/approve``).
    """
    services = request.app[SERVICES]
    principal = principal_of(request)
    access.authorise(principal, access.Action.IMPORT_DIRECTORY)
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("csv"), str):
        raise MalformedRequest("Send {'csv': '<the file>', 'apply': false|true}.")
    if body.get("apply") is True:
        proposal = await services.administration.propose_import(principal, body["csv"])
        return web.json_response(
            {"applied": False, **proposal.summary()}, status=202,
            headers={"Location": f"/v1/directory/imports/{proposal.id}"},
        )
    preview = await services.administration.preview_import(principal, body["csv"])
    return web.json_response({"applied": False, **preview})


@routes.get("/v1/directory/imports/{import_id}")
async def get_import(request: web.Request) -> web.Response:
    proposal = await directory_actions.find_import(
        request.app[SERVICES], principal_of(request), request.match_info["import_id"]
    )
    return web.json_response({"applied": proposal.approved_by is not None, **proposal.summary()})


@routes.post("/v1/directory/imports/{import_id}/approve")
async def approve_import(request: web.Request) -> web.Response:
    """A second operator person applies a proposed import, as it was previewed."""
    applied = await directory_actions.approve_import(
        request.app[SERVICES], principal_of(request), request.match_info["import_id"]
    )
    return web.json_response({"applied": True, **applied.summary()})


@routes.get("/v1/directory/{code}/delivery")
async def get_delivery_channel(request: web.Request) -> web.Response:
    """An organisation's delivery channel in full: for the organisation and the operator."""
    code = request.match_info["code"]
    org = directory_actions.delivery_of(request.app[SERVICES], principal_of(request), code)
    return web.json_response({"code": code, **org.delivery.as_dict()})


@routes.put("/v1/directory/{code}/delivery")
async def set_delivery_channel(request: web.Request) -> web.Response:
    """Choose how messages reach an organisation: pull, amqp, webhook or mesh (audited).

    Only the organisation's own administrator or IG lead, or the operator."""
    code = request.match_info["code"]
    org = await directory_actions.choose_delivery(
        request.app[SERVICES], principal_of(request), code, await read_json(request)
    )
    return web.json_response({"code": code, **org.delivery.as_dict()})


@routes.put("/v1/directory/{code}/contact")
async def set_contact(request: web.Request) -> web.Response:
    """Change the organisation's SPOC contact (its IG lead or administrator, or the
    operator; audited): the secure address there receives alert notices."""
    org = await request.app[SERVICES].administration.set_contact(
        principal_of(request), request.match_info["code"], await read_json(request)
    )
    return web.json_response(org.public_view())


@routes.put("/v1/directory/{code}/identity-provider")
async def set_identity_provider(request: web.Request) -> web.Response:
    """Register the OpenID Provider the organisation's people sign in to the console with
    (its administrator, or the operator; audited). The client secret is configuration."""
    org = await request.app[SERVICES].administration.set_identity_provider(
        principal_of(request), request.match_info["code"], await read_json(request)
    )
    return web.json_response(org.public_view())


@routes.delete("/v1/directory/{code}/identity-provider")
async def remove_identity_provider(request: web.Request) -> web.Response:
    """No one of the organisation signs in with its provider any more (audited)."""
    org = await request.app[SERVICES].administration.set_identity_provider(
        principal_of(request), request.match_info["code"], None
    )
    return web.json_response(org.public_view())


@routes.post("/v1/directory/{code}/keys")
async def register_system_key(request: web.Request) -> web.Response:
    """Register a public key for the organisation's systems (audited)."""
    services = request.app[SERVICES]
    code = request.match_info["code"]
    org = await services.administration.add_system_key(
        principal_of(request), code, await read_json(request)
    )
    return web.json_response(
        {"code": code, "keys": [str(k.get("kid")) for k in org.jwks]}, status=201
    )


@routes.get("/v1/directory/{code}/keys")
async def system_keys(request: web.Request) -> web.Response:
    """The public keys of the organisation's systems (a JWKS, RFC 7517 section 5): what a
    recipient checks the organisation's signed messages with (``dipgw verify-message``).
    Any authenticated caller; keep a copy, since a key checked against a copy fetched
    earlier does not rest on the gateway's word today."""
    principal_of(request)
    code = request.match_info["code"]
    org = request.app[SERVICES].directory.get(code)
    if org is None:
        raise NotFound(f"There is no organisation {code}.")
    return web.json_response({"keys": [dict(jwk) for jwk in org.jwks]})


@routes.put("/v1/directory/{code}/signing")
async def require_signed_messages(request: web.Request) -> web.Response:
    """``{"signed_messages_required": true}``: refuse the organisation's unsigned
    messages from now on (its administrator, or the operator; audited)."""
    org = await request.app[SERVICES].administration.require_signed_messages(
        principal_of(request), request.match_info["code"], await read_json(request)
    )
    return web.json_response(
        {"code": org.code, "signed_messages_required": org.signed_messages_required})


@routes.delete("/v1/directory/{code}/keys/{kid}")
async def remove_system_key(request: web.Request) -> web.Response:
    """Remove a key of the organisation's systems: tokens it signs are refused at once."""
    code = request.match_info["code"]
    org = await request.app[SERVICES].administration.remove_system_key(
        principal_of(request), code, request.match_info["kid"]
    )
    return web.json_response({"code": code, "keys": [str(k.get("kid")) for k in org.jwks]})


@routes.get("/v1/delivery/keys")
async def delivery_keys(request: web.Request) -> web.Response:
    """The gateway's public key(s) that webhook pushes are signed with (a JWKS)."""
    return web.json_response({"keys": [request.app[SERVICES].delivery_key_public]})


@routes.get("/v1/schemas")
async def list_schemas(request: web.Request) -> web.Response:
    documents = request.app[SERVICES].schemas.documents
    return web.json_response(
        {
            "envelope": documents[ENVELOPE_SCHEMA]["$id"],
            "types": {
                name: {"$id": doc["$id"], "href": f"/v1/schemas/{name}"}
                for name, doc in sorted(documents.items())
                if name != ENVELOPE_SCHEMA
            },
        }
    )


@routes.get("/v1/schemas/{type}")
async def get_schema(request: web.Request) -> web.Response:
    name = request.match_info["type"]
    document = request.app[SERVICES].schemas.documents.get(name)
    if document is None:
        raise NotFound(f"There is no schema named {name!r}.")
    return web.json_response(document, content_type="application/schema+json")
