"""The gateway routing through the real RabbitMQ broker: delivery, dead-lettering, readiness."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.client import GatewayClient
from gateway.config import Settings
from gateway.http.services import SERVICES
from gateway.services.directory import Directory
from gateway.transport.base import DeadLetterHandler, Delivery, DeliveryHandler
from gateway.transport.rabbitmq import RabbitMqTransport
from gateway.transport.topology import Topology
from tests.conftest import EXAMPLES, credentials, load
from tests.rabbitmq_support import broker_settings, delete_topology, eventually, unique_prefix
from tests.services import rabbitmq_url  # noqa: F401

RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
COURT = load(EXAMPLES / "court_outcome" / "valid-community-order-with-drr.json")
POISON = str(uuid.uuid4())


class PoisonedTransport(RabbitMqTransport):
    """The real transport, whose inbox write fails for one message id: a message that
    cannot be processed, as a corrupt or unwritable delivery would be."""

    async def start(self, handler: DeliveryHandler, on_dead_letter: DeadLetterHandler) -> None:
        async def failing(delivery: Delivery) -> None:
            if delivery.message_id == POISON:
                raise RuntimeError("cannot be processed")
            await handler(delivery)

        await super().start(failing, on_dead_letter)


@pytest.fixture
async def broker_app(
    aiohttp_client: Any, tmp_path: Path, rabbitmq_url: str  # noqa: F811
) -> AsyncIterator[tuple[TestClient[Any, Any], Settings]]:
    prefix = unique_prefix()
    settings = broker_settings(tmp_path, rabbitmq_url, prefix, delivery_limit=2)
    holder: dict[str, Directory] = {}

    def organisations() -> Any:
        return holder["directory"].all()

    transport = PoisonedTransport(
        rabbitmq_url, Topology(prefix=prefix, delivery_limit=2), organisations
    )
    app = create_app(settings, transport=transport)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    holder["directory"] = app[SERVICES].directory
    await transport.wait_ready(30)
    try:
        yield client, settings
    finally:
        await client.close()
        await delete_topology(rabbitmq_url, prefix)


def client_for(test_client: TestClient[Any, Any], settings: Settings, org: str) -> GatewayClient:
    return GatewayClient(
        str(test_client.make_url("")), credentials(settings, org), session=test_client.session
    )


async def inbox_ids(client: GatewayClient) -> list[str]:
    return [m["message_id"] for m in await client.inbox(500)]


def has(client: GatewayClient, message_id: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return message_id in await inbox_ids(client)

    return check


async def test_messages_reach_every_recipient_once_through_the_broker(
    broker_app: tuple[TestClient[Any, Any], Settings],
) -> None:
    test_client, settings = broker_app
    ready = await (await test_client.get("/readyz")).json()
    assert ready["transport"] == {"name": "rabbitmq", "state": "ready"}

    for document in (RA1, COURT):
        await client_for(test_client, settings, document["from"]).send(document)
        for code in document["to"]:
            recipient = client_for(test_client, settings, code)
            await eventually(has(recipient, document["message_id"]), 20)
            assert (await inbox_ids(recipient)).count(document["message_id"]) == 1


async def test_unprocessable_message_is_dead_lettered_and_the_sender_told(
    broker_app: tuple[TestClient[Any, Any], Settings],
) -> None:
    test_client, settings = broker_app
    sender = client_for(test_client, settings, RA1["from"])
    recipient = client_for(test_client, settings, RA1["to"][0])
    poisoned = {**RA1, "message_id": POISON}

    await sender.send(poisoned)

    async def dead_lettered() -> bool:
        history = (await sender.status(POISON))["history"]
        return any(e["status"] == "dead_lettered" for e in history)

    await eventually(dead_lettered, 30)
    status = await sender.status(POISON)
    assert status["status"] == "dead_lettered"
    event = next(e for e in status["history"] if e["status"] == "dead_lettered")
    assert event["recipient"] == RA1["to"][0]
    assert "delivery_limit" in event["detail"]
    assert POISON not in await inbox_ids(recipient)
    reports = [m for m in await sender.inbox(500) if m["type"] == "delivery_report"]
    assert len(reports) == 1
    body = reports[0]["envelope"]["body"]
    assert body["original_message_id"] == POISON
    assert body["reason"] == "dead_lettered"
    assert "subject" not in reports[0]["envelope"]
