"""The 24-hour clock: an unacknowledged disengagement alert escalates, and the sender
sees that it did; an acknowledged one never does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.client import GatewayClient
from gateway.config import Settings
from gateway.domain.model import Role
from tests.backends import make_settings
from tests.conftest import EXAMPLES, bearer, credentials, load
from tests.test_messages_end_to_end import wait_for_inbox

ALERT = load(
    EXAMPLES / "disengagement_alert" / "valid-missed-rob-with-clinical-fields-for-redaction.json"
)


@pytest.fixture
async def quick_clock(
    aiohttp_client: Any, tmp_path: Path
) -> tuple[TestClient[Any, Any], Settings]:
    settings = make_settings(data_dir=tmp_path, relay_interval_s=0.05, alert_escalation_s=1,
                        expiry_check_s=0.1)
    return await aiohttp_client(create_app(settings)), settings


def as_org(pair: tuple[TestClient[Any, Any], Settings], org: str) -> GatewayClient:
    test_client, settings = pair
    return GatewayClient(str(test_client.make_url("")), credentials(settings, org),
                         session=test_client.session)


async def test_unacknowledged_alert_escalates_once_and_the_sender_sees_it(
    quick_clock: tuple[TestClient[Any, Any], Settings],
) -> None:
    sender = as_org(quick_clock, ALERT["from"])
    recipients = [as_org(quick_clock, code) for code in ALERT["to"]]
    await sender.send(ALERT)
    assert len(recipients) == 2
    for recipient in recipients:
        assert await wait_for_inbox(recipient, ALERT["message_id"])
    await recipients[0].acknowledge(ALERT["message_id"])

    await asyncio.sleep(1.8)

    history = (await sender.status(ALERT["message_id"]))["history"]
    escalated = [e for e in history if e["status"] == "escalated"]
    assert [e["recipient"] for e in escalated] == ALERT["to"][1:]
    assert "not acknowledged within" in escalated[0]["detail"]
    status = await sender.status(ALERT["message_id"])
    assert status["status"] == "delivered"
    await recipients[1].acknowledge(ALERT["message_id"])
    assert (await sender.status(ALERT["message_id"]))["status"] == "acknowledged"

    test_client, settings = quick_clock
    entries = await test_client.get("/v1/audit/entries", params={"from": "0", "to": "1000"},
                                    headers=bearer(settings, "DIP-ASSURE", Role.AUDITOR))
    actions = [e["action"] for e in (await entries.json())["entries"]]
    assert actions.count("alert.escalated") == 1
