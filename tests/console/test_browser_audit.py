"""The auditor's pages in a real browser (issue 12): Debian's Chromium through Playwright
against a real gateway process (``tests/console/harness.py``). The demo auditor, Grace
Adeyemi of the oversight body, signs in, sees the newest checkpoint verified, checks an
entry's inclusion (the page's JavaScript recomputes the RFC 6962 root with WebCrypto and
says "Verified in your browser"; a proof altered in the page is caught), browses delivered
entries, downloads an export that ``dipgw audit verify`` accepts with the command the page
shows, and reads a disclosure report for the person an RA1 was about. ``Journey.check`` runs
axe-core's WCAG 2.2 AA rules on every page (0 violations) and takes its screenshot.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from playwright.async_api import Browser, Page

from tests.conftest import ROOT
from tests.console.harness import (
    DOCS_SCREENSHOTS,
    WIDTH,
    Gateway,
    Journey,
    new_context,
    png_width,
    sign_in_as,
)
from tests.console.test_browser import RA1, send_ra1

AUDITOR_NAME = "Grace Adeyemi"


async def delivered_index(page: Page, gateway: Gateway, message_id: str) -> int:
    """The entry number of the RA1's disclosure, as the disclosure report lists it."""
    await page.goto(gateway.url + "/console/audit/disclosures?pnc_id="
                    + RA1["subject"]["pnc_id"])
    row = page.get_by_role("row").filter(has=page.locator(".govuk-tag--blue")).last
    return int((await row.get_by_role("link").inner_text()).strip())


async def test_an_auditor_checks_inclusion_exports_and_reads_a_disclosure_report(
    browser: Browser, gateway: Gateway, screenshots: Path, tmp_path: Path,
) -> None:
    message_id = await send_ra1(gateway)
    context = await new_context(browser, javascript=True)
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    journey = await Journey.open(context, screenshots, javascript=True)
    page = journey.page
    await sign_in_as(page, gateway.url, AUDITOR_NAME)

    await page.get_by_role("navigation", name="Menu").get_by_role("link", name="Audit").click()
    assert page.url == gateway.url + "/console/audit"
    await page.get_by_role("heading", level=1, name="Newest signed checkpoint").wait_for()
    assert await page.locator("#signature .govuk-tag--green").inner_text() == "Verified"
    await journey.check("audit-checkpoint")

    index = await delivered_index(page, gateway, message_id)
    await page.goto(gateway.url + "/console/audit")
    await page.get_by_label("Entry number").fill(str(index))
    await page.get_by_role("button", name="Check inclusion").click()
    assert page.url == gateway.url + f"/console/audit/inclusion?index={index}"
    result = page.locator("#browser-check-result[data-verified]")
    await result.wait_for()
    assert await result.get_attribute("data-verified") == "true", (
        await result.inner_text(), journey.problems)
    assert "Verified in your browser" in await result.inner_text()
    assert "Verified by the gateway" in await page.locator("#server-check").inner_text()
    assert message_id in await page.locator("#entry").inner_text()
    await journey.check("audit-inclusion")
    # A proof altered in the page no longer leads to the signed root: the script says so.
    await page.evaluate("""async () => {
        const check = document.querySelector('[data-module="app-inclusion-check"]')
        const proof = check.dataset.proof.split(' ')
        proof[0] = (proof[0][0] === 'A' ? 'B' : 'A') + proof[0].slice(1)
        check.dataset.proof = proof.join(' ')
        await import('/console/static/audit.js?again')
    }""")
    await page.locator('#browser-check-result[data-verified="false"]').wait_for()
    assert "NOT verified in your browser" in await page.locator(
        "#browser-check-result").inner_text()

    await page.goto(gateway.url + "/console/audit/entries")
    await page.get_by_label("Event").select_option(label="Disclosed (delivered)")
    await page.get_by_role("button", name="Show entries").click()
    table = page.locator("#entries")
    assert "Disclosed (delivered)" in await table.inner_text()
    assert RA1["subject"]["family_name"] not in await page.content()
    await journey.check("audit-entries")

    await page.get_by_role("link", name="Export the log to verify it offline").click()
    assert page.url == gateway.url + "/console/audit/export"
    command = (await page.locator("#verify-command").inner_text()).strip()
    await page.get_by_role("button", name="Copy the command").click()
    await page.get_by_text("Command copied.").wait_for()
    assert await page.evaluate("() => navigator.clipboard.readText()") == command
    await journey.check("audit-export")
    async with page.expect_download() as bundle_download:
        await page.locator("#export-link").click()
    bundle = await bundle_download.value
    async with page.expect_download() as keys_download:
        await page.locator("#keys-link").click()
    keys = await keys_download.value
    await bundle.save_as(tmp_path / bundle.suggested_filename)
    await keys.save_as(tmp_path / keys.suggested_filename)
    argv = command.split()
    assert argv[:3] == ["dipgw", "audit", "verify"]
    assert argv[3] == bundle.suggested_filename and keys.suggested_filename in argv
    # The command as shown, run in the folder the two files were saved to.
    verified = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *argv[1:]], cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK:")

    await page.get_by_role("link", name="Disclosure report for a person").click()
    await page.get_by_label("PNC ID").fill(RA1["subject"]["pnc_id"])
    await page.get_by_role("button", name="Show the report").click()
    report = page.locator("#disclosures")
    disclosure = report.get_by_role("row").filter(has=page.locator(".govuk-tag--blue")).last
    words = await disclosure.inner_text()
    assert "Suffolk" in words and "Norfolk" in words and "legal basis" in words
    await journey.check("audit-disclosures")
    await context.close()
    assert journey.visited == ["audit-checkpoint", "audit-inclusion", "audit-entries",
                               "audit-export", "audit-disclosures"]


async def test_without_javascript_the_gateway_s_own_check_still_shows(
    browser: Browser, gateway: Gateway, tmp_path: Path,
) -> None:
    await send_ra1(gateway)
    context = await new_context(browser, javascript=False)
    journey = await Journey.open(context, tmp_path, javascript=False, suffix="-no-js")
    page = journey.page
    await sign_in_as(page, gateway.url, AUDITOR_NAME)
    await page.goto(gateway.url + "/console/audit/inclusion?index=1")
    assert "Verified by the gateway" in await page.locator("#server-check").inner_text()
    assert "has not checked this proof" in await page.locator(
        "#browser-check-result").inner_text()
    await journey.check("audit-inclusion")
    await context.close()


AUDIT_SCREENSHOTS = ("audit-checkpoint", "audit-inclusion", "audit-entries", "audit-export",
                     "audit-disclosures")


def test_the_readme_shows_a_committed_screenshot_of_every_audit_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in AUDIT_SCREENSHOTS:
        path = DOCS_SCREENSHOTS / f"{name}.png"
        assert f"(docs/screenshots/{name}.png)" in readme, name
        assert path.is_file() and png_width(path) == WIDTH, path
