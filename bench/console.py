"""The console's pages against the JSON API answering the same data, in the same run.

    .venv/bin/python bench/console.py --waiting 500 --requests 200

A real gateway process on its embedded defaults (SQLite, in-process transport) is given
``--waiting`` RA1 notices from Suffolk police for Norfolk CJIT through the batch endpoint.
Then, one request at a time from one client (no concurrency: this measures the time a person
waits, not throughput), alternating page and API request so both see the same machine:

(a) the inbox page with every waiting message (``GET /console/inbox``, a demo SPOC's
    session) beside ``GET /v1/inbox?limit=N`` (Norfolk CJIT's system key);
(b) the oldest message's page (``GET /console/messages/{id}``) beside ``GET
    /v1/inbox?limit=1``, which answers that same message;
(c) an IG lead's "Show changed decisions" for a draft that also sends RA1s to probation
    (``POST /console/policy/draft``, the page with the table of changed decisions) beside
    ``POST /v1/policy/diff`` with the same text (the IG lead's own key). Comparing two
    policies decides some 86,000 situations; the answer is remembered per pair of versions
    (``policy_actions.compare``), so the first comparison is timed on its own (cold) and
    the rest are the page's and the API's own work.

Both sides pay the same authentication-to-audit path (every read is a logged
consultation), so the difference is the page's rendering. Figures are client-side
wall-clock times (time.perf_counter) after a warm-up. The issue's goal: each page within 2x
the API's time, and p95 under 50 ms on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.client import Credentials, GatewayClient  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.domain.model import Role  # noqa: E402
from tests.conftest import EXAMPLES, credentials, load  # noqa: E402
from tests.processes import free_port, gateway_process, wait_ready  # noqa: E402

RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
SENDER, RECIPIENT = "POL-SFK-IPS", "CJIT-NFK"
SPOC, IG_LEAD = "cjit-nfk.spoc", "cjit-nfk.ig-lead"
BATCH = 100
GOAL_RATIO, GOAL_P95_MS = 2.0, 50.0
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

Timed = Callable[[], Awaitable[None]]


async def fill_inbox(url: str, sender: Credentials, waiting: int) -> None:
    async with GatewayClient(url, sender) as police:
        for start in range(0, waiting, BATCH):
            documents = [{**RA1, "message_id": str(uuid.uuid4())}
                         for _ in range(min(BATCH, waiting - start))]
            results = await police.send_batch(documents)
            assert all(r.status == 202 for r in results), results[:3]


async def delivered(cjit: GatewayClient, waiting: int) -> list[dict[str, object]]:
    """The inbox once delivery has caught up with intake (it lags on embedded defaults)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        items = [dict(item) for item in await cjit.inbox(waiting)]
        if len(items) == waiting:
            return items
        await asyncio.sleep(0.5)
    raise AssertionError(f"only {len(items)} of {waiting} messages were delivered")


async def signed_in(session: aiohttp.ClientSession, url: str, person: str) -> None:
    """The demo sign-in a person clicks through: its page's CSRF token, then the form."""
    async with session.get(url + "/console/sign-in") as page:
        token = _CSRF.search(await page.text())
    assert token is not None, "no sign-in form"
    async with session.post(url + "/console/sign-in", allow_redirects=False,
                            data={"csrf_token": token.group(1), "person": person}) as answer:
        assert answer.status == 303, await answer.text()


def report(name: str, pages: list[float], apis: list[float]) -> None:
    def p(values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100)[q - 1]
    ratio = statistics.median(pages) / statistics.median(apis)
    verdict = ("meets" if ratio <= GOAL_RATIO and p(pages, 95) < GOAL_P95_MS
               else "MISSES")
    print(f"{name}\n"
          f"    page p50 {statistics.median(pages):6.1f} ms  p95 {p(pages, 95):6.1f} ms\n"
          f"    API  p50 {statistics.median(apis):6.1f} ms  p95 {p(apis, 95):6.1f} ms\n"
          f"    page/API at p50: {ratio:.2f}x  ({verdict} the goal: <= {GOAL_RATIO:.0f}x, "
          f"p95 < {GOAL_P95_MS:.0f} ms)")


async def expect(response: aiohttp.ClientResponse, status: int = 200) -> None:
    async with response:
        body = await response.read()
        assert response.status == status, (response.status, body[:300])


async def bench(waiting: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as data:
        data_dir = Path(data)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with gateway_process(data_dir, port):
            await wait_ready(url)
            settings = Settings(data_dir=data_dir)
            await fill_inbox(url, credentials(settings, SENDER), waiting)
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as person, \
                    GatewayClient(url, credentials(settings, RECIPIENT)) as cjit:
                await signed_in(person, url, SPOC)
                items = await delivered(cjit, waiting)
                oldest = str(items[0]["message_id"])
                print(f"{waiting} messages waiting in {RECIPIENT}'s inbox; "
                      f"{requests} requests of each kind, one at a time")

                async def inbox_page() -> None:
                    await expect(await person.get(url + "/console/inbox"))

                async def inbox_api() -> None:
                    assert len(await cjit.inbox(waiting)) == waiting

                async def message_page() -> None:
                    await expect(await person.get(url + f"/console/messages/{oldest}"))

                async def message_api() -> None:
                    assert (await cjit.inbox(1))[0]["message_id"] == oldest

                for name, page, api in (
                    (f"(a) inbox, {waiting} messages", inbox_page, inbox_api),
                    ("(b) one message", message_page, message_api),
                ):
                    report(name, *await _timed(requests, page, api))
            await policy_diff(url, settings, requests)


def changed_policy() -> str:
    """The default policy with RA1 notices also shared with probation: one rule changed."""
    text = (ROOT / "policies" / "dip-default.yaml").read_text(encoding="utf-8")
    ra1 = ("      type: ra1_notice\n      route: enforcement\n"
           "      sender: police\n      recipient: cjit\n")
    assert ra1 in text, "the default policy's RA1 rule moved; update the bench"
    return text.replace(ra1, ra1.replace("recipient: cjit", "recipient: [cjit, probation]"))


async def policy_diff(url: str, settings: Settings, requests: int) -> None:
    text = changed_policy()
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as person, \
            GatewayClient(url, credentials(settings, "CJIT-NFK", Role.IG_LEAD)) as ig_lead:
        await signed_in(person, url, IG_LEAD)
        async with person.get(url + "/console/policy/draft") as draft:
            token = _CSRF.search(await draft.text())
        assert token is not None, "no draft form"
        form = {"csrf_token": token.group(1), "policy": text, "cases": "", "action": "diff"}

        async def diff_page() -> None:
            async with person.post(url + "/console/policy/draft", data=form) as answer:
                page = await answer.text()
                assert answer.status == 200 and "would change</h2>" in page, page[:300]

        async def diff_api() -> None:
            answer = await ig_lead.request("POST", "/v1/policy/diff",
                                           json_body={"after": {"text": text}})
            assert answer.status == 200 and answer.body["changed"] > 0, answer

        start = time.perf_counter()
        await diff_api()
        print(f"(c) first comparison of the two versions (cold): "
              f"{(time.perf_counter() - start) * 1000:,.0f} ms")
        report("(c) policy diff, one rule changed", *await _timed(requests, diff_page, diff_api))


async def _timed(requests: int, page: Timed, api: Timed) -> tuple[list[float], list[float]]:
    pages: list[float] = []
    apis: list[float] = []
    for round_ in range(requests + 10):
        for call, into in ((page, pages), (api, apis)):
            start = time.perf_counter()
            await call()
            if round_ >= 10:
                into.append((time.perf_counter() - start) * 1000)
    return pages, apis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waiting", type=int, default=500)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(bench(args.waiting, args.requests))


if __name__ == "__main__":
    main()
