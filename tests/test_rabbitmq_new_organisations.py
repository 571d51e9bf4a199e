"""An organisation added while the gateway runs gets its RabbitMQ queues at once (the real
broker), whichever process added it: before, queues were declared only when a process
connected, so a message for a new organisation was unroutable until every process had
restarted (docs/operations.md, "Adding an organisation")."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aiohttp.test_utils import TestClient

from gateway import keys
from gateway.app import create_app
from gateway.client import Credentials, GatewayClient
from gateway.domain.model import Contact, Organisation, OrgKind
from gateway.http.services import SERVICES, Services
from gateway.transport.rabbitmq import RabbitMqTransport
from gateway.transport.topology import Topology
from tests.conftest import EXAMPLES, credentials, load
from tests.rabbitmq_support import broker_settings, delete_topology, eventually, unique_prefix
from tests.services import rabbitmq_url  # noqa: F401

pytestmark = pytest.mark.services

ADDED = "CJIT-ESX"
LATER = "CJIT-KNT"
RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")


def new_cjit(code: str, private_jwk: dict[str, Any]) -> Organisation:
    return Organisation(
        code, OrgKind.CJIT, f"{code} CJIT", "Norfolk",
        Contact("SPOC", "01603 000 999", f"spoc@{code.lower()}.example"),
        jwks=(keys.public_jwk(private_jwk),), areas_served=("Norwich",),
    )


@dataclass
class RunningGateway:
    client: TestClient[Any, Any]
    services: Services
    topology: Topology
    url: str


@pytest.fixture
async def gateway(
    aiohttp_client: Any, tmp_path: Path, rabbitmq_url: str  # noqa: F811
) -> AsyncIterator[RunningGateway]:
    prefix = unique_prefix()
    try:
        app = create_app(broker_settings(tmp_path, rabbitmq_url, prefix))
        client: TestClient[Any, Any] = await aiohttp_client(app)
        services = app[SERVICES]
        assert isinstance(services.transport, RabbitMqTransport)
        await services.transport.wait_ready(30)
        yield RunningGateway(client, services, Topology(prefix=prefix), rabbitmq_url)
        await client.close()
    finally:
        await delete_topology(rabbitmq_url, prefix, added=(ADDED, LATER))


async def queue_exists(url: str, name: str) -> bool:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return False
        return True


async def test_an_organisation_added_while_running_gets_its_queue_and_its_messages(
    gateway: RunningGateway,
) -> None:
    private = keys.generate()
    await gateway.services.directory.save(
        [new_cjit(ADDED, private)], gateway.services.clock())

    # Declared by the time the change returns, without a restart.
    assert await queue_exists(gateway.url, gateway.topology.queue(ADDED))
    assert await queue_exists(gateway.url, gateway.topology.dead_letter_queue(ADDED))

    body = {**RA1["body"],
            "initial_assessment": {**RA1["body"]["initial_assessment"], "organisation": ADDED}}
    document = {**RA1, "message_id": str(uuid.uuid4()), "to": [ADDED], "body": body}
    base = str(gateway.client.make_url(""))
    sender = GatewayClient(base, credentials(gateway.services.settings, RA1["from"]),
                           session=gateway.client.session)
    answer = await sender.send(document)
    assert answer.status == 202
    recipient = GatewayClient(
        base, Credentials(ADDED, private, audience=gateway.services.settings.audience),
        session=gateway.client.session,
    )

    async def received() -> bool:
        inbox = await recipient.inbox()
        return any(m["message_id"] == document["message_id"] for m in inbox)

    await eventually(received, 20)


async def test_an_organisation_another_process_added_gets_its_queue_at_the_refresh(
    gateway: RunningGateway,
) -> None:
    """Another gateway process on the same database writes the directory; this one learns
    of it only by refreshing its view (the periodic refresh, or on PostgreSQL the
    notification, which may already have come), and its transport follows that refresh."""
    services = gateway.services
    await services.directory.repository.upsert(
        [new_cjit(LATER, keys.generate())], services.clock())

    await services.directory.refresh()

    assert await queue_exists(gateway.url, gateway.topology.queue(LATER))
    assert isinstance(services.transport, RabbitMqTransport)
    assert services.transport.consumes(LATER)
