"""The e-mail channel of the dispatcher: a notice to the SPOC per owed notice dispatch.

The notice says only where to fetch the message (``gateway.channels.email``); the SPOC
reads it through the inbox API, so the alert itself never travels by e-mail.
"""

from __future__ import annotations

from datetime import datetime

from gateway.channels.email import EmailNotifier, Notice, NoticeKind, NoticeNotSent
from gateway.channels.outcome import SendFailed, Sent
from gateway.storage.base import Dispatch, DispatchPurpose


class EmailNoticeSender:
    channel = "email"

    def __init__(self, notifier: EmailNotifier, gateway_base_url: str) -> None:
        self._notifier = notifier
        self._base_url = gateway_base_url

    async def send(self, dispatch: Dispatch, now: datetime) -> Sent:
        kind = (
            NoticeKind.ESCALATED
            if dispatch.purpose is DispatchPurpose.ESCALATION_NOTICE
            else NoticeKind.DELIVERED
        )
        notice = Notice(
            kind=kind,
            message_id=dispatch.message_id,
            message_type=dispatch.message_type,
            org_code=dispatch.recipient,
            arrived_at=dispatch.created_at,
            gateway_base_url=self._base_url,
        )
        try:
            await self._notifier.send(dispatch.target, notice)
        except NoticeNotSent as exc:
            raise SendFailed(
                f"e-mail notice attempt {dispatch.attempts + 1}: {exc.detail}"
            ) from None
        return Sent(f"{kind.value} notice e-mailed to the SPOC's secure address")
