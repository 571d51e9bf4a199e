"""Building real gateways on the real broker, each test on its own topology prefix."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import aio_pika

from gateway.config import Settings
from gateway.services.directory import DEMO_ORGANISATIONS
from gateway.transport.topology import Topology
from tests.backends import make_settings


def unique_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


def broker_settings(data_dir: Path, url: str, prefix: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "amqp_url": url,
        "amqp_prefix": prefix,
        "relay_interval_s": 0.05,
        **overrides,
    }
    return make_settings(**values)  # type: ignore[arg-type]


async def delete_topology(url: str, prefix: str, added: Iterable[str] = ()) -> None:
    """Remove a test's queues (the demo organisations' and those of ``added`` codes) and
    exchanges so the shared broker stays clean."""
    topology = Topology(prefix=prefix)
    connection = await aio_pika.connect(url)
    async with connection:
        for code in (*(org.code for org in DEMO_ORGANISATIONS), *added):
            for name in (topology.queue(code), topology.dead_letter_queue(code)):
                channel = await connection.channel()
                # A queue that was never declared closes the channel; that is fine.
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name)
        channel = await connection.channel()
        for name in (topology.exchange, topology.dead_letter_exchange):
            await channel.exchange_delete(name)


async def eventually(
    predicate: Callable[[], Awaitable[bool]], timeout_s: float, interval_s: float = 0.1
) -> None:
    """Wait until an async predicate holds."""
    async with asyncio.timeout(timeout_s):
        while not await predicate():
            await asyncio.sleep(interval_s)
