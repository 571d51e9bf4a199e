"""``/v1/directory`` and ``/v1/schemas``: reference data any authenticated caller may read."""

from __future__ import annotations

from aiohttp import web

from gateway import access
from gateway.audit import AuditAction, AuditEvent
from gateway.directory_import import cjit_of_residence, parse_spoc_csv, plan
from gateway.errors import MalformedRequest, NotFound
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
