"""The inbox page's live stream (issue 12): ``GET /console/inbox/stream`` is the API's
inbox stream behind the console's session — the same access check, reads and consultations
— whose events carry what a row of the inbox shows and nothing of the message itself. It
ends when the session does."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from gateway.config import Settings
from tests.conftest import AgencyFactory, load
from tests.console.test_console import RA1, SPOC, sign_in
from tests.test_audit_log import audit_entries
from tests.test_messages_end_to_end import wait_for_inbox


async def next_event(response: ClientResponse, timeout: float = 10) -> dict[str, Any] | None:
    """The next event's id and data, or None once the stream has ended."""
    event: dict[str, Any] = {}
    async with asyncio.timeout(timeout):
        while True:
            line = (await response.content.readline()).decode()
            if not line:
                return None
            line = line.rstrip("\n")
            if line.startswith("id: "):
                event["id"] = int(line[4:])
            elif line.startswith("data: "):
                event["data"] = json.loads(line[6:])
            elif not line and "data" in event:
                return event


async def test_an_arrival_comes_down_the_stream_as_a_row_and_is_a_consultation(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
) -> None:
    await sign_in(client, SPOC)
    response = await client.get("/console/inbox/stream?after=0")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"

    document = {**load(RA1), "message_id": str(uuid.uuid4())}
    await agency("POL-SFK-IPS").send(document)
    event = await next_event(response)
    assert event is not None
    row = event["data"]
    assert row["id"] == document["message_id"]
    assert row["href"] == f"/console/messages/{document['message_id']}"
    assert row["type"] == "RA1 \N{EN DASH} Required Assessment notice"
    assert row["sender"].startswith("Suffolk Constabulary") and row["state"] == "Waiting"
    assert row["announcement"].startswith("New message: RA1")
    # What a row shows, never the message: no envelope, no name, no PNC ID.
    assert "envelope" not in row
    for value in document["subject"].values():
        assert str(value) not in json.dumps(row)
    response.close()

    mine = [e for e in await audit_entries(client, settings)
            if e["action"] == "consulted" and e["actor"] == f"CJIT-NFK/{SPOC}"]
    assert mine[-1]["details"]["resource"] == "inbox_stream"
    assert mine[-1]["details"]["channel"] == "console"
    assert mine[-1]["message_id"] == document["message_id"]


async def test_the_stream_starts_after_what_the_page_showed_and_resumes_after_last_event_id(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    first, second = ({**load(RA1), "message_id": str(uuid.uuid4())} for _ in range(2))
    for document in (first, second):
        await agency("POL-SFK-IPS").send(document)
        assert await wait_for_inbox(agency("CJIT-NFK"), document["message_id"])
    await sign_in(client, SPOC)
    page = await (await client.get("/console/inbox")).text()
    everything = await client.get("/console/inbox/stream?after=0")
    one = await next_event(everything)
    assert one is not None and one["data"]["id"] == first["message_id"]
    everything.close()
    assert f'data-inbox-live="/console/inbox/stream?after={one["id"] + 1}"' in page

    resumed = await client.get("/console/inbox/stream?after=0",
                               headers={"Last-Event-ID": str(one["id"])})
    two = await next_event(resumed)
    assert two is not None and two["data"]["id"] == second["message_id"]
    resumed.close()


async def test_the_stream_ends_with_the_session(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    csrf = await sign_in(client, SPOC)
    response = await client.get("/console/inbox/stream")
    assert response.status == 200
    signed_out = await client.post("/console/sign-out", data={"csrf_token": csrf},
                                   allow_redirects=False)
    assert signed_out.status == 303
    document = {**load(RA1), "message_id": str(uuid.uuid4())}
    await agency("POL-SFK-IPS").send(document)  # wakes the stream, which finds no session
    assert await next_event(response) is None
    again = await client.get("/console/inbox/stream", allow_redirects=False)
    assert again.status == 303 and again.headers["Location"] == "/console/sign-in"


async def test_without_the_grant_there_is_no_stream(client: TestClient[Any, Any]) -> None:
    await sign_in(client, "cjit-nfk.admin")
    forbidden = await client.get("/console/inbox/stream")
    assert forbidden.status == 403
    assert "You do not have permission to see this page" in await forbidden.text()


async def test_a_bad_position_is_a_404_or_400_never_a_500(client: TestClient[Any, Any]) -> None:
    await sign_in(client, SPOC)
    for after in ("-1", "x", "9" * 40, "\N{SUPERSCRIPT TWO}"):
        response = await client.get("/console/inbox/stream", params={"after": after})
        assert response.status == 404, after
    bad = await client.get("/console/inbox/stream", headers={"Last-Event-ID": "abc"})
    assert bad.status == 400
