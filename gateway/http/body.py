"""Reading a JSON request body safely: media type, size and nesting are checked first.

The whole body must arrive within ``body_timeout_s`` of the handler asking for it: a
client that promises a Content-Length and sends it a byte at a time is answered 408
(RFC 9110 section 15.5.9) and its connection is closed, instead of holding it forever.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web

from gateway.domain.errors import (
    MalformedRequest,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from gateway.http.services import SERVICES
from gateway.pipeline.validation import parse_document
from gateway.sdjwt.envelope import MEDIA_TYPE as SD_JWT_MEDIA_TYPE
from gateway.sdjwt.envelope import SignedEnvelope


async def _read_body(request: web.Request) -> bytes:
    settings = request.app[SERVICES].settings
    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        raise PayloadTooLarge(f"The body may be at most {settings.max_body_bytes} bytes.")
    try:
        async with asyncio.timeout(settings.body_timeout_s):
            return await request.read()
    except TimeoutError:
        raise RequestTimeout(
            f"The body did not arrive within {settings.body_timeout_s:g} seconds."
        ) from None


async def read_json(request: web.Request) -> Any:
    media_type = request.content_type
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"Send the message as application/json, not {media_type or 'no content type'}."
        )
    raw = await _read_body(request)
    return parse_document(raw, max_depth=request.app[SERVICES].settings.max_json_depth)


async def read_message(request: web.Request) -> Any:
    """A submitted message: the envelope as JSON, or the sender's SD-JWT of it
    (``application/sd-jwt``, RFC 9901 §11.2) as a :class:`SignedEnvelope`."""
    if request.content_type != SD_JWT_MEDIA_TYPE:
        return await read_json(request)
    raw = await _read_body(request)
    try:
        return SignedEnvelope(raw.decode("ascii").strip())
    except UnicodeDecodeError:
        raise MalformedRequest("An SD-JWT is ASCII text (RFC 9901 section 4).") from None


MAX_INTEGER = 2**63 - 1  # SQLite's INTEGER range
_DIGITS = re.compile(r"[0-9]{1,19}")


def whole_number(raw: str, *, minimum: int = 0, maximum: int = MAX_INTEGER) -> int | None:
    """ASCII digits within a range, or None: never ``int()`` on '²' or 5,000 digits."""
    if not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if minimum <= value <= maximum else None


def query_int(
    request: web.Request,
    name: str,
    *,
    default: int | None = None,
    minimum: int = 0,
    maximum: int = MAX_INTEGER,
) -> int:
    """A whole-number query parameter; required when it has no default."""
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise MalformedRequest(f"'{name}' is required.")
        return default
    value = whole_number(raw, minimum=minimum, maximum=maximum)
    if value is None:
        raise MalformedRequest(f"'{name}' must be a whole number from {minimum} to {maximum}.")
    return value
