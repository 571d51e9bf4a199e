"""What a recipient is told when consent behind a share it received is withdrawn. No I/O.

UK GDPR Art. 19 asks a controller to tell each recipient of personal data about its
erasure or restriction; withdrawal of consent is the ground for both (Art. 17(1)(b)). The
notice names the message and the times, never the person: the recipient looks the
message up in its own records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.domain.model import MessageStatus, isoformat
from gateway.pipeline.reports import gateway_report


def withdrawal_notice(
    *,
    message_id: str,
    message_type: str,
    recipient: str,
    consent_id: str,
    disclosed_at: datetime,
    withdrawn_at: datetime,
    acknowledged: bool,
) -> dict[str, Any]:
    """A gateway report for the recipient's inbox; one share yields one notice."""
    if acknowledged:
        detail = (
            f"Message {message_id} was disclosed to you at {isoformat(disclosed_at)} and you "
            f"acknowledged it. The person withdrew the consent it rested on (record "
            f"{consent_id}) at {isoformat(withdrawn_at)}: review any further use of it."
        )
    else:
        detail = (
            f"Message {message_id} was disclosed to you at {isoformat(disclosed_at)}. The "
            f"person withdrew the consent it rested on (record {consent_id}) at "
            f"{isoformat(withdrawn_at)} before you read it, so it has left your inbox: do "
            "not use any copy you hold."
        )
    return gateway_report(
        to=recipient, outcome="consent_withdrawn", reason=MessageStatus.WITHDRAWN,
        detail=detail, message_id=message_id, message_type=message_type,
        recipient=recipient, at=withdrawn_at,
    )
