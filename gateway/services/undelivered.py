"""Messages that could not be delivered: dead-lettered or expired, as NHS MESH reports them,
or refused when the consent they rested on is withdrawn (``gateway.services.consents``).

The recipient's share is closed (it leaves the inbox, and a late copy from the transport
is ignored), the history says why, the audit log records it, and the sender receives an
undelivered report in its own inbox. Reports carry ids and reasons only, never the
person's details. All of it is one transaction (``MessageRepository.unit_of_work``), and
only the process whose statement closed the share (``ShareRows.close``) goes on to the
note, the entry and the report, so processes closing one share at once produce one each.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from gateway.domain.model import MessageStatus
from gateway.metrics import Metrics
from gateway.pipeline.audit import AuditAction, AuditEvent, AuditLog
from gateway.pipeline.reports import REPORT_TYPE, undelivered_report
from gateway.services.inbox import InboxNotifier
from gateway.storage.base import MessageRepository, ShareRows
from gateway.transport.base import Delivery

log = structlog.get_logger(__name__)

_CLOSING_ACTIONS = {
    MessageStatus.DEAD_LETTERED: AuditAction.MESSAGE_DEAD_LETTERED,
    MessageStatus.EXPIRED: AuditAction.MESSAGE_EXPIRED,
    MessageStatus.REFUSED: AuditAction.MESSAGE_REFUSED,
}


async def close_delivery(
    messages: MessageRepository,
    message_id: str,
    recipient: str,
    status: MessageStatus,
    detail: str,
    at: datetime,
    audit: AuditLog,
) -> str | None:
    """End an undelivered or unacknowledged share (dead-lettered, expired, refused) in one
    transaction; see ``close_share``."""
    return await messages.unit_of_work(
        lambda rows: close_share(rows, message_id, recipient, status, detail, at, audit)
    )


def close_share(
    rows: ShareRows,
    message_id: str,
    recipient: str,
    status: MessageStatus,
    detail: str,
    at: datetime,
    audit: AuditLog,
) -> str | None:
    """Close one recipient's share that was not delivered (or, expired, not acknowledged)
    inside the caller's transaction. Returns the sender, or None if there was nothing to
    close: no permitted share, one already acknowledged or closed, or one in the inbox
    that only expiry closes.

    Its outbox row and owed pushes end with it, its history gets the note, the audit log
    the entry (DPA 2018 s.62), and the sender the report (never for a report itself: a
    report about a report would tell nobody anything).
    """
    share = rows.open_share(message_id, recipient)
    if share is None:
        return None
    if share.delivered and status is not MessageStatus.EXPIRED:
        # Already in the inbox, so delivered: a dead letter was a redelivery whose ack
        # was lost (e.g. across a reconnect), and a withdrawal comes too late.
        return None
    if not rows.close(message_id, recipient, status, at, delivered=share.delivered):
        return None  # another process delivered, acknowledged or closed it meanwhile
    reason = f"closed: {status.value}"
    rows.release_outbox(message_id, recipient, at, reason)
    rows.end_dispatches(message_id, recipient, at, reason)
    rows.record_status(message_id, recipient, status, at, detail)
    rows.audit(audit, AuditEvent(
        action=_CLOSING_ACTIONS[status],
        at=at,
        actor="gateway",
        message_id=message_id,
        message_type=share.message_type,
        recipients=(recipient,),
        details={"detail": detail},
        subject=share.subject,
    ))
    if share.message_type != REPORT_TYPE:
        rows.store_report(
            undelivered_report(
                message_id=message_id,
                message_type=share.message_type,
                sender=share.sender,
                recipient=recipient,
                reason=status,
                detail=detail,
                at=at,
            ),
            share.route,
            at,
        )
    return share.sender

class DeadLetterRecorder:
    """The transport's dead-letter handler: record it and tell the sender."""

    def __init__(
        self,
        messages: MessageRepository,
        audit: AuditLog,
        notifier: InboxNotifier,
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._messages = messages
        self._audit = audit
        self._notifier = notifier
        self._metrics = metrics
        self._clock = clock

    async def __call__(self, delivery: Delivery, reason: str) -> None:
        sender = await close_delivery(
            self._messages,
            delivery.message_id,
            delivery.recipient,
            MessageStatus.DEAD_LETTERED,
            f"dead-lettered by the transport: {reason}",
            self._clock(),
            self._audit,
        )
        log.warning(
            "message_dead_lettered",
            message_id=delivery.message_id,
            message_type=delivery.message_type,
            recipient=delivery.recipient,
            reason=reason,
        )
        if sender is not None:
            self._metrics.dead_letters.inc()
            self._notifier.notify(sender)


async def expire_unacknowledged(
    messages: MessageRepository,
    audit: AuditLog,
    notifier: InboxNotifier,
    metrics: Metrics,
    ttl: timedelta,
    now: datetime,
) -> int:
    """Close deliveries not acknowledged within ``ttl`` and report them to the sender;
    each one closed here, not by another process first, counts as expired."""
    due = await messages.unacknowledged_before(now - ttl, limit=500)
    for message_id, recipient in due:
        sender = await close_delivery(
            messages, message_id, recipient, MessageStatus.EXPIRED,
            f"not acknowledged within {ttl}", now, audit,
        )
        if sender is not None:
            metrics.expired.inc()
            notifier.notify(sender)
            log.info("message_expired", message_id=message_id, recipient=recipient)
    return len(due)
