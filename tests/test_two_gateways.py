"""Two gateway processes on one database: what one grants, revokes or withdraws, the other
honours within its directory refresh interval, not only after a write of its own.

The two apps run in one test process but share nothing in memory: each opens its own
SQLite connection on the same data directory, as two ``dipgw serve`` processes would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.config import Settings
from tests.backends import make_settings
from tests.conftest import credentials, person_bearer, person_credentials

REFRESH_S = 0.2


async def roles_seen(client: TestClient[Any, Any], settings: Settings, person: str) -> list[str]:
    response = await client.get("/v1/me", headers=person_bearer(settings, person))
    assert response.status == 200
    roles: list[str] = (await response.json())["roles"]
    return roles


async def eventually(check: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "the second gateway never saw it"
        await asyncio.sleep(REFRESH_S / 2)


async def test_a_grant_revocation_and_key_withdrawal_reach_the_other_gateway(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = make_settings(data_dir=tmp_path, relay_interval_s=0.05,
                        directory_refresh_s=REFRESH_S, checkpoint_interval_s=3600)
    first: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    second: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    spoc, admin = "cjit-sfk.spoc", "cjit-sfk.admin"
    assert await roles_seen(second, settings, spoc) == ["spoc"]

    granted = await first.post(f"/v1/people/{spoc}/grants",
                               json={"role": "ig_lead", "reason": "cover"},
                               headers=person_bearer(settings, admin))
    assert granted.status == 201
    grant_id = (await granted.json())["id"]
    await eventually(lambda: _has(second, settings, spoc, "ig_lead"))

    revoked = await first.post(f"/v1/grants/{grant_id}/revoke", json={"reason": "ended"},
                               headers=person_bearer(settings, admin))
    assert revoked.status == 200
    await eventually(lambda: _lacks(second, settings, spoc, "ig_lead"))

    # A key withdrawn through the first gateway stops working at the second.
    key = person_credentials(settings, spoc)
    withdrawn = await first.delete(f"/v1/people/{spoc}/keys/{key.private_jwk['kid']}",
                                   headers=person_bearer(settings, admin))
    assert withdrawn.status == 200

    async def refused() -> bool:
        answer = await second.get("/v1/me", headers={"Authorization": f"Bearer {key.token()}"})
        return answer.status == 401

    await eventually(refused)
    # The organisation's system is untouched throughout.
    system = await second.get("/v1/me", headers={
        "Authorization": f"Bearer {credentials(settings, 'CJIT-SFK').token()}"})
    assert system.status == 200


async def _has(client: TestClient[Any, Any], settings: Settings, person: str, role: str) -> bool:
    return role in await roles_seen(client, settings, person)


async def _lacks(
    client: TestClient[Any, Any], settings: Settings, person: str, role: str
) -> bool:
    return role not in await roles_seen(client, settings, person)
