"""An organisation on the AMQP channel consumes its own RabbitMQ queue (the real broker).

The IG lead chooses the channel through the API while the gateway runs; the gateway stops
consuming that organisation's queue at once. The organisation then plays its own consumer
with aio-pika: the message waits in its queue, and the broker's confirmation is recorded as
the delivery. Moving back to pull makes the gateway consume the queue again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.client import GatewayClient
from gateway.config import Settings
from gateway.domain.model import Role
from gateway.http.services import SERVICES
from gateway.transport.rabbitmq import RECIPIENT_HEADER, RabbitMqTransport
from gateway.transport.topology import Topology
from tests.conftest import EXAMPLES, credentials, load
from tests.rabbitmq_support import broker_settings, delete_topology, eventually, unique_prefix
from tests.services import rabbitmq_url  # noqa: F401

pytestmark = pytest.mark.services

DIRECT = "CJIT-SFK"  # on the AMQP channel: consumes its own queue
PULLED = "CJIT-NFK"  # stays on pull: reads the inbox API
RA1_DIRECT = load(
    EXAMPLES / "ra1_notice" / "valid-local-trigger-offence-community-appointment.json"
)
RA1_PULLED = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")


@dataclass
class DirectGateway:
    client: TestClient[Any, Any]
    settings: Settings
    url: str
    topology: Topology
    choice: Mapping[str, Any]

    def as_org(self, org: str, role: Role = Role.SYSTEM) -> GatewayClient:
        return GatewayClient(
            str(self.client.make_url("")), credentials(self.settings, org, role),
            session=self.client.session,
        )


@pytest.fixture
async def direct_gateway(
    aiohttp_client: Any, tmp_path: Path, rabbitmq_url: str  # noqa: F811
) -> AsyncIterator[DirectGateway]:
    prefix = unique_prefix()
    settings = broker_settings(tmp_path, rabbitmq_url, prefix)
    try:
        app = create_app(settings)
        gateway: TestClient[Any, Any] = await aiohttp_client(app)
        transport = app[SERVICES].transport
        assert isinstance(transport, RabbitMqTransport)
        await transport.wait_ready(30)
        ig_lead = GatewayClient(
            str(gateway.make_url("")), credentials(settings, DIRECT, Role.IG_LEAD),
            session=gateway.session,
        )
        answer = await ig_lead.request(
            "PUT", f"/v1/directory/{DIRECT}/delivery", json_body={"channel": "amqp"}
        )
        yield DirectGateway(gateway, settings, rabbitmq_url, Topology(prefix=prefix),
                            dict(answer.body))
        await gateway.close()
    finally:
        await delete_topology(rabbitmq_url, prefix)


def fresh(document: Mapping[str, Any]) -> dict[str, Any]:
    return {**document, "message_id": str(uuid.uuid4())}


def events(status: Mapping[str, Any], recipient: str, kind: str) -> list[Mapping[str, Any]]:
    return [e for e in status["history"]
            if e.get("recipient") == recipient and e["status"] == kind]


async def test_amqp_organisation_consumes_its_own_queue_and_acknowledges_through_the_api(
    direct_gateway: DirectGateway,
) -> None:
    gw = direct_gateway
    assert gw.choice["channel"] == "amqp"
    own_queue = gw.topology.queue(DIRECT)
    direct_doc, pulled_doc = fresh(RA1_DIRECT), fresh(RA1_PULLED)
    assert direct_doc["to"] == [DIRECT] and pulled_doc["to"] == [PULLED]
    sender = gw.as_org(direct_doc["from"])
    direct_org, pulled_org = gw.as_org(DIRECT), gw.as_org(PULLED)

    await sender.send(direct_doc)
    await sender.send(pulled_doc)

    # (c) the broker's confirmation is the hand-over: delivered, naming the queue.
    async def handed_over() -> bool:
        return bool(events(await sender.status(direct_doc["message_id"]), DIRECT, "delivered"))

    await eventually(handed_over, 20)
    status = await sender.status(direct_doc["message_id"])
    assert status["status"] == "delivered"
    [delivered] = events(status, DIRECT, "delivered")
    assert own_queue in delivered["detail"]
    assert not events(status, DIRECT, "attempt_failed")

    # (d) the organisation still on pull receives through its inbox as before.
    async def pulled_has_it() -> bool:
        return any(m["message_id"] == pulled_doc["message_id"]
                   for m in await pulled_org.inbox(500))

    await eventually(pulled_has_it, 20)
    pulled_status = await sender.status(pulled_doc["message_id"])
    [pulled_delivered] = events(pulled_status, PULLED, "delivered")
    assert "queue" not in (pulled_delivered.get("detail") or "")

    # The envelope the organisation is entitled to see (redacted for it by the policy).
    [listed] = [m for m in await direct_org.inbox(500)
                if m["message_id"] == direct_doc["message_id"]]

    connection = await aio_pika.connect(gw.url)
    async with connection:
        channel = await connection.channel()
        # (b) the gateway does not consume the organisation's own queue, but does the
        # queue of an organisation on pull.
        declared = await channel.declare_queue(own_queue, passive=True)
        assert declared.declaration_result.consumer_count == 0
        other = await channel.declare_queue(gw.topology.queue(PULLED), passive=True)
        assert (other.declaration_result.consumer_count or 0) >= 1

        # (a) the message waits in the organisation's own queue; it takes it as the
        # agency's consumer would.
        queue = await channel.get_queue(own_queue)
        message = await queue.get(timeout=10)
        assert message is not None
        assert message.message_id == direct_doc["message_id"]
        assert message.type == direct_doc["type"]
        assert message.content_type == "application/json"
        assert (message.headers or {}).get(RECIPIENT_HEADER) == DIRECT
        assert json.loads(message.body) == listed["envelope"]
        await message.ack()
        assert await queue.get(fail=False, timeout=5) is None  # exactly one copy

    # (e) acknowledgement stays with the inbox API.
    ack = await direct_org.acknowledge(direct_doc["message_id"])
    assert ack["message_id"] == direct_doc["message_id"]
    status = await sender.status(direct_doc["message_id"])
    assert status["status"] == "acknowledged"
    assert len(events(status, DIRECT, "acknowledged")) == 1
    assert len(events(status, DIRECT, "delivered")) == 1
    assert direct_doc["message_id"] not in [m["message_id"] for m in await direct_org.inbox(500)]
    # The pull organisation's message is untouched by all this.
    assert (await sender.status(pulled_doc["message_id"]))["status"] == "delivered"


async def test_moving_back_to_pull_while_running_makes_the_gateway_consume_again(
    direct_gateway: DirectGateway,
) -> None:
    gw = direct_gateway
    ig_lead = gw.as_org(DIRECT, Role.IG_LEAD)
    await ig_lead.request("PUT", f"/v1/directory/{DIRECT}/delivery",
                          json_body={"channel": "pull"})
    document = fresh(RA1_DIRECT)
    sender, direct_org = gw.as_org(document["from"]), gw.as_org(DIRECT)

    await sender.send(document)

    async def in_inbox() -> bool:
        return any(m["message_id"] == document["message_id"]
                   for m in await direct_org.inbox(500))

    await eventually(in_inbox, 20)
    [delivered] = events(await sender.status(document["message_id"]), DIRECT, "delivered")
    assert "queue" not in (delivered.get("detail") or "")
    connection = await aio_pika.connect(gw.url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(gw.topology.queue(DIRECT), passive=True)
        assert (declared.declaration_result.consumer_count or 0) >= 1
