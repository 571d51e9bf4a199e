"""Messages that could not be delivered: dead-lettered or expired, as NHS MESH reports them.

The recipient's share is closed (it leaves the inbox, and a late copy from the transport
is ignored), the history says why, and the sender receives an undelivered report in its
own inbox. Reports carry ids and reasons only, never the person's details.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from gateway.audit import AuditLog
from gateway.inbox import InboxNotifier
from gateway.model import MessageStatus, isoformat
from gateway.storage.base import MessageRepository
from gateway.transport.base import Delivery

log = structlog.get_logger(__name__)

REPORT_TYPE = "delivery_report"
GATEWAY_SENDER = "DIPGW"
_REPORT_NAMESPACE = uuid.UUID("6f1c1d2e-3b7a-4c55-9e0f-2d4b8a1c9e70")


def report_id(message_id: str, recipient: str, reason: MessageStatus) -> str:
    """Deterministic, so recording the same failure twice yields one report."""
    return str(uuid.uuid5(_REPORT_NAMESPACE, f"{message_id}|{recipient}|{reason.value}"))


def undelivered_report(
    *,
    message_id: str,
    message_type: str,
    sender: str,
    recipient: str,
    reason: MessageStatus,
    detail: str,
    at: datetime,
) -> dict[str, Any]:
    return gateway_report(
        to=sender, outcome="undelivered", reason=reason, detail=detail,
        message_id=message_id, message_type=message_type, recipient=recipient, at=at,
    )


def gateway_report(
    *,
    to: str,
    outcome: str,
    reason: MessageStatus,
    detail: str,
    message_id: str,
    message_type: str,
    recipient: str,
    at: datetime,
) -> dict[str, Any]:
    """A report the gateway puts in ``to``'s inbox about what became of one share of a
    message: ids, times and reasons only, never the person. Its id is derived from the
    share and the reason, so one event yields one report however often it is recorded."""
    return {
        "message_id": report_id(message_id, recipient, reason),
        "type": REPORT_TYPE,
        "schema_version": "1",
        "sent_at": isoformat(at),
        "from": GATEWAY_SENDER,
        "to": [to],
        "body": {
            "outcome": outcome,
            "reason": reason.value,
            "detail": detail,
            "original_message_id": message_id,
            "original_type": message_type,
            "recipient": recipient,
        },
    }


class DeadLetterRecorder:
    """The transport's dead-letter handler: record it and tell the sender."""

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

    async def __call__(self, delivery: Delivery, reason: str) -> None:
        sender = await self._messages.close_delivery(
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
            self._notifier.notify(sender)


async def expire_unacknowledged(
    messages: MessageRepository,
    audit: AuditLog,
    notifier: InboxNotifier,
    ttl: timedelta,
    now: datetime,
) -> int:
    """Close deliveries not acknowledged within ``ttl`` and report them to the sender."""
    due = await messages.unacknowledged_before(now - ttl, limit=500)
    for message_id, recipient in due:
        sender = await messages.close_delivery(
            message_id, recipient, MessageStatus.EXPIRED, f"not acknowledged within {ttl}",
            now, audit,
        )
        if sender is not None:
            notifier.notify(sender)
            log.info("message_expired", message_id=message_id, recipient=recipient)
    return len(due)
