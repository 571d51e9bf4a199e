"""``/v1/directory`` and ``/v1/schemas``: reference data any authenticated caller may read."""

from __future__ import annotations

from aiohttp import web

from gateway import access
from gateway.audit import AuditAction, AuditEvent
from gateway.channels.choice import parse_channel
from gateway.directory_import import cjit_of_residence, parse_spoc_csv, plan
from gateway.errors import AccessDenied, MalformedRequest, NotFound
from gateway.http.body import read_json
from gateway.http.context import principal_of
from gateway.http.services import SERVICES
from gateway.model import Role
from gateway.validation import ENVELOPE_SCHEMA

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
    """Preview, or apply, the CJIT SPOC list as CSV ({"csv": …, "apply": false})."""
    principal = principal_of(request)
    access.require_role(principal, frozenset({Role.IG_LEAD}))
    services = request.app[SERVICES]
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("csv"), str):
        raise MalformedRequest("Send {'csv': '<the file>', 'apply': false|true}.")
    changes = plan(services.directory.all(), parse_spoc_csv(body["csv"]))
    applied = body.get("apply") is True
    if applied and changes.to_apply():
        await services.directory.save(changes.to_apply(), services.clock())
        await services.audit.record(AuditEvent(
            action=AuditAction.DIRECTORY_UPDATED, at=services.clock(),
            actor=f"{principal.org.code}/{principal.subject}",
            details={"added": [o.code for o in changes.added],
                     "changed": [o.code for o, _ in changes.changed]},
        ))
    return web.json_response({"applied": applied, **changes.as_dict()})


@routes.get("/v1/directory/{code}/delivery")
async def get_delivery_channel(request: web.Request) -> web.Response:
    """An organisation's delivery channel in full: for its IG lead and its own systems."""
    principal = principal_of(request)
    code = request.match_info["code"]
    if principal.role is not Role.IG_LEAD and principal.org.code != code:
        raise AccessDenied("Only an IG lead or the organisation itself may see its channel.")
    org = request.app[SERVICES].directory.get(code)
    if org is None:
        raise NotFound(f"There is no organisation {code}.")
    return web.json_response({"code": code, **org.delivery.as_dict()})


@routes.put("/v1/directory/{code}/delivery")
async def set_delivery_channel(request: web.Request) -> web.Response:
    """Choose how messages reach an organisation: pull, amqp, webhook or mesh (audited)."""
    principal = principal_of(request)
    access.require_role(principal, frozenset({Role.IG_LEAD}))
    services = request.app[SERVICES]
    code = request.match_info["code"]
    if services.directory.get(code) is None:
        raise NotFound(f"There is no organisation {code}.")
    channel = parse_channel(
        await read_json(request), production=services.settings.is_production
    )
    org = await services.directory.set_channel(
        code, channel, f"{principal.org.code}/{principal.subject}", services.clock(),
        services.audit,
    )
    await services.transport.follow_directory()
    return web.json_response({"code": code, **org.delivery.as_dict()})


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
