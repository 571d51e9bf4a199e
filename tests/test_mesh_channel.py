"""An organisation delivered through NHS MESH (mesh-sandbox, run locally by tests.mesh_support).

The IG lead puts the organisation on the ``mesh`` channel with its MESH mailbox; the gateway
sends each message from its own mailbox, records the delivery once MESH accepted it, and
follows MESH's tracking until the recipient acknowledged it there. The recipient is played
with mesh-client directly, as a provider's own MESH client would. When MESH cannot be
used, each attempt is a note in the status history and nothing is lost: a gateway that can
reach MESH later delivers what is owed.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.channels.mesh import MeshSettings
from gateway.client import GatewayClient
from gateway.config import Settings
from gateway.domain.model import Role
from tests.backends import make_settings
from tests.conftest import EXAMPLES, credentials, load
from tests.mesh_support import MeshSandbox, mesh_sandbox_fixture  # noqa: F401

RECIPIENT = "CJIT-NFK"
RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
MESH_ID = re.compile(r"accepted by MESH into mailbox (\S+) as (\S+)$")

Gateway = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Gateway]]


def gateway_settings(data_dir: Path, mesh: MeshSettings | None) -> Settings:
    return make_settings(data_dir=data_dir, relay_interval_s=0.05, mesh=mesh, mesh_ack_check_s=0.2,
                    push_retry_base_s=0.05, push_retry_cap_s=0.3)


def as_org(gateway: Gateway, settings: Settings, org: str,
           role: Role = Role.SYSTEM) -> GatewayClient:
    return GatewayClient(str(gateway.make_url("")), credentials(settings, org, role),
                         session=gateway.session)


async def start(aiohttp_client: ClientFactory, settings: Settings) -> Gateway:
    return await aiohttp_client(create_app(settings))


async def put_on_mesh(gateway: Gateway, settings: Settings, mailbox: str) -> Mapping[str, Any]:
    ig_lead = as_org(gateway, settings, RECIPIENT, Role.IG_LEAD)
    answer = await ig_lead.request("PUT", f"/v1/directory/{RECIPIENT}/delivery",
                                   json_body={"channel": "mesh", "mesh_mailbox": mailbox})
    return answer.body


def fresh_ra1() -> dict[str, Any]:
    document = {**RA1, "message_id": str(uuid.uuid4())}
    assert document["to"] == [RECIPIENT]
    return document


def events(status: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    return [e for e in status["history"]
            if e.get("recipient") == RECIPIENT and e["status"] == kind]


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.05)


async def wait_for(sender: GatewayClient, message_id: str, kind: str,
                   count: int = 1) -> Mapping[str, Any]:
    """The sender's view of the message once RECIPIENT has ``count`` ``kind`` events."""

    async def seen() -> bool:
        return len(events(await sender.status(message_id), kind)) >= count

    await eventually(seen)
    return await sender.status(message_id)


def mesh_message_of(status: Mapping[str, Any], mailbox: str) -> str:
    """MESH's message id, from the delivered event's detail (which names MESH)."""
    [delivered] = events(status, "delivered")
    match = MESH_ID.search(delivered["detail"])
    assert match is not None, delivered["detail"]
    assert match.group(1) == mailbox
    return match.group(2)


def download(sandbox: MeshSandbox, mesh_id: str, *, acknowledge: bool) -> dict[str, Any]:
    """As the provider's MESH client: find the message in the inbox, download it (and ack)."""
    with sandbox.recipient_client() as recipient:
        assert mesh_id in recipient.list_messages()
        message = recipient.retrieve_message(mesh_id)
        try:
            body = json.loads(message.read())
        finally:
            message.close()  # type: ignore[no-untyped-call]
        got = {"body": body, "local_id": message.local_id, "sender": message.sender,
               "subject": message.subject, "workflow_id": message.workflow_id}
        if acknowledge:
            recipient.acknowledge_message(mesh_id)
            assert mesh_id not in recipient.list_messages()
    return got


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback port that is bound but not listening: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_message_reaches_the_mesh_mailbox_and_mesh_acknowledgement_comes_back(
    aiohttp_client: ClientFactory, tmp_path: Path, mesh_sandbox: MeshSandbox,
) -> None:
    settings = gateway_settings(tmp_path, mesh_sandbox.sender_settings())
    gateway = await start(aiohttp_client, settings)
    choice = await put_on_mesh(gateway, settings, mesh_sandbox.recipient_mailbox)
    assert choice["channel"] == "mesh"
    assert choice["mesh_mailbox"] == mesh_sandbox.recipient_mailbox
    document = fresh_ra1()
    message_id = document["message_id"]
    sender = as_org(gateway, settings, document["from"])
    recipient = as_org(gateway, settings, RECIPIENT)

    await sender.send(document)

    status = await wait_for(sender, message_id, "delivered")
    assert status["status"] == "delivered"
    [delivered] = events(status, "delivered")
    assert "MESH" in delivered["detail"]
    mesh_id = mesh_message_of(status, mesh_sandbox.recipient_mailbox)
    # What the gateway holds for the recipient: the envelope its policy lets it see.
    [held] = [m for m in await recipient.inbox(500) if m["message_id"] == message_id]

    got = await asyncio.to_thread(download, mesh_sandbox, mesh_id, acknowledge=False)
    assert got["local_id"] == message_id
    assert got["body"] == held["envelope"]
    assert got["body"]["message_id"] == message_id
    assert got["sender"] == mesh_sandbox.sender_mailbox
    assert got["workflow_id"] == mesh_sandbox.workflow_id
    assert got["subject"] == document["type"]  # never personal data

    # Downloaded but not acknowledged in MESH: still only delivered.
    await asyncio.sleep(1.0)  # several tracking rounds (every 0.2 s)
    status = await sender.status(message_id)
    assert status["status"] == "delivered"
    assert not events(status, "acknowledged")

    await asyncio.to_thread(download, mesh_sandbox, mesh_id, acknowledge=True)

    status = await wait_for(sender, message_id, "acknowledged")
    assert status["status"] == "acknowledged"
    [acknowledged] = events(status, "acknowledged")
    assert "MESH" in acknowledged["detail"]
    assert mesh_sandbox.recipient_mailbox in acknowledged["detail"]
    assert not events(status, "attempt_failed")
    await asyncio.sleep(0.5)  # the tracking rounds that follow add nothing
    status = await sender.status(message_id)
    assert len(events(status, "acknowledged")) == 1
    assert len(events(status, "delivered")) == 1
    assert message_id not in [m["message_id"] for m in await recipient.inbox(500)]


async def deliver_after_restart(
    aiohttp_client: ClientFactory, data_dir: Path, sandbox: MeshSandbox, message_id: str,
) -> None:
    """A gateway that reaches MESH, on the same data: the owed push is made, once."""
    settings = gateway_settings(data_dir, sandbox.sender_settings())
    gateway = await start(aiohttp_client, settings)
    sender = as_org(gateway, settings, RA1["from"])
    status = await wait_for(sender, message_id, "delivered")
    assert status["status"] == "delivered"
    mesh_id = mesh_message_of(status, sandbox.recipient_mailbox)
    got = await asyncio.to_thread(download, sandbox, mesh_id, acknowledge=True)
    assert got["local_id"] == message_id
    await wait_for(sender, message_id, "acknowledged")
    await gateway.close()


async def test_unreachable_mesh_is_retried_as_notes_and_nothing_is_lost(
    aiohttp_client: ClientFactory, tmp_path: Path, mesh_sandbox: MeshSandbox, refused_url: str,
) -> None:
    unreachable = mesh_sandbox.sender_settings(url=refused_url, timeout_s=2.0, max_retries=0)
    settings = gateway_settings(tmp_path, unreachable)
    gateway = await start(aiohttp_client, settings)
    await put_on_mesh(gateway, settings, mesh_sandbox.recipient_mailbox)
    document = fresh_ra1()
    message_id = document["message_id"]
    sender = as_org(gateway, settings, document["from"])
    recipient = as_org(gateway, settings, RECIPIENT)

    await sender.send(document)

    status = await wait_for(sender, message_id, "attempt_failed", count=3)
    assert status["status"] == "accepted"
    assert not events(status, "delivered")
    failures = events(status, "attempt_failed")
    for number, note in enumerate(failures[:3], start=1):
        assert note["detail"].startswith(f"MESH attempt {number}:"), note["detail"]
        assert "cannot connect" in note["detail"]
        assert refused_url in note["detail"]
        assert unreachable.password not in note["detail"]
    subject = document["subject"]
    for personal in (subject["family_name"], subject["pnc_id"], subject["date_of_birth"]):
        assert personal not in json.dumps(failures)
    # A MESH organisation is not handed the message any other way in the meantime.
    assert message_id not in [m["message_id"] for m in await recipient.inbox(500)]
    await gateway.close()

    await deliver_after_restart(aiohttp_client, tmp_path, mesh_sandbox, message_id)


async def test_without_a_mesh_account_the_push_is_owed_and_noted_not_lost(
    aiohttp_client: ClientFactory, tmp_path: Path, mesh_sandbox: MeshSandbox,
) -> None:
    settings = gateway_settings(tmp_path, None)
    gateway = await start(aiohttp_client, settings)
    # The choice is accepted: the organisation's mailbox is known even if this gateway
    # has no MESH account yet.
    await put_on_mesh(gateway, settings, mesh_sandbox.recipient_mailbox)
    document = fresh_ra1()
    message_id = document["message_id"]
    sender = as_org(gateway, settings, document["from"])
    recipient = as_org(gateway, settings, RECIPIENT)

    await sender.send(document)

    status = await wait_for(sender, message_id, "attempt_failed", count=2)
    assert status["status"] == "accepted"
    assert not events(status, "delivered")
    for note in events(status, "attempt_failed"):
        assert "no mesh account configured" in note["detail"]
    assert message_id not in [m["message_id"] for m in await recipient.inbox(500)]
    await gateway.close()

    await deliver_after_restart(aiohttp_client, tmp_path, mesh_sandbox, message_id)
