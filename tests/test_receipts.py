"""Receipts end to end, through the client an agency uses: the 202 and the delivered
inbox item carry their entry's index and hash as the log holds them; ``GET
/v1/messages/{id}/receipt`` proves the sender's acceptance and the recipient's delivery
in a signed checkpoint, re-proves them in a later one, and tells anyone else (or an
unknown id) that there is no such message."""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.client import GatewayProblem
from gateway.config import Settings
from gateway.http.services import SERVICES
from gateway.tlog.merkle import leaf_hash
from gateway.tlog.receipt import (
    parse_receipt,
    parse_verifier_keys,
    verify_in_later_checkpoint,
    verify_receipt,
)
from tests.conftest import EXAMPLES, AgencyFactory, bearer, load
from tests.test_inbox_at_acceptance import _next_event
from tests.test_messages_end_to_end import wait_for_inbox

RA1 = load(sorted((EXAMPLES / "ra1_notice").glob("valid*.json"))[0])
SENDER, RECIPIENT = RA1["from"], RA1["to"][0]
OUTSIDER = "PRB-EOE"


def fresh() -> dict[str, Any]:
    return {**RA1, "message_id": str(uuid.uuid4())}


async def logged_hash(client: TestClient[Any, Any], index: int) -> bytes:
    entry, = await client.app[SERVICES].audit.entries(index, index + 1)
    return leaf_hash(entry)


async def trusted(agency: AgencyFactory) -> list[Any]:
    return parse_verifier_keys(await agency(SENDER).text("/v1/audit/keys"))


async def test_the_202_and_the_delivered_item_carry_their_entry_s_receipt(
    client: TestClient[Any, Any], agency: AgencyFactory, settings: Settings,
) -> None:
    document = fresh()
    answer = await agency(SENDER).send(document)
    pending = parse_receipt(answer.body["receipt"])
    assert pending.index == answer.body["audit_index"]
    assert pending.entry_hash == await logged_hash(client, pending.index)
    assert pending.inclusion is None

    item, = await wait_for_inbox(agency(RECIPIENT), document["message_id"])
    delivered = parse_receipt(item["receipt"])
    assert delivered.index > pending.index
    assert delivered.entry_hash == await logged_hash(client, delivered.index)

    # The live stream's event carries the same receipt as the inbox read.
    stream = await client.get("/v1/inbox/stream", headers=bearer(settings, RECIPIENT))
    event = await asyncio.wait_for(_next_event(stream), 5)
    stream.close()
    assert event["message_id"] == document["message_id"]
    assert event["receipt"] == item["receipt"]

    # A replay answers the same receipt, read back from the log.
    again = await agency(SENDER).send(document)
    assert again.body["receipt"] == answer.body["receipt"]


async def test_sender_and_recipient_get_proved_receipts_and_others_a_404(
    client: TestClient[Any, Any], agency: AgencyFactory, settings: Settings,
) -> None:
    document = fresh()
    answer = await agency(SENDER).send(document)
    item, = await wait_for_inbox(agency(RECIPIENT), document["message_id"])
    keys = await trusted(agency)

    sent = parse_receipt(await agency(SENDER).receipt(document["message_id"]))
    proved = verify_receipt(sent, keys)
    assert sent.index == answer.body["audit_index"]
    assert b'"message.accepted"' in proved.entry and document["message_id"].encode() in proved.entry

    received = parse_receipt(await agency(RECIPIENT).receipt(document["message_id"]))
    proved = verify_receipt(received, keys)
    assert received.entry_hash == parse_receipt(item["receipt"]).entry_hash
    assert b'"message.delivered"' in proved.entry

    # Regression: an organisation that is neither sender nor recipient learns nothing,
    # not even that the message exists; the same answer as for an unknown id.
    for org, message_id in ((OUTSIDER, document["message_id"]), (SENDER, str(uuid.uuid4()))):
        with pytest.raises(GatewayProblem) as refused:
            await agency(org).receipt(message_id)
        assert refused.value.status == 404
        assert refused.value.problem["detail"] == f"There is no message {message_id}."
    # Nor can a person of the sender without a messaging role.
    response = await client.get(f"/v1/messages/{document['message_id']}/receipt",
                                headers=bearer(settings, "DIP-ASSURE"))
    assert response.status in (403, 404)


async def test_a_receipt_is_proved_again_in_a_later_checkpoint(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    document = fresh()
    await agency(SENDER).send(document)
    first = parse_receipt(await agency(SENDER).receipt(document["message_id"]))
    assert first.inclusion is not None
    await agency(SENDER).send(fresh())
    later_size, _ = await client.app[SERVICES].checkpointer.integrate() or (0, "")
    assert later_size > first.inclusion.size

    keys = await trusted(agency)
    later = parse_receipt(await agency(SENDER).receipt(document["message_id"], later_size))
    assert later.inclusion is not None and later.inclusion.size == later_size
    assert verify_receipt(later, keys).index == first.index

    # Or offline: the receipt's own proof, carried by a consistency proof.
    answer = await agency(SENDER).consistency_proof(first.inclusion.size, later_size)
    proof = [base64.b64decode(h) for h in answer["proof"]]
    carried = verify_in_later_checkpoint(first, keys, answer["to_checkpoint"], proof)
    assert carried.checkpoint.size == later_size

    with pytest.raises(GatewayProblem) as unsigned:
        await agency(SENDER).receipt(document["message_id"], later_size + 1000)
    assert unsigned.value.status == 404
