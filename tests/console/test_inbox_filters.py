"""The inbox's filters (issue 12): by type, status (waiting, escalated, acknowledged,
withdrawn) and the days received, a GET form that works without JavaScript; bad values give
the GOV.UK error summary, never a 500; every filtered read is a consultation; and the banner
after acknowledging names the message in words, not by its id."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Settings
from gateway.console.inbox_filters import read_query
from gateway.console.words import LONDON
from gateway.domain.model import Role
from gateway.http.services import SERVICES
from gateway.services.alerts import escalate_unacknowledged
from gateway.storage.base import InboxState
from tests.conftest import EXAMPLES, AgencyFactory, load
from tests.console.test_console import RA1, SPOC, sign_in
from tests.test_audit_log import audit_entries
from tests.test_consent_and_policy_api import PROACTIVE_DIR, SUBJECT, post
from tests.test_messages_end_to_end import wait_for_inbox

CAMBRIDGESHIRE_SPOC = "cjit-cam.spoc"
CAUTION = load(EXAMPLES / "conditional_caution_notice"
               / "valid-enforcement-cambridgeshire-resident-attend-appointment.json")
DRR_PROGRESS = load(EXAMPLES / "drr_progress" / "valid-breached-first-warning-cambridgeshire.json")


def fresh(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "message_id": str(uuid.uuid4())}


def linked(page: str) -> set[str]:
    return set(re.findall(r'href="/console/messages/([0-9a-f-]{36})"', page))


def rows(page: str) -> set[str]:
    return set(re.findall(r'<tr class="govuk-table__row" id="message-([0-9a-f-]{36})"', page))


async def cambridgeshire_inbox(
    agency: AgencyFactory, client: TestClient[Any, Any],
) -> dict[str, str]:
    """CJIT-CAM's inbox with one message in each state: a DIR transfer whose consent was
    withdrawn unread (and the gateway's notice of it), a conditional caution notice
    acknowledged, and a DRR progress report still waiting that the alert clock escalated."""
    norfolk, cambridgeshire = agency("CJIT-NFK"), agency("CJIT-CAM")
    record = await post(norfolk, "/v1/consents", {
        "subject": SUBJECT, "form": "written",
        "provision": {"type": "permit", "actor_roles": ["cjit"], "purpose": ["case_transfer"]},
        "information_given": "Told who receives what, and for what, in leaflet DIP-7.",
    })
    withdrawn, caution, progress = fresh(PROACTIVE_DIR), fresh(CAUTION), fresh(DRR_PROGRESS)
    await norfolk.send(withdrawn)
    await agency(CAUTION["from"]).send(caution)
    await agency(DRR_PROGRESS["from"]).send(progress)
    for document in (withdrawn, caution, progress):
        assert await wait_for_inbox(cambridgeshire, document["message_id"])
    await post(agency("CJIT-NFK", Role.SPOC), f"/v1/consents/{record['id']}/withdraw",
               {"reason": "withdrew at her review"})
    await cambridgeshire.acknowledge(caution["message_id"])
    services = client.app[SERVICES]
    escalated = await escalate_unacknowledged(
        services.messages, "drr_progress", services.clock() + timedelta(minutes=1),
        "not acknowledged in time", services.clock(), services.audit)
    assert [m for m, _, _ in escalated] == [progress["message_id"]]
    return {"withdrawn": withdrawn["message_id"], "acknowledged": caution["message_id"],
            "escalated": progress["message_id"]}


async def test_the_inbox_filters_by_status_type_and_day(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    ids = await cambridgeshire_inbox(agency, client)
    await sign_in(client, CAMBRIDGESHIRE_SPOC)

    async def shown(query: str) -> str:
        response = await client.get("/console/inbox" + query)
        assert response.status == 200, query
        return await response.text()

    plain = await shown("")
    assert ids["escalated"] in linked(plain)
    assert ids["acknowledged"] not in rows(plain) and ids["withdrawn"] not in rows(plain)
    assert "Report from the gateway" in plain  # the withdrawal notice, waiting
    assert "data-inbox-live=" in plain  # the plain inbox takes live arrivals
    assert 'class="govuk-tag govuk-tag--red">Escalated' in plain

    acknowledged = await shown("?status=acknowledged")
    assert rows(acknowledged) == {ids["acknowledged"]}
    assert "Acknowledged" in acknowledged and "data-inbox-live=" not in acknowledged
    assert "1 message found, newest first" in acknowledged

    withdrawn = await shown("?status=withdrawn")
    assert rows(withdrawn) == {ids["withdrawn"]}
    # Named, never linked: it left the inbox and is no longer the recipient's to read.
    assert linked(withdrawn) == set() and "Left the inbox unread" in withdrawn
    assert (await client.get(f"/console/messages/{ids['withdrawn']}")).status == 404

    assert rows(await shown("?status=escalated")) == {ids["escalated"]}
    everything = rows(await shown("?status=any"))
    assert set(ids.values()) < everything and len(everything) == 4

    by_type = await shown("?status=any&type=conditional_caution_notice")
    assert rows(by_type) == {ids["acknowledged"]}
    assert 'value="conditional_caution_notice" selected' in by_type

    today = datetime.now(LONDON).date()

    def parts(name: str, day: date) -> str:
        return f"&{name}-day={day.day}&{name}-month={day.month}&{name}-year={day.year}"

    assert rows(await shown("?status=any" + parts("received-from", today)
                            + parts("received-to", today))) == everything
    tomorrow, yesterday = today + timedelta(days=1), today - timedelta(days=1)
    assert rows(await shown("?status=any" + parts("received-from", tomorrow))) == set()
    later = await shown("?status=any" + parts("received-to", yesterday))
    assert rows(later) == set() and "No messages match the filter." in later
    # The form shows back what was asked, so the SPOC sees why the list is what it is.
    assert f'name="received-to-day" type="text" inputmode="numeric" value="{yesterday.day}"' \
        in later


@pytest.mark.parametrize(("query", "error", "href"), [
    ("?received-from-day=31&received-from-month=2&received-from-year=2026",
     "Received from must be a real date", "#received-from-day"),
    ("?received-from-day=3&received-from-year=2026",
     "Received from must include a month", "#received-from-month"),
    ("?received-to-day=3", "Received to must include a month and a year", "#received-to-month"),
    ("?received-to-day=x&received-to-month=%C2%B2&received-to-year=2026",
     "Received to must be a real date", "#received-to-day"),
    ("?received-from-day=1&received-from-month=1&received-from-year=26",
     "Year must include 4 numbers", "#received-from-year"),
    ("?received-from-day=2&received-from-month=1&received-from-year=2026"
     "&received-to-day=1&received-to-month=1&received-to-year=2026",
     "Received to must be the same as or after received from", "#received-to-day"),
    ("?received-from-day=1&received-from-month=1&received-from-year=" + "9" * 5000,
     "Year must include 4 numbers", "#received-from-year"),
    ("?type=<script>", "Select a message type from the list", "#type"),
    ("?status=deleted", "Select a status from the list", "#status"),
])
async def test_bad_filter_values_give_the_error_summary_never_a_500(
    client: TestClient[Any, Any], query: str, error: str, href: str,
) -> None:
    await sign_in(client, SPOC)
    response = await client.get("/console/inbox" + query)
    assert response.status == 200
    page = await response.text()
    assert "<title>Error: Inbox" in page
    assert 'class="govuk-error-summary"' in page
    assert f'<a href="{href}">{error}</a>' in page
    assert "<script>" not in page.split("</head>")[1].replace(
        '<script type="module"', "")


def test_the_filter_reads_uk_days_and_keeps_out_what_it_cannot_read() -> None:
    types = {"ra1_notice": "RA1"}
    query = read_query({"status": "any", "type": "ra1_notice",
                        "received-from-day": "29", "received-from-month": "3",
                        "received-from-year": "2026", "received-to-day": "29",
                        "received-to-month": "3", "received-to-year": "2026"}, types)
    assert not query.problems and not query.default and query.newest_first
    assert query.where.states == frozenset() and query.where.types == {"ra1_notice"}
    # 29 March 2026 is the day the clocks go forward: 23 hours, starting at midnight GMT.
    assert query.where.delivered_from is not None and query.where.delivered_before is not None
    assert query.where.delivered_from.utcoffset() == timedelta(0)
    # (Aware times in one zone subtract as wall clocks do: compare them in UTC.)
    start, end = (t.astimezone(UTC) for t in (query.where.delivered_from,
                                               query.where.delivered_before))
    assert end - start == timedelta(hours=23)
    plain = read_query({}, types)
    assert plain.default and not plain.newest_first
    assert plain.where.states == {InboxState.WAITING}
    bad = read_query({"status": "nonsense", "type": "other"}, types)
    assert set(bad.problems) == {"status", "type"} and bad.where.types == frozenset()


async def test_filtered_reads_are_consultations_naming_the_filter(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
) -> None:
    document = fresh(load(RA1))
    await agency("POL-SFK-IPS").send(document)
    assert await wait_for_inbox(agency("CJIT-NFK"), document["message_id"])
    await sign_in(client, SPOC)
    assert (await client.get("/console/inbox?status=any&type=ra1_notice")).status == 200
    mine = [e for e in await audit_entries(client, settings)
            if e["action"] == "consulted" and e["actor"] == f"CJIT-NFK/{SPOC}"]
    assert mine[-1]["details"]["resource"] == "inbox"
    assert mine[-1]["details"]["channel"] == "console"
    assert mine[-1]["details"]["filter"] == {"type": "ra1_notice", "status": "any"}
    assert mine[-1]["message_id"] == document["message_id"]


async def test_the_banner_names_the_acknowledged_message_in_words(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    document = fresh(load(RA1))
    message_id = document["message_id"]
    await agency("POL-SFK-IPS").send(document)
    assert await wait_for_inbox(agency("CJIT-NFK"), message_id)
    csrf = await sign_in(client, SPOC)
    response = await client.post(f"/console/messages/{message_id}/acknowledge",
                                 data={"csrf_token": csrf}, allow_redirects=False)
    page = await (await client.get(response.headers["Location"])).text()
    banner = page.split('class="govuk-notification-banner__heading">')[1].split("</p>")[0]
    assert banner == ("RA1 \N{EN DASH} Required Assessment notice from Suffolk Constabulary "
                      "\N{EM DASH} Ipswich Police Investigation Centre acknowledged. "
                      "The sender can see it.")
    assert message_id not in banner
    # Someone else's id, a waiting one or nonsense: no banner, nothing echoed.
    for other in (str(uuid.uuid4()), "<b>x</b>"):
        page = await (await client.get(f"/console/inbox?acknowledged={other}")).text()
        assert "govuk-notification-banner" not in page and other not in page
