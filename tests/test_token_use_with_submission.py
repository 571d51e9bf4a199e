"""A submission records its token's single use in the message's own transaction.

That saves a transaction per message, and must not open a gap: every way a submission
can end (stored, refused by policy, refused as invalid or malformed, replayed, raced by
the same token) leaves the token spent, and a spent token is refused whatever its body."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.config import Settings
from gateway.http.services import SERVICES
from tests.conftest import EXAMPLES, bearer, load, table_counts
from tests.test_authentication import SENDER, assert_unauthenticated, fresh_ra1

INVALID = load(EXAMPLES / "ra1_notice" / "invalid-several-violations.json")


async def spent_on_a_message(
    client: TestClient[Any, Any], settings: Settings, headers: dict[str, str]
) -> None:
    """The token in ``headers`` is refused for another message, which is not stored.
    (Messages only: an earlier message's delivery may still be writing other tables.)"""
    before = table_counts(settings)["messages"]
    again = await client.post("/v1/messages", json=fresh_ra1(), headers=headers)
    problem = await assert_unauthenticated(again)
    assert "already been used" in problem["detail"]
    assert table_counts(settings)["messages"] == before


async def test_a_token_that_carried_a_message_cannot_carry_another(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    headers = bearer(settings, SENDER)
    assert (await client.post("/v1/messages", json=fresh_ra1(), headers=headers)).status == 202
    await spent_on_a_message(client, settings, headers)
    # Nor any other request.
    await assert_unauthenticated(await client.get("/v1/inbox", headers=headers))


async def test_resending_the_same_message_with_the_same_token_is_a_replay_not_a_resubmission(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    headers, document = bearer(settings, SENDER), fresh_ra1()
    assert (await client.post("/v1/messages", json=document, headers=headers)).status == 202
    await assert_unauthenticated(await client.post("/v1/messages", json=document,
                                                   headers=headers))
    # With a fresh token it is the idempotent resubmission it should be.
    again = await client.post("/v1/messages", json=document, headers=bearer(settings, SENDER))
    assert again.status == 202 and again.headers["Idempotent-Replayed"] == "true"


async def test_a_token_whose_document_was_refused_is_spent(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    headers = bearer(settings, SENDER)
    refused = await client.post("/v1/messages", json={**INVALID, "message_id":
                                                      str(uuid.uuid4())}, headers=headers)
    assert refused.status == 422
    await spent_on_a_message(client, settings, headers)


async def test_a_token_whose_body_was_not_json_is_spent(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    headers = bearer(settings, SENDER)
    malformed = await client.post("/v1/messages", data=b"{not json",
                                  headers={**headers, "Content-Type": "application/json"})
    assert malformed.status == 400
    await spent_on_a_message(client, settings, headers)


async def test_a_token_whose_message_the_policy_refused_is_spent(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    """Refused by policy, the message is stored with its refusal and the token's use in
    one transaction; the use must not be recorded a second time afterwards (that would
    turn the 403 into a 401)."""
    # An enforcement-route RA1 between a police force and another police force has no
    # permitting rule in the default policy.
    document = {**fresh_ra1(), "to": ["POL-NFK-NOR"]}
    headers = bearer(settings, SENDER)
    refused = await client.post("/v1/messages", json=document, headers=headers)
    assert refused.status == 403, await refused.text()
    await spent_on_a_message(client, settings, headers)


async def test_one_token_racing_two_messages_carries_exactly_one(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    headers = bearer(settings, SENDER)
    answers = await asyncio.gather(*(
        client.post("/v1/messages", json=fresh_ra1(), headers=headers) for _ in range(4)
    ))
    statuses = sorted(answer.status for answer in answers)
    assert statuses == [202, 401, 401, 401]


async def test_a_token_spent_elsewhere_cannot_carry_a_message(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    headers = bearer(settings, SENDER)
    assert (await client.get("/v1/inbox", headers=headers)).status == 200
    await spent_on_a_message(client, settings, headers)


async def test_a_submission_takes_one_transaction_not_two(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    """The token's use rides in the message's transaction: counted by the database's own
    commit observer, a message on an idle gateway costs one transaction for the request
    (its delivery and the relay's marks come after the answer)."""
    services = client.server.app[SERVICES]
    ledger_claims: list[str] = []
    original = services.verifier.record

    async def counting(use: Any) -> None:
        ledger_claims.append(use.token_id)
        await original(use)

    services.verifier.record = counting  # type: ignore[method-assign]
    assert (await client.post("/v1/messages", json=fresh_ra1(),
                              headers=bearer(settings, SENDER))).status == 202
    assert ledger_claims == []
    assert (await client.get("/v1/inbox", headers=bearer(settings, SENDER))).status == 200
    assert len(ledger_claims) == 1
