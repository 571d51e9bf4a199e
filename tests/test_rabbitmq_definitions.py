"""The RabbitMQ definitions, against a real broker: shape, import, and who may do what.

The shipped ``deploy/rabbitmq/definitions.json`` must be exactly what the topology code
generates. The broker tests import an equivalent document (same generator, so the same
queue arguments, bindings, empty password hashes and permission patterns) under a unique
name prefix, virtual host and user names, so they never touch the production names on a
shared broker, and remove everything they created afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aio_pika
import pytest
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aiormq.exceptions import ChannelAccessRefused, ProbableAuthenticationError

from gateway.domain.model import MessageType, OrgKind
from gateway.services.directory import DEMO_ORGANISATIONS
from gateway.transport.topology import GATEWAY_USER, Topology, receivable_types
from tests.services import (
    rabbitmq_url,  # noqa: F401
    require_rabbitmq,
    services_required,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "deploy" / "rabbitmq" / "definitions.json"

ORG_A = "CJIT-SFK"
ORG_B = "CJIT-NFK"
RECEIVED = MessageType.RA1_NOTICE
NOT_RECEIVED = next(t for t in MessageType if t not in receivable_types(OrgKind.CJIT))


def test_shipped_definitions_are_what_the_topology_generates() -> None:
    shipped = json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert shipped == Topology().definitions(DEMO_ORGANISATIONS), (
        "deploy/rabbitmq/definitions.json is stale: "
        "dipgw rabbitmq-definitions > deploy/rabbitmq/definitions.json"
    )


def test_every_organisation_queue_is_a_durable_dead_lettering_quorum_queue() -> None:
    shipped = json.loads(SHIPPED.read_text(encoding="utf-8"))
    topology = Topology()
    queues = {q["name"]: q for q in shipped["queues"]}
    for org in DEMO_ORGANISATIONS:
        queue = queues[topology.queue(org.code)]
        assert queue["durable"] is True and queue["auto_delete"] is False
        args = queue["arguments"]
        assert args["x-queue-type"] == "quorum"
        assert isinstance(args["x-delivery-limit"], int) and args["x-delivery-limit"] > 0
        assert args["x-dead-letter-exchange"] == topology.dead_letter_exchange
        assert args["x-dead-letter-strategy"] == "at-least-once"
        assert args["x-overflow"] == "reject-publish"
        dead_letter = queues[topology.dead_letter_queue(org.code)]
        assert dead_letter["durable"] is True
        assert dead_letter["arguments"]["x-queue-type"] == "quorum"
    assert {e["name"] for e in shipped["exchanges"]} == {
        topology.exchange, topology.dead_letter_exchange
    }
    # No secret in the repository: the operator sets passwords with change_password.
    assert all(u["password_hash"] == "" for u in shipped["users"])


# --- against the broker ---------------------------------------------------------------


RABBITMQCTL = shutil.which("rabbitmqctl")


def rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert RABBITMQCTL is not None
    return subprocess.run(
        [RABBITMQCTL, *args], capture_output=True, text=True, timeout=120, check=check
    )


@dataclass
class Imported:
    topology: Topology
    vhost: str
    host: str
    port: int
    users: dict[str, str]  # production user name -> this test's user name
    passwords: dict[str, str] = field(default_factory=dict)

    def set_password(self, production_user: str) -> tuple[str, str]:
        # Never a leading "-": rabbitmqctl would take the password for an option.
        user, password = self.users[production_user], "pw" + secrets.token_urlsafe(18)
        rabbitmqctl("change_password", user, password)
        self.passwords[user] = password
        return user, password

    async def connect(self, user: str, password: str) -> AbstractConnection:
        url = (
            f"amqp://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@{self.host}:{self.port}/{quote(self.vhost, safe='')}"
        )
        return await aio_pika.connect(url, timeout=10)


def renamed(document: dict[str, Any], test_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The document with every user renamed ``<test_id>-<user>`` (permissions follow)."""
    users = {u["name"]: f"{test_id}-{u['name']}" for u in document["users"]}
    for user in document["users"]:
        user["name"] = users[user["name"]]
    for permission in document["permissions"]:
        permission["user"] = users[permission["user"]]
    return document, users


def wait_for_import(vhost: str, queues: set[str], users: set[str], timeout: float = 60) -> None:
    """``import_definitions`` may finish asynchronously: wait until everything is there."""
    deadline = time.monotonic() + timeout
    while True:
        listed_users = rabbitmqctl("list_users", "--quiet", "--formatter", "json", check=False)
        listed_queues = rabbitmqctl(
            "list_queues", "-p", vhost, "--quiet", "--formatter", "json", "name", "type",
            check=False,
        )
        if listed_users.returncode == 0 and listed_queues.returncode == 0:
            have_users = {u["user"] for u in json.loads(listed_users.stdout or "[]")}
            have_queues = {q["name"]: q["type"] for q in json.loads(listed_queues.stdout or "[]")}
            if users <= have_users and queues <= set(have_queues):
                assert all(have_queues[q] == "quorum" for q in queues)
                return
        if time.monotonic() > deadline:
            pytest.fail(f"definitions import into {vhost!r} did not complete in {timeout}s")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def imported() -> Iterator[Imported]:
    """One import for the module (``rabbitmq_url``, per test, decides skip or fail first)."""
    url = require_rabbitmq()
    if RABBITMQCTL is None:
        message = "rabbitmqctl is not on PATH: the definitions tests import with it"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    test_id = "t" + uuid.uuid4().hex[:8]
    vhost = f"dipgw-test-{test_id}"
    topology = Topology(prefix=test_id)
    document, users = renamed(topology.definitions(DEMO_ORGANISATIONS, vhost=vhost), test_id)
    # rabbitmqctl run as root drops to the rabbitmq user, which cannot read pytest's
    # private tmp_path, and 3.10's `import_definitions -` (stdin) is rejected ("File -
    # does not exist"): use a world-readable temporary file (it holds no secret).
    handle, name = tempfile.mkstemp(prefix=f"dipgw-{test_id}-", suffix=".json")
    path = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2)
        path.chmod(0o644)
        result = rabbitmqctl("import_definitions", str(path), check=False)
        assert result.returncode == 0, (
            "rabbitmqctl import_definitions refused the generated definitions:\n"
            f"{result.stdout}\n{result.stderr}"
        )
        wait_for_import(vhost, {q["name"] for q in document["queues"]}, set(users.values()))
        parts = urlsplit(url)
        yield Imported(topology, vhost, parts.hostname or "127.0.0.1", parts.port or 5672, users)
    finally:
        path.unlink(missing_ok=True)
        rabbitmqctl("delete_vhost", vhost, check=False)
        for user in users.values():
            rabbitmqctl("delete_user", user, check=False)


async def ack(message: AbstractIncomingMessage) -> None:
    await message.ack()


async def get_within(queue: AbstractQueue, seconds: float) -> AbstractIncomingMessage | None:
    deadline = time.monotonic() + seconds
    while (message := await queue.get(fail=False)) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return message


async def open_channel(connection: AbstractConnection, **kwargs: Any) -> AbstractChannel:
    return await connection.channel(**kwargs)


async def test_imported_users_cannot_log_in_until_the_operator_sets_a_password(
    rabbitmq_url: str,  # noqa: F811
    imported: Imported,
) -> None:
    user = imported.users[Topology.user(ORG_A)]
    for password in ("", "guest", user):
        with pytest.raises(ProbableAuthenticationError):
            connection = await imported.connect(user, password)
            await connection.close()


async def test_an_organisation_reads_only_its_own_queue_and_cannot_publish(
    rabbitmq_url: str,  # noqa: F811
    imported: Imported,
) -> None:
    topology = imported.topology
    own, other = topology.queue(ORG_A), topology.queue(ORG_B)
    connection = await imported.connect(*imported.set_password(Topology.user(ORG_A)))
    try:
        channel = await open_channel(connection)
        queue = await channel.get_queue(own, ensure=True)  # passive declare
        await queue.get(fail=False)  # reading is allowed (the queue may hold a message)
        tag = await queue.consume(ack)
        await queue.cancel(tag)
        dead_letter = await channel.get_queue(topology.dead_letter_queue(ORG_A), ensure=True)
        assert await dead_letter.get(fail=False) is None
        await channel.close()

        # Reading another organisation's queue (or its dead letters) is refused. A passive
        # declare is not: RabbitMQ checks no permission for it, so any user of the vhost
        # can learn whether a queue exists and its message and consumer counts.
        for name in (other, topology.dead_letter_queue(ORG_B)):
            for attempt in ("consume", "get"):
                channel = await open_channel(connection)
                queue = await channel.get_queue(name, ensure=False)
                with pytest.raises(ChannelAccessRefused):
                    if attempt == "consume":
                        await queue.consume(ack)
                    else:
                        await queue.get(fail=False)

        channel = await open_channel(connection, publisher_confirms=True)
        exchange = await channel.get_exchange(topology.exchange, ensure=False)
        with pytest.raises(ChannelAccessRefused):
            await exchange.publish(
                aio_pika.Message(b"{}"), routing_key=Topology.routing_key(ORG_A, RECEIVED.value)
            )
    finally:
        await connection.close()


async def test_the_gateway_publishes_only_to_what_an_organisation_receives(
    rabbitmq_url: str,  # noqa: F811
    imported: Imported,
) -> None:
    topology = imported.topology
    gateway = await imported.connect(*imported.set_password(GATEWAY_USER))
    reader = await imported.connect(*imported.set_password(Topology.user(ORG_A)))
    try:
        channel = await gateway.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(topology.exchange, ensure=True)
        body = json.dumps({"test": uuid.uuid4().hex}).encode()
        await exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=Topology.routing_key(ORG_A, RECEIVED.value),
            mandatory=True,
        )
        queue = await (await reader.channel()).get_queue(topology.queue(ORG_A), ensure=True)
        message = await get_within(queue, seconds=10)
        assert message is not None and message.body == body
        assert message.routing_key == Topology.routing_key(ORG_A, RECEIVED.value)
        await message.ack()

        with pytest.raises(aio_pika.exceptions.PublishError):
            await exchange.publish(
                aio_pika.Message(b"{}"),
                routing_key=Topology.routing_key(ORG_A, NOT_RECEIVED.value),
                mandatory=True,
            )
        # Nothing reached the organisation's queue.
        assert await queue.get(fail=False) is None
    finally:
        await reader.close()
        await gateway.close()
