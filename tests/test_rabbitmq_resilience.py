"""No loss, no duplicates: broker restarts mid-run, and a gateway SIGKILLed mid-run."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app import create_app
from gateway.client import Credentials, GatewayClient
from gateway.config import Settings
from gateway.http.services import SERVICES
from tests.backends import query
from tests.conftest import EXAMPLES, credentials, load
from tests.processes import free_port, gateway_env, wait_ready
from tests.rabbitmq_support import broker_settings, delete_topology, eventually, unique_prefix
from tests.services import rabbitmq_url  # noqa: F401

# The broker every other test shares is stopped and started (restart_broker).
pytestmark = pytest.mark.exclusive

RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
RECIPIENT = RA1["to"][0]


async def rabbitmqctl(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()


async def restart_broker() -> None:
    await rabbitmqctl("stop_app")
    await asyncio.sleep(1.0)
    await rabbitmqctl("start_app")
    await rabbitmqctl("await_startup")


async def send_many(
    url: str, creds: Credentials, total: int, accepted: list[str], concurrency: int = 16
) -> None:
    """Send ``total`` RA1 notices; record each id the gateway accepted with a 202."""
    remaining = iter(range(total))
    async with GatewayClient(url, creds) as client:

        async def worker() -> None:
            for _ in remaining:
                document = {**RA1, "message_id": str(uuid.uuid4())}
                try:
                    answer = await client.send(document)
                except aiohttp.ClientError:
                    return
                assert answer.status == 202
                accepted.append(document["message_id"])

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def inbox_counts(settings: Settings, recipient: str) -> dict[str, int]:
    rows = query(
        settings,
        "SELECT message_id, COUNT(*) FROM inbox WHERE recipient = :recipient "
        "AND closed_at IS NULL GROUP BY message_id",
        recipient=recipient,
    )
    return {str(message_id): int(count) for message_id, count in rows}


async def test_2000_messages_survive_two_broker_restarts(
    aiohttp_client: Any, tmp_path: Path, rabbitmq_url: str  # noqa: F811
) -> None:
    prefix = unique_prefix()
    settings = broker_settings(tmp_path, rabbitmq_url, prefix)
    app = create_app(settings)
    test_client = await aiohttp_client(app)
    services = app[SERVICES]
    url = str(test_client.make_url(""))
    accepted: list[str] = []
    readiness: list[str] = []
    try:
        await eventually(_ready(test_client), 30)

        async def chaos() -> None:
            for threshold in (300, 1200):
                await eventually(lambda t=threshold: _at_least(accepted, t), 120, 0.02)
                restart = asyncio.create_task(restart_broker())
                while not restart.done():
                    body = await (await test_client.get("/readyz")).json()
                    readiness.append(body["status"])
                    await asyncio.sleep(0.1)
                await restart

        await asyncio.gather(
            send_many(url, credentials(settings, RA1["from"]), 2000, accepted), chaos()
        )
        assert len(accepted) == 2000

        async def all_delivered() -> bool:
            items = await services.messages.inbox(RECIPIENT, 5000)
            return len(items) >= len(accepted)

        await eventually(all_delivered, 180, 0.5)
        delivered = [i.message_id for i in await services.messages.inbox(RECIPIENT, 5000)]
        assert len(delivered) == len(set(delivered)) == 2000
        assert set(delivered) == set(accepted)
        assert "degraded" in readiness or "not_ready" in readiness
    finally:
        await test_client.close()
        await delete_topology(rabbitmq_url, prefix)


def _ready(test_client: Any) -> Any:
    async def check() -> bool:
        body = await (await test_client.get("/readyz")).json()
        return bool(body["transport"]["state"] == "ready")

    return check


async def _at_least(items: list[str], count: int) -> bool:
    return len(items) >= count


def _start_gateway(settings: Settings, port: int, amqp_url: str, prefix: str,
                   ) -> subprocess.Popen[bytes]:
    env = {
        **gateway_env(settings.data_dir, port, settings.database_url),
        "DIPGW_AMQP_URL": amqp_url,
        "DIPGW_AMQP_PREFIX": prefix,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--log-level", "WARNING"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


async def test_gateway_sigkilled_mid_run_loses_and_duplicates_nothing(
    settings: Settings, rabbitmq_url: str  # noqa: F811
) -> None:
    prefix = unique_prefix()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    accepted: list[str] = []
    process = _start_gateway(settings, port, rabbitmq_url, prefix)
    try:
        await wait_ready(url)
        creds = credentials(settings, RA1["from"])

        async def kill_midway() -> None:
            await eventually(lambda: _at_least(accepted, 300), 120, 0.01)
            process.send_signal(signal.SIGKILL)

        await asyncio.gather(send_many(url, creds, 100_000, accepted, 8), kill_midway())
        process.wait(timeout=10)
        assert len(accepted) >= 300

        process = _start_gateway(settings, port, rabbitmq_url, prefix)
        await wait_ready(url)

        async def all_delivered() -> bool:
            return set(accepted) <= set(inbox_counts(settings, RECIPIENT))

        await eventually(all_delivered, 120, 0.5)
        counts = inbox_counts(settings, RECIPIENT)
        assert all(n == 1 for n in counts.values())
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)
        await delete_topology(rabbitmq_url, prefix)
