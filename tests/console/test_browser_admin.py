"""The administrator's and operator's console pages in a real browser (issue 12): Debian's
Chromium through Playwright against a real gateway process. Norfolk CJIT's administrator
grants a role with a reason and changes the delivery channel; an operator previews a
SPOC list import and proposes it, is told that they cannot approve it themselves, and a
second operator finds it by its reference and approves it, after which the directory lists
the new organisation. Every page is checked by ``Journey.check`` (axe-core WCAG 2.2 AA: 0
violations; no failed load or script error; a screenshot), and both journeys are done again
with JavaScript off. Without Chromium, axe-core or the built assets these tests skip, or
fail under ``DIPGW_REQUIRE_SERVICES=1``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from playwright.async_api import Browser, Page

from tests.console.harness import Gateway, Journey, new_context, sign_in_as

ADMIN_NAME = "Laura Reid"  # cjit-nfk.admin
OPERATOR_NAME = "Sam Okoro"
SECOND_OPERATOR_NAME = "Lena Novak"
HEADER = "code,organisation,kind,area,spoc_name,phone,email,secure_email,areas_served\n"


@dataclass(frozen=True)
class Grant:
    """Who is granted what in one run (each run needs a role the person does not hold)."""

    name: str
    person_id: str
    role: str
    role_label: str
    reason: str


@dataclass(frozen=True)
class Channel:
    """The delivery channel one run chooses, and the field its option needs."""

    label: str
    field: str
    value: str
    missing: str


@dataclass(frozen=True)
class Import:
    """The SPOC list one run imports: a new CJIT, and a CARAT team's new contact."""

    code: str
    name: str
    carat_contact: str

    def csv(self) -> str:
        return HEADER + (
            f"{self.code},{self.name},cjit,{self.name.split()[0]},{self.name} SPOC,"
            f"01245 000 100,spoc@{self.code.lower()}.example,,\n"
            f"CARAT-NWI,HMP Norwich CARAT team,carat,Norfolk,{self.carat_contact},"
            "01603 000 399,carat@hmp-norwich.example,,\n"
        )


WITH_JS = (
    Grant("Jack Turner", "cjit-nfk.spoc", "ig_lead", "Information governance lead",
          "Covering information governance while Kiran Shah is on leave"),
    Channel("The gateway sends each message to your web address",
            "Web address to send messages to", "https://cms.norfolk-cjit.example/dipgw",
            "needs the web address"),
    Import("CJIT-ESX", "Essex CJIT", "Head of CARAT team"),
)
WITHOUT_JS = (
    Grant("Kiran Shah", "cjit-nfk.ig-lead", "spoc", "Single point of contact (SPOC)",
          "Second SPOC for the weekend rota"),
    Channel("NHS MESH mailbox", "MESH mailbox id", "X26NFK001", "needs the MESH mailbox"),
    Import("CJIT-HRT", "Hertfordshire CJIT", "CARAT team manager"),
)


async def menu(page: Page, label: str) -> None:
    await page.get_by_role("navigation", name="Menu").get_by_role("link", name=label).click()


async def administrator_journey(journey: Journey, gateway: Gateway, grant: Grant,
                                channel: Channel) -> None:
    page = journey.page
    await sign_in_as(page, gateway.url, ADMIN_NAME)

    await menu(page, "People")
    assert page.url == gateway.url + "/console/people"
    await page.get_by_role("heading", level=1, name="People").wait_for()
    assert await page.get_by_role("link", name=grant.name).count() == 1
    await journey.check("people")

    await page.get_by_role("link", name=grant.name).click()
    assert page.url == gateway.url + f"/console/people/{grant.person_id}"
    await page.get_by_role("heading", level=1, name=grant.name).wait_for()
    await journey.check("person")

    await page.get_by_role("button", name="Grant a role").click()
    assert page.url == gateway.url + f"/console/people/{grant.person_id}/grant"
    await journey.check("grant")
    await page.get_by_role("button", name="Grant role").click()
    summary = page.locator(".govuk-error-summary")
    assert "Select the role to grant" in await summary.inner_text()
    await page.get_by_label(grant.role_label).check()
    await page.get_by_label("Why are you granting it?").fill(grant.reason)
    await page.get_by_role("button", name="Grant role").click()
    assert page.url == gateway.url + f"/console/people/{grant.person_id}?granted={grant.role}"
    banner = page.locator(".govuk-notification-banner--success")
    assert f"{grant.name} has been granted a role" in await banner.inner_text()
    card = page.locator(".govuk-summary-card").filter(has_text=grant.role_label)
    words = await card.inner_text()
    assert grant.reason in words and f"{ADMIN_NAME} (CJIT-NFK)" in words

    await menu(page, "People")
    await page.get_by_role("link", name="Change how messages reach the organisation").click()
    assert page.url == gateway.url + "/console/directory/CJIT-NFK/delivery"
    await page.get_by_label(channel.label).check()
    await page.get_by_label(channel.field).fill("")
    await page.get_by_role("button", name="Save").click()
    assert channel.missing in await page.locator(".govuk-error-summary").inner_text()
    await page.get_by_label(channel.field).fill(channel.value)
    await journey.check("delivery")
    await page.get_by_role("button", name="Save").click()
    assert page.url == gateway.url + "/console/people?changed=delivery"
    assert channel.value in await page.content()


async def operator_journey(journey: Journey, gateway: Gateway, spoc_list: Path,
                           spoc: Import) -> None:
    page = journey.page
    await sign_in_as(page, gateway.url, OPERATOR_NAME)

    await menu(page, "Directory")
    assert page.url == gateway.url + "/console/directory"
    assert await page.get_by_role("link", name="CJIT-NFK", exact=True).count() == 1
    await journey.check("directory")

    await page.get_by_role("link", name="CJIT-NFK", exact=True).click()
    await page.get_by_role("heading", level=1, name="Norfolk CJIT").wait_for()
    assert await page.get_by_role("link", name="Laura Reid").count() == 1
    await journey.check("organisation")

    await menu(page, "Directory")
    await page.get_by_role("button", name="Import a SPOC list").click()
    spoc_list.write_text(spoc.csv(), encoding="utf-8")
    await page.get_by_label("Upload the SPOC list").set_input_files(spoc_list)
    await page.get_by_role("button", name="Preview the changes").click()
    await page.get_by_role("heading", level=1, name="Check the changes").wait_for()
    added = page.get_by_role("table").filter(has_text="Added (1)")
    assert spoc.name in await added.inner_text()
    changed = page.get_by_role("table").filter(has_text="Changed (1)")
    assert spoc.carat_contact in await changed.inner_text()
    await journey.check("import-preview")

    await page.get_by_role("button", name="Propose this import").click()
    await page.get_by_role("heading", level=1, name="Approve a SPOC list import").wait_for()
    assert "you cannot approve it" in await page.locator("#approve").inner_text()
    assert await page.get_by_role("button", name="Approve import").count() == 0
    reference = (await page.locator("dd code").inner_text()).strip()

    await page.get_by_role("button", name="Sign out", exact=True).click()
    await page.get_by_role("heading", level=1, name="You have signed out").wait_for()
    await page.wait_for_load_state("load")
    await sign_in_as(page, gateway.url, SECOND_OPERATOR_NAME)
    await menu(page, "Directory")
    await page.get_by_label("Import reference").fill(reference)
    await page.get_by_role("button", name="Find import").click()
    assert page.url == gateway.url + f"/console/directory/imports/{reference}"
    assert OPERATOR_NAME in await page.locator(".govuk-summary-list").first.inner_text()
    await journey.check("import-approve")

    await page.get_by_role("button", name="Approve import").click()
    banner = page.locator(".govuk-notification-banner--success")
    assert "the directory has changed" in await banner.inner_text()
    await menu(page, "Directory")
    assert await page.get_by_role("link", name=spoc.code, exact=True).count() == 1


async def test_an_administrator_grants_a_role_with_a_reason(
    browser: Browser, gateway: Gateway, screenshots: Path,
) -> None:
    context = await new_context(browser, javascript=True)
    journey = await Journey.open(context, screenshots, javascript=True)
    grant, channel, _ = WITH_JS
    await administrator_journey(journey, gateway, grant, channel)
    assert journey.visited == ["people", "person", "grant", "delivery"]
    await context.close()


async def test_an_operator_previews_an_import_that_a_second_operator_approves(
    browser: Browser, gateway: Gateway, screenshots: Path, tmp_path: Path,
) -> None:
    context = await new_context(browser, javascript=True)
    journey = await Journey.open(context, screenshots, javascript=True)
    await operator_journey(journey, gateway, tmp_path / "spoc-list.csv", WITH_JS[2])
    assert journey.visited == ["directory", "organisation", "import-preview",
                               "import-approve"]
    await context.close()


async def test_both_journeys_work_without_javascript(
    browser: Browser, gateway: Gateway, tmp_path: Path,
) -> None:
    context = await new_context(browser, javascript=False)
    journey = await Journey.open(context, tmp_path, javascript=False, suffix="-no-js")
    grant, channel, spoc = WITHOUT_JS
    await administrator_journey(journey, gateway, grant, channel)
    await journey.page.get_by_role("button", name="Sign out", exact=True).click()
    await journey.page.get_by_role("heading", level=1, name="You have signed out").wait_for()
    await operator_journey(journey, gateway, tmp_path / "spoc-list.csv", spoc)
    assert len(list(tmp_path.glob("*-no-js.png"))) == 8
    await context.close()
