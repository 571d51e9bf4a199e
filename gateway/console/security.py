"""Headers every console response carries, and the CSRF checks on its forms."""

from __future__ import annotations

from aiohttp import web

from gateway.console.sessions import same_token

# default-src 'self' and no inline script or style: govuk-frontend's CSS and JS are files
# served from here, and the class the GOV.UK template sets inline is set by console.js.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def secure(response: web.StreamResponse, *, production: bool, cache: bool = False) -> None:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if production:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if not cache:
        # Pages show personal data: never kept by the browser or a proxy.
        response.headers.setdefault("Cache-Control", "no-store")


class CsrfRefused(Exception):
    """A form arrived without the token its page was given: nothing is done."""


async def form_with_token(request: web.Request, expected: str) -> dict[str, str]:
    """The form's fields, once its ``csrf_token`` matches ``expected`` (constant time)."""
    form = await request.post()
    if not same_token(expected, form.get("csrf_token")):
        raise CsrfRefused
    return {k: v for k, v in form.items() if isinstance(v, str)}
