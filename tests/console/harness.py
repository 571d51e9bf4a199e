"""The harness for the console's browser tests: Debian's Chromium driven through Playwright
(``executable_path``: nothing is downloaded) against a real gateway process on its embedded
defaults, with axe-core's WCAG 2.2 AA rules, failed-request and console-error checks and a
full-page screenshot on every page a journey visits (``Journey.check``).

Without Chromium, axe-core (``make assets``) or the built GOV.UK assets the browser tests
skip, or fail under ``DIPGW_REQUIRE_SERVICES=1`` (CI). Screenshots go to a temporary folder,
or to ``docs/screenshots/`` with ``DIPGW_SCREENSHOTS=1`` (``make screenshots``), so that an
ordinary test run does not rewrite the committed pictures. The fixtures are in this folder's
``conftest.py``."""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError

from tests.backends import database_for_module
from tests.conftest import ROOT
from tests.processes import free_port, gateway_process, wait_ready_blocking
from tests.services import services_required

# Debian's package; DIPGW_CHROMIUM names another Chromium build already on the machine.
CHROMIUM = Path(os.environ.get("DIPGW_CHROMIUM", "/usr/bin/chromium"))
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
GOVUK_ASSETS = ROOT / "gateway" / "console" / "static" / "govuk" / "govuk-frontend.min.css"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
WIDTH = 1280


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
    database_url: str | None


@pytest.fixture(scope="module")
def gateway(prerequisites: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One real gateway process (the run's database, in-process transport) with its own
    data folder, database and port, for every test here."""
    data_dir = tmp_path_factory.mktemp("gateway")
    port = free_port()
    with database_for_module() as database_url, gateway_process(data_dir, port, database_url):
        url = f"http://127.0.0.1:{port}"
        wait_ready_blocking(url)
        yield Gateway(url, data_dir, database_url)


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
        page.on("requestfailed", journey._request_failed)
        page.on("console", journey._console)
        page.on("pageerror", lambda e: journey.problems.append(f"script error: {e}"))
        page.on("response", journey._response)
        return journey

    def _console(self, message: ConsoleMessage) -> None:
        # An error page's own 4xx is logged as a failed load too; loads are checked below.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console error: {message.text}")

    def _request_failed(self, request: Request) -> None:
        # ERR_ABORTED is the browser cancelling a request because the page was left (the
        # inbox's live stream, or a favicon still loading when a button navigates on): not
        # a failed load. A missing file answers 4xx (``_response``); a server that drops
        # the connection fails with another error, both still counted.
        if "ERR_ABORTED" in (request.failure or ""):
            return
        self.problems.append(f"request failed: {request.url} ({request.failure})")

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


async def sign_in_as(page: Page, url: str, name: str, *, open_sign_in: bool = True) -> None:
    """Signs in as ``name`` from the demo list on the sign-in page (opened first unless
    ``open_sign_in`` is false) and waits for the home page's heading: leaving before the
    home page has loaded aborts its request, which ``Journey`` counts as a failure."""
    if open_sign_in:
        await page.goto(url + "/console/sign-in")
    await page.get_by_role("button", name=f"Sign in as {name}", exact=True).click()
    await page.get_by_role("heading", level=1, name=name).wait_for()
    await page.wait_for_load_state("load")
