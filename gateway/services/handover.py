"""The AMQP channel: the organisation consumes its own RabbitMQ queue.

The gateway does not consume that queue, so the broker's publish confirmation is the
hand-over: the message is then durably in the organisation's own queue, and is recorded as
delivered. Whether the gateway consumes a queue is the transport's live answer, so a
channel changed while running never records as delivered a message the gateway took.
Acknowledgement stays with the inbox API (``POST /v1/inbox/{id}/ack``), and the queue's
dead-letter queue is still watched, so a message its consumer rejects is reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from gateway.services.inbox import InboxWriter
from gateway.storage.base import OutboxItem


class QueueHandover:
    """The relay's confirmation hook: confirmed rows for queues the gateway does not
    consume itself (the organisation does) are delivered."""

    def __init__(
        self,
        writer: InboxWriter,
        gateway_consumes: Callable[[str], bool],
        queue_of: Callable[[str], str],
    ) -> None:
        self._writer = writer
        self._gateway_consumes = gateway_consumes
        self._queue_of = queue_of

    async def __call__(self, items: Sequence[OutboxItem]) -> None:
        direct = [item for item in items if not self._gateway_consumes(item.recipient)]
        await asyncio.gather(*(
            self._writer.deliver(
                item.message_id, item.recipient, item.message_type,
                detail=f"in the organisation's own queue {self._queue_of(item.recipient)}",
                channel="amqp", accepted_at=item.accepted_at,
            )
            for item in direct
        ))
