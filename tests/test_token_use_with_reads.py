"""An acknowledgement and an inbox read that shows messages record their token's single
use in the transaction they write anyway (the acknowledgement's, the consultation's).

The gap this must not open: a replayed token reading an inbox must disclose nothing and
log nothing, a replayed acknowledgement must change nothing, and every way such a request
ends (answered, not found, empty) leaves the token spent."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.config import Settings
from gateway.http.services import SERVICES
from tests.conftest import bearer
from tests.test_authentication import SENDER, assert_unauthenticated, fresh_ra1

RECIPIENT = "CJIT-NFK"  # fresh_ra1's addressee


async def delivered(client: TestClient[Any, Any], settings: Settings) -> str:
    """A message in the recipient's inbox (the embedded transport puts it there as it is
    accepted); its id."""
    document = fresh_ra1()
    sent = await client.post("/v1/messages", json=document, headers=bearer(settings, SENDER))
    assert sent.status == 202
    return str(document["message_id"])


def count_separate_claims(client: TestClient[Any, Any]) -> list[str]:
    """Token uses recorded in a transaction of their own, from now on."""
    verifier = client.server.app[SERVICES].verifier
    claims: list[str] = []
    original = verifier.record

    async def counting(use: Any) -> None:
        claims.append(use.token_id)
        await original(use)

    verifier.record = counting  # type: ignore[method-assign]
    return claims


async def test_a_read_showing_messages_and_an_acknowledgement_claim_no_token_separately(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    message_id = await delivered(client, settings)
    claims = count_separate_claims(client)

    read = await client.get("/v1/inbox", headers=bearer(settings, RECIPIENT))
    assert read.status == 200 and (await read.json())["messages"]
    ack = await client.post(f"/v1/inbox/{message_id}/ack", headers=bearer(settings, RECIPIENT))
    assert ack.status == 200

    assert claims == []
    # An empty inbox writes nothing but the token's use, in a transaction of its own.
    assert (await client.get("/v1/inbox", headers=bearer(settings, SENDER))).status == 200
    assert len(claims) == 1


async def test_a_replayed_token_reads_nothing_and_logs_nothing(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    await delivered(client, settings)
    audit = client.server.app[SERVICES].audit
    headers = bearer(settings, RECIPIENT)
    assert (await client.get("/v1/inbox", headers=headers)).status == 200
    logged = await audit.size()

    again = await client.get("/v1/inbox", headers=headers)

    problem = await assert_unauthenticated(again)
    assert "already been used" in problem["detail"]
    assert await audit.size() == logged  # no consultation for a read refused


async def test_one_token_racing_two_reads_reads_once(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    await delivered(client, settings)
    headers = bearer(settings, RECIPIENT)

    answers = await asyncio.gather(*(client.get("/v1/inbox", headers=headers)
                                     for _ in range(3)))

    assert sorted(answer.status for answer in answers) == [200, 401, 401]


async def test_a_replayed_acknowledgement_changes_nothing(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    first, second = await delivered(client, settings), await delivered(client, settings)
    headers = bearer(settings, RECIPIENT)
    assert (await client.post(f"/v1/inbox/{first}/ack", headers=headers)).status == 200

    await assert_unauthenticated(await client.post(f"/v1/inbox/{second}/ack",
                                                   headers=headers))

    waiting = await client.get("/v1/inbox", headers=bearer(settings, RECIPIENT))
    assert [m["message_id"] for m in (await waiting.json())["messages"]] == [second]


async def test_an_acknowledgement_of_nothing_still_spends_its_token(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    message_id = await delivered(client, settings)
    headers = bearer(settings, RECIPIENT)
    missing = await client.post("/v1/inbox/00000000-0000-4000-8000-000000000000/ack",
                                headers=headers)
    assert missing.status == 404

    await assert_unauthenticated(await client.post(f"/v1/inbox/{message_id}/ack",
                                                   headers=headers))
