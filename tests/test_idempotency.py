"""Resubmitting a message: the same answer and one delivery; new content under an old id: 409."""

from __future__ import annotations

import asyncio
import copy

import pytest

from gateway.client import GatewayProblem
from tests.conftest import EXAMPLES, AgencyFactory, load
from tests.test_messages_end_to_end import wait_for_inbox

RA1 = EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json"


async def test_identical_resubmission_returns_original_answer_and_delivers_once(
    agency: AgencyFactory,
) -> None:
    document = load(RA1)
    police = agency(document["from"])
    first = await police.send(document)
    recipient = agency(document["to"][0])
    assert len(await wait_for_inbox(recipient, document["message_id"])) == 1

    again = await police.send(copy.deepcopy(document))

    assert again.status == 202
    assert again.body == first.body
    await asyncio.sleep(0.2)
    inbox = await recipient.inbox(500)
    assert [m["message_id"] for m in inbox].count(document["message_id"]) == 1
    history = (await police.status(document["message_id"]))["history"]
    assert [e["status"] for e in history].count("accepted") == 1
    assert [e["status"] for e in history].count("delivered") == 1


async def test_concurrent_identical_submissions_store_one_message(agency: AgencyFactory) -> None:
    document = load(RA1)
    police = agency(document["from"])

    answers = await asyncio.gather(*(police.send(document) for _ in range(10)))

    assert all(a.status == 202 for a in answers)
    assert len({str(a.body) for a in answers}) == 1
    items = await wait_for_inbox(agency(document["to"][0]), document["message_id"])
    assert len(items) == 1


async def test_same_id_with_different_content_is_a_conflict(agency: AgencyFactory) -> None:
    document = load(RA1)
    police = agency(document["from"])
    await police.send(document)
    changed = copy.deepcopy(document)
    changed["subject"]["given_name"] = "Someone-Else"

    with pytest.raises(GatewayProblem) as conflict:
        await police.send(changed)

    assert conflict.value.status == 409
    items = await wait_for_inbox(agency(document["to"][0]), document["message_id"])
    assert items[0]["envelope"]["subject"] == document["subject"]


async def test_message_id_is_matched_case_insensitively(agency: AgencyFactory) -> None:
    document = load(RA1)
    police = agency(document["from"])
    await police.send(document)
    upper = copy.deepcopy(document)
    upper["message_id"] = document["message_id"].upper()

    again = await police.send(upper)

    assert again.status == 202
    assert again.body["message_id"] == document["message_id"]
    items = await wait_for_inbox(agency(document["to"][0]), document["message_id"])
    assert len(items) == 1
