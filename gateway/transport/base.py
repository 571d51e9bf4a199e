"""The transport contract: at-least-once delivery, de-duplicated at the inbox.

``publish`` returns only when every item is durably in the transport's hands (for the
in-process transport: in the inbox; for RabbitMQ: confirmed by the broker). A transport
hands each item to the delivery handler and treats it as done only when the handler
returns; if the handler fails, or the process dies first, the item comes again. The
handler is idempotent, so a redelivery never shows a recipient the same message twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from gateway.storage.base import OutboxItem


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message arriving for one recipient."""

    message_id: str
    recipient: str
    message_type: str
    payload: bytes
    # When the gateway accepted it, where the transport carried that (for the lag metric).
    accepted_at: datetime | None = None


DeliveryHandler = Callable[[Delivery], Awaitable[None]]
DeadLetterHandler = Callable[[Delivery, str], Awaitable[None]]
"""Called with a message the transport gave up on, and why (e.g. its delivery limit)."""


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """Which outbox rows the transport confirmed, and which failed with what error."""

    confirmed: tuple[int, ...]
    failed: tuple[tuple[int, str], ...] = ()

    @classmethod
    def of(
        cls, items: Sequence[OutboxItem], results: Sequence[object | BaseException]
    ) -> PublishOutcome:
        """From each item's result as ``asyncio.gather(..., return_exceptions=True)``
        gives them: an exception fails its item, anything else confirms it."""
        confirmed: list[int] = []
        failed: list[tuple[int, str]] = []
        for item, result in zip(items, results, strict=True):
            if isinstance(result, BaseException):
                failed.append((item.outbox_id, f"{type(result).__name__}: {result}"))
            else:
                confirmed.append(item.outbox_id)
        return cls(tuple(confirmed), tuple(failed))


class TransportUnavailable(Exception):
    """The transport cannot take messages now (e.g. the broker is down); retry later."""


class TransportState(StrEnum):
    READY = "ready"
    DEGRADED = "degraded"
    STOPPED = "stopped"


class Transport(Protocol):
    name: str
    # True when publishing is nothing but the inbox write, in this process (the in-process
    # transport): the acceptance then writes the inbox rows of recipients that read itself,
    # in its own transaction (``gateway.services.inbox.InboxWriter.at_acceptance``).
    delivers_at_acceptance: bool

    async def start(self, handler: DeliveryHandler, on_dead_letter: DeadLetterHandler) -> None: ...

    async def publish(self, items: Sequence[OutboxItem]) -> PublishOutcome:
        """Hand items over; only confirmed rows may be marked published."""
        ...

    async def close(self) -> None: ...

    async def follow_directory(self) -> None:
        """Apply changed delivery channels (which queues the gateway itself consumes)."""
        ...

    @property
    def state(self) -> TransportState: ...
