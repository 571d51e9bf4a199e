"""Batched acknowledgements on the consuming channel: one multiple ack per burst, and never
an ack for a message whose handler failed or has not finished."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import pytest

from gateway.services.directory import DEMO_ORGANISATIONS
from gateway.transport import rabbitmq
from gateway.transport.base import Delivery
from gateway.transport.rabbitmq import (
    ACCEPTED_HEADER,
    RECIPIENT_HEADER,
    RabbitMqTransport,
    _ChannelAcks,
)
from gateway.transport.topology import Topology
from tests.rabbitmq_support import delete_topology, eventually, unique_prefix
from tests.services import rabbitmq_url  # noqa: F401

ORG = DEMO_ORGANISATIONS[0]


class FakeChannel:
    is_closed = False

    def __init__(self) -> None:
        self.acks: list[tuple[int, bool]] = []
        self.frames: list[str] = []

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.acks.append((delivery_tag, multiple))
        self.frames.append(f"ack {delivery_tag}{' multiple' if multiple else ''}")

    async def basic_nack(self, delivery_tag: int, requeue: bool = True) -> None:
        assert requeue
        self.frames.append(f"nack {delivery_tag}")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def acked(channel: FakeChannel) -> set[int]:
    """Every tag the sent acks cover."""
    tags: set[int] = set()
    for tag, multiple in channel.acks:
        tags.update(range(1, tag + 1) if multiple else {tag})
    return tags


async def test_a_burst_is_acked_with_one_multiple_ack() -> None:
    channel = FakeChannel()
    acks = _ChannelAcks(channel)
    acks.in_flight.update(range(1, 51))
    for tag in (3, 1, 2, *range(4, 51)):
        acks.finished(tag)
    await settle()
    assert channel.acks == [(50, True)]


async def test_an_unfinished_handler_is_never_covered() -> None:
    channel = FakeChannel()
    acks = _ChannelAcks(channel)
    acks.in_flight.update(range(1, 6))
    for tag in (1, 2, 4, 5):
        acks.finished(tag)
    await settle()
    assert channel.acks == [(2, True)]
    await asyncio.sleep(rabbitmq._ACK_STALL_S * 3)
    # Waiting behind 3 too long: acked one by one, 3 still not.
    assert acked(channel) == {1, 2, 4, 5}
    assert all(not multiple for tag, multiple in channel.acks if tag > 3)
    acks.finished(3)
    await settle()
    assert acked(channel) == {1, 2, 3, 4, 5}
    assert acks.flusher is None and not acks.done


async def test_a_nacked_delivery_is_passed_only_once_settled() -> None:
    channel = FakeChannel()
    acks = _ChannelAcks(channel)
    acks.in_flight.update(range(1, 6))
    for tag in (1, 3, 4, 5):
        acks.finished(tag)
    await settle()
    assert acked(channel) == {1}  # 2 (being nacked) still in flight
    acks.rejected(2)  # its nack sent
    await settle()
    assert channel.acks[-1] == (5, True)


async def test_a_tag_no_callback_got_is_requeued_before_a_multiple_ack_passes_it() -> None:
    channel = FakeChannel()
    acks = _ChannelAcks(channel)
    acks.in_flight.update({1, 3, 4})  # 2 raced a consumer cancel
    for tag in (1, 3, 4):
        acks.finished(tag)
    await settle()
    assert channel.frames == ["ack 1 multiple", "nack 2", "ack 4 multiple"]
    assert acks.floor == 4 and not acks.settled


# The real broker.

Handler = Callable[[Delivery], Any]


@pytest.fixture
async def prefix(rabbitmq_url: str) -> AsyncIterator[str]:  # noqa: F811
    name = unique_prefix()
    try:
        yield name
    finally:
        await delete_topology(rabbitmq_url, name)


async def start(url: str, prefix: str, handler: Handler) -> RabbitMqTransport:
    transport = RabbitMqTransport(url, Topology(prefix=prefix), lambda: [ORG])

    async def on_dead_letter(delivery: Delivery, reason: str) -> None:
        pass

    await transport.start(handler, on_dead_letter)
    await transport.wait_ready(30)
    return transport


async def send(url: str, prefix: str, ids: list[str]) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for message_id in ids:
            await channel.default_exchange.publish(
                aio_pika.Message(
                    b"{}", message_id=message_id, type="ra1_notice",
                    headers={RECIPIENT_HEADER: ORG.code,
                             ACCEPTED_HEADER: "2026-01-01T00:00:00+00:00"},
                ),
                routing_key=Topology(prefix=prefix).queue(ORG.code),
            )


async def queued(url: str, prefix: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(Topology(prefix=prefix).queue(ORG.code), passive=True)
        count = queue.declaration_result.message_count
        assert count is not None
        return count


async def test_handled_deliveries_are_acked(rabbitmq_url: str, prefix: str) -> None:  # noqa: F811
    seen: list[str] = []

    async def handler(delivery: Delivery) -> None:
        seen.append(delivery.message_id)

    transport = await start(rabbitmq_url, prefix, handler)
    ids = [f"m{i}" for i in range(300)]
    try:
        await send(rabbitmq_url, prefix, ids)
        await eventually(lambda: _true(len(seen) >= len(ids)), 20, 0.02)
    finally:
        await transport.close()
    assert sorted(seen) == sorted(ids)

    async def empty() -> bool:
        return await queued(rabbitmq_url, prefix) == 0

    await eventually(empty, 10)


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize("blocked", ["m1", "m3"])
async def test_a_delivery_still_in_its_handler_is_not_acked(
    rabbitmq_url: str, prefix: str, blocked: str  # noqa: F811
) -> None:
    release = asyncio.Event()
    done: list[str] = []

    async def handler(delivery: Delivery) -> None:
        if delivery.message_id == blocked:
            await release.wait()
        done.append(delivery.message_id)

    transport = await start(rabbitmq_url, prefix, handler)
    try:
        await send(rabbitmq_url, prefix, [f"m{i}" for i in range(1, 6)])
        await eventually(lambda: _true(len(done) == 4), 20, 0.02)
        await asyncio.sleep(0.3)
    finally:
        await transport.close()  # the blocked handler never finished
    release.set()

    async def only_blocked_left() -> bool:
        return await queued(rabbitmq_url, prefix) == 1

    await eventually(only_blocked_left, 10)

    again: list[str] = []

    async def record(delivery: Delivery) -> None:
        again.append(delivery.message_id)

    transport = await start(rabbitmq_url, prefix, record)
    try:
        await eventually(lambda: _true(bool(again)), 20, 0.02)
        await asyncio.sleep(0.2)
    finally:
        await transport.close()
    assert again == [blocked]


async def test_a_failed_delivery_comes_again_and_the_rest_are_acked(
    rabbitmq_url: str, prefix: str  # noqa: F811
) -> None:
    seen: list[str] = []

    async def handler(delivery: Delivery) -> None:
        seen.append(delivery.message_id)
        if delivery.message_id == "m2" and seen.count("m2") == 1:
            raise RuntimeError("first attempt fails")

    transport = await start(rabbitmq_url, prefix, handler)
    try:
        await send(rabbitmq_url, prefix, [f"m{i}" for i in range(1, 6)])
        await eventually(lambda: _true(seen.count("m2") == 2), 20, 0.02)
        await asyncio.sleep(0.2)
    finally:
        await transport.close()
    assert sorted(set(seen)) == [f"m{i}" for i in range(1, 6)]
    assert len(seen) == 6

    async def empty() -> bool:
        return await queued(rabbitmq_url, prefix) == 0

    await eventually(empty, 10)
