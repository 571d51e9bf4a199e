"""Live SPOC alerts: the server-sent event stream."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.conftest import EXAMPLES, AgencyFactory, load

ALERT = load(EXAMPLES / "disengagement_alert" / "valid-statutory-failed-to-attend-initial.json")


def fresh_alert() -> dict[str, Any]:
    return {**ALERT, "message_id": str(uuid.uuid4())}


async def next_items(stream: Any, count: int) -> list[Any]:
    items = []
    async for item in stream:
        items.append(item)
        if len(items) == count:
            break
    return items


async def test_stream_sends_waiting_messages_then_each_new_one(agency: AgencyFactory) -> None:
    sender = agency(ALERT["from"])
    recipient = agency(ALERT["to"][0])
    waiting = fresh_alert()
    await sender.send(waiting)

    stream = recipient.stream()
    first = await asyncio.wait_for(next_items(stream, 1), 5)
    assert [i["message_id"] for i in first] == [waiting["message_id"]]

    later = fresh_alert()
    await sender.send(later)
    second = await asyncio.wait_for(next_items(stream, 1), 5)
    assert [i["message_id"] for i in second] == [later["message_id"]]
    assert second[0]["envelope"]["body"] == later["body"]
    assert second[0]["seq"] > first[0]["seq"]
    await stream.aclose()


async def test_stream_resumes_after_last_event_id(agency: AgencyFactory) -> None:
    sender = agency(ALERT["from"])
    recipient = agency(ALERT["to"][0])
    documents = [fresh_alert() for _ in range(3)]
    for document in documents:
        await sender.send(document)
    stream = recipient.stream()
    seen = await asyncio.wait_for(next_items(stream, 3), 5)
    await stream.aclose()

    resumed = recipient.stream(last_event_id=seen[0]["seq"])
    rest = await asyncio.wait_for(next_items(resumed, 2), 5)
    await resumed.aclose()

    assert [i["message_id"] for i in rest] == [d["message_id"] for d in documents[1:]]
