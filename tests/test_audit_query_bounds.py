"""Out-of-range audit queries are 400 problems, never 500s.

An audit index is a position in the log, and every read of the log is itself logged as a
consultation whose details carry the range asked for. Audit entries are canonical JSON
(RFC 8785), which carries integers only within ±(2**53 - 1): a larger ``from`` once reached
the canonicaliser (or SQLite's 64-bit INTEGER) and answered 500.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Settings
from gateway.domain.model import Role
from tests.conftest import bearer
from tests.test_hostile_input import assert_problem

BEYOND_SAFE = str(2**53 + 1)  # 9007199254740993
SQLITE_MAX = str(2**63 - 1)


@pytest.mark.parametrize(
    "query",
    [
        {"from": BEYOND_SAFE},
        {"from": SQLITE_MAX},
        {"from": "0", "to": BEYOND_SAFE},
        {"from": "0", "to": SQLITE_MAX},
        {"from": str(2**64)},
        {"from": "-1"},
    ],
    ids=lambda q: "&".join(f"{k}={v}" for k, v in q.items()),
)
async def test_entries_out_of_range_is_a_400_problem(
    client: TestClient[Any, Any], settings: Settings, query: dict[str, str]
) -> None:
    response = await client.get(
        "/v1/audit/entries", params=query, headers=bearer(settings, "DIP-ASSURE", Role.AUDITOR)
    )
    problem = await assert_problem(response, 400, "malformed-request")
    assert "whole number" in problem["detail"]


async def test_entries_at_the_largest_safe_index_is_an_empty_page(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    start = str(2**53 - 1)
    response = await client.get(
        "/v1/audit/entries", params={"from": start},
        headers=bearer(settings, "DIP-ASSURE", Role.AUDITOR),
    )
    assert response.status == 200
    assert await response.json() == {"from": 2**53 - 1, "entries": []}


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/audit/proof/inclusion", {"index": "0", "size": BEYOND_SAFE}),
        ("/v1/audit/proof/inclusion", {"index": SQLITE_MAX}),
        ("/v1/audit/proof/inclusion", {"index": "0", "size": SQLITE_MAX}),
        ("/v1/audit/proof/consistency", {"from": "1", "to": SQLITE_MAX}),
        ("/v1/audit/proof/consistency", {"from": BEYOND_SAFE, "to": SQLITE_MAX}),
        ("/v1/audit/export", {"from": SQLITE_MAX}),
        ("/v1/audit/export", {"to": BEYOND_SAFE}),
    ],
)
async def test_other_audit_queries_with_huge_numbers_are_client_errors(
    client: TestClient[Any, Any], settings: Settings, path: str, query: dict[str, str]
) -> None:
    """These compare the numbers with signed checkpoint sizes before using them, so a
    huge one is "no such checkpoint" (404) or "not in range" (400), never a 500."""
    auditor = bearer(settings, "DIP-ASSURE", Role.AUDITOR)
    assert (await client.post("/v1/audit/checkpoint", headers=auditor)).status == 200
    response = await client.get(
        path, params=query, headers=bearer(settings, "DIP-ASSURE", Role.AUDITOR)
    )
    await assert_problem(response, response.status)
    assert response.status in (400, 404)
