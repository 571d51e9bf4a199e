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
import os
import struct
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Response, async_playwright
from playwright.async_api import Error as PlaywrightError

from gateway.client import GatewayClient
from gateway.config import Settings
from tests.conftest import EXAMPLES, ROOT, credentials, load
from tests.services import services_required
from tests.test_crash_recovery import free_port, gateway_process

# Debian's package; DIPGW_CHROMIUM names another Chromium build already on the machine.
CHROMIUM = Path(os.environ.get("DIPGW_CHROMIUM", "/usr/bin/chromium"))
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
GOVUK_ASSETS = ROOT / "gateway" / "console" / "static" / "govuk" / "govuk-frontend.min.css"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
WIDTH = 1280

RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
SENDER = "POL-SFK-IPS"
RECIPIENT = "CJIT-NFK"
SPOC = "cjit-nfk.spoc"
SPOC_NAME = "Jack Turner"
NOT_A_SPOC = "cjit-nfk.ig-lead"
NOT_A_SPOC_NAME = "Kiran Shah"


def _missing(message: str) -> NoReturn:
    if services_required():
        pytest.fail(f"{message} [DIPGW_REQUIRE_SERVICES=1]")
    pytest.skip(message)


@pytest.fixture(scope="module")
def prerequisites() -> None:
    if not CHROMIUM.is_file():
        _missing(f"Debian's Chromium is not installed at {CHROMIUM}; `make test` installs it "
                 "(apt-get install -y chromium)")
    if not AXE.is_file():
        _missing(f"axe-core is not installed ({AXE.relative_to(ROOT)}); run `make assets` "
                 "(npm ci)")
    if not GOVUK_ASSETS.is_file():
        _missing("the console's GOV.UK assets are not built; run `make assets`")


@dataclass(frozen=True)
class Gateway:
    url: str
    data_dir: Path


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as answer:  # noqa: S310
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.05)
    raise AssertionError("the gateway did not become ready")


@pytest.fixture(scope="module")
def gateway(prerequisites: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One real gateway process (embedded defaults: SQLite, in-process transport) with its
    own data folder and port, for every test here."""
    data_dir = tmp_path_factory.mktemp("gateway")
    port = free_port()
    with gateway_process(data_dir, port):
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url)
        yield Gateway(url, data_dir)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("DIPGW_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
async def browser(prerequisites: None) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        try:
            launched = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        except PlaywrightError as exc:
            _missing(f"Chromium at {CHROMIUM} did not start: {exc}")
        try:
            yield launched
        finally:
            await launched.close()


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


# --- what every page is checked for ----------------------------------------------------------


def format_violations(page_name: str, violations: list[dict[str, Any]]) -> str:
    lines = [f"axe-core: {len(violations)} WCAG 2.2 AA violation(s) on the {page_name} page"]
    for v in violations:
        lines.append(f"- {v['id']} ({v.get('impact')}): {v['help']} <{v['helpUrl']}>")
        for node in v["nodes"]:
            lines.append(f"    at {' '.join(map(str, node['target']))}")
            lines.append(f"       {node['html'][:200]}")
            summary = (node.get("failureSummary") or "").replace("\n", "\n       ")
            lines.append(f"       {summary}")
    return "\n".join(lines)


@dataclass
class Journey:
    """A browser context's page, with what each page is checked for: no failed request and
    no console error (nothing missing: CSS, fonts, scripts, all under the CSP), axe-core's
    WCAG 2.2 AA rules where JavaScript runs, and a full-page screenshot."""

    page: Page
    screenshots: Path
    javascript: bool
    suffix: str = ""
    problems: list[str] = field(default_factory=list)
    visited: list[str] = field(default_factory=list)

    @classmethod
    async def open(cls, context: BrowserContext, screenshots: Path, *, javascript: bool,
                   suffix: str = "") -> Journey:
        page = await context.new_page()
        journey = cls(page, screenshots, javascript, suffix)
        page.on("requestfailed", lambda r: journey.problems.append(
            f"request failed: {r.url} ({r.failure})"))
        # An error page's own 4xx is logged as a failed load too; loads are checked below.
        page.on("console", lambda m: m.type == "error"
                and not m.text.startswith("Failed to load resource")
                and journey.problems.append(f"console error: {m.text}"))
        page.on("pageerror", lambda e: journey.problems.append(f"script error: {e}"))
        page.on("response", journey._response)
        return journey

    def _response(self, response: Response) -> None:
        # Error pages are meant to answer 4xx; anything else the page loads must be there.
        if response.status >= 400 and response.request.resource_type != "document":
            self.problems.append(f"{response.status} for {response.url}")

    async def check(self, name: str) -> None:
        await self.page.wait_for_load_state("load")
        assert not self.problems, f"on the {name} page:\n" + "\n".join(self.problems)
        if self.javascript:
            await self._axe(name)
            assert await self.page.evaluate(
                "() => document.body.classList.contains('govuk-frontend-supported')"
            ), f"console.js did not run on the {name} page"
            font = await self.page.evaluate("""async () => {
                await document.fonts.ready
                const h1 = getComputedStyle(document.querySelector('h1')).fontFamily
                return [h1, [...document.fonts].some(
                    f => f.family.includes('GDS Transport') && f.status === 'loaded')]
            }""")
            assert "GDS Transport" in font[0] and font[1], (
                f"GOV.UK styles or fonts missing on the {name} page: {font}")
        path = self.screenshots / f"{name}{self.suffix}.png"
        await self.page.screenshot(path=path, full_page=True)
        assert png_width(path) == WIDTH
        self.visited.append(name)

    async def _axe(self, name: str) -> None:
        await self.page.evaluate(AXE.read_text(encoding="utf-8"))
        result = await self.page.evaluate(
            "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_22_AA)
        violations: list[dict[str, Any]] = result["violations"]
        assert not violations, format_violations(name, violations)
        assert result["passes"], f"axe-core checked nothing on the {name} page"


def png_width(path: Path) -> int:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width: int = struct.unpack(">I", header[16:20])[0]
    return width


async def new_context(browser: Browser, *, javascript: bool) -> BrowserContext:
    return await browser.new_context(
        viewport={"width": WIDTH, "height": 800}, java_script_enabled=javascript,
        locale="en-GB", timezone_id="Europe/London",
    )


# --- the journeys --------------------------------------------------------------------------


async def spoc_journey(journey: Journey, gateway: Gateway, message_id: str) -> None:
    page = journey.page
    await page.goto(gateway.url + "/")
    assert page.url == gateway.url + "/console/sign-in"
    assert await page.title() == "Sign in as a demo person \N{EN DASH} DIP gateway"
    await journey.check("sign-in")

    await page.get_by_role("button", name=f"Sign in as {SPOC_NAME}", exact=True).click()
    assert page.url == gateway.url + "/console/"
    await page.get_by_role("heading", level=1, name=SPOC_NAME).wait_for()
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
    assert f"Message {message_id} acknowledged" in await banner.inner_text()
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
    await page.goto(gateway.url + "/console/sign-in")
    await page.get_by_role("button", name=f"Sign in as {NOT_A_SPOC_NAME}", exact=True).click()
    await page.get_by_role("heading", level=1, name=NOT_A_SPOC_NAME).wait_for()
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
