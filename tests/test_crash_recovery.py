"""SIGKILL the gateway after it answered 202: every accepted message is still delivered,
exactly once, when it comes back. Runs the real server as a separate process."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from gateway.client import GatewayClient
from gateway.config import Settings
from gateway.storage.messages import OUTBOX_LEASE
from tests.backends import query
from tests.conftest import EXAMPLES, credentials, load
from tests.processes import free_port, gateway_process, wait_ready

RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
RECIPIENT = RA1["to"][0]


@asynccontextmanager
async def as_org(url: str, settings: Settings, org: str) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(url, credentials(settings, org)) as client:
        yield client


def new_ra1() -> dict[str, Any]:
    return {**RA1, "message_id": str(uuid.uuid4())}


async def inbox_ids(url: str, settings: Settings) -> list[str]:
    async with as_org(url, settings, RECIPIENT) as cjit:
        for _ in range(200):
            items = await cjit.inbox(500)
            if items:
                await asyncio.sleep(0.3)
                return [m["message_id"] for m in await cjit.inbox(500)]
            await asyncio.sleep(0.05)
    return []


async def test_sigkill_during_a_burst_loses_and_duplicates_nothing(settings: Settings) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    accepted: list[str] = []
    with gateway_process(settings.data_dir, port, settings.database_url) as process:
        await wait_ready(url)
        async with as_org(url, settings, RA1["from"]) as police:

            async def send_until_killed() -> None:
                while True:
                    document = new_ra1()
                    try:
                        await police.send(document)
                    except aiohttp.ClientError:
                        return
                    accepted.append(document["message_id"])
                    if len(accepted) == 60:
                        os.kill(process.pid, signal.SIGKILL)

            await asyncio.gather(*(send_until_killed() for _ in range(6)))
    assert len(accepted) >= 60

    with gateway_process(settings.data_dir, port, settings.database_url):
        await wait_ready(url)
        delivered = await inbox_holding(url, settings, set(accepted))

    assert sorted(delivered) == sorted(set(delivered)), "a message was delivered twice"
    assert set(accepted) <= set(delivered), "an accepted message was lost"


async def inbox_holding(url: str, settings: Settings, expected: set[str]) -> list[str]:
    """The recipient's inbox once it holds every ``expected`` id, or as it stands when the
    wait ends. On PostgreSQL the outbox rows the killed process had claimed are leased to
    it (several processes share the database), so they are sent once the lease runs out:
    the wait covers ``OUTBOX_LEASE``."""
    deadline = time.monotonic() + OUTBOX_LEASE.total_seconds() + 30
    async with as_org(url, settings, RECIPIENT) as cjit:
        while True:
            delivered = [m["message_id"] for m in await cjit.inbox(500)]
            if expected <= set(delivered) or time.monotonic() > deadline:
                return delivered
            await asyncio.sleep(0.2)


def _rewind_to_crash_point(settings: Settings, message_id: str, *, delivered: bool) -> None:
    """Put the store back as a SIGKILL would leave it at a chosen point after the 202.
    Before the relay's claim, too: on PostgreSQL the killed process's relay may have
    claimed the row (a 60 s lease) before the kill, which is another crash point.

    The in-process transport puts a share for a recipient that reads into its inbox in
    the acceptance's own transaction, so it leaves no outbox row and has no such point.
    The outbox row is written back as the outbox path leaves it (a gateway on a broker,
    or a pushed recipient's share): a restart on embedded defaults must still send it."""
    query(settings, "INSERT INTO outbox (message_id, recipient, created_at, next_attempt_at, "
          "attempts) SELECT message_id, :recipient, received_at, received_at, 0 FROM messages "
          "WHERE message_id = :id AND NOT EXISTS "
          "(SELECT 1 FROM outbox WHERE message_id = :id)", id=message_id, recipient=RECIPIENT)
    query(settings, "UPDATE outbox SET published_at = NULL, lease_until = NULL, "
          "leased_by = NULL WHERE message_id = :id", id=message_id)
    if not delivered:
        query(settings, "DELETE FROM inbox WHERE message_id = :id", id=message_id)
        query(settings,
              "DELETE FROM status_events WHERE message_id = :id AND status = 'delivered'",
              id=message_id)


async def _send_one_then_kill(settings: Settings, port: int) -> str:
    url = f"http://127.0.0.1:{port}"
    with gateway_process(settings.data_dir, port, settings.database_url) as process:
        await wait_ready(url)
        document = new_ra1()
        async with as_org(url, settings, RA1["from"]) as police:
            answer = await police.send(document)
        assert answer.status == 202
        process.send_signal(signal.SIGKILL)
    return str(document["message_id"])


async def _history_after_restart(settings: Settings, port: int, message_id: str) -> list[str]:
    url = f"http://127.0.0.1:{port}"
    with gateway_process(settings.data_dir, port, settings.database_url):
        await wait_ready(url)
        assert (await inbox_ids(url, settings)).count(message_id) == 1
        async with as_org(url, settings, RA1["from"]) as police:
            history = (await police.status(message_id))["history"]
    return [e["status"] for e in history]


async def test_killed_after_commit_before_delivery_delivers_once_on_restart(
    settings: Settings,
) -> None:
    port = free_port()
    message_id = await _send_one_then_kill(settings, port)
    _rewind_to_crash_point(settings, message_id, delivered=False)

    statuses = await _history_after_restart(settings, port, message_id)

    assert statuses == ["accepted", "delivered"]


async def test_killed_after_delivery_before_outbox_marked_does_not_deliver_twice(
    settings: Settings,
) -> None:
    port = free_port()
    message_id = await _send_one_then_kill(settings, port)
    _rewind_to_crash_point(settings, message_id, delivered=True)

    statuses = await _history_after_restart(settings, port, message_id)

    assert statuses == ["accepted", "delivered"]
