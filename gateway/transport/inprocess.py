"""The embedded transport: publishing is delivering, inside this process.

``publish`` returns only after the delivery handler has committed each item to its
inbox, so the relay marks an outbox row published only once the message is delivered.
A crash in between leaves the row unpublished; it is delivered again after restart and
the inbox's de-duplication absorbs the repeat.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.storage.base import OutboxItem
from gateway.transport.base import Delivery, DeliveryHandler, TransportState


class InProcessTransport:
    name = "in-process"

    def __init__(self) -> None:
        self._handler: DeliveryHandler | None = None

    async def start(self, handler: DeliveryHandler) -> None:
        self._handler = handler

    async def publish(self, items: Sequence[OutboxItem]) -> None:
        if self._handler is None:
            raise RuntimeError("transport not started")
        for item in items:
            await self._handler(
                Delivery(
                    message_id=item.message_id,
                    recipient=item.recipient,
                    message_type=item.message_type,
                    payload=item.payload,
                )
            )

    async def close(self) -> None:
        self._handler = None

    @property
    def state(self) -> TransportState:
        return TransportState.READY if self._handler is not None else TransportState.STOPPED
