"""A real OpenID Provider for the sign-in tests (panva's oidc-provider, started with node from
tests/console/oidc_provider.mjs), and a person signing in there without a browser."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin

import aiohttp

from tests.conftest import ROOT
from tests.console.harness import _missing
from tests.processes import free_port

SCRIPT = ROOT / "tests" / "console" / "oidc_provider.mjs"
PACKAGE = ROOT / "node_modules" / "oidc-provider" / "package.json"
CALLBACK = "/console/sign-in/callback"


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str = "dipgw-console"


def require_provider() -> str:
    """node's path, or skip (fail under DIPGW_REQUIRE_SERVICES=1) when node or the npm
    package is missing."""
    node = shutil.which("node")
    if node is None:
        _missing("node is not installed; the OpenID Provider of the sign-in tests needs it")
    if not PACKAGE.is_file():
        _missing("oidc-provider is not installed (node_modules); run `make assets` (npm ci)")
    return node


@contextmanager
def provider_process(redirect_uri: str, client_secret: str | None = None) -> Iterator[Provider]:
    """An OpenID Provider on a free port with one client for ``redirect_uri``, killed after."""
    node = require_provider()
    port = free_port()
    command = [node, str(SCRIPT), "--port", str(port), "--redirect-uri", redirect_uri]
    if client_secret:
        command += ["--client-secret", client_secret]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 20
        line = b""
        while time.monotonic() < deadline and not line.startswith(b"ready"):
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                raise AssertionError("the OpenID Provider did not start")
        assert line.startswith(b"ready"), "the OpenID Provider did not say it was ready"
        yield Provider(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


async def log_in_at_provider(authorization_url: str, return_to: str, login: str,
                             amr: str = "pwd,otp") -> str:
    """Follow the authentication request at the provider, post its sign-in form as
    ``login`` (with these RFC 8176 methods), and return the URL the provider sends the
    browser back to (on ``return_to``), without following it."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        url, form = authorization_url, None
        for _ in range(10):
            if form is None:
                response = await session.get(url, allow_redirects=False)
            else:
                response = await session.post(url, data=form, allow_redirects=False)
                form = None
            async with response:
                if response.status in (302, 303):
                    url = urljoin(url, response.headers["Location"])
                    if url.startswith(return_to):
                        return url
                    continue
                assert response.status == 200, await response.text()
                assert "/interaction/" in url
                form = {"login": login, "amr": amr}
        raise AssertionError("the provider never sent the browser back")
