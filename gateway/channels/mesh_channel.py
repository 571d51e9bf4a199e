"""The MESH channel of the dispatcher, and following MESH acknowledgements back.

A message goes to the organisation's MESH mailbox with the gateway message id as its
local id; it counts as delivered once MESH accepted it. When the organisation downloads
and acknowledges it in MESH, tracking says so, and the share is acknowledged here too,
so the sender's status history shows MESH's acknowledgement.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from gateway.channels.mesh import MeshMailbox, MeshTrackingState, MeshUnavailable
from gateway.channels.outcome import SendFailed, Sent
from gateway.pipeline.audit import AuditLog
from gateway.storage.base import Dispatch, MessageRepository

log = structlog.get_logger(__name__)


class MeshSender:
    channel = "mesh"

    def __init__(self, mailbox: MeshMailbox) -> None:
        self._mailbox = mailbox

    async def send(self, dispatch: Dispatch, now: datetime) -> Sent:
        if dispatch.payload is None:
            raise SendFailed("MESH carries messages only")
        try:
            mesh_id = await self._mailbox.send(
                dispatch.target,
                dispatch.payload,
                local_id=dispatch.message_id,
                subject=dispatch.message_type,
                content_type="application/json",
            )
        except MeshUnavailable as exc:
            raise SendFailed(f"MESH attempt {dispatch.attempts + 1}: {exc.detail}") from None
        return Sent(f"accepted by MESH into mailbox {dispatch.target} as {mesh_id}",
                    external_ref=mesh_id)


async def follow_mesh_acknowledgements(
    messages: MessageRepository,
    audit: AuditLog,
    mailbox: MeshMailbox,
    clock: Callable[[], datetime],
    *,
    batch: int = 200,
) -> int:
    """Acknowledge every MESH-delivered share its recipient has acknowledged in MESH."""
    acknowledged = 0
    for receipt in await messages.awaiting_remote_ack(MeshSender.channel, batch):
        tracking = await mailbox.tracking(receipt.external_ref)
        if tracking.state is MeshTrackingState.ACKNOWLEDGED:
            await messages.remote_acknowledged(
                receipt,
                actor=f"mesh:{receipt.target}",
                detail=f"acknowledged in MESH mailbox {receipt.target}",
                at=clock(),
                audit=audit,
            )
            acknowledged += 1
        elif tracking.state is MeshTrackingState.FAILED:
            log.warning("mesh_undeliverable", message_id=receipt.message_id,
                        recipient=receipt.recipient, status=tracking.raw_status)
    return acknowledged
