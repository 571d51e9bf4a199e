"""The gateway's own reports to a sender about one share of its message: undelivered
(dead-lettered, expired, refused) or, from ``gateway.pipeline.consent_notice``, withdrawn. Pure:
building a report is a rule; putting it in an inbox is the delivery service's work.

Reports carry ids, times and reasons only, never the person's details (UK GDPR Art. 5(1)(c)).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from gateway.domain.model import MessageStatus, isoformat

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
