"""Unacknowledged messages expire and the sender receives an undelivered report (as MESH)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.client import GatewayClient, GatewayProblem
from gateway.config import Settings
from tests.backends import make_settings
from tests.conftest import EXAMPLES, credentials, load
from tests.test_messages_end_to_end import wait_for_inbox

RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")


@pytest.fixture
async def short_lived(aiohttp_client: Any, tmp_path: Path) -> tuple[TestClient[Any, Any], Settings]:
    settings = make_settings(
        data_dir=tmp_path, relay_interval_s=0.05, expiry_s=1, expiry_check_s=0.1)
    return await aiohttp_client(create_app(settings)), settings


def as_org(pair: tuple[TestClient[Any, Any], Settings], org: str) -> GatewayClient:
    test_client, settings = pair
    return GatewayClient(
        str(test_client.make_url("")), credentials(settings, org), session=test_client.session
    )


async def test_unacknowledged_message_expires_and_the_sender_is_told(
    short_lived: tuple[TestClient[Any, Any], Settings],
) -> None:
    sender = as_org(short_lived, RA1["from"])
    recipient = as_org(short_lived, RA1["to"][0])
    await sender.send(RA1)
    assert await wait_for_inbox(recipient, RA1["message_id"])

    await asyncio.sleep(1.6)

    assert RA1["message_id"] not in [m["message_id"] for m in await recipient.inbox(500)]
    status = await sender.status(RA1["message_id"])
    assert status["status"] == "expired"
    assert [e["status"] for e in status["history"]] == ["accepted", "delivered", "expired"]
    reports = [m for m in await sender.inbox(500) if m["type"] == "delivery_report"]
    assert [r["envelope"]["body"]["reason"] for r in reports] == ["expired"]
    assert reports[0]["envelope"]["body"]["original_message_id"] == RA1["message_id"]
    assert reports[0]["from"] == "DIPGW"
    with pytest.raises(GatewayProblem) as gone:
        await recipient.acknowledge(RA1["message_id"])
    assert gone.value.status == 404


async def test_acknowledged_message_never_expires(
    short_lived: tuple[TestClient[Any, Any], Settings],
) -> None:
    sender = as_org(short_lived, RA1["from"])
    recipient = as_org(short_lived, RA1["to"][0])
    await sender.send(RA1)
    await wait_for_inbox(recipient, RA1["message_id"])
    await recipient.acknowledge(RA1["message_id"])

    await asyncio.sleep(1.6)

    assert (await sender.status(RA1["message_id"]))["status"] == "acknowledged"
    assert await sender.inbox(500) == []
