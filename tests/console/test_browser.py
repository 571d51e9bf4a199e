"""The console in a real browser (issue 12): Debian's Chromium, driven through Playwright,
against a real gateway process on its embedded defaults. A SPOC signs in through the demo
sign-in page, finds an RA1 that Suffolk police sent through the API, opens it, acknowledges
it and signs out; a person without the SPOC grant gets the 403 page. axe-core checks every
page against WCAG 2.2 AA, and the same journey is done again with JavaScript disabled.

Chromium is Debian's (``make test`` installs it with apt where it is missing): Playwright is
pointed at it with ``executable_path`` and never downloads a browser. Without Chromium,
axe-core (``make assets``) or the built GOV.UK assets these tests skip, or fail under
``DIPGW_REQUIRE_SERVICES=1`` (CI).

Screenshots of every page the journey visits (PNG, 1280 wide, full page) go to a temporary
folder, or to ``docs/screenshots/`` with ``DIPGW_SCREENSHOTS=1`` (``make screenshots``), so
that an ordinary test run does not rewrite the committed pictures.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

from playwright.async_api import Browser

from gateway.client import GatewayClient
from gateway.config import Settings
from tests.conftest import EXAMPLES, ROOT, credentials, load
from tests.console.harness import (
    DOCS_SCREENSHOTS,
    WIDTH,
    Gateway,
    Journey,
    new_context,
    png_width,
    sign_in_as,
)

RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
SENDER = "POL-SFK-IPS"
RECIPIENT = "CJIT-NFK"
SPOC = "cjit-nfk.spoc"
SPOC_NAME = "Jack Turner"
NOT_A_SPOC = "cjit-nfk.ig-lead"
NOT_A_SPOC_NAME = "Kiran Shah"


async def send_ra1(gateway: Gateway) -> str:
    """An RA1 sent through the API by Suffolk police, as an agency system would; its id
    once it waits in Norfolk CJIT's inbox."""
    document = {**RA1, "message_id": str(uuid.uuid4())}
    settings = Settings(data_dir=gateway.data_dir)
    async with GatewayClient(gateway.url, credentials(settings, SENDER)) as police:
        answer = await police.send(document)
        assert answer.status == 202, answer
    async with GatewayClient(gateway.url, credentials(settings, RECIPIENT)) as cjit:
        for _ in range(200):
            if any(m["message_id"] == document["message_id"] for m in await cjit.inbox(500)):
                return str(document["message_id"])
            await asyncio.sleep(0.05)
    raise AssertionError("the RA1 never reached Norfolk CJIT's inbox")


async def message_status(gateway: Gateway, message_id: str) -> str:
    settings = Settings(data_dir=gateway.data_dir)
    async with GatewayClient(gateway.url, credentials(settings, SENDER)) as police:
        return str((await police.status(message_id))["status"])


# --- the journeys --------------------------------------------------------------------------


async def spoc_journey(journey: Journey, gateway: Gateway, message_id: str) -> None:
    page = journey.page
    await page.goto(gateway.url + "/")
    assert page.url == gateway.url + "/console/sign-in"
    assert await page.title() == "Sign in \N{EN DASH} DIP gateway"
    await journey.check("sign-in")

    await sign_in_as(page, gateway.url, SPOC_NAME, open_sign_in=False)
    assert page.url == gateway.url + "/console/"
    assert await page.get_by_text("Single point of contact (SPOC)").count() == 1
    await journey.check("home")

    await page.get_by_role("navigation", name="Menu").get_by_role("link", name="Inbox").click()
    assert page.url == gateway.url + "/console/inbox"
    link = page.locator(f'a[href="/console/messages/{message_id}"]')
    row = page.get_by_role("row").filter(has=link)
    assert await row.count() == 1
    assert "Suffolk Constabulary" in await row.inner_text()
    await journey.check("inbox")

    await link.click()
    assert page.url == gateway.url + f"/console/messages/{message_id}"
    await page.get_by_role("heading", level=2, name="Why you received it").wait_for()
    assert await page.get_by_text("Legal basis").count() == 1
    await journey.check("message")

    await page.get_by_role("button", name="Acknowledge", exact=True).click()
    assert page.url == gateway.url + f"/console/inbox?acknowledged={message_id}"
    banner = page.locator(".govuk-notification-banner--success")
    # The message in words, never its id.
    words = await banner.inner_text()
    assert "Required Assessment notice from Suffolk Constabulary" in words, words
    assert "acknowledged" in words and message_id not in words
    assert await page.locator(f'a[href="/console/messages/{message_id}"]').count() == 0
    assert await message_status(gateway, message_id) == "acknowledged"
    await journey.check("acknowledged")

    await page.get_by_role("button", name="Sign out", exact=True).click()
    assert page.url == gateway.url + "/console/signed-out"
    await page.get_by_role("heading", level=1, name="You have signed out").wait_for()
    await journey.check("signed-out")
    # The session is gone: the inbox sends the browser back to sign in.
    await page.goto(gateway.url + "/console/inbox")
    assert page.url == gateway.url + "/console/sign-in"


async def forbidden_journey(journey: Journey, gateway: Gateway, message_id: str) -> None:
    page = journey.page
    await sign_in_as(page, gateway.url, NOT_A_SPOC_NAME)
    assert await page.get_by_role("link", name="Inbox").count() == 0
    for path in ("/console/inbox", f"/console/messages/{message_id}"):
        response = await page.goto(gateway.url + path)
        assert response is not None and response.status == 403
        await page.get_by_role(
            "heading", level=1, name="You do not have permission to see this page").wait_for()
        assert message_id not in await page.content()
    await journey.check("forbidden")


async def test_a_spoc_acknowledges_an_ra1_in_the_browser_with_0_accessibility_violations(
    browser: Browser, gateway: Gateway, screenshots: Path,
) -> None:
    message_id = await send_ra1(gateway)
    context = await new_context(browser, javascript=True)
    journey = await Journey.open(context, screenshots, javascript=True)
    await spoc_journey(journey, gateway, message_id)
    assert journey.visited == ["sign-in", "home", "inbox", "message", "acknowledged",
                               "signed-out"]
    await context.close()


async def test_without_the_spoc_grant_the_inbox_is_an_accessible_403_page(
    browser: Browser, gateway: Gateway, screenshots: Path,
) -> None:
    message_id = await send_ra1(gateway)
    context = await new_context(browser, javascript=True)
    journey = await Journey.open(context, screenshots, javascript=True)
    await forbidden_journey(journey, gateway, message_id)
    await context.close()
    # Still waiting for the SPOC: the 403 pages changed nothing.
    assert await message_status(gateway, message_id) == "delivered"


async def test_the_same_journey_works_without_javascript(
    browser: Browser, gateway: Gateway, tmp_path: Path,
) -> None:
    message_id = await send_ra1(gateway)
    context = await new_context(browser, javascript=False)
    journey = await Journey.open(context, tmp_path, javascript=False, suffix="-no-js")
    await spoc_journey(journey, gateway, message_id)
    await context.close()
    shots = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(shots) == 6, shots



SCREENSHOTS = ("sign-in", "home", "inbox", "message", "acknowledged", "signed-out", "forbidden")


def test_the_readme_shows_a_committed_screenshot_of_every_page_visited() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in SCREENSHOTS:
        path = DOCS_SCREENSHOTS / f"{name}.png"
        assert f"(docs/screenshots/{name}.png)" in readme, name
        assert path.is_file() and png_width(path) == WIDTH, path


def test_every_committed_screenshot_is_in_the_readme_and_every_one_shown_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    committed = {path.name for path in DOCS_SCREENSHOTS.glob("*.png")}
    shown = set(re.findall(r"\(docs/screenshots/([\w-]+\.png)\)", readme))
    assert committed - shown == set(), "committed but not in the README"
    assert shown - committed == set(), "in the README but not committed"
