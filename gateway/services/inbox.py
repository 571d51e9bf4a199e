"""Recipients' inboxes: idempotent delivery from the transport, and live notification.

What the transport brings is delivered at once to an organisation that reads (pull) or
consumes its own queue (AMQP); for one pushed to (webhook, MESH) a push is owed instead,
and the dispatcher delivers it. Either way the transport's copy is settled only after the
commit, so nothing is lost between the two.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import structlog

from gateway.channels.choice import NoticeRule, push_target
from gateway.metrics import Metrics
from gateway.pipeline.audit import AuditLog
from gateway.services.batching import Coalescer
from gateway.services.directory import Directory
from gateway.storage.base import InboxDelivery, MessageRepository
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

    def wake_all(self) -> None:
        """Wake every stream to re-read its inbox: after wake-ups from other processes may
        have been missed (``gateway.services.wakeups``)."""
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    def close(self) -> None:
        """Wake every stream so it ends; open streams must not hold up a shutdown."""
        self.closed = True
        self.wake_all()


class InboxWriter:
    """The transport's delivery handler: commit to the inbox (or owe a push) once, then
    notify."""

    def __init__(
        self,
        messages: MessageRepository,
        audit: AuditLog,
        notifier: InboxNotifier,
        directory: Directory,
        metrics: Metrics,
        *,
        on_dispatch_owed: Callable[[], None] = lambda: None,
        on_lag: Callable[[float], None] = lambda _lag_s: None,
        notice_to: NoticeRule = lambda _recipient, _message_type: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._messages = messages
        self._on_lag = on_lag
        # Deliveries arriving together (a relay batch, a broker's prefetch) are written
        # together (gateway.services.batching).
        self._write: Coalescer[InboxDelivery, bool] = Coalescer(
            lambda deliveries: messages.deliver_all(deliveries, audit))
        self._audit = audit
        self._notifier = notifier
        self._directory = directory
        self._metrics = metrics
        self._on_dispatch_owed = on_dispatch_owed
        self._notice_to = notice_to
        self._clock = clock

    async def __call__(self, delivery: Delivery) -> None:
        org = self._directory.get(delivery.recipient)
        push = push_target(org)
        if push is not None:
            channel, target = push
            owed = await self._messages.hold_for_push(
                delivery.message_id, delivery.recipient, channel, target, self._clock()
            )
            if owed:
                self._on_dispatch_owed()
            log.info("push_owed" if owed else "redelivery_ignored",
                     message_id=delivery.message_id, recipient=delivery.recipient,
                     channel=channel)
            return
        await self.deliver(delivery.message_id, delivery.recipient, delivery.message_type,
                           accepted_at=delivery.accepted_at)

    async def deliver(
        self,
        message_id: str,
        recipient: str,
        message_type: str,
        detail: str | None = None,
        channel: str = "inbox",
        accepted_at: datetime | None = None,
    ) -> None:
        """Put the message in the recipient's inbox (``channel`` ``inbox``), or record it
        handed over to the organisation's own queue (``amqp``); counted once, by channel,
        with its lag from ``accepted_at`` when the transport carried that."""
        notice_to = self._notice_to(recipient, message_type)
        first = await self._write(InboxDelivery(
            message_id, recipient, self._clock(), detail=detail, notice_to=notice_to,
        ))
        if first:
            self._delivered(recipient, channel, accepted_at, notice_to)
        # At debug level: the message's one log line is its acceptance; its delivery is in
        # the audit log, its history and dipgw_deliveries_total, and a second line cost as
        # much as the delivery's own bookkeeping.
        log.debug(
            "message_delivered" if first else "redelivery_ignored",
            message_id=message_id,
            message_type=message_type,
            recipient=recipient,
        )

    def at_acceptance(
        self, message_id: str, recipient: str, message_type: str, at: datetime
    ) -> InboxDelivery | None:
        """The share to put in ``recipient``'s inbox in its acceptance's own transaction,
        or None when the recipient is pushed to (webhook, MESH: the dispatcher's work).

        For the in-process transport only (the application wires it so): there, publishing
        is this very inbox write, so doing it with the acceptance saves the outbox row,
        the relay's publish, a second transaction and its commit, and the message is in
        the inbox the moment it is accepted. A transport that crosses a broker must take
        the outbox path: the broker's copy is what survives this process.
        """
        if push_target(self._directory.get(recipient)) is not None:
            return None
        return InboxDelivery(message_id, recipient, at,
                             notice_to=self._notice_to(recipient, message_type))

    def delivered_at_acceptance(self, deliveries: Sequence[InboxDelivery]) -> None:
        """After the acceptance committed: what follows any delivery (``deliver``)."""
        for delivery in deliveries:
            self._delivered(delivery.recipient, "inbox", delivery.at, delivery.notice_to)

    def _delivered(
        self, recipient: str, channel: str, accepted_at: datetime | None, notice_to: str | None
    ) -> None:
        """Once a delivery has committed, the moment the recipient can first see it: count
        it with its lag, wake the recipient's streams and the dispatcher for a notice."""
        lag_s = None if accepted_at is None else (self._clock() - accepted_at).total_seconds()
        self._metrics.delivered(channel, lag_s)
        if lag_s is not None:
            self._on_lag(lag_s)
        self._notifier.notify(recipient)
        if notice_to is not None:
            self._on_dispatch_owed()
