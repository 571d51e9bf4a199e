"""Signing in to the console through a real OpenID Provider, in a real browser (issue 12).

A gateway process whose demo directory registers the test provider (panva's oidc-provider,
tests/console/oidc_provider.mjs; a public client, PKCE only) for every demo organisation
(``DIPGW_DEMO_OIDC_ISSUER``): in Chromium, Jack Turner chooses Norfolk CJIT, signs in at
the provider's own page, lands on the console's home page with his grants, and signs out of
every device; someone the directory does not know gets the "not registered" page. Each
console page is checked by ``Journey.check`` (axe-core WCAG 2.2 AA, no failed loads or
script errors, console.js run under the CSP, GOV.UK fonts) and photographed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from gateway.config import Settings
from tests.backends import database_for_module, query
from tests.conftest import ROOT
from tests.console.harness import DOCS_SCREENSHOTS, WIDTH, Gateway, Journey, new_context, png_width
from tests.console.oidc_support import CALLBACK, provider_process
from tests.processes import free_port, gateway_process, wait_ready_blocking

SPOC = "cjit-nfk.spoc"
SPOC_NAME = "Jack Turner"
SCREENSHOTS = ("sign-in-oidc", "signed-in-oidc", "sign-out-everywhere", "signed-out-everywhere",
               "sign-in-not-registered")


@pytest.fixture(scope="module")
def oidc_gateway(prerequisites: None, tmp_path_factory: pytest.TempPathFactory,
                 ) -> Iterator[Gateway]:
    """A gateway process, and the OpenID Provider its demo organisations registered."""
    data_dir = tmp_path_factory.mktemp("gateway")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (database_for_module() as database_url, provider_process(url + CALLBACK) as provider,
          pytest.MonkeyPatch.context() as env):
        env.setenv("DIPGW_DEMO_OIDC_ISSUER", provider.issuer)
        env.setenv("DIPGW_PUBLIC_URL", url)
        with gateway_process(data_dir, port, database_url):
            env.undo()
            wait_ready_blocking(url)
            yield Gateway(url, data_dir, database_url)


def sessions(gateway: Gateway) -> list[str]:
    settings = Settings(data_dir=gateway.data_dir, database_url=gateway.database_url)
    return [str(r[0]) for r in query(settings, "SELECT person_id FROM console_sessions")]


async def sign_in_at_provider(journey: Journey, gateway: Gateway, login: str,
                              *, check: bool) -> None:
    page = journey.page
    await page.goto(gateway.url + "/console/sign-in")
    assert await page.title() == "Sign in \N{EN DASH} DIP gateway"
    if check:
        await journey.check("sign-in-oidc")
    await page.get_by_label("Norfolk CJIT", exact=True).check()
    await page.get_by_role("button", name="Continue").click()
    await page.wait_for_url("**/interaction/**")
    assert await page.title() == "Test identity provider"
    await page.get_by_label("Login").fill(login)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state("load")


async def test_a_spoc_signs_in_through_the_organisations_provider_and_signs_out_everywhere(
    browser: Browser, oidc_gateway: Gateway, screenshots: Path,
) -> None:
    context = await new_context(browser, javascript=True)
    journey = await Journey.open(context, screenshots, javascript=True)
    page = journey.page
    await sign_in_at_provider(journey, oidc_gateway, SPOC, check=True)
    assert page.url == oidc_gateway.url + "/console/"
    assert SPOC_NAME in await page.content()
    await journey.check("signed-in-oidc")
    assert sessions(oidc_gateway) == [SPOC]
    # Exactly his grants: the inbox is in his menu.
    assert await page.get_by_role("link", name="Inbox").count() >= 1

    await page.goto(oidc_gateway.url + "/console/sign-out-everywhere")
    await journey.check("sign-out-everywhere")
    await page.get_by_role("button", name="Sign out of every device").click()
    await page.wait_for_url("**/console/signed-out?everywhere=1")
    assert "You have signed out of every device" in await page.content()
    await journey.check("signed-out-everywhere")
    assert sessions(oidc_gateway) == []
    await context.close()


async def test_someone_the_directory_does_not_know_is_told_they_are_not_registered(
    browser: Browser, oidc_gateway: Gateway, screenshots: Path,
) -> None:
    context = await new_context(browser, javascript=True)
    journey = await Journey.open(context, screenshots, javascript=True)
    await sign_in_at_provider(journey, oidc_gateway, "someone.unknown", check=False)
    page = journey.page
    assert page.url.startswith(oidc_gateway.url + CALLBACK)
    text = await page.content()
    assert "You are not registered to use this service" in text
    assert "someone.unknown" not in text
    await journey.check("sign-in-not-registered")
    assert sessions(oidc_gateway) == []
    await context.close()


def test_the_readme_shows_the_sign_in_screenshots() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in SCREENSHOTS:
        path = DOCS_SCREENSHOTS / f"{name}.png"
        assert f"(docs/screenshots/{name}.png)" in readme, name
        assert path.is_file() and png_width(path) == WIDTH, path
