"""The embedded transport: publishing is delivering, inside this process.

``publish`` returns only after the delivery handler has committed each item to its
inbox, so the relay marks an outbox row published only once the message is delivered.
A crash in between leaves the row unpublished; it is delivered again after restart and
the inbox's de-duplication absorbs the repeat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.storage.base import OutboxItem
from gateway.transport.base import (
    DeadLetterHandler,
    Delivery,
    DeliveryHandler,
    PublishOutcome,
    TransportState,
)


class InProcessTransport:
    name = "in-process"
    delivers_at_acceptance = True

    def __init__(self) -> None:
        self._handler: DeliveryHandler | None = None

    async def start(self, handler: DeliveryHandler, on_dead_letter: DeadLetterHandler) -> None:
        # Nothing is dead-lettered here: a failed delivery stays in the outbox and is retried.
        self._handler = handler

    async def publish(self, items: Sequence[OutboxItem]) -> PublishOutcome:
        """Deliver every item at once rather than one after another: the deliveries then
        share the database's group commits (``gateway.storage.engine``), where in turn each
        waited a whole commit cycle behind the intake and delivery fell behind it without
        limit. Each item's inbox transaction is queued in the items' order, so one
        recipient's messages keep their order in its inbox."""
        handler = self._handler
        if handler is None:
            raise RuntimeError("transport not started")
        results = await asyncio.gather(
            *(handler(Delivery(
                message_id=item.message_id,
                recipient=item.recipient,
                message_type=item.message_type,
                payload=item.payload,
                accepted_at=item.accepted_at,
            )) for item in items),
            return_exceptions=True,
        )
        return PublishOutcome.of(items, results)

    async def close(self) -> None:
        self._handler = None

    async def follow_directory(self) -> None:
        """Every organisation reads through the gateway here: there are no own queues."""

    @property
    def state(self) -> TransportState:
        return TransportState.READY if self._handler is not None else TransportState.STOPPED
