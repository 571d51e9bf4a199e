"""Turning errors into RFC 9457 problem documents: the only place statuses are chosen."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiohttp import web

from gateway.domain import errors
from gateway.http.services import SERVICES

log = structlog.get_logger(__name__)

PROBLEM_TYPE_BASE = "urn:dipgw:problem:"
PROBLEM_CONTENT_TYPE = "application/problem+json"

STATUS_BY_ERROR: tuple[tuple[type[errors.GatewayError], int], ...] = (
    (errors.MalformedRequest, 400),
    (errors.AuthenticationFailed, 401),
    (errors.AccessDenied, 403),
    (errors.PolicyRefused, 403),
    (errors.NotFound, 404),
    (errors.RequestTimeout, 408),
    (errors.IdempotencyConflict, 409),
    (errors.Conflict, 409),
    (errors.PayloadTooLarge, 413),
    (errors.UnsupportedMediaType, 415),
    (errors.InvalidMessage, 422),
    (errors.RateLimited, 429),
    (errors.ServiceUnavailable, 503),
    (errors.Overloaded, 503),
)


def status_for(error: errors.GatewayError) -> int:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 500


def problem_body(
    status: int,
    *,
    slug: str,
    title: str,
    detail: str,
    instance: str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An RFC 9457 problem document; an extension never replaces a standard member."""
    body: dict[str, Any] = {
        **(extensions or {}),
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    return body


def error_problem(error: errors.GatewayError, instance: str) -> tuple[int, dict[str, Any]]:
    """The status and problem document a gateway error is answered with."""
    status = status_for(error)
    return status, problem_body(
        status,
        slug=error.slug,
        title=error.title,
        detail=error.detail,
        instance=instance,
        extensions=error.extensions(),
    )


def internal_problem(instance: str) -> dict[str, Any]:
    """The answer to an unexpected failure, which has been logged."""
    return problem_body(
        500,
        slug="internal",
        title="Internal error",
        detail=(
            "The gateway failed unexpectedly and has logged it. Retrying with the same "
            "message_id is safe: a message is never stored or delivered twice."
        ),
        instance=instance,
    )


def problem_response(
    status: int,
    *,
    slug: str,
    title: str,
    detail: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return _problem_response(
        status,
        problem_body(status, slug=slug, title=title, detail=detail, instance=instance),
        headers,
    )


def _problem_response(
    status: int, body: Mapping[str, Any], headers: dict[str, str] | None
) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refuse_nul_in_address(request: web.Request) -> None:
    """A NUL character (``%00``) in the path or the query names nothing the gateway holds,
    and PostgreSQL cannot even compare a text with one (psycopg refuses to send it), so
    the request is refused as malformed before any handler looks it up."""
    if "\x00" in request.path or any(
        "\x00" in name or "\x00" in value for name, value in request.query.items()
    ):
        raise errors.MalformedRequest("The address contains a NUL character (%00).")


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        _refuse_nul_in_address(request)
        return await handler(request)
    except errors.GatewayError as error:
        status, body = error_problem(error, request.path)
        headers = None
        if status == 401:
            headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        if isinstance(error, errors.TryLater):
            headers = {"Retry-After": str(error.retry_after_s)}  # RFC 9110 section 10.2.3
        response = _problem_response(status, body, headers)
        if isinstance(error, errors.RequestTimeout):
            # The rest of the body may still be on its way: do not read it as a request.
            response.force_close()
        return response
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SERVICES].settings.max_body_bytes
        return problem_response(
            413,
            slug=errors.PayloadTooLarge.slug,
            title=errors.PayloadTooLarge.title,
            detail=f"The body may be at most {limit} bytes.",
            instance=request.path,
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(
            exc.status,
            slug=f"http-{exc.status}",
            title=exc.reason,
            detail=_http_detail(exc, request),
            instance=request.path,
            headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"},
        )
    except Exception:
        log.exception("unhandled_error", path=request.path, method=request.method)
        return _problem_response(500, internal_problem(request.path), None)


def _http_detail(exc: web.HTTPException, request: web.Request) -> str:
    if exc.status == 404:
        return f"There is no resource at {request.path}."
    if exc.status == 405:
        return f"{request.method} is not allowed on {request.path}."
    return exc.text or exc.reason
