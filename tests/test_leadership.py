"""One leader for the singleton jobs (gateway.services.leadership, GitHub issue 13).

On PostgreSQL (a fresh database per test; skipped when no server answers, failed instead
when DIPGW_REQUIRE_SERVICES=1): of two contenders only one leads, and when the leader
stops or its session is killed the other takes over within the retry interval; of two
full gateways on one database only one signs checkpoints, runs expiry and records a policy
activation. On SQLite the one process always leads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import make_url

from gateway.app import create_app
from gateway.http.services import SERVICES, Services
from gateway.pipeline.audit import AuditAction, AuditEvent
from gateway.services.leadership import LOCK_KEY, AdvisoryLockLeader, SoleLeader
from gateway.storage.audit_log import AuditLogStore
from gateway.tlog.tilehash import Tile
from tests.backends import (
    create_database,
    drop_database,
    make_settings,
    postgresql_only,
    require_postgres,
)

RETRY_S = 0.2
Clients = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, migrated PostgreSQL database of this test's own, dropped afterwards."""
    name = create_database(migrated=True)
    try:
        yield make_url(require_postgres()).set(database=name).render_as_string(
            hide_password=False)
    finally:
        drop_database(name)


async def eventually(check: Callable[[], bool], within_s: float) -> bool:
    deadline = asyncio.get_running_loop().time() + within_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


class Changes:
    """What a leadership object told its observer."""

    def __init__(self) -> None:
        self.seen: list[bool] = []

    def __call__(self, leads: bool) -> None:
        self.seen.append(leads)


def terminate_lock_holder(url: str) -> int:
    """Kill the session holding the leader lock, as a lost server connection would."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            # pg_locks is the whole server's: only this test's database is looked at.
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND ((classid::bigint << 32) | objid::bigint) = %s",
            (LOCK_KEY,),
        ).fetchone()
        assert row is not None, "nobody holds the leader lock"
        conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        return int(row[0])


async def test_sqlite_always_leads() -> None:
    changes = Changes()
    leader = SoleLeader(changes)
    await leader.start()
    assert await leader.confirm() == 1
    ran: list[int] = []

    async def job() -> None:
        ran.append(1)

    await leader.guard(job)()
    await leader.stop()
    await leader.guard(job)()
    assert ran == [1]
    assert changes.seen == [True, False]


async def test_sqlite_gateway_leads_every_role(aiohttp_client: Clients, tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(make_settings(data_dir=tmp_path, database_url=None)))
    services: Services = client.server.app[SERVICES]
    assert leader_gauges(services) == {
        "audit-checkpointer": 1, "expiry": 1, "alert-escalation": 1,
        "mesh-acknowledgements": 0,
    }
    assert await services.checkpointer.integrate() is not None


@postgresql_only
async def test_only_one_contender_leads_and_the_other_takes_over(pg_url: str) -> None:
    first_seen, second_seen = Changes(), Changes()
    first = AdvisoryLockLeader(pg_url, first_seen, retry_s=RETRY_S)
    second = AdvisoryLockLeader(pg_url, second_seen, retry_s=RETRY_S)
    await first.start()
    await second.start()
    try:
        assert await first.confirm() == 1
        assert await second.confirm() is None
        await asyncio.sleep(3 * RETRY_S)
        assert (first.term, second.term) == (1, None)
        await first.stop()
        assert await eventually(lambda: second.term is not None, 2 * RETRY_S)
        assert first_seen.seen == [True, False]
        assert second_seen.seen == [True]
    finally:
        await first.stop()
        await second.stop()


@postgresql_only
async def test_a_killed_session_hands_leadership_over(pg_url: str) -> None:
    first = AdvisoryLockLeader(pg_url, Changes(), retry_s=RETRY_S)
    second = AdvisoryLockLeader(pg_url, Changes(), retry_s=RETRY_S)
    await first.start()
    await second.start()
    try:
        assert first.term == 1
        terminate_lock_holder(pg_url)
        # The old leader fails closed at its next check; the standby wins the lock at its
        # next try, before the old leader tries again an interval after losing it.
        assert await eventually(lambda: first.term is None, 2 * RETRY_S)
        assert await eventually(lambda: second.term is not None, 2 * RETRY_S)
        await asyncio.sleep(3 * RETRY_S)
        assert first.term is None
        assert second.term is not None
    finally:
        await first.stop()
        await second.stop()


@postgresql_only
async def test_a_lost_session_is_noticed_before_a_job_runs(pg_url: str) -> None:
    # A long interval: only the guard's own check can notice the session is gone.
    leader = AdvisoryLockLeader(pg_url, Changes(), retry_s=60)
    await leader.start()
    ran: list[int] = []

    async def job() -> None:
        ran.append(1)

    try:
        assert leader.term == 1
        terminate_lock_holder(pg_url)
        await asyncio.sleep(0.2)
        await leader.guard(job)()
        assert ran == []
        assert leader.term is None
    finally:
        await leader.stop()


def leader_gauges(services: Services) -> dict[str, float | None]:
    return {
        role: services.metrics.registry.get_sample_value("dipgw_leader", {"role": role})
        for role in ("audit-checkpointer", "expiry", "alert-escalation",
                     "mesh-acknowledgements")
    }


@postgresql_only
async def test_two_gateways_one_signer_and_one_expiry_run_with_failover(
    pg_url: str, aiohttp_client: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    signed_by: list[int] = []
    add_checkpoint = AuditLogStore.add_checkpoint

    async def spy_checkpoint(
        self: AuditLogStore, size: int, note: str, at: datetime, tiles: Sequence[Tile] = ()
    ) -> None:
        signed_by.append(id(self))
        await add_checkpoint(self, size, note, at, tiles)

    expired_by: list[int] = []

    async def spy_expiry(store: object, *_args: object) -> None:
        expired_by.append(id(store))

    monkeypatch.setattr(AuditLogStore, "add_checkpoint", spy_checkpoint)
    monkeypatch.setattr("gateway.app.expire_unacknowledged", spy_expiry)
    settings = make_settings(
        data_dir=tmp_path, database_url=pg_url, leader_retry_s=RETRY_S,
        checkpoint_interval_s=0.05, expiry_check_s=0.05, relay_interval_s=0.05,
    )
    first = await aiohttp_client(create_app(settings))
    second = await aiohttp_client(create_app(settings))
    one: Services = first.server.app[SERVICES]
    two: Services = second.server.app[SERVICES]
    assert leader_gauges(one) == {
        "audit-checkpointer": 1, "expiry": 1, "alert-escalation": 1,
        "mesh-acknowledgements": 0,
    }
    assert set(leader_gauges(two).values()) == {0}

    for _ in range(3):
        await two.audit.record(AuditEvent(AuditAction.CONSULTED, datetime.now(UTC), "test"))
        await asyncio.sleep(0.2)
    # The standby signs nothing, even when asked; it answers with the newest stored one.
    assert await two.checkpointer.integrate() is None
    assert signed_by and set(signed_by) == {id(one.audit)}
    assert expired_by and set(expired_by) == {id(one.messages)}
    size = await one.audit.size()
    entries = await one.audit.entries(0, size)
    assert sum(b'"policy.activated"' in entry for entry in entries) == 1

    await first.close()
    assert await eventually(lambda: leader_gauges(two)["expiry"] == 1, 3 * RETRY_S)
    assert leader_gauges(two)["audit-checkpointer"] == 1
    signed_by.clear()
    expired_by.clear()
    await two.audit.record(AuditEvent(AuditAction.CONSULTED, datetime.now(UTC), "test"))
    recorded = await two.audit.size()
    assert await eventually(lambda: bool(signed_by) and bool(expired_by), 1.0)
    assert set(signed_by) == {id(two.audit)}
    assert set(expired_by) == {id(two.messages)}
    # The new leader's checkpoints come to cover the entry (the jobs may append more).
    deadline = asyncio.get_running_loop().time() + 2.0
    while (newest := await two.audit.checkpoint()) is None or newest[0] < recorded:
        assert asyncio.get_running_loop().time() < deadline, (newest, recorded)
        await asyncio.sleep(0.05)
    assert set(signed_by) == {id(two.audit)}
