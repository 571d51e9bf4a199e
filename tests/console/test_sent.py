"""The console's sent messages (issue 12): the organisation's own messages newest first, a
page at a time, and each one's status timeline in words — what ``GET /v1/messages/{id}``
answers its sender, with the same access check and consultation. Another organisation's
message is "not found", however it is asked for, and the page names nothing of it."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Settings
from gateway.console import sent
from gateway.domain.model import MessageStatus, Role
from gateway.http.services import SERVICES
from gateway.services.undelivered import close_delivery
from tests.conftest import AgencyFactory, load
from tests.console.test_console import RA1, SPOC, sign_in
from tests.console.test_inbox_filters import cambridgeshire_inbox
from tests.test_audit_log import audit_entries
from tests.test_messages_end_to_end import wait_for_inbox

POLICE_SPOC = "pol-sfk-ips.spoc"
NOT_FOUND = "Page not found"


def fresh(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "message_id": str(uuid.uuid4())}


def sent_rows(page: str) -> list[str]:
    return re.findall(r'<tr class="govuk-table__row" id="sent-([0-9a-f-]{36})"', page)


def cells(page: str) -> list[str]:
    """The timeline's cells, as text."""
    table = page.split('id="timeline"')[1].split("</table>")[0]
    return [html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell)).strip())
            for cell in re.findall(r'<td class="govuk-table__cell">(.*?)</td>', table, re.S)]


async def two_ra1s(agency: AgencyFactory) -> tuple[str, str]:
    """Two RA1s from Suffolk police to Norfolk CJIT; the first acknowledged by Norfolk's SPOC
    (Jack Turner, with his own credentials), the second still waiting."""
    first, second = fresh(load(RA1)), fresh(load(RA1))
    for document in (first, second):
        await agency("POL-SFK-IPS").send(document)
        assert await wait_for_inbox(agency("CJIT-NFK"), document["message_id"])
    await agency("CJIT-NFK", Role.SPOC).acknowledge(first["message_id"])
    return first["message_id"], second["message_id"]


async def test_the_sent_list_and_a_timeline_in_words(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    first, second = await two_ra1s(agency)
    await sign_in(client, POLICE_SPOC)
    home = await (await client.get("/console/")).text()
    assert 'href="/console/sent"' in home

    listing = await (await client.get("/console/sent")).text()
    assert sent_rows(listing) == [second, first]  # newest first
    assert "Norfolk CJIT" in listing and "RA1 \N{EN DASH} Required Assessment notice" in listing
    row = listing.split(f'id="sent-{first}"')[1].split("</tr>")[0]
    assert "govuk-tag--green\">Acknowledged" in row
    row = listing.split(f'id="sent-{second}"')[1].split("</tr>")[0]
    assert "govuk-tag--blue\">Delivered" in row

    page = await client.get(f"/console/sent/{first}")
    assert page.status == 200
    text = await page.text()
    steps = cells(text)
    whats = steps[1::3]
    assert whats == ["Sent, and accepted by the gateway", "Delivered to Norfolk CJIT",
                     "Acknowledged by Norfolk CJIT"]
    assert steps[-1] == "Jack Turner, Norfolk CJIT"  # by whom
    assert steps[2].startswith("Suffolk Constabulary")
    assert all(re.search(r"\d{4} at \d{1,2}(:\d{2})?[ap]m", at) for at in steps[0::3])
    assert first in text  # its own id, for anyone asking about it
    # Upper case ids are the same message.
    assert (await client.get(f"/console/sent/{first.upper()}")).status == 200


async def test_the_timeline_says_withdrawn_and_by_the_recipients_system(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    ids = await cambridgeshire_inbox(agency, client)
    await sign_in(client, SPOC)  # Norfolk CJIT sent the DIR transfer that was withdrawn
    text = await (await client.get(f"/console/sent/{ids['withdrawn']}")).text()
    whats = cells(text)[1::3]
    assert whats[-1] == ("Withdrawn from Cambridgeshire CJIT's inbox unread: the person "
                         "withdrew their consent")
    assert 'govuk-tag--grey">Withdrawn' in text


async def test_the_recipients_own_system_acknowledging_is_named_as_such(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    other = fresh(load(RA1))
    await agency("POL-SFK-IPS").send(other)
    assert await wait_for_inbox(agency("CJIT-NFK"), other["message_id"])
    await agency("CJIT-NFK").acknowledge(other["message_id"])
    await sign_in(client, POLICE_SPOC)
    steps = cells(await (await client.get(f"/console/sent/{other['message_id']}")).text())
    assert steps[-1] == "Norfolk CJIT (its own system)"


async def test_the_list_is_paged(
    client: TestClient[Any, Any], agency: AgencyFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = await two_ra1s(agency)
    monkeypatch.setattr(sent, "SENT_PAGE", 1)
    await sign_in(client, POLICE_SPOC)
    one = await (await client.get("/console/sent")).text()
    assert sent_rows(one) == [second]
    assert 'href="/console/sent?page=2" rel="next"' in one and 'rel="prev"' not in one
    two = await (await client.get("/console/sent?page=2")).text()
    assert sent_rows(two) == [first]
    assert 'href="/console/sent?page=1" rel="prev"' in two and 'rel="next"' not in two
    for page in ("3", "0", "-1", "x", "9" * 30, "\N{SUPERSCRIPT TWO}"):
        response = await client.get("/console/sent", params={"page": page})
        assert response.status == 404, page
        assert NOT_FOUND in await response.text()


async def test_without_the_grant_the_sent_pages_are_a_403_page(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    first, _ = await two_ra1s(agency)
    await sign_in(client, "pol-sfk-ips.admin")
    home = await (await client.get("/console/")).text()
    assert 'href="/console/sent"' not in home
    for path in ("/console/sent", f"/console/sent/{first}", "/console/sent/nonsense"):
        response = await client.get(path)
        assert response.status == 403, path
        page = await response.text()
        assert "You do not have permission to see this page" in page
        assert first not in page and "Norfolk" not in page


@pytest.mark.parametrize("person", [SPOC, "cjit-sfk.spoc"])
async def test_another_organisations_message_is_not_found_and_leaks_nothing(
    client: TestClient[Any, Any], agency: AgencyFactory, person: str,
) -> None:
    """Its recipient (Norfolk CJIT) and an uninvolved CJIT alike: the sent pages are the
    sender's, and an id that exists looks like one that does not."""
    first, _ = await two_ra1s(agency)
    await sign_in(client, person)
    answers = {}
    for message_id in (first, str(uuid.uuid4()), "not-an-id", first + "0"):
        response = await client.get(f"/console/sent/{message_id}")
        assert response.status == 404, message_id
        page = await response.text()
        assert NOT_FOUND in page and first not in page and "Suffolk" not in page
        answers[message_id] = page.replace(message_id, "")
    unknown = next(i for i in answers if i != first and len(i) == 36)
    assert answers[first] == answers[unknown]
    assert first not in await (await client.get("/console/sent")).text()


async def test_sent_pages_are_consultations_like_the_api(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
) -> None:
    first, second = await two_ra1s(agency)
    await sign_in(client, POLICE_SPOC)
    assert (await client.get("/console/sent")).status == 200
    assert (await client.get(f"/console/sent/{first}")).status == 200
    mine = [e for e in await audit_entries(client, settings)
            if e["action"] == "consulted" and e["actor"] == f"POL-SFK-IPS/{POLICE_SPOC}"]
    assert [e["details"]["resource"] for e in mine] == ["sent", "message_status"]
    assert all(e["details"]["channel"] == "console" for e in mine)
    assert mine[0]["details"]["message_ids"] == [second, first]
    assert mine[1]["message_id"] == first


async def test_an_expired_share_is_said_so_with_why(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    _, waiting = await two_ra1s(agency)
    services = client.app[SERVICES]
    closed = await close_delivery(
        services.messages, waiting, "CJIT-NFK", MessageStatus.EXPIRED,
        "not acknowledged within 7 days", services.clock(), services.audit)
    assert closed == "POL-SFK-IPS"
    await sign_in(client, POLICE_SPOC)
    listing = await (await client.get("/console/sent")).text()
    row = listing.split(f'id="sent-{waiting}"')[1].split("</tr>")[0]
    assert 'govuk-tag--orange">Expired' in row
    steps = cells(await (await client.get(f"/console/sent/{waiting}")).text())
    assert steps[-2] == ("Expired before Norfolk CJIT acknowledged it "
                         "not acknowledged within 7 days")
