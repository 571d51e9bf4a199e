"""RabbitMQ transport (aio-pika): confirmed publishing, manual-ack consuming, reconnection.

Publishing: a channel with publisher confirms and ``on_return_raises``; every outbox row
is published ``mandatory`` and counts as confirmed only on a ``Basic.Ack``. A batch is
published concurrently, so many confirms are in flight at once.

Consuming: one channel with a bounded prefetch consumes the queue of every organisation
not on the AMQP channel (those consume their own) and acks only after the inbox commit.
``follow_directory``, called after every directory refresh, declares the queues of
organisations added since (by this process or another on the same database) and starts or
cancels consumers when a delivery channel changed. A failed
delivery is nacked and requeued; the quorum queue counts it and dead-letters it after
``x-delivery-limit``. The dead-letter queues are consumed too, so a dead-lettered message
is recorded and its sender told.

Reconnection: ``connect_robust`` restores channels, topology and consumers after a broker
restart or a dropped connection; references to the channels are kept so they are not
garbage-collected. Until the first connection succeeds the gateway keeps accepting into
the outbox and retries in the background. A message prefetched before a reconnect cannot
be acked afterwards: the ack failure is ignored, the broker redelivers it, and the inbox's
de-duplication absorbs the copy.

Acknowledging: a handled message is not acked at once. Per consuming channel, a flusher
task acks, right after the current burst of callbacks, the highest delivery tag below
which every delivery on that channel is settled, in one ``basic.ack`` with ``multiple``.
A failed delivery is nacked on its own first; only once its nack is sent does it count as
settled, so a later multiple ack never covers a message that was not handled. Handled
messages waiting behind one whose handler is still running are acked individually after
a short stall, so a slow handler does not hold the prefetch window.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustExchange,
)
from pamqp.commands import Basic

from gateway.domain.model import DeliveryChannel, Organisation, isoformat
from gateway.periodic import cancel
from gateway.storage.base import OutboxItem
from gateway.transport.base import (
    DeadLetterHandler,
    Delivery,
    DeliveryHandler,
    PublishOutcome,
    TransportState,
    TransportUnavailable,
)
from gateway.transport.topology import Topology

log = structlog.get_logger(__name__)

RECIPIENT_HEADER = "dipgw-recipient"
# When the gateway accepted the message (RFC 3339), so a consumer can measure its lag.
ACCEPTED_HEADER = "dipgw-accepted-at"
# Raised when a channel or connection went away under an operation; all are retryable.
_CHANNEL_GONE = (
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelClosed,
    ConnectionError,
    RuntimeError,
)


_PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
# How long handled deliveries wait behind a still-running handler on the same channel
# before they are acked one by one instead of in one multiple ack.
_ACK_STALL_S = 0.02


class _ChannelAcks:
    """Batched acknowledgement of one channel's deliveries (delivery tags are per channel
    and increase from 1; aiormq starts the callbacks in delivery order).

    ``floor``: every tag up to it is settled. Above it, a tag is in flight (its handler
    runs), done (handled, not yet acked) or settled (acked individually, or nacked). One
    flusher task at a time sends the acks, so they reach the broker in order.
    """

    __slots__ = (
        "channel",
        "closing",
        "done",
        "floor",
        "flusher",
        "in_flight",
        "settled",
        "wake",
    )

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.floor = 0
        self.in_flight: set[int] = set()
        self.done: set[int] = set()
        self.settled: set[int] = set()
        self.flusher: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()
        self.closing = False

    def finished(self, tag: int) -> None:
        """The handler of ``tag`` returned: ack it soon."""
        self.in_flight.discard(tag)
        self.done.add(tag)
        self._poke()

    def rejected(self, tag: int) -> None:
        """``tag`` was nacked (the nack already sent): later multiple acks may pass it."""
        self.in_flight.discard(tag)
        self.settled.add(tag)
        self._poke()

    def _poke(self) -> None:
        self.wake.set()
        if self.flusher is None:
            self.flusher = asyncio.get_running_loop().create_task(
                self._flush(), name="amqp-ack")

    def _take(self, force: bool) -> tuple[int | None, list[int], int | None]:
        """What to settle now: the highest handled tag of the settled run above ``floor``
        (for one multiple ack); handled tags beyond a still-running handler, to ack one by
        one when forced; and the tag ending the run if no callback has it although a later
        one finished (callbacks start in delivery order, so aiormq dropped it, as it does
        a delivery racing a consumer cancel, or its handler was cancelled): it is nacked,
        to be delivered again, and never covered by a multiple ack while unsettled."""
        top: int | None = None
        tag = self.floor + 1
        while True:
            if tag in self.done:
                self.done.remove(tag)
                top = tag
            elif tag in self.settled:
                self.settled.remove(tag)
            else:
                break
            tag += 1
        self.floor = tag - 1
        singles: list[int] = []
        if self.done and tag not in self.in_flight and not self.closing:
            return top, singles, tag
        if self.done and (force or self.closing):
            singles = sorted(self.done)
            self.done.clear()
            self.settled.update(singles)
        return top, singles, None

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        blocked_since: float | None = None
        try:
            while True:
                await asyncio.sleep(0)  # let the current burst of callbacks finish
                self.wake.clear()
                force = blocked_since is not None and (
                    loop.time() - blocked_since >= _ACK_STALL_S)
                top, singles, dropped = self._take(force)
                if dropped is not None:
                    if top is not None:
                        await self.channel.basic_ack(top, multiple=True)
                    await self.channel.basic_nack(dropped, requeue=True)
                    self.settled.add(dropped)
                    continue
                if top is None and not singles:
                    if not self.done:
                        return
                    # Handled tags wait behind a handler still running.
                    if blocked_since is None:
                        blocked_since = loop.time()
                    remaining = _ACK_STALL_S - (loop.time() - blocked_since)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), max(remaining, 0.0))
                    continue
                blocked_since = None
                if top is not None:
                    await self.channel.basic_ack(top, multiple=True)
                for tag in singles:
                    await self.channel.basic_ack(tag)
        except _CHANNEL_GONE:
            # The broker requeues what this channel had unacked; the inbox de-duplicates.
            log.info("amqp_ack_after_channel_loss_ignored")
            self.done.clear()
        finally:
            self.flusher = None


class RabbitMqTransport:
    name = "rabbitmq"
    delivers_at_acceptance = False  # the broker's copy is what survives this process

    def __init__(
        self,
        url: str,
        topology: Topology,
        organisations: Callable[[], Sequence[Organisation]],
        *,
        prefetch: int = 200,
        publish_timeout_s: float = 15.0,
        reconnect_interval_s: float = 1.0,
    ) -> None:
        self._url = url
        self._topology = topology
        self._organisations = organisations
        self._prefetch = prefetch
        self._publish_timeout_s = publish_timeout_s
        self._reconnect_interval_s = reconnect_interval_s
        self._handler: DeliveryHandler | None = None
        self._on_dead_letter: DeadLetterHandler | None = None
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._consume_channel: AbstractRobustChannel | None = None
        self._exchange: AbstractRobustExchange | None = None
        self._dead_letter_exchange: AbstractRobustExchange | None = None
        self._queues: dict[str, Any] = {}
        # One follow at a time: two overlapping ones could both start the same consumer.
        self._following = asyncio.Lock()
        self._consumers: dict[str, str] = {}
        self._acks: dict[int, _ChannelAcks] = {}
        self._connected = False
        self._closing = False
        self._connector: asyncio.Task[None] | None = None

    @property
    def state(self) -> TransportState:
        if self._closing or self._handler is None:
            return TransportState.STOPPED
        channels_open = all(
            channel is not None and not channel.is_closed
            for channel in (self._publish_channel, self._consume_channel)
        )
        ready = self._connected and channels_open
        return TransportState.READY if ready else TransportState.DEGRADED

    async def start(self, handler: DeliveryHandler, on_dead_letter: DeadLetterHandler) -> None:
        self._handler = handler
        self._on_dead_letter = on_dead_letter
        self._connector = asyncio.create_task(self._connect_until_up(), name="amqp-connect")

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait until the topology is declared and consumers run (tests, benchmarks)."""
        async with asyncio.timeout(timeout_s):
            while self.state is not TransportState.READY:
                await asyncio.sleep(0.05)

    async def _connect_until_up(self) -> None:
        delay = self._reconnect_interval_s
        while not self._closing:
            try:
                connection = await aio_pika.connect_robust(
                    self._url, reconnect_interval=self._reconnect_interval_s, timeout=10
                )
            except Exception as exc:
                log.warning("amqp_connect_failed", error=type(exc).__name__, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)
                continue
            try:
                await self._set_up(connection)
            except Exception:
                log.exception("amqp_setup_failed")
                with contextlib.suppress(Exception):
                    await connection.close()
                await asyncio.sleep(delay)
                continue
            return

    async def _set_up(self, connection: AbstractRobustConnection) -> None:
        connection.close_callbacks.add(self._on_connection_lost)
        connection.reconnect_callbacks.add(self._on_reconnected)
        publish_channel: Any = await connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        exchange = await publish_channel.declare_exchange(
            self._topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        dead_letter_exchange = await publish_channel.declare_exchange(
            self._topology.dead_letter_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        consume_channel: Any = await connection.channel()
        await consume_channel.set_qos(prefetch_count=self._prefetch)
        self._consume_channel = consume_channel
        self._exchange = exchange
        self._dead_letter_exchange = dead_letter_exchange
        async with self._following:
            # What an earlier, failed set-up declared belongs to its closed connection.
            self._queues.clear()
            self._consumers.clear()
            for org in self._organisations():
                await self._follow(org)
        self._connection = connection
        self._publish_channel = publish_channel
        self._connected = True
        log.info("amqp_ready", exchange=exchange.name)

    async def _declare(self, org: Organisation) -> Any:
        """The organisation's queue, bound to what its kind receives, and its dead-letter
        queue, consumed. Declared on the robust channel, which declares them again after
        a reconnection."""
        channel, exchange, dead_letter_exchange = (
            self._consume_channel, self._exchange, self._dead_letter_exchange)
        if channel is None or exchange is None or dead_letter_exchange is None:
            raise TransportUnavailable("the broker is not connected")
        queue = await channel.declare_queue(
            self._topology.queue(org.code),
            durable=True,
            arguments=self._topology.queue_arguments(),
        )
        for key in self._topology.bindings(org):
            await queue.bind(exchange.name, key)
        dead_letters = await channel.declare_queue(
            self._topology.dead_letter_queue(org.code),
            durable=True,
            arguments=self._topology.dead_letter_queue_arguments(),
        )
        await dead_letters.bind(dead_letter_exchange.name, f"{org.code}.#")
        await dead_letters.consume(self._on_dead_lettered)
        if self._connected:
            log.info("amqp_queue_declared", org=org.code, queue=queue.name)
        self._queues[org.code] = queue
        return queue

    async def _follow(self, org: Organisation) -> None:
        """Declare the organisation's queues if this process has not yet, then consume its
        queue unless it consumes it itself (AMQP channel)."""
        queue = self._queues.get(org.code)
        if queue is None:
            queue = await self._declare(org)
        wanted = org.delivery.channel is not DeliveryChannel.AMQP
        if wanted == (org.code in self._consumers):
            return
        if wanted:
            self._consumers[org.code] = await queue.consume(self._on_message)
        else:
            # Cancelling also stops the robust queue restoring the consumer on reconnect.
            await queue.cancel(self._consumers.pop(org.code))

    async def follow_directory(self) -> None:
        """Declare new organisations' queues and start or stop consuming queues after
        delivery channels changed in the directory (by any process on the database)."""
        if not self._connected:
            return  # set-up reads the directory when the connection comes
        async with self._following:
            for org in self._organisations():
                await self._follow(org)

    def consumes(self, org_code: str) -> bool:
        """Whether the gateway consumes this organisation's queue (it is not on AMQP)."""
        return org_code in self._consumers

    async def _on_connection_lost(self, *_: Any) -> None:
        if not self._closing:
            log.warning("amqp_connection_lost")
        self._connected = False

    async def _on_reconnected(self, *_: Any) -> None:
        log.info("amqp_reconnected")
        self._connected = True

    async def publish(self, items: Sequence[OutboxItem]) -> PublishOutcome:
        exchange, channel = self._exchange, self._publish_channel
        if exchange is None or channel is None or self.state is not TransportState.READY:
            raise TransportUnavailable("the broker is not connected")
        name = exchange.name
        results = await asyncio.gather(
            *(self._publish_one(channel, name, item) for item in items),
            return_exceptions=True,
        )
        return PublishOutcome.of(items, results)

    async def _publish_one(
        self, channel: AbstractRobustChannel, exchange: str, item: OutboxItem
    ) -> None:
        # What Exchange.publish does, without an aio_pika.Message per item: its
        # constructor and properties cost several times building the frame's properties.
        if channel.is_closed:  # as Exchange.publish: fail now, not wait for a reconnection
            raise aiormq.exceptions.ChannelInvalidStateError(f"{channel!r} closed")
        underlay = await channel.get_underlay_channel()
        confirmation = await underlay.basic_publish(
            item.payload,
            exchange=exchange,
            routing_key=self._topology.routing_key(item.recipient, item.message_type),
            properties=Basic.Properties(
                content_type="application/json",
                delivery_mode=_PERSISTENT,
                app_id="dipgw",
                message_id=item.message_id,
                message_type=item.message_type,
                headers={RECIPIENT_HEADER: item.recipient,
                         ACCEPTED_HEADER: isoformat(item.accepted_at)},
            ),
            mandatory=True,
            timeout=self._publish_timeout_s,
        )
        if not isinstance(confirmation, Basic.Ack):
            raise RuntimeError(f"broker answered {type(confirmation).__name__}, not Basic.Ack")

    def _channel_acks(self, message: AbstractIncomingMessage) -> _ChannelAcks | None:
        """The ack batch of the message's channel, with the message marked in flight; None
        if the channel is already closed (the broker redelivers the message)."""
        try:
            channel = message.channel
        except _CHANNEL_GONE:
            return None
        acks = self._acks.get(id(channel))
        if acks is None or acks.channel is not channel:
            # A new channel (first delivery, or after a reconnection): drop closed ones.
            for key, old in list(self._acks.items()):
                if old.channel.is_closed and old.flusher is None:
                    del self._acks[key]
            acks = self._acks[id(channel)] = _ChannelAcks(channel)
        acks.in_flight.add(_tag(message))
        return acks

    async def _finish(
        self, message: AbstractIncomingMessage, acks: _ChannelAcks | None, ok: bool
    ) -> None:
        tag = _tag(message)
        if ok:
            if acks is not None:
                acks.finished(tag)
            return
        await _settle(message.nack(requeue=True), message)
        if acks is not None:
            acks.rejected(tag)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        acks = self._channel_acks(message)
        handler = self._handler
        try:
            if handler is None:
                raise RuntimeError("transport stopped")
            await handler(_delivery(message))
        except Exception as exc:
            log.warning(
                "amqp_delivery_failed",
                message_id=message.message_id,
                error=type(exc).__name__,
            )
            await self._finish(message, acks, ok=False)
            return
        except BaseException:
            _abandoned(message, acks)
            raise
        await self._finish(message, acks, ok=True)

    async def _on_dead_lettered(self, message: AbstractIncomingMessage) -> None:
        acks = self._channel_acks(message)
        handler = self._on_dead_letter
        try:
            if handler is None:
                raise RuntimeError("transport stopped")
            await handler(_delivery(message), _death_reason(message))
        except Exception as exc:
            log.error(
                "dead_letter_record_failed",
                message_id=message.message_id,
                error=type(exc).__name__,
            )
            # Not hot-looping on a dead letter we cannot record; it stays queued.
            await asyncio.sleep(1.0)
            await self._finish(message, acks, ok=False)
            return
        except BaseException:
            _abandoned(message, acks)
            raise
        await self._finish(message, acks, ok=True)

    async def close(self) -> None:
        self._closing = True
        await cancel(self._connector)
        await self._flush_acks()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
        self._handler = None
        self._on_dead_letter = None


    async def _flush_acks(self) -> None:
        """Send the acks still batched (best effort: unacked messages come again)."""
        flushers = []
        for acks in self._acks.values():
            acks.closing = True
            acks.wake.set()
            if acks.flusher is not None:
                flushers.append(acks.flusher)
        if flushers:
            await asyncio.wait(flushers, timeout=2.0)


def _abandoned(message: AbstractIncomingMessage, acks: _ChannelAcks | None) -> None:
    """A handler was cancelled: its tag is a gap no multiple ack passes until the flusher
    has nacked it (the broker delivers the message again)."""
    if acks is not None:
        acks.in_flight.discard(_tag(message))


def _tag(message: AbstractIncomingMessage) -> int:
    tag = message.delivery_tag
    if tag is None:
        raise ValueError("a consumed AMQP message without a delivery tag")
    return tag


def _delivery(message: AbstractIncomingMessage) -> Delivery:
    headers = message.headers or {}
    recipient = headers.get(RECIPIENT_HEADER)
    if not message.message_id or not message.type or not isinstance(recipient, str):
        raise ValueError("AMQP message lacks message_id, type or recipient header")
    return Delivery(
        message_id=message.message_id,
        recipient=recipient,
        message_type=message.type,
        payload=message.body,
        accepted_at=_accepted_at(headers.get(ACCEPTED_HEADER)),
    )


def _accepted_at(header: object) -> datetime | None:
    """The acceptance time a message carries; None for one without it (published before
    the header existed) or with one that does not parse: it only feeds a metric."""
    if not isinstance(header, str):
        return None
    try:
        accepted = datetime.fromisoformat(header)
    except ValueError:
        return None
    return accepted if accepted.tzinfo is not None else None


def _death_reason(message: AbstractIncomingMessage) -> str:
    deaths: Any = (message.headers or {}).get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        reason = deaths[0].get("reason")
        return reason.decode() if isinstance(reason, bytes) else str(reason)
    return "unknown"


async def _settle(operation: Awaitable[None], message: AbstractIncomingMessage) -> None:
    """Ack or nack; if the channel is gone, the broker redelivers and the inbox de-duplicates."""
    try:
        await operation
    except _CHANNEL_GONE:
        log.info("amqp_settle_after_reconnect_ignored", message_id=message.message_id)
