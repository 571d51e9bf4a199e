"""The outbox relay: hands committed outbox rows to the transport, retrying with backoff.

A row is marked published only after ``Transport.publish`` returns, that is after the
transport confirmed it durably. Anything that fails is retried later; nothing is dropped.

Rows this process has just committed are handed over in memory (``hand``), so the relay
publishes them without reading them back; the database stays the truth: a row handed over
and lost with its process (a crash) is claimed from the outbox again, once its lease
(PostgreSQL) has run out, by whichever relay runs next.
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
        self._handed: list[OutboxItem] = []
        # Handed over and not yet settled: a claim from the outbox passes over them.
        self._in_hand: set[int] = set()
        super().__init__("outbox-relay", idle_wait_s)

    def hand(self, items: Sequence[OutboxItem]) -> None:
        """Rows just committed by this process (``Receipt.outbox``), to publish next."""
        self._handed.extend(items)
        self._in_hand.update(item.outbox_id for item in items)
        self.wake()

    async def drain_once(self) -> int:
        """Publish one batch: the rows handed over first, else due rows claimed from the
        outbox; returns how many the transport confirmed."""
        if self._transport.state is not TransportState.READY:
            return 0
        handed = self._handed[:self._batch_size]
        del self._handed[:self._batch_size]
        items = handed or [
            item for item in await self._messages.pending_outbox(self._batch_size, self._clock())
            if item.outbox_id not in self._in_hand
        ]
        if not items:
            return 0
        kept = False
        try:
            try:
                outcome = await self._transport.publish(items)
            except TransportUnavailable:
                # Kept in hand for when the transport is back (on PostgreSQL they are
                # leased to this process, so the outbox would not give them back yet).
                self._handed[:0] = handed
                kept = bool(handed)
                return 0
            except Exception as exc:
                outcome = PublishOutcome(
                    (), tuple((item.outbox_id, f"{type(exc).__name__}: {exc}") for item in items)
                )
            return await self._settle(items, outcome)
        finally:
            if not kept:
                self._in_hand.difference_update(item.outbox_id for item in items)

    async def _settle(self, items: list[OutboxItem], outcome: PublishOutcome) -> int:
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
