"""Console sessions and OpenID Connect sign-ins under way, on SQLite and PostgreSQL.

A session exists only while its row does, so deleting the row revokes it at once; a
change given ``audited`` appends its audit entry in the same transaction (DPA 2018 s.62),
so the two are committed together or not at all.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from gateway.storage.base import Audited, ConsoleSession, SessionRepository, SignInAttempt
from gateway.storage.engine import Database
from gateway.storage.schema import console_sessions, console_sign_ins

_SESSION = select(
    console_sessions.c.id,
    console_sessions.c.person_id,
    console_sessions.c.csrf_token,
    console_sessions.c.created_at,
    console_sessions.c.last_seen_at,
)


class SessionStore(SessionRepository):
    """``SessionRepository`` on a ``gateway.storage.engine.Database``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, session: ConsoleSession, audited: Audited | None = None) -> None:
        def write(conn: Connection) -> None:
            conn.execute(insert(console_sessions).values(
                id=session.id,
                person_id=session.person_id,
                csrf_token=session.csrf_token,
                created_at=session.created_at,
                last_seen_at=session.last_seen_at,
            ))
            if audited is not None:
                log, event = audited
                log.append(conn, event)

        await self._db.transaction(write)

    async def get(self, session_id: str) -> ConsoleSession | None:
        query = _SESSION.where(console_sessions.c.id == session_id)

        def read(conn: Connection) -> ConsoleSession | None:
            row = conn.execute(query).first()
            return ConsoleSession(*row) if row else None

        return await self._db.transaction(read)

    async def touch(self, session_id: str, at: datetime) -> None:
        statement = (
            update(console_sessions)
            .where(console_sessions.c.id == session_id)
            .values(last_seen_at=at)
        )

        def write(conn: Connection) -> None:
            conn.execute(statement)

        await self._db.transaction(write)

    async def delete(self, session_id: str, audited: Audited | None = None) -> bool:
        statement = delete(console_sessions).where(console_sessions.c.id == session_id)

        def write(conn: Connection) -> bool:
            ended = conn.execute(statement).rowcount == 1
            if audited is not None and ended:
                log, event = audited
                log.append(conn, event)
            return ended

        return await self._db.transaction(write)

    async def delete_person(self, person_id: str, audited: Audited | None = None) -> int:
        statement = delete(console_sessions).where(console_sessions.c.person_id == person_id)

        def write(conn: Connection) -> int:
            ended = conn.execute(statement).rowcount
            if audited is not None:
                log, event = audited
                log.append(conn, replace(
                    event, details={**event.details, "sessions_ended": ended}))
            return ended

        return await self._db.transaction(write)

    async def begin_sign_in(self, attempt: SignInAttempt, stale_before: datetime) -> None:
        def write(conn: Connection) -> None:
            conn.execute(
                delete(console_sign_ins).where(console_sign_ins.c.created_at < stale_before)
            )
            conn.execute(insert(console_sign_ins).values(
                id=attempt.id,
                org_code=attempt.org_code,
                state=attempt.state,
                nonce=attempt.nonce,
                code_verifier=attempt.code_verifier,
                created_at=attempt.created_at,
            ))

        await self._db.transaction(write)

    async def take_sign_in(self, attempt_id: str) -> SignInAttempt | None:
        # One DELETE ... RETURNING (SQLite 3.35+, PostgreSQL): the row is read as it is
        # removed, so of two callbacks racing with the same cookie only one gets it.
        statement = (
            delete(console_sign_ins)
            .where(console_sign_ins.c.id == attempt_id)
            .returning(
                console_sign_ins.c.id,
                console_sign_ins.c.org_code,
                console_sign_ins.c.state,
                console_sign_ins.c.nonce,
                console_sign_ins.c.code_verifier,
                console_sign_ins.c.created_at,
            )
        )

        def write(conn: Connection) -> SignInAttempt | None:
            row = conn.execute(statement).first()
            return SignInAttempt(*row) if row else None

        return await self._db.transaction(write)
