"""Composing and sending in a real browser (issue 12): Jack Turner, Norfolk CJIT's SPOC
(a CJIT may send a DIR transfer to a CJIT, ``access.SENDING_RULES``), chooses "DIR transfer
to the CJIT of residence", answers the form generated from its schema with mistakes, follows
the error summary's links to the fields (the link focuses the field), fixes them, sees the
check page with the sharing decision, and sends it; Suffolk CJIT then has it in its inbox.
axe-core checks every page against WCAG 2.2 AA (``tests/console/harness.py``), and the same
journey is done again with JavaScript disabled.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page

from gateway.client import GatewayClient
from gateway.config import Settings
from gateway.pipeline.validation import SchemaSet
from tests.conftest import ROOT, credentials
from tests.console.harness import Gateway, Journey, new_context, sign_in_as
from tests.console.test_compose import answers, norfolk_dir

SPOC_NAME = "Jack Turner"
RECEIVING = "CJIT-SFK"
DIR_TITLE = "DIR transfer to the CJIT of residence"
DOCUMENTS = SchemaSet.load(ROOT / "schemas").documents


async def answer(page: Page, values: dict[str, list[str]]) -> None:
    """Answer the form as a person would: type into inputs, tick, choose from lists."""
    for name, items in values.items():
        if name.endswith("-rows"):
            continue
        first = page.locator(f'[name="{name}"]').first
        tag = await first.evaluate("e => e.tagName")
        kind = await first.get_attribute("type")
        if tag == "SELECT":
            await first.select_option(items[0])
        elif kind in ("radio", "checkbox"):
            for value in items:
                await page.locator(f'[name="{name}"][value="{value}"]').check()
        else:
            await first.fill(items[0])


async def compose_journey(journey: Journey, gateway: Gateway) -> str:
    page = journey.page
    await sign_in_as(page, gateway.url, SPOC_NAME)

    await page.get_by_role("navigation", name="Menu").get_by_role(
        "link", name="Send a message").click()
    assert page.url == gateway.url + "/console/compose"
    assert await page.get_by_role("link", name="Required Assessment notice").count() == 0
    await journey.check("compose-choose")

    await page.get_by_role("link", name=DIR_TITLE).click()
    assert page.url == gateway.url + "/console/compose/dir_transfer"
    await page.get_by_role("heading", level=1, name=DIR_TITLE).wait_for()
    await journey.check("compose-form")

    # Answers with three mistakes: a DIR reference too short, 31 February, and whether the
    # person was given the appointment in writing left unanswered.
    values = answers(norfolk_dir(), DOCUMENTS)
    written = values.pop("body-written_notice_given")
    mistaken = {**values, "body-dir_ref": ["X"], "body-assessment-date-day": ["31"],
                "body-assessment-date-month": ["2"]}
    await answer(page, mistaken)
    await page.get_by_role("button", name="Continue", exact=True).click()
    summary = page.locator(".govuk-error-summary")
    await summary.wait_for()
    assert (await page.title()).startswith("Error: ")
    links = summary.get_by_role("link")
    assert await links.all_inner_texts() == [
        "DIR reference must be at least 3 characters",
        "Assessment date must be a real date",
        "Select written notice given",
    ]
    await journey.check("compose-errors")

    # Each link takes the person to the answer it is about; they fix it there.
    await links.nth(0).click()
    assert await page.evaluate("() => document.activeElement.id") == "body-dir_ref"
    await page.keyboard.press("Control+A")
    await page.keyboard.type(values["body-dir_ref"][0])
    await links.nth(1).click()
    assert await page.evaluate("() => document.activeElement.id") == "body-assessment-date-day"
    await page.keyboard.press("Control+A")
    await page.keyboard.type(values["body-assessment-date-day"][0])
    await page.locator("#body-assessment-date-month").fill(
        values["body-assessment-date-month"][0])
    await links.nth(2).click()
    assert await page.evaluate(
        "() => document.activeElement.name") == "body-written_notice_given"
    await page.locator(f'[name="body-written_notice_given"][value="{written[0]}"]').check()
    # Enter in a text input continues (the form's first button), never "Add another".
    await page.locator("#body-dir_ref").press("Enter")

    await page.get_by_role("heading", level=1, name="Check before sending").wait_for()
    card = page.locator(".govuk-summary-card").filter(has_text=f"({RECEIVING})")
    assert "Will be shared" in await card.inner_text()
    assert "Legal basis" in await card.inner_text()
    await journey.check("compose-check")

    await page.get_by_role("button", name="Send", exact=True).click()
    panel = page.locator(".govuk-panel--confirmation")
    await panel.wait_for()
    message_id = (await panel.locator("strong").inner_text()).strip()
    assert page.url == gateway.url + f"/console/compose/sent/{message_id}"
    assert await page.get_by_role("link", name="See the message's status").get_attribute(
        "href") == f"/console/sent/{message_id}"
    await journey.check("compose-sent")
    return message_id


async def in_inbox(gateway: Gateway, message_id: str) -> dict[str, Any]:
    settings = Settings(data_dir=gateway.data_dir)
    async with GatewayClient(gateway.url, credentials(settings, RECEIVING)) as cjit:
        for _ in range(200):
            for item in await cjit.inbox(500):
                if item["message_id"] == message_id:
                    return dict(item)
            await asyncio.sleep(0.05)
    raise AssertionError(f"the DIR transfer never reached {RECEIVING}'s inbox")


async def test_a_caseworker_composes_fixes_and_sends_a_dir_transfer_with_0_violations(
    browser: Browser, gateway: Gateway, screenshots: Path,
) -> None:
    context = await new_context(browser, javascript=True)
    journey = await Journey.open(context, screenshots, javascript=True)
    message_id = await compose_journey(journey, gateway)
    assert journey.visited == ["compose-choose", "compose-form", "compose-errors",
                               "compose-check", "compose-sent"]
    await context.close()
    item = await in_inbox(gateway, message_id)
    assert item["envelope"]["from"] == "CJIT-NFK"
    assert item["envelope"]["body"]["dir_ref"] == "SFK-DIR-26-0193"


async def test_composing_works_without_javascript(
    browser: Browser, gateway: Gateway, tmp_path: Path,
) -> None:
    context = await new_context(browser, javascript=False)
    journey = await Journey.open(context, tmp_path, javascript=False, suffix="-no-js")
    message_id = await compose_journey(journey, gateway)
    await context.close()
    await in_inbox(gateway, message_id)
