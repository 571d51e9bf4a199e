"""The consent pages in a real browser (issue 12): a CJIT SPOC records a person's consent,
leaving out what the error summary then names, fixes it, finds the consent by PNC ID and
withdraws it with a reason. axe-core checks every page against WCAG 2.2 AA; the harness
(``tests/console/harness.py``) fails on any missing asset, console error or CSP refusal."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser

from tests.console.harness import Gateway, Journey, new_context, sign_in_as

SPOC_NAME = "Jack Turner"
PNC = "2012/118822R"


async def test_a_spoc_records_finds_and_withdraws_a_consent(
    browser: Browser, gateway: Gateway, screenshots: Path,
) -> None:
    context = await new_context(browser, javascript=True)
    journey = await Journey.open(context, screenshots, javascript=True)
    page = journey.page
    await sign_in_as(page, gateway.url, SPOC_NAME)
    await page.get_by_role("navigation", name="Menu").get_by_role("link", name="Consent").click()
    assert page.url == gateway.url + "/console/consents"
    await page.get_by_role("link", name="Record a consent").click()
    await page.get_by_role("heading", level=1, name="Record a consent").wait_for()

    await page.get_by_label("PNC ID (optional)").fill(PNC)
    await page.get_by_label("Given name").fill("Lucy")
    await page.get_by_label("Family name").fill("Hardcastle")
    birth = page.get_by_role("group", name="Date of birth")
    await birth.get_by_label("Day").fill("27")
    await birth.get_by_label("Month").fill("3")
    await birth.get_by_label("Year").fill("1985")
    await page.get_by_label("Written").check()
    await page.get_by_role("button", name="Record consent").click()

    # Nothing chosen for who may receive it or what for: the summary says so, values kept.
    summary = page.locator(".govuk-error-summary")
    await summary.wait_for()
    assert await page.title() == "Error: Record a consent \N{EN DASH} DIP gateway"
    assert await page.get_by_label("Given name").input_value() == "Lucy"
    await journey.check("consent-errors")
    links = summary.get_by_role("link")
    assert await links.count() >= 2
    await links.first.click()

    await page.get_by_role("group", name="Which kinds of organisation may receive it?") \
        .get_by_label("Criminal Justice Integrated Teams (CJITs)").check()
    purposes = page.get_by_role("group", name="What did the person agree it may be shared for?")
    await purposes.get_by_role("checkbox").first.check()
    await page.get_by_label("What the person was told").fill(
        "Told that her DIR goes to the CJIT where she lives, for her appointment.")
    await page.get_by_role("button", name="Record consent").click()

    banner = page.locator(".govuk-notification-banner--success")
    await banner.wait_for()
    assert "Consent recorded for" in await banner.inner_text()
    await journey.check("consent-recorded")

    await page.get_by_label("PNC ID").fill(PNC)
    await page.get_by_role("button", name="Find consents").click()
    await page.get_by_role("heading", level=2, name="1 consent found").wait_for()
    await journey.check("consent-found")

    await page.get_by_role("link", name="Withdraw").click()
    await page.get_by_role("heading", level=1, name="Withdraw this consent").wait_for()
    await page.get_by_role("button", name="Withdraw consent").click()
    await summary.wait_for()
    await page.get_by_label("Why is the consent withdrawn?").fill(
        "She withdrew consent at her review on the phone today.")
    await page.get_by_role("button", name="Withdraw consent").click()
    await page.get_by_role("heading", level=1, name="What happened to each share").wait_for()
    await journey.check("consent-withdrawn")
    assert journey.visited == ["consent-errors", "consent-recorded", "consent-found",
                               "consent-withdrawn"]
    await context.close()
