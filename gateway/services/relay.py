"""The outbox relay: hands committed outbox rows to the transport, retrying with backoff.

A row is marked published only after ``Transport.publish`` returns, that is after the
transport confirmed it durably. Anything that fails is retried later; nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import structlog

from gateway.periodic import DrainLoop
from gateway.storage.base import MessageRepository, OutboxItem
from gateway.transport.base import (
    PublishOutcome,
    Transport,
    TransportState,
    TransportUnavailable,
)

log = structlog.get_logger(__name__)


def backoff_delay(attempts: int, *, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """Exponential backoff: 0.5 s, 1 s, 2 s, … capped at 30 s."""
    return float(min(cap_s, base_s * (2 ** min(attempts, 16))))


class OutboxRelay(DrainLoop):
    def __init__(
        self,
        messages: MessageRepository,
        transport: Transport,
        *,
        batch_size: int = 200,
        idle_wait_s: float = 0.5,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_confirmed: Callable[[Sequence[OutboxItem]], Awaitable[None]] | None = None,
    ) -> None:
        self._messages = messages
        # Runs before the rows are marked published, so a crash repeats it, never skips it.
        self._on_confirmed = on_confirmed
        self._transport = transport
        self._batch_size = batch_size
        self._clock = clock
        super().__init__("outbox-relay", idle_wait_s)

    async def drain_once(self) -> int:
        """Publish one batch of due rows; returns how many the transport confirmed."""
        if self._transport.state is not TransportState.READY:
            return 0
        items = await self._messages.pending_outbox(self._batch_size, self._clock())
        if not items:
            return 0
        try:
            outcome = await self._transport.publish(items)
        except TransportUnavailable:
            return 0
        except Exception as exc:
            outcome = PublishOutcome(
                (), tuple((item.outbox_id, f"{type(exc).__name__}: {exc}") for item in items)
            )
        if outcome.confirmed:
            if self._on_confirmed is not None:
                confirmed = set(outcome.confirmed)
                await self._on_confirmed([i for i in items if i.outbox_id in confirmed])
            await self._messages.mark_published(outcome.confirmed, self._clock())
        if outcome.failed:
            attempts = {item.outbox_id: item.attempts for item in items}
            for outbox_id, error in outcome.failed:
                until = self._clock() + timedelta(seconds=backoff_delay(attempts[outbox_id]))
                await self._messages.defer_outbox([outbox_id], until, error)
            log.warning(
                "outbox_publish_failed",
                transport=self._transport.name,
                count=len(outcome.failed),
                error=outcome.failed[0][1][:200],
            )
        return len(outcome.confirmed)
