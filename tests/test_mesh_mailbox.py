"""The MESH channel against a real MESH API (mesh-sandbox, run locally by tests.mesh_support).

The gateway sends through ``MeshMailbox``; the recipient organisation is played with
mesh-client directly, as a provider's own MESH client would: list the inbox, download,
acknowledge. Tracking then tells the gateway the message was delivered.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator

import pytest

from gateway.channels.mesh import (
    MeshMailbox,
    MeshSettings,
    MeshTrackingState,
    MeshUnavailable,
    tracking_from_response,
)
from gateway.domain.errors import ConfigurationError
from tests.mesh_support import MeshSandbox, mesh_sandbox_fixture  # noqa: F401

# Arbitrary bytes, including ones that are not UTF-8, must arrive unchanged.
PAYLOAD = b'{"subject": {"name": "Alex Example"}}\n' + bytes(range(256))


def gateway_message_id() -> str:
    return f"msg-{uuid.uuid4()}"


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback port that is bound but not listening: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_sent_message_is_downloaded_acknowledged_and_tracked(
    mesh_sandbox: MeshSandbox,
) -> None:
    local_id = gateway_message_id()
    async with MeshMailbox(mesh_sandbox.sender_settings()) as mailbox:
        await mailbox.check()
        mesh_id = await mailbox.send(
            mesh_sandbox.recipient_mailbox, PAYLOAD, local_id=local_id, subject="DIP message"
        )
        assert mesh_id

        before = await mailbox.tracking(mesh_id)
        assert before.state is MeshTrackingState.ACCEPTED
        assert not before.acknowledged and not before.final
        assert before.local_id == local_id
        assert before.recipient == mesh_sandbox.recipient_mailbox

        def receive() -> None:
            with mesh_sandbox.recipient_client() as recipient:
                assert mesh_id in recipient.list_messages()
                message = recipient.retrieve_message(mesh_id)
                try:
                    assert message.read() == PAYLOAD
                finally:
                    message.close()  # type: ignore[no-untyped-call]
                assert message.local_id == local_id
                assert message.sender == mesh_sandbox.sender_mailbox
                assert message.workflow_id == mesh_sandbox.workflow_id
                assert message.subject == "DIP message"
                recipient.acknowledge_message(mesh_id)
                assert mesh_id not in recipient.list_messages()

        await asyncio.to_thread(receive)

        after = await mailbox.tracking(mesh_id)
        assert after.state is MeshTrackingState.ACKNOWLEDGED
        assert after.acknowledged and after.final
        assert after.raw_status.lower() == "acknowledged"
        assert after.local_id == local_id


async def test_message_not_yet_acknowledged_is_only_accepted(mesh_sandbox: MeshSandbox) -> None:
    async with MeshMailbox(mesh_sandbox.sender_settings()) as mailbox:
        mesh_ids = await asyncio.gather(
            *(
                mailbox.send(mesh_sandbox.recipient_mailbox, PAYLOAD, local_id=gateway_message_id())
                for _ in range(3)
            )
        )
        assert len(set(mesh_ids)) == 3
        for mesh_id in mesh_ids:
            tracking = await mailbox.tracking(mesh_id)
            assert tracking.state is MeshTrackingState.ACCEPTED
            assert tracking.raw_status.lower() == "accepted"
            assert not tracking.acknowledged


async def test_tracking_an_unknown_message_is_unknown(mesh_sandbox: MeshSandbox) -> None:
    async with MeshMailbox(mesh_sandbox.sender_settings()) as mailbox:
        tracking = await mailbox.tracking(uuid.uuid4().hex.upper())
    assert tracking.state is MeshTrackingState.UNKNOWN
    assert not tracking.final


async def test_unreachable_mesh_raises_mesh_unavailable(refused_url: str) -> None:
    settings = MeshSettings(
        url=refused_url,
        mailbox="DIPGWOT001",
        password="password",
        shared_key="key",
        workflow_id="DIPGW_MESSAGE",
        timeout_s=5,
        max_retries=0,
    )
    async with MeshMailbox(settings) as mailbox:
        with pytest.raises(MeshUnavailable) as sending:
            await mailbox.send("TPROVOT001", PAYLOAD, local_id=gateway_message_id())
        with pytest.raises(MeshUnavailable) as tracking:
            await mailbox.tracking("20260101000000000000_ABCDEF")
    for raised in (sending.value, tracking.value):
        message = str(raised)
        assert "cannot connect" in message
        assert refused_url in message
        assert "Connection refused" in message
        assert raised.retryable
        assert raised.status is None
        assert "Alex" not in message
    assert "sending a message" in str(sending.value)


async def test_wrong_password_raises_mesh_unavailable(mesh_sandbox: MeshSandbox) -> None:
    settings = mesh_sandbox.sender_settings(password="not-the-password")
    async with MeshMailbox(settings) as mailbox:
        with pytest.raises(MeshUnavailable) as handshake:
            await mailbox.check()
        with pytest.raises(MeshUnavailable) as sending:
            await mailbox.send(
                mesh_sandbox.recipient_mailbox, PAYLOAD, local_id=gateway_message_id()
            )
        with pytest.raises(MeshUnavailable) as tracking:
            await mailbox.tracking(uuid.uuid4().hex.upper())
    assert handshake.value.status == 403
    assert "HTTP 403" in str(handshake.value)
    assert "password" in str(handshake.value)
    assert "Invalid Authentication Token" in str(sending.value)
    assert tracking.value.status == 403
    for raised in (handshake.value, sending.value, tracking.value):
        assert not raised.retryable
        assert "not-the-password" not in str(raised)
        assert "Alex" not in str(raised)


async def test_unknown_recipient_is_refused(mesh_sandbox: MeshSandbox) -> None:
    async with MeshMailbox(mesh_sandbox.sender_settings()) as mailbox:
        with pytest.raises(MeshUnavailable) as raised:
            await mailbox.send("NOSUCHOT01", PAYLOAD, local_id=gateway_message_id())
    assert not raised.value.retryable
    assert "refused sending a message" in str(raised.value)


async def test_closed_mailbox_refuses_calls(mesh_sandbox: MeshSandbox) -> None:
    mailbox = MeshMailbox(mesh_sandbox.sender_settings())
    await mailbox.close()
    await mailbox.close()
    with pytest.raises(MeshUnavailable, match="closed"):
        await mailbox.tracking("ANY")


async def test_bad_arguments_are_programming_errors(mesh_sandbox: MeshSandbox) -> None:
    async with MeshMailbox(mesh_sandbox.sender_settings()) as mailbox:
        with pytest.raises(ValueError, match="empty"):
            await mailbox.send(mesh_sandbox.recipient_mailbox, b"", local_id="x")
        with pytest.raises(ValueError, match="subject"):
            await mailbox.send(
                mesh_sandbox.recipient_mailbox, PAYLOAD, local_id="x", subject="caf\u00e9"
            )


def test_settings_from_environment() -> None:
    assert MeshSettings.from_env({}) is None
    settings = MeshSettings.from_env(
        {
            "DIPGW_MESH_URL": "https://mesh.example.invalid",
            "DIPGW_MESH_MAILBOX": "DIPGWOT001",
            "DIPGW_MESH_PASSWORD": "secret-password",
            "DIPGW_MESH_SHARED_KEY": "secret-key",
            "DIPGW_MESH_WORKFLOW_ID": "DIPGW_MESSAGE",
            "DIPGW_MESH_CLIENT_CERT": "/etc/dipgw/mesh.crt",
            "DIPGW_MESH_CLIENT_KEY": "/etc/dipgw/mesh.key",
            "DIPGW_MESH_TIMEOUT_SECONDS": "30",
        }
    )
    assert settings is not None
    assert settings.timeout_s == 30
    assert "secret" not in repr(settings)
    with pytest.raises(ConfigurationError, match="DIPGW_MESH_PASSWORD"):
        MeshSettings.from_env(
            {"DIPGW_MESH_URL": "https://mesh.example.invalid", "DIPGW_MESH_MAILBOX": "X"}
        )
    with pytest.raises(ConfigurationError, match="https"):
        MeshSettings(
            url="http://mesh.example.invalid",
            mailbox="X",
            password="p",
            shared_key="k",
            workflow_id="W",
        )
    with pytest.raises(ConfigurationError, match="together"):
        MeshSettings.from_env(
            {
                "DIPGW_MESH_URL": "https://mesh.example.invalid",
                "DIPGW_MESH_MAILBOX": "X",
                "DIPGW_MESH_PASSWORD": "p",
                "DIPGW_MESH_SHARED_KEY": "k",
                "DIPGW_MESH_WORKFLOW_ID": "W",
                "DIPGW_MESH_CLIENT_CERT": "/etc/dipgw/mesh.crt",
            }
        )
    # A send that could outlast the lease on a claimed push (5 minutes) is refused.
    with pytest.raises(ConfigurationError, match="below 75"):
        MeshSettings.from_env({
            "DIPGW_MESH_URL": "https://mesh.example.invalid", "DIPGW_MESH_MAILBOX": "X",
            "DIPGW_MESH_PASSWORD": "p", "DIPGW_MESH_SHARED_KEY": "k",
            "DIPGW_MESH_WORKFLOW_ID": "W", "DIPGW_MESH_TIMEOUT_SECONDS": "75",
        })


def test_tracking_statuses() -> None:
    def state(response: dict[str, object]) -> MeshTrackingState:
        return tracking_from_response("ID", response).state

    assert state({"status": "accepted", "status_success": True}) is MeshTrackingState.ACCEPTED
    assert state({"status": "Acknowledged"}) is MeshTrackingState.ACKNOWLEDGED
    assert state({"status": "undeliverable"}) is MeshTrackingState.FAILED
    assert state({"status": "accepted", "status_success": False}) is MeshTrackingState.FAILED
    assert state({"status": "Accepted", "statusSuccess": "ERROR"}) is MeshTrackingState.FAILED
    assert state({"status": "something new"}) is MeshTrackingState.UNKNOWN
    assert state({}) is MeshTrackingState.UNKNOWN
