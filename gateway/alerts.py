"""The 24-hour clock on disengagement alerts (H 4.1.3, 4.11.3: act within 24 hours).

An alert reaches the receiving organisation's live stream at once; one not acknowledged
within ``DIPGW_ALERT_ESCALATION_SECONDS`` (default 24 h) is escalated: its history says
so for the sender to see, the audit log records it, the recipient's open streams are
woken so a SPOC console can re-alert, and the SPOC is e-mailed when notices are on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from gateway.audit import AuditLog
from gateway.channels.choice import NoticeRule
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
    *,
    notice_to: NoticeRule = lambda _recipient, _message_type: None,
    on_notice_owed: Callable[[], None] = lambda: None,
) -> int:
    """Escalate, once, every alert still unacknowledged ``after`` its delivery; the SPOC is
    owed an escalation e-mail where ``notice_to`` gives an address."""
    alert = MessageType.DISENGAGEMENT_ALERT.value
    escalated = await messages.escalate_unacknowledged(
        alert,
        now - after,
        f"not acknowledged within {after}",
        now,
        audit,
        notice_to=lambda recipient: notice_to(recipient, alert),
    )
    for message_id, recipient, _ in escalated:
        notifier.notify(recipient)
        log.warning("alert_escalated", message_id=message_id, recipient=recipient)
    if escalated:
        on_notice_owed()
    return len(escalated)
