"""The 24-hour clock on disengagement alerts (H 4.1.3, 4.11.3: act within 24 hours).

An alert reaches the receiving organisation's live stream at once; one not acknowledged
within ``DIPGW_ALERT_ESCALATION_SECONDS`` (default 24 h) is escalated: its history says
so for the sender to see, the audit log records it, and the recipient's open streams are
woken so a SPOC console can re-alert.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from gateway.audit import AuditLog
from gateway.inbox import InboxNotifier
from gateway.model import MessageType
from gateway.storage.base import MessageRepository

log = structlog.get_logger(__name__)


async def escalate_alerts(
    messages: MessageRepository,
    audit: AuditLog,
    notifier: InboxNotifier,
    after: timedelta,
    now: datetime,
) -> int:
    """Escalate, once, every alert still unacknowledged ``after`` its delivery."""
    escalated = await messages.escalate_unacknowledged(
        MessageType.DISENGAGEMENT_ALERT.value,
        now - after,
        f"not acknowledged within {after}",
        now,
        audit,
    )
    for message_id, recipient, _ in escalated:
        notifier.notify(recipient)
        log.warning("alert_escalated", message_id=message_id, recipient=recipient)
    return len(escalated)
