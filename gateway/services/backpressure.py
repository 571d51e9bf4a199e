"""Backpressure: intake waits while delivery is behind, so the backlog stays bounded.

The gateway accepts a message in one transaction and delivers it in others. If intake
outruns delivery for long, the outbox grows without limit, the lag of every delivery
with it, and a CJIT's 24-hour alert clock (Handbook section 3) starts on messages it
cannot yet see. So while delivery is behind, new messages are answered 503 with a
``Retry-After`` (RFC 9110 sections 15.6.4 and 10.2.3): nothing is stored, and the sender
(an agency system, ``GatewayClient``, an adapter) sends again after the wait.

"Behind" is read every ``interval_s`` from two places, so that it holds across processes
and transports:

- the outbox, shared by every process on the database: how many accepted shares are not
  yet handed to the transport, and, while the transport is up, how long the oldest the
  relay has not yet tried has waited;
- this process's own deliveries since the last reading: the longest time from acceptance
  to the recipient's inbox (with RabbitMQ this includes the broker's queue).

Either above its bound sheds intake until a reading finds both below it again. While the
broker is down the outbox absorbs the outage, as it is there to, up to the row bound;
and a row waiting out its retry backoff (a recipient whose delivery keeps failing) counts
towards the row bound only, so one poisoned message never stops everyone's intake.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from gateway.domain.errors import Overloaded
from gateway.storage.base import MessageRepository

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class BacklogBounds:
    """When delivery counts as behind (``DIPGW_DELIVERY_BACKLOG_LIMIT``,
    ``DIPGW_DELIVERY_LAG_LIMIT_SECONDS``)."""

    rows: int
    lag_s: float


class DeliveryPressure:
    """Says whether intake may go ahead; fed by readings of the outbox and by deliveries."""

    def __init__(
        self,
        messages: MessageRepository,
        bounds: BacklogBounds,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_change: Callable[[bool], None] = lambda _paused: None,
        transport_up: Callable[[], bool] = lambda: True,
    ) -> None:
        self._messages = messages
        self._transport_up = transport_up
        self._on_change = on_change
        self._bounds = bounds
        self._clock = clock
        self._longest_lag_s = 0.0
        self._behind: str | None = None

    @property
    def behind(self) -> str | None:
        """Why intake is being refused, in words for the log; None while it is not."""
        return self._behind

    def delivered(self, lag_s: float) -> None:
        """Note one delivery and how long it took from acceptance."""
        if lag_s > self._longest_lag_s:
            self._longest_lag_s = lag_s

    async def read(self) -> None:
        """Take one reading: the outbox's backlog and this process's longest lag since the
        last reading (taken then forgotten, so one slow delivery pauses one interval)."""
        rows, oldest = await self._messages.delivery_backlog()
        oldest_s = 0.0 if oldest is None or not self._transport_up() else (
            self._clock() - oldest).total_seconds()
        lag_s, self._longest_lag_s = self._longest_lag_s, 0.0
        bounds = self._bounds
        reason = None
        if rows >= bounds.rows:
            reason = f"{rows} shares wait for the transport (bound {bounds.rows})"
        elif max(oldest_s, lag_s) >= bounds.lag_s:
            reason = (f"deliveries are {max(oldest_s, lag_s):.2f} s behind "
                      f"(bound {bounds.lag_s} s)")
        if (reason is None) != (self._behind is None):
            if reason is None:
                log.info("intake_resumed")
            else:
                log.warning("intake_paused", reason=reason)
            self._on_change(reason is not None)
        self._behind = reason

    def admit(self) -> None:
        """Refuse new messages while delivery is behind; the wait asked for is one lag
        bound, at least a second (``Retry-After`` is in whole seconds)."""
        if self._behind is not None:
            raise Overloaded(
                "Delivery is behind intake just now, so the gateway is not accepting new "
                "messages; nothing was stored. Send it again after the Retry-After wait.",
                retry_after_s=max(1, math.ceil(self._bounds.lag_s)),
            )
