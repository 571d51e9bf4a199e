"""Recipients' inboxes: idempotent delivery from the transport, and live notification."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import structlog

from gateway.audit import AuditLog
from gateway.storage.base import MessageRepository
from gateway.transport.base import Delivery

log = structlog.get_logger(__name__)


class InboxNotifier:
    """Wakes live streams (SSE) of an organisation when its inbox gains a message.

    A hint only: streams re-read the inbox from storage, so a missed wake-up costs
    latency, never a message.
    """

    def __init__(self) -> None:
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self.closed = False

    @asynccontextmanager
    async def subscribe(self, org_code: str) -> AsyncIterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters[org_code].add(event)
        try:
            yield event
        finally:
            self._waiters[org_code].discard(event)
            if not self._waiters[org_code]:
                del self._waiters[org_code]

    def notify(self, org_code: str) -> None:
        for event in self._waiters.get(org_code, ()):
            event.set()

    def close(self) -> None:
        """Wake every stream so it ends; open streams must not hold up a shutdown."""
        self.closed = True
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()


class InboxWriter:
    """The transport's delivery handler: commit to the inbox once, then notify."""

    def __init__(
        self,
        messages: MessageRepository,
        audit: AuditLog,
        notifier: InboxNotifier,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._messages = messages
        self._audit = audit
        self._notifier = notifier
        self._clock = clock

    async def __call__(self, delivery: Delivery) -> None:
        first = await self._messages.deliver(
            delivery.message_id, delivery.recipient, self._clock(), self._audit
        )
        if first:
            self._notifier.notify(delivery.recipient)
        log.info(
            "message_delivered" if first else "redelivery_ignored",
            message_id=delivery.message_id,
            message_type=delivery.message_type,
            recipient=delivery.recipient,
        )
