"""Wake-ups between two gateway processes on one PostgreSQL database (LISTEN/NOTIFY,
``gateway.services.wakeups``): what one delivers, changes or queues reaches the other's
streams, directory and relay at once, not at its next poll or periodic refresh.

Two apps run in one test process, each with a data directory of its own, sharing only the
database and the installation's keys (``secrets_dir``), as two ``dipgw serve`` processes
behind a load balancer would. Every interval that would otherwise carry a change across is
an hour, so only a wake-up can make these tests pass in time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import make_url

from gateway.app import create_app
from gateway.client import GatewayClient
from gateway.config import Settings
from gateway.services.wakeups import APPLICATION_NAME
from gateway.transport.base import TransportState
from gateway.transport.inprocess import InProcessTransport
from tests.backends import (
    create_database,
    drop_database,
    make_settings,
    postgresql_only,
    require_postgres,
)
from tests.conftest import EXAMPLES, credentials, load, person_bearer
from tests.test_two_gateways import roles_seen

pytestmark = postgresql_only

ALERT = load(EXAMPLES / "disengagement_alert" / "valid-statutory-failed-to-attend-initial.json")
HOUR_S = 3600.0
# Well under every poll an hour long, and the streams' 15 s keep-alive read.
PROMPTLY_S = 5.0


class HeldTransport(InProcessTransport):
    """A transport that never becomes ready: this app's relay publishes nothing, so what
    it accepts can only be delivered by the other app."""

    delivers_at_acceptance = False  # it stands in for a broker: the outbox path

    @property
    def state(self) -> TransportState:
        return TransportState.DEGRADED


@pytest.fixture
def database() -> Iterator[str]:
    """A migrated PostgreSQL database of this test's own (skips when no server answers,
    fails instead under DIPGW_REQUIRE_SERVICES=1)."""
    name = create_database(migrated=True)
    try:
        yield make_url(require_postgres()).set(database=name).render_as_string(
            hide_password=False)
    finally:
        drop_database(name)


def gateway_settings(tmp_path: Path, name: str, database: str) -> Settings:
    return make_settings(
        data_dir=tmp_path / name, database_url=database, secrets_dir=tmp_path / "secrets",
        relay_interval_s=HOUR_S, directory_refresh_s=HOUR_S, checkpoint_interval_s=HOUR_S,
    )


@pytest.fixture
async def gateways(
    database: str, aiohttp_client: Any, tmp_path: Path
) -> AsyncIterator[tuple[TestClient[Any, Any], TestClient[Any, Any], Settings]]:
    """(A, B, A's settings): A seeds the demo directory, so the demo keys are in A's data
    directory; B's transport is held, so A's relay delivers everything. ``database`` comes
    first so that it is dropped after both apps have closed."""
    settings_a = gateway_settings(tmp_path, "a", database)
    first: TestClient[Any, Any] = await aiohttp_client(create_app(settings_a))
    second: TestClient[Any, Any] = await aiohttp_client(create_app(
        gateway_settings(tmp_path, "b", database), transport=HeldTransport()))

    async def both_listening() -> bool:
        return len(await listeners(database)) == 2

    await eventually(both_listening)
    yield first, second, settings_a


def agency(client: TestClient[Any, Any], settings: Settings, org: str) -> GatewayClient:
    return GatewayClient(str(client.make_url("")), credentials(settings, org),
                         session=client.session)


async def next_message(stream: AsyncIterator[Any]) -> Any:
    async for item in stream:
        return item
    raise AssertionError("the stream ended")


async def streamed_from_b_after_sending_to_a(
    first: TestClient[Any, Any], second: TestClient[Any, Any], settings: Settings
) -> None:
    stream = agency(second, settings, ALERT["to"][0]).stream()
    try:
        # The stream has read its (empty) inbox and waits before anything is sent.
        waiting = asyncio.ensure_future(next_message(stream))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        document = {**ALERT, "message_id": str(uuid.uuid4())}
        await agency(first, settings, ALERT["from"]).send(document)
        # A's relay sleeps an hour between polls: the outbox wake-up (its own) and the
        # inbox wake-up (from the database, to B) carry the message across.
        item = await asyncio.wait_for(waiting, PROMPTLY_S)
        assert item["message_id"] == document["message_id"]
    finally:
        await stream.aclose()


async def test_a_stream_on_b_receives_what_a_delivered(
    gateways: tuple[TestClient[Any, Any], TestClient[Any, Any], Settings],
) -> None:
    first, second, settings = gateways
    await streamed_from_b_after_sending_to_a(first, second, settings)


async def test_a_message_accepted_by_b_is_published_by_a_at_once(
    gateways: tuple[TestClient[Any, Any], TestClient[Any, Any], Settings],
) -> None:
    first, second, settings = gateways
    document = {**ALERT, "message_id": str(uuid.uuid4())}
    await agency(second, settings, ALERT["from"]).send(document)
    recipient = agency(first, settings, ALERT["to"][0])

    async def delivered() -> bool:
        return any(item["message_id"] == document["message_id"]
                   for item in (await recipient.inbox()))

    await eventually(delivered)


async def test_a_grant_made_through_a_is_honoured_by_b_before_its_refresh(
    gateways: tuple[TestClient[Any, Any], TestClient[Any, Any], Settings],
) -> None:
    first, second, settings = gateways
    spoc, admin = "cjit-sfk.spoc", "cjit-sfk.admin"
    assert await roles_seen(second, settings, spoc) == ["spoc"]
    granted = await first.post(f"/v1/people/{spoc}/grants",
                               json={"role": "ig_lead", "reason": "cover"},
                               headers=person_bearer(settings, admin))
    assert granted.status == 201

    async def seen() -> bool:
        return "ig_lead" in await roles_seen(second, settings, spoc)

    await eventually(seen)


async def test_the_listener_reconnects_after_its_connection_is_terminated(
    gateways: tuple[TestClient[Any, Any], TestClient[Any, Any], Settings], database: str,
) -> None:
    first, second, settings = gateways
    before = await listeners(database)
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid",
                            (sorted(before),))

    async def listening_again() -> bool:
        now = await listeners(database)
        return len(now) == 2 and not now & before

    await eventually(listening_again)
    await streamed_from_b_after_sending_to_a(first, second, settings)


async def listeners(database: str) -> set[int]:
    """Backend pids of the gateways' listening sessions on this database."""
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = current_database()",
            (APPLICATION_NAME,))
        return {row[0] for row in await cursor.fetchall()}


async def eventually(check: Any, timeout_s: float = PROMPTLY_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "no wake-up arrived in time"
        await asyncio.sleep(0.05)
