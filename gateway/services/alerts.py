"""The 24-hour clock on disengagement alerts (H 4.1.3, 4.11.3: act within 24 hours).

An alert reaches the receiving organisation's live stream at once; one not acknowledged
within ``DIPGW_ALERT_ESCALATION_SECONDS`` (default 24 h) is escalated: its history says
so for the sender to see, the audit log records it, the recipient's open streams are
woken so a SPOC console can re-alert, and the SPOC is e-mailed when notices are on.

"Once" holds across processes: storage inserts the escalation notes in one guarded
statement (``ShareRows.note_escalations``) and only the shares it reports are audited and
e-mailed, in the same transaction, so a run that finds them already escalated does
nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from gateway.channels.choice import NoticeRule
from gateway.domain.model import MessageType
from gateway.pipeline.audit import AuditAction, AuditEvent, AuditLog
from gateway.services.inbox import InboxNotifier
from gateway.storage.base import DispatchPurpose, MessageRepository, ShareRows

log = structlog.get_logger(__name__)


async def escalate_unacknowledged(
    messages: MessageRepository,
    message_type: str,
    delivered_before: datetime,
    detail: str,
    at: datetime,
    audit: AuditLog,
    notice_to: Callable[[str], str | None] = lambda _: None,
) -> list[tuple[str, str, str]]:
    """Mark, once, every delivered share of a type still unacknowledged since before a
    time as escalated, with its audit entry; returns (message id, recipient, sender) of
    each. An escalation e-mail is owed, in the same transaction, to
    ``notice_to(recipient)`` if any."""
    def escalate(rows: ShareRows) -> list[tuple[str, str, str]]:
        overdue = rows.note_escalations(message_type, delivered_before, detail, at)
        for share in overdue:
            rows.audit(audit, AuditEvent(
                action=AuditAction.ALERT_ESCALATED, at=at, actor="gateway",
                message_id=share.message_id, message_type=message_type,
                recipients=(share.recipient,), subject=share.subject,
                details={"detail": detail},
            ))
            address = notice_to(share.recipient)
            if address is not None:
                rows.owe_dispatch(share.message_id, share.recipient, "email",
                                  DispatchPurpose.ESCALATION_NOTICE, address, at)
        return [(share.message_id, share.recipient, share.sender) for share in overdue]

    return await messages.unit_of_work(escalate)


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
    escalated = await escalate_unacknowledged(
        messages,
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
