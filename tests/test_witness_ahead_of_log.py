"""A witness that holds a larger tree of the gateway's log than the gateway has is evidence
of a split view (someone signed another history with the log's key): the gateway keeps no
cosignature from it, counts ``ahead-of-log`` and goes on accepting messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Settings
from gateway.http.services import SERVICES
from gateway.services.checkpoints import AuditKeys
from gateway.tlog.bundle import sign_checkpoint
from gateway.tlog.checkpoint import Checkpoint
from gateway.tlog.merkle import leaf_hash, root
from tests.conftest import AgencyFactory
from tests.test_witnessed_checkpoints import (
    ORIGIN,
    VALID,
    add_checkpoint,
    witness_servers,
    witnessed_settings,
)

FORGED_SIZE = 1_000_000


@pytest.fixture
async def witnesses(tmp_path: Path) -> AsyncIterator[list[tuple[str, str]]]:
    """As in test_witnessed_checkpoints, but witness1 was first shown a forged history
    under the gateway's own key, before the gateway started."""
    async with witness_servers(tmp_path) as found:
        log = AuditKeys(tmp_path / "audit-keys", ORIGIN, create=False).current
        forged = sign_checkpoint(
            Checkpoint(ORIGIN, FORGED_SIZE, root([leaf_hash(b"forged")])), [log])
        assert await add_checkpoint(found[0][1], 0, [], forged) == 200
        yield found


@pytest.fixture
def settings(tmp_path: Path, witnesses: list[tuple[str, str]]) -> Settings:
    return witnessed_settings(tmp_path, witnesses)


async def test_a_witness_shown_another_history_is_reported(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
    witnesses: list[tuple[str, str]],
) -> None:
    services = client.server.app[SERVICES]
    answer = await agency(VALID[0]["from"]).send(VALID[0])
    assert answer.status == 202
    signed = await services.checkpointer.integrate()
    await services.witnessing.settle()
    assert signed is not None
    assert await services.audit.cosigned_size(witnesses[0][0]) == 0
    assert await services.audit.cosigned_size(witnesses[1][0]) == signed[0]
    ahead = services.metrics.registry.get_sample_value(
        "dipgw_witness_requests_total", {"witness": "witness1.test/w", "outcome": "ahead-of-log"})
    assert ahead is not None and ahead > 0
