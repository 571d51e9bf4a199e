"""The dispatcher: makes the pushes the gateway owes (webhook and MESH deliveries, e-mail
notices), retrying each with backoff until it lands or its share is closed (expired).

Each owed push is a row written in the same transaction as the event that owed it, so a
crash loses none; each attempt's failure is a note in the message's status history, and a
delivery counts as delivered only when its channel reports success.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import structlog

from gateway.channels.choice import NoticeRule, push_target
from gateway.channels.outcome import ChannelSender, SendFailed, Sent
from gateway.metrics import Metrics
from gateway.periodic import DrainLoop
from gateway.pipeline.audit import AuditLog
from gateway.services.directory import Directory
from gateway.services.inbox import InboxNotifier
from gateway.services.relay import backoff_delay
from gateway.storage.base import Dispatch, DispatchPurpose, MessageRepository

log = structlog.get_logger(__name__)


class Dispatcher(DrainLoop):
    def __init__(
        self,
        messages: MessageRepository,
        audit: AuditLog,
        senders: Mapping[str, ChannelSender],
        directory: Directory,
        notifier: InboxNotifier,
        metrics: Metrics,
        *,
        notice_to: NoticeRule,
        retry_base_s: float,
        retry_cap_s: float,
        batch_size: int = 50,
        idle_wait_s: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._messages = messages
        self._audit = audit
        self._senders = senders
        self._directory = directory
        self._notifier = notifier
        self._metrics = metrics
        self._notice_to = notice_to
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s
        self._batch_size = batch_size
        self._clock = clock
        super().__init__("dispatcher", idle_wait_s)

    async def drain_once(self) -> int:
        """Attempt every due push once; returns how many were attempted."""
        due = await self._messages.due_dispatches(self._clock(), self._batch_size)
        await asyncio.gather(*(self._attempt(dispatch) for dispatch in due))
        return len(due)

    def _current(self, dispatch: Dispatch) -> Dispatch | None:
        """The push as the directory now says; None when the recipient now reads instead.

        An IG lead who moves an organisation off a broken webhook expects what is waiting
        to follow, not to keep retrying the old address until it expires.
        """
        if dispatch.purpose is not DispatchPurpose.DELIVERY:
            return dispatch
        target = push_target(self._directory.get(dispatch.recipient))
        if target is None:
            return None
        return replace(dispatch, channel=target[0], target=target[1])

    async def _attempt(self, owed: Dispatch) -> None:
        now = self._clock()
        dispatch = self._current(owed)
        if dispatch is None:
            await self._succeeded(owed, Sent("the organisation now reads its inbox instead"))
            self._metrics.delivered("inbox")
            return
        sender = self._senders.get(dispatch.channel)
        try:
            if sender is None:
                raise SendFailed(
                    f"{dispatch.channel} attempt {dispatch.attempts + 1}: the gateway has no "
                    f"{dispatch.channel} account configured"
                )
            sent = await sender.send(dispatch, now)
        except Exception as exc:
            detail = str(exc) if isinstance(exc, SendFailed) else (
                f"{dispatch.channel} attempt {dispatch.attempts + 1}: {type(exc).__name__}"
            )
            delay = backoff_delay(
                dispatch.attempts, base_s=self._retry_base_s, cap_s=self._retry_cap_s
            )
            await self._messages.dispatch_failed(
                dispatch, self._clock() + timedelta(seconds=delay), detail, self._clock()
            )
            log.warning(
                "dispatch_failed", message_id=dispatch.message_id, recipient=dispatch.recipient,
                channel=dispatch.channel, purpose=dispatch.purpose.value, detail=detail,
                retry_in_s=delay,
            )
            return
        await self._succeeded(dispatch, sent)
        self._metrics.delivered(dispatch.channel)

    async def _succeeded(self, dispatch: Dispatch, sent: Sent) -> None:
        notice_to = (
            self._notice_to(dispatch.recipient, dispatch.message_type)
            if dispatch.purpose is DispatchPurpose.DELIVERY else None
        )
        await self._messages.dispatch_succeeded(
            dispatch, self._clock(), self._audit, sent.detail, sent.external_ref, notice_to
        )
        if dispatch.purpose is DispatchPurpose.DELIVERY:
            self._notifier.notify(dispatch.recipient)
        if notice_to is not None:
            self.wake()
        log.info(
            "dispatched", message_id=dispatch.message_id, recipient=dispatch.recipient,
            channel=dispatch.channel, purpose=dispatch.purpose.value,
        )
