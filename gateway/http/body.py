"""Reading a JSON request body safely: media type, size and nesting are checked first."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.errors import PayloadTooLarge, UnsupportedMediaType
from gateway.http.services import SERVICES
from gateway.validation import parse_document


async def read_json(request: web.Request) -> Any:
    settings = request.app[SERVICES].settings
    media_type = request.content_type
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"Send the message as application/json, not {media_type or 'no content type'}."
        )
    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        raise PayloadTooLarge(f"The body may be at most {settings.max_body_bytes} bytes.")
    raw = await request.read()
    return parse_document(raw, max_depth=settings.max_json_depth)
