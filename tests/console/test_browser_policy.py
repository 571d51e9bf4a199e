"""The IG lead's sharing-policy pages in a real browser (issue 12): Debian's Chromium, driven
through Playwright, against a real gateway process on its embedded defaults.

Kiran Shah, IG lead of Norfolk CJIT, reads the active policy, edits a draft (RA1, then RA2
in the journey without JavaScript, copied to probation as well as the CJIT), checks it, sees
the changed decisions, runs the test cases, simulates it on past traffic (an RA1 Suffolk
police sent) and proposes it with a reason; the proposal's page shows the author no
approve button (two-person rule). Yusuf Ibrahim, IG lead of the
probation service, another organisation, signs in, finds the proposal in the version
history and approves it, and the active version changes. axe-core checks every page
against WCAG 2.2 AA (``Journey.check``), which also takes the screenshots named below; the
same journey is then done without JavaScript. Prerequisites and skipping are as in
``tests/console/harness.py``."""

from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from playwright.async_api import Browser

from gateway.config import Settings
from tests.conftest import person_bearer
from tests.console.harness import Gateway, Journey, new_context, sign_in_as
from tests.console.test_browser import send_ra1

AUTHOR, AUTHOR_NAME = "cjit-nfk.ig-lead", "Kiran Shah"
APPROVER, APPROVER_NAME = "prb-eoe.ig-lead", "Yusuf Ibrahim"
SCREENSHOTS = ("policy-rules", "policy-draft", "policy-diff", "policy-tests",
               "policy-simulation", "policy-proposal", "policy-history", "policy-approve",
               "policy-approved")


@dataclass(frozen=True)
class RuleChange:
    """A rule's message type, and the lines that name its recipient; the change copies the
    message to probation as well as the CJIT (5 changed decisions, one per consent state)."""

    message_type: str
    anchor: str

    def apply(self, text: str) -> str:
        assert self.anchor in text
        widened = self.anchor.replace("recipient: cjit", "recipient: [cjit, probation]")
        return text.replace(self.anchor, widened, 1)


# One change per journey: each journey's draft starts from the policy the one before made.
RA1_TO_PROBATION = RuleChange("ra1_notice", """      sender: police
      recipient: cjit
    reason: >-
      After a positive test""")
RA2_TO_PROBATION = RuleChange("ra2_variation", """      sender: police
      recipient: cjit
    reason: >-
      Any variation""")


def active_version(gateway: Gateway) -> str:
    """The active version as ``GET /v1/policy`` answers it, from outside the browser."""
    headers = person_bearer(Settings(data_dir=gateway.data_dir), AUTHOR)
    # The gateway under test, on 127.0.0.1 over HTTP.
    request = urllib.request.Request(gateway.url + "/v1/policy", headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        return str(json.load(answer)["version"])


async def policy_journey(journey: Journey, gateway: Gateway, change: RuleChange) -> None:
    page = journey.page
    before = active_version(gateway)
    await send_ra1(gateway)  # past traffic to simulate on
    await sign_in_as(page, gateway.url, AUTHOR_NAME)
    await page.get_by_role("navigation", name="Menu").get_by_role(
        "link", name="Sharing policy").click()
    assert page.url == gateway.url + "/console/policy"
    await page.get_by_role("heading", level=1, name="Sharing policy: dip-default").wait_for()
    rules = page.locator(f"#rules-{change.message_type}")
    assert "Drugs Act 2005 Part 3" in await rules.inner_text()
    assert "Probation services" not in await rules.inner_text()
    assert before in await page.content()
    await journey.check("policy-rules")

    await page.get_by_role("link", name="Edit a draft of this policy").click()
    assert page.url == gateway.url + "/console/policy/draft"
    box = page.get_by_label("Policy (YAML)")
    assert "policy: dip-default" in await box.input_value()
    await box.fill(change.apply(await box.input_value()))
    await page.get_by_role("button", name="Check the draft", exact=True).click()
    banner = page.locator(".govuk-notification-banner--success")
    assert "The draft has no problems" in await banner.inner_text()
    await journey.check("policy-draft")

    await page.get_by_role("button", name="Show changed decisions", exact=True).click()
    await page.get_by_role("heading", level=2, name="5 decisions would change").wait_for()
    changes = page.locator("#changes")
    assert "Probation services" in await changes.inner_text()
    assert await changes.locator("tbody tr").count() == 5
    await journey.check("policy-diff")

    await page.get_by_role("button", name="Run the test cases", exact=True).click()
    heading = page.get_by_role("heading", level=2, name=re.compile(r"^Test cases: \d+ failed"))
    await heading.wait_for()
    assert not (await heading.inner_text()).startswith("Test cases: 0 failed")
    assert "Fail" in await page.locator("#failed-cases").inner_text()
    await journey.check("policy-tests")

    await page.get_by_role("button", name="Simulate on past traffic", exact=True).click()
    # The RA1 sent before went to the CJIT, which the change leaves as it was.
    await page.get_by_role("heading", level=2, name=re.compile(
        r"^Past traffic: 0 of [1-9]\d* past shares? would")).wait_for()
    await journey.check("policy-simulation")

    await page.get_by_label("Why should the policy change?").fill(
        f"Probation asked for a copy of every {change.message_type.split('_')[0].upper()} "
        "(review of H 4.7.1 with the partnership)")
    await page.get_by_role("button", name="Propose for approval", exact=True).click()
    assert "/console/policy/versions/sha256:" in page.url and page.url.endswith("?proposed=1")
    proposed = page.url.split("/versions/")[1].split("?")[0]
    await page.get_by_text("Your change was proposed.").wait_for()
    assert await page.get_by_role("button", name="Approve this version").count() == 0
    assert await page.get_by_text("there is no approve button for you").count() == 1
    await journey.check("policy-proposal")
    await page.get_by_role("button", name="Sign out", exact=True).click()
    assert active_version(gateway) == before

    await sign_in_as(page, gateway.url, APPROVER_NAME)
    await page.get_by_role("navigation", name="Menu").get_by_role(
        "link", name="Sharing policy").click()
    await page.get_by_role("link", name="Version history").click()
    assert page.url == gateway.url + "/console/policy/versions"
    row = page.get_by_role("row").filter(has=page.locator(
        f'a[href="/console/policy/versions/{proposed}"]'))
    assert "Waiting for approval" in await row.inner_text()
    assert "Kiran Shah, Norfolk" in await row.inner_text()
    await journey.check("policy-history")

    await row.get_by_role("link").click()
    await page.get_by_role("heading", level=2, name="Approval").wait_for()
    assert await page.get_by_label("As soon as I approve it").is_checked()
    await journey.check("policy-approve")
    await page.get_by_role("button", name="Approve this version", exact=True).click()
    await page.get_by_text("It is now the active sharing policy.").wait_for()
    assert "Yusuf Ibrahim" in await page.locator(".govuk-summary-list").inner_text()
    await journey.check("policy-approved")
    assert active_version(gateway) == proposed
    await page.get_by_role("navigation", name="Menu").get_by_role(
        "link", name="Sharing policy").click()
    assert proposed in await page.content()
    assert "Probation services" in await page.locator(
        f"#rules-{change.message_type}").inner_text()


async def test_an_ig_lead_proposes_and_another_approves_with_0_accessibility_violations(
    browser: Browser, gateway: Gateway, screenshots: Path,
) -> None:
    context = await new_context(browser, javascript=True)
    journey = await Journey.open(context, screenshots, javascript=True)
    await policy_journey(journey, gateway, RA1_TO_PROBATION)
    assert tuple(journey.visited) == SCREENSHOTS
    await context.close()


async def test_the_policy_journey_works_without_javascript(
    browser: Browser, gateway: Gateway, tmp_path: Path,
) -> None:
    context = await new_context(browser, javascript=False)
    journey = await Journey.open(context, tmp_path, javascript=False, suffix="-no-js")
    await policy_journey(journey, gateway, RA2_TO_PROBATION)
    assert len(list(tmp_path.glob("policy-*-no-js.png"))) == len(SCREENSHOTS)
    await context.close()
