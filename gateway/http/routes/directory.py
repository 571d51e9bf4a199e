"""``/v1/directory`` and ``/v1/schemas``: reference data any authenticated caller may read."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import NotFound
from gateway.http.services import SERVICES
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
