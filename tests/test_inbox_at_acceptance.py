"""On the in-process transport a recipient that reads its inbox has the message when the
202 leaves (issue 14): the acceptance's own transaction puts it there, leaves no outbox
row, and what follows a delivery (the count and lag, the streams' wake-up) follows it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gateway.app import create_app
from gateway.config import Settings
from gateway.http.services import SERVICES
from tests.conftest import bearer
from tests.test_backpressure import RECIPIENT, SENDER, agency, fresh
from tests.test_metrics import scrape, value


async def test_the_message_is_in_the_inbox_when_the_202_leaves(
    aiohttp_client: Any, settings: Settings,
) -> None:
    client = await aiohttp_client(create_app(settings))
    services = client.app[SERVICES]
    receiver = agency(client, settings, RECIPIENT)
    stream = await client.get("/v1/inbox/stream", headers=bearer(settings, RECIPIENT))
    assert stream.status == 200
    document = fresh()

    answer = await agency(client, settings, SENDER).send(document)

    assert answer.status == 202
    assert [m["message_id"] for m in await receiver.inbox(10)] == [document["message_id"]]
    assert await services.messages.outbox_backlog() == (0, None)
    status = await (await client.get(f"/v1/messages/{document['message_id']}",
                                     headers=bearer(settings, SENDER))).json()
    assert [(e["status"], e.get("recipient")) for e in status["history"]] == [
        ("accepted", None), ("delivered", RECIPIENT)]
    # The open stream was woken by the acceptance and sends the message without a poll.
    event = await asyncio.wait_for(_next_event(stream), 5)
    assert event["message_id"] == document["message_id"]
    _, samples = await scrape(client)
    assert value(samples, "dipgw_deliveries_total", channel="inbox") == 1
    assert value(samples, "dipgw_delivery_lag_seconds_count", channel="inbox") == 1


async def _next_event(stream: Any) -> dict[str, Any]:
    data: list[str] = []
    async for raw in stream.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            return dict(json.loads("\n".join(data)))
    raise AssertionError("the stream ended")
