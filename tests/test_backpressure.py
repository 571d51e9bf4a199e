"""Backpressure: while delivery is behind intake, new messages are answered 503 with
``Retry-After`` and nothing is stored; intake resumes once delivery catches up; a broker
outage is absorbed up to the row bound; a share in retry backoff holds up nobody; the
client waits and sends again; and the embedded transport delivers a batch at once, the
fault that let its backlog grow without limit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import keys
from gateway.app import create_app
from gateway.client import Credentials, GatewayClient, GatewayProblem
from gateway.config import Settings
from gateway.domain.errors import ConfigurationError, Overloaded
from gateway.services.backpressure import BacklogBounds, DeliveryPressure
from gateway.storage.base import OutboxItem
from gateway.transport.base import Delivery, PublishOutcome
from gateway.transport.inprocess import InProcessTransport
from tests.conftest import EXAMPLES, bearer, credentials, load
from tests.test_consent_and_policy_api import HeldTransport
from tests.test_messages_end_to_end import wait_for_inbox
from tests.test_metrics import Clock, scrape, value

RA1 = load(sorted((EXAMPLES / "ra1_notice").glob("valid*.json"))[0])
SENDER, RECIPIENT = RA1["from"], RA1["to"][0]
OVERLOADED = "urn:dipgw:problem:overloaded"
WAIT_S = 10.0


def fresh() -> dict[str, Any]:
    return {**RA1, "message_id": str(uuid.uuid4())}


def agency(client: TestClient[Any, Any], settings: Settings, org: str) -> GatewayClient:
    """An agency whose client gives up at once, so a 503 reaches the test."""
    return GatewayClient(str(client.make_url("")), credentials(settings, org),
                         session=client.session, busy_retries=0)


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def refused_as_overloaded(client: TestClient[Any, Any], settings: Settings) -> bool:
    response = await client.post("/v1/messages", json=fresh(),
                                 headers=bearer(settings, SENDER))
    if response.status == 202:
        return False
    problem = await response.json()
    assert response.status == 503, problem
    assert response.headers["Retry-After"] == "1"
    assert problem["type"] == OVERLOADED and problem["retry_after_s"] == 1
    return True


class StalledTransport(InProcessTransport):
    """Up, but slow to deliver: every publish waits until ``flowing`` is set, as a
    recipient side that cannot keep up would make it."""

    delivers_at_acceptance = False  # it stands in for a broker: the outbox path

    def __init__(self) -> None:
        super().__init__()
        self.flowing = asyncio.Event()

    async def publish(self, items: Sequence[OutboxItem]) -> PublishOutcome:
        await self.flowing.wait()
        return await super().publish(items)


def app_with(
    aiohttp_client: Any, settings: Settings, transport: InProcessTransport,
    clock: Clock | None = None,
) -> Awaitable[TestClient[Any, Any]]:
    return aiohttp_client(create_app(
        replace(settings, backlog_check_s=0.02), transport=transport,
        **({"clock": clock} if clock is not None else {}),
    ))


async def test_intake_waits_while_delivery_is_behind_and_resumes_when_it_catches_up(
    aiohttp_client: Any, settings: Settings,
) -> None:
    clock, transport = Clock(), StalledTransport()
    client = await app_with(aiohttp_client, settings, transport, clock)
    first = fresh()
    assert (await agency(client, settings, SENDER).send(first)).status == 202
    # The first share has waited, untried, longer than the lag bound (1 s).
    clock.now += timedelta(seconds=2)

    await until(lambda: refused_as_overloaded(client, settings))

    held_back = fresh()
    with pytest.raises(GatewayProblem) as refused:
        await agency(client, settings, SENDER).send(held_back)
    assert refused.value.status == 503
    status = await client.get(f"/v1/messages/{held_back['message_id']}",
                              headers=bearer(settings, SENDER))
    assert status.status == 404  # nothing was stored
    batch = await client.post("/v1/messages/batch", json={"messages": [fresh(), fresh()]},
                              headers=bearer(settings, SENDER))
    assert batch.status == 503 and (await batch.json())["type"] == OVERLOADED
    _, samples = await scrape(client)
    assert value(samples, "dipgw_intake_paused") == 1

    transport.flowing.set()
    receiver = agency(client, settings, RECIPIENT)
    assert await wait_for_inbox(receiver, first["message_id"])

    async def accepted_again() -> bool:
        return not await refused_as_overloaded(client, settings)

    await until(accepted_again)
    assert (await agency(client, settings, SENDER).send(held_back)).status == 202
    _, samples = await scrape(client)
    assert value(samples, "dipgw_intake_paused") == 0
    assert value(samples, "dipgw_delivery_lag_seconds_count", channel="inbox") >= 1


async def test_a_broker_outage_is_absorbed_up_to_the_row_bound(
    aiohttp_client: Any, settings: Settings,
) -> None:
    clock = Clock()
    client = await app_with(
        aiohttp_client, replace(settings, delivery_backlog_limit=3), HeldTransport(), clock)
    sender = agency(client, settings, SENDER)
    for _ in range(3):  # RA1 has one recipient: one outbox row each
        assert (await sender.send(fresh())).status == 202
    # Held for a minute: the lag bound is not what stops intake during an outage...
    clock.now += timedelta(seconds=60)
    # ...the row bound is.
    await until(lambda: refused_as_overloaded(client, settings))


class FailingTransport(InProcessTransport):
    """Up, but every publish fails: the relay defers each row with a backoff."""

    delivers_at_acceptance = False  # it stands in for a broker: the outbox path

    def __init__(self) -> None:
        super().__init__()
        self.tried: set[str] = set()

    async def publish(self, items: Sequence[OutboxItem]) -> PublishOutcome:
        self.tried.update(item.message_id for item in items)
        return PublishOutcome((), tuple((item.outbox_id, "refused") for item in items))


async def test_a_share_waiting_out_its_retry_backoff_does_not_hold_up_intake(
    aiohttp_client: Any, settings: Settings,
) -> None:
    clock, transport = Clock(), FailingTransport()
    client = await app_with(aiohttp_client, settings, transport, clock)
    poisoned = fresh()
    assert (await agency(client, settings, SENDER).send(poisoned)).status == 202

    async def tried() -> bool:
        return poisoned["message_id"] in transport.tried

    await until(tried)
    clock.now += timedelta(seconds=20)
    await asyncio.sleep(0.2)  # several readings of the backlog

    for _ in range(5):
        assert not await refused_as_overloaded(client, settings)


class Outbox:
    """The one read DeliveryPressure makes, answered by hand."""

    def __init__(self) -> None:
        self.rows = 0
        self.oldest_untried: datetime | None = None

    async def delivery_backlog(self) -> tuple[int, datetime | None]:
        return self.rows, self.oldest_untried


async def test_one_slow_delivery_pauses_intake_for_one_reading() -> None:
    outbox, now = Outbox(), datetime(2026, 12, 3, tzinfo=UTC)
    changes: list[bool] = []
    pressure = DeliveryPressure(
        outbox,  # type: ignore[arg-type]
        BacklogBounds(rows=100, lag_s=0.5), clock=lambda: now, on_change=changes.append,
    )
    await pressure.read()
    pressure.admit()
    pressure.delivered(0.1)
    pressure.delivered(0.7)
    pressure.delivered(0.2)
    await pressure.read()
    with pytest.raises(Overloaded) as refused:
        pressure.admit()
    assert refused.value.retry_after_s == 1
    assert pressure.behind is not None and "0.70 s behind" in pressure.behind
    await pressure.read()  # nothing slow since
    pressure.admit()
    outbox.rows = 100
    await pressure.read()
    with pytest.raises(Overloaded):
        pressure.admit()
    assert changes == [True, False, True]


def test_the_bounds_are_read_from_the_environment_and_checked() -> None:
    settings = Settings.from_env({"DIPGW_DELIVERY_BACKLOG_LIMIT": "50",
                                  "DIPGW_DELIVERY_LAG_LIMIT_SECONDS": "2.5"})
    assert (settings.delivery_backlog_limit, settings.delivery_lag_limit_s) == (50, 2.5)
    with pytest.raises(ConfigurationError, match="DIPGW_DELIVERY_BACKLOG_LIMIT"):
        Settings.from_env({"DIPGW_DELIVERY_BACKLOG_LIMIT": "0"})
    with pytest.raises(ConfigurationError, match="DIPGW_DELIVERY_LAG_LIMIT_SECONDS"):
        Settings.from_env({"DIPGW_DELIVERY_LAG_LIMIT_SECONDS": "0"})


async def test_the_client_waits_out_retry_after_and_sends_again_with_a_fresh_token(
    aiohttp_client: Any,
) -> None:
    token_ids: list[str] = []

    async def busy_twice(request: web.Request) -> web.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        token_ids.append(jwt.decode(token, options={"verify_signature": False})["jti"])
        if len(token_ids) <= 2:
            return web.json_response({"type": OVERLOADED}, status=503,
                                     headers={"Retry-After": "0"})
        return web.json_response({"message_id": "m"}, status=202)

    app = web.Application()
    app.router.add_post("/v1/messages", busy_twice)
    server = await aiohttp_client(TestServer(app))
    client = GatewayClient(str(server.make_url("")), Credentials(SENDER, keys.generate()),
                           session=server.session)

    assert (await client.send(fresh())).status == 202
    assert len(token_ids) == len(set(token_ids)) == 3


@pytest.mark.parametrize("retry_after", [None, "3600", "Wed, 21 Oct 2026 07:28:00 GMT"])
async def test_the_client_raises_a_503_it_should_not_wait_out(
    aiohttp_client: Any, retry_after: str | None,
) -> None:
    calls: list[int] = []

    async def unavailable(_request: web.Request) -> web.Response:
        calls.append(1)
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return web.json_response({"type": "x"}, status=503, headers=headers)

    app = web.Application()
    app.router.add_post("/v1/messages", unavailable)
    server = await aiohttp_client(TestServer(app))
    client = GatewayClient(str(server.make_url("")), Credentials(SENDER, keys.generate()),
                           session=server.session)
    with pytest.raises(GatewayProblem) as raised:
        await client.send(fresh())
    assert raised.value.status == 503 and len(calls) == 1


async def test_the_embedded_transport_delivers_a_batch_at_once_in_order() -> None:
    """Each delivery is a transaction that waits for a group commit: one after another,
    a batch of 200 waited 200 commit cycles behind the intake, and delivery fell behind it
    without limit. Here the handler lets none finish until all have started."""
    transport, started, entered = InProcessTransport(), asyncio.Event(), []
    count = 20

    async def handler(delivery: Delivery) -> None:
        entered.append(delivery.message_id)
        if len(entered) == count:
            started.set()
        await started.wait()

    async def no_dead_letters(_delivery: Delivery, _reason: str) -> None:
        raise AssertionError("nothing is dead-lettered here")

    await transport.start(handler, no_dead_letters)
    now = datetime.now(UTC)
    items = [OutboxItem(i, f"m{i}", "CJIT-SFK", "ra1_notice", b"{}", 0, now)
             for i in range(count)]
    outcome = await asyncio.wait_for(transport.publish(items), 5)
    assert outcome.confirmed == tuple(range(count))
    assert entered == [f"m{i}" for i in range(count)]
