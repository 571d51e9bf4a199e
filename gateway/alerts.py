"""The 24-hour clock on disengagement alerts (H 4.1.3, 4.11.3: act within 24 hours).

An alert reaches the receiving organisation's live stream at once; one not acknowledged
within ``DIPGW_ALERT_ESCALATION_SECONDS`` (default 24 h) is escalated: its history says
so for the sender to see, the audit log records it, and the recipient's open streams are
woken so a SPOC console can re-alert.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from gateway.audit import AuditLog
from gateway.inbox import InboxNotifier
from gateway.model import MessageType
from gateway.periodic import Periodic
from gateway.storage.base import MessageRepository

log = structlog.get_logger(__name__)


class AlertEscalator:
    def __init__(
        self,
        messages: MessageRepository,
        audit: AuditLog,
        notifier: InboxNotifier,
        *,
        after: timedelta,
        interval_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._messages = messages
        self._audit = audit
        self._notifier = notifier
        self._after = after
        self._clock = clock
        self._periodic = Periodic("alert-escalator", self.escalate_due, interval_s)

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def escalate_due(self) -> int:
        now = self._clock()
        escalated = await self._messages.escalate_unacknowledged(
            MessageType.DISENGAGEMENT_ALERT.value,
            now - self._after,
            f"not acknowledged within {self._after}",
            now,
            self._audit,
        )
        for message_id, recipient, _ in escalated:
            self._notifier.notify(recipient)
            log.warning("alert_escalated", message_id=message_id, recipient=recipient)
        return len(escalated)
