"""SIGKILL the gateway after it answered 202: every accepted message is still delivered,
exactly once, when it comes back. Runs the real server as a separate process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from gateway.client import GatewayClient
from gateway.config import Settings
from tests.conftest import EXAMPLES, credentials, load

RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
RECIPIENT = RA1["to"][0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def gateway_process(data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "DIPGW_DATA_DIR": str(data_dir), "DIPGW_PORT": str(port)}
    env.pop("DIPGW_AMQP_URL", None)
    env.pop("DIPGW_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--log-level", "WARNING"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


async def wait_ready(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(url + "/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("the gateway did not become ready")


@asynccontextmanager
async def as_org(url: str, data_dir: Path, org: str) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(url, credentials(Settings(data_dir=data_dir), org)) as client:
        yield client


def new_ra1() -> dict[str, Any]:
    return {**RA1, "message_id": str(uuid.uuid4())}


async def inbox_ids(url: str, data_dir: Path) -> list[str]:
    async with as_org(url, data_dir, RECIPIENT) as cjit:
        for _ in range(200):
            items = await cjit.inbox(500)
            if items:
                await asyncio.sleep(0.3)
                return [m["message_id"] for m in await cjit.inbox(500)]
            await asyncio.sleep(0.05)
    return []


async def test_sigkill_during_a_burst_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    accepted: list[str] = []
    with gateway_process(tmp_path, port) as process:
        await wait_ready(url)
        async with as_org(url, tmp_path, RA1["from"]) as police:

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

    with gateway_process(tmp_path, port):
        await wait_ready(url)
        delivered = await inbox_ids(url, tmp_path)

    assert sorted(delivered) == sorted(set(delivered)), "a message was delivered twice"
    assert set(accepted) <= set(delivered), "an accepted message was lost"


def _rewind_to_crash_point(db: Path, message_id: str, *, delivered: bool) -> None:
    """Put the store back as a SIGKILL would leave it at a chosen point after the 202."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE outbox SET published_at = NULL WHERE message_id = ?", (message_id,))
        if not delivered:
            conn.execute("DELETE FROM inbox WHERE message_id = ?", (message_id,))
            conn.execute(
                "DELETE FROM status_events WHERE message_id = ? AND status = 'delivered'",
                (message_id,),
            )


async def _send_one_then_kill(tmp_path: Path, port: int) -> str:
    url = f"http://127.0.0.1:{port}"
    with gateway_process(tmp_path, port) as process:
        await wait_ready(url)
        document = new_ra1()
        async with as_org(url, tmp_path, RA1["from"]) as police:
            answer = await police.send(document)
        assert answer.status == 202
        process.send_signal(signal.SIGKILL)
    return str(document["message_id"])


async def _history_after_restart(tmp_path: Path, port: int, message_id: str) -> list[str]:
    url = f"http://127.0.0.1:{port}"
    with gateway_process(tmp_path, port):
        await wait_ready(url)
        assert (await inbox_ids(url, tmp_path)).count(message_id) == 1
        async with as_org(url, tmp_path, RA1["from"]) as police:
            history = (await police.status(message_id))["history"]
    return [e["status"] for e in history]


async def test_killed_after_commit_before_delivery_delivers_once_on_restart(
    tmp_path: Path,
) -> None:
    port = free_port()
    message_id = await _send_one_then_kill(tmp_path, port)
    _rewind_to_crash_point(tmp_path / "dipgw.sqlite3", message_id, delivered=False)

    statuses = await _history_after_restart(tmp_path, port, message_id)

    assert statuses == ["accepted", "delivered"]


async def test_killed_after_delivery_before_outbox_marked_does_not_deliver_twice(
    tmp_path: Path,
) -> None:
    port = free_port()
    message_id = await _send_one_then_kill(tmp_path, port)
    _rewind_to_crash_point(tmp_path / "dipgw.sqlite3", message_id, delivered=True)

    statuses = await _history_after_restart(tmp_path, port, message_id)

    assert statuses == ["accepted", "delivered"]
