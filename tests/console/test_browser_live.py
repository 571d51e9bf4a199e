"""A SPOC's inbox live, filtered, and the sent messages, in a real browser (issue 12).

Jack Turner (Norfolk CJIT's SPOC) has the inbox open in Debian's Chromium when Suffolk
police's custody system sends an RA1 through the API: it appears in the table without a
reload and is read out (aria-live), and he acknowledges it — an alert acted on within 24
hours is what the handbook asks of a SPOC (H 4.1.3). He filters the inbox to what was
acknowledged, then follows a referral his own CJIT sent to the prison's CARAT team from
the sent list to its status timeline. axe-core checks each page against WCAG 2.2 AA
(``Journey.check``, tests/console/harness.py), with a screenshot of each.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from playwright.async_api import Browser

from gateway.client import GatewayClient
from gateway.config import Settings
from tests.conftest import EXAMPLES, credentials, load
from tests.console.harness import Gateway, Journey, new_context, sign_in_as

RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
REFERRAL = load(EXAMPLES / "carat_referral" / "valid-remand-hmp-norwich-methadone.json")
SPOC = "cjit-nfk.spoc"
SPOC_NAME = "Jack Turner"


async def send(gateway: Gateway, document: dict[str, Any]) -> str:
    """A message sent through the API by the system of the organisation in its ``from``."""
    document = {**document, "message_id": str(uuid.uuid4())}
    settings = Settings(data_dir=gateway.data_dir)
    async with GatewayClient(gateway.url, credentials(settings, document["from"])) as system:
        answer = await system.send(document)
        assert answer.status == 202, answer
    return str(document["message_id"])


async def waiting_in(gateway: Gateway, org: str, message_id: str) -> None:
    settings = Settings(data_dir=gateway.data_dir)
    async with GatewayClient(gateway.url, credentials(settings, org)) as system:
        for _ in range(200):
            if any(m["message_id"] == message_id for m in await system.inbox(500)):
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{message_id} never reached {org}'s inbox")


async def acknowledged_by_its_system(gateway: Gateway, org: str, message_id: str) -> None:
    await waiting_in(gateway, org, message_id)
    settings = Settings(data_dir=gateway.data_dir)
    async with GatewayClient(gateway.url, credentials(settings, org)) as system:
        await system.acknowledge(message_id)


async def test_an_ra1_arrives_live_and_the_spoc_acknowledges_filters_and_follows_sent(
    browser: Browser, gateway: Gateway, screenshots: Path,
) -> None:
    context = await new_context(browser, javascript=True)
    journey = await Journey.open(context, screenshots, javascript=True)
    page = journey.page
    await sign_in_as(page, gateway.url, SPOC_NAME)

    # The inbox is open, and the stream connected, before the RA1 is sent.
    async with page.expect_response(lambda r: "/console/inbox/stream" in r.url) as streaming:
        await page.get_by_role("navigation", name="Menu").get_by_role(
            "link", name="Inbox").click()
    assert (await streaming.value).status == 200
    assert page.url == gateway.url + "/console/inbox"
    message_id = await send(gateway, RA1)
    row = page.locator(f"#message-{message_id}")
    await row.wait_for(timeout=15_000)  # no reload: the page is the same page
    assert page.url == gateway.url + "/console/inbox"
    assert "Suffolk Constabulary" in await row.inner_text()
    assert "Waiting" in await row.inner_text()
    announced = page.locator("#inbox-live-status")
    assert await announced.get_attribute("aria-live") == "polite"
    assert (await announced.inner_text()).startswith(
        "New message: RA1 \N{EN DASH} Required Assessment notice from Suffolk Constabulary")
    await journey.check("inbox-live")

    await row.get_by_role("link").click()
    assert page.url == gateway.url + f"/console/messages/{message_id}"
    await page.get_by_role("button", name="Acknowledge", exact=True).click()
    banner = page.locator(".govuk-notification-banner--success")
    words = await banner.inner_text()
    assert "Required Assessment notice from Suffolk Constabulary" in words
    assert "acknowledged" in words and message_id not in words
    assert await page.locator(f"#message-{message_id}").count() == 0

    # Filter to what was acknowledged: a GET form, folded away until asked for.
    await page.get_by_text("Filter messages", exact=True).click()
    await page.get_by_role("group", name="Status").get_by_label(
        "Acknowledged", exact=True).check()
    await page.get_by_label("Message type").select_option("ra1_notice")
    await page.get_by_role("button", name="Apply filters").click()
    assert "status=acknowledged" in page.url and "type=ra1_notice" in page.url
    filtered = page.locator(f"#message-{message_id}")
    assert "Acknowledged" in await filtered.inner_text()
    assert await page.get_by_role("link", name="Clear filters").count() == 1
    await journey.check("inbox-filtered")

    # What Norfolk CJIT sent: a referral to HMP Norwich's CARAT team, acknowledged there.
    referral = await send(gateway, REFERRAL)
    await acknowledged_by_its_system(gateway, REFERRAL["to"][0], referral)
    menu = page.get_by_role("navigation", name="Menu")
    await menu.get_by_role("link", name="Sent", exact=True).click()
    assert page.url == gateway.url + "/console/sent"
    sent_row = page.locator(f"#sent-{referral}")
    assert "Acknowledged" in await sent_row.inner_text()
    await journey.check("sent")

    await sent_row.get_by_role("link").click()
    assert page.url == gateway.url + f"/console/sent/{referral}"
    timeline = page.locator("#timeline")
    text = await timeline.inner_text()
    assert "Sent, and accepted by the gateway" in text
    assert "Delivered to" in text and "Acknowledged by" in text
    assert "(its own system)" in text
    await journey.check("sent-timeline")
    assert journey.visited == ["inbox-live", "inbox-filtered", "sent", "sent-timeline"]
    await context.close()


async def test_without_javascript_the_inbox_still_shows_an_arrival_on_reload(
    browser: Browser, gateway: Gateway, tmp_path: Path,
) -> None:
    context = await new_context(browser, javascript=False)
    journey = await Journey.open(context, tmp_path, javascript=False, suffix="-no-js")
    page = journey.page
    await sign_in_as(page, gateway.url, SPOC_NAME)
    await page.goto(gateway.url + "/console/inbox")
    message_id = await send(gateway, RA1)
    await waiting_in(gateway, "CJIT-NFK", message_id)
    await page.reload()  # without JavaScript, a reload is how a new message appears
    assert await page.locator(f"#message-{message_id}").count() == 1
    await page.get_by_text("Filter messages", exact=True).click()
    await page.get_by_role("group", name="Status").get_by_label("Any status").check()
    await page.get_by_role("button", name="Apply filters").click()
    assert "status=any" in page.url
    assert await page.locator(f"#message-{message_id}").count() == 1
    await journey.check("inbox-filtered")
    await context.close()


async def test_an_open_inbox_says_when_live_arrival_has_stopped(
    browser: Browser, gateway: Gateway, tmp_path: Path,
) -> None:
    """Signed out elsewhere (or timed out), the open inbox no longer looks live: the
    stream ends with the session and the page says to reload."""
    context = await new_context(browser, javascript=True)
    journey = await Journey.open(context, tmp_path, javascript=True, suffix="-stopped")
    page = journey.page
    await sign_in_as(page, gateway.url, SPOC_NAME)
    async with page.expect_response(lambda r: "/console/inbox/stream" in r.url):
        await page.goto(gateway.url + "/console/inbox")
    stopped = page.locator("#inbox-live-stopped")
    assert await stopped.is_hidden()

    elsewhere = await context.new_page()
    await elsewhere.goto(gateway.url + "/console/")
    await elsewhere.get_by_role("button", name="Sign out", exact=True).click()
    await send(gateway, RA1)  # wakes the stream, which finds the session gone
    await stopped.wait_for(state="visible", timeout=15_000)
    assert "Reload the inbox" in await stopped.inner_text()
    await context.close()
