"""The ledger of used token ids (JWT ``jti``, RFC 7519 section 4.1.7) on SQLite and
PostgreSQL: a token is accepted once, and refused as a replay until it expires."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, delete

from gateway.domain.errors import TokenReplayed
from gateway.domain.model import TokenUse
from gateway.storage.base import TokenLedger
from gateway.storage.engine import Database
from gateway.storage.rows import HotStatement, insert_ignoring_duplicates
from gateway.storage.schema import token_uses

# Run with every claim, so once per request: compiled once per dialect.
_EXPIRED = HotStatement(delete(token_uses).where(token_uses.c.expires_at < bindparam("now")))


class TokenStore(TokenLedger):
    """``TokenLedger`` on a ``gateway.storage.engine.Database``.

    A claim is one insert keyed by (issuer, jti) that skips a row already there, so two
    gateways racing on one token cannot both win: on PostgreSQL the second waits on the
    first's row and, once that commits, fails serialization and is run again to find it.
    Rows are dropped once their token has expired, when a replay is refused anyway.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(self, issuer: str, token_id: str, expires_at: datetime, now: datetime) -> bool:
        return await self._db.transaction(
            lambda conn: record_token_use(conn, issuer, token_id, expires_at, now))


def spend(conn: Connection, use: TokenUse | None, now: datetime) -> None:
    """Record the request's token ``use`` (None: nothing to record) in the caller's
    transaction; ``TokenReplayed`` if it was used before, which rolls that transaction's
    work back with it (the request changes nothing, and the token is refused)."""
    if use is not None and not record_token_use(
        conn, use.issuer, use.token_id, use.remember_until, now
    ):
        raise TokenReplayed()


def record_token_use(
    conn: Connection, issuer: str, token_id: str, expires_at: datetime, now: datetime
) -> bool:
    """Record one use of a token inside the caller's transaction (a claim's own, or a
    submission's); False when it was used before. Expired uses are dropped on the way."""
    _EXPIRED.execute(conn, {"now": now})
    row = {"issuer": issuer, "jti": token_id, "expires_at": expires_at}
    return insert_ignoring_duplicates(conn, token_uses, row) == 1
