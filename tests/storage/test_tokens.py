"""The token ledger on SQLite and PostgreSQL: a token id is accepted once per issuer, a
replay is refused until the token expires, and expired ids are forgotten."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from gateway.storage import schema
from gateway.storage.engine import Database
from gateway.storage.tokens import TokenStore

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


async def test_a_replayed_token_is_refused(database: Database) -> None:
    tokens = TokenStore(database)
    assert await tokens.claim("POL-NFK", "jti-1", LATER, NOW) is True
    assert await tokens.claim("POL-NFK", "jti-1", LATER, NOW + timedelta(minutes=1)) is False
    # The same id from another issuer is another token.
    assert await tokens.claim("POL-SFK", "jti-1", LATER, NOW) is True


async def test_an_expired_token_is_forgotten(database: Database) -> None:
    tokens = TokenStore(database)
    assert await tokens.claim("POL-NFK", "old", NOW, NOW - timedelta(minutes=5))
    assert await tokens.claim("POL-NFK", "new", LATER, NOW + timedelta(seconds=1))
    stored = await database.transaction(
        lambda conn: list(conn.execute(select(schema.token_uses.c.jti)).scalars()))
    assert stored == ["new"]


async def test_racing_claims_of_one_token_let_one_through(database: Database) -> None:
    tokens = TokenStore(database)
    results = await asyncio.gather(
        *(tokens.claim("POL-NFK", "raced", LATER, NOW) for _ in range(10)))
    assert sorted(results) == [False] * 9 + [True]
