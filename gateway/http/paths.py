"""Which requests belong to the web console (no bearer token; a session cookie instead)."""

from __future__ import annotations

CONSOLE_PREFIX = "/console"
# govuk-frontend's stylesheet asks for its fonts and images under /assets (its default
# assetPath), so they are served there as they are built.
ASSETS_PREFIX = "/assets"


def is_console_path(path: str) -> bool:
    """The console's pages and assets, and ``/``, which sends a browser to the console.
    Everything else (``/v1/...``) stays the API's, authenticated by bearer token."""
    return (
        path in ("/", CONSOLE_PREFIX, ASSETS_PREFIX)
        or path.startswith((CONSOLE_PREFIX + "/", ASSETS_PREFIX + "/"))
    )
