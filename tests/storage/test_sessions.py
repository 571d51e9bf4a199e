"""Console sessions and sign-ins on SQLite and PostgreSQL, with their audit entries
written in the same transaction as the change."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, insert
from sqlalchemy.exc import IntegrityError

from gateway.pipeline.audit import AuditAction, AuditEvent, Pseudonymiser
from gateway.storage import schema
from gateway.storage.audit_log import AuditLogStore
from gateway.storage.base import ConsoleSession, SignInAttempt
from gateway.storage.engine import Database
from gateway.storage.sessions import SessionStore

AT = datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=UTC)


def session(n: int, person: str = "p1") -> ConsoleSession:
    return ConsoleSession(f"s{n}", person, f"csrf-{n}", AT, AT)


def attempt(n: int, at: datetime = AT) -> SignInAttempt:
    return SignInAttempt(f"a{n}", "CJIT-NFK", f"state-{n}", f"nonce-{n}", f"pkce-{n}", at)


@pytest.fixture
async def stores(database: Database) -> tuple[SessionStore, AuditLogStore]:
    def people(conn: Connection) -> None:
        conn.execute(insert(schema.organisations).values(
            code="CJIT-NFK", kind="cjit", name="Norfolk CJIT", area="Norfolk",
            spoc_json="{}", jwks_json="[]", updated_at=AT))
        conn.execute(insert(schema.people), [
            {"id": person, "org_code": "CJIT-NFK", "name": person, "email": f"{person}@x",
             "created_at": AT}
            for person in ("p1", "p2")
        ])

    await database.transaction(people)
    return SessionStore(database), AuditLogStore(database, Pseudonymiser(b"k" * 32))


def signed(action: AuditAction) -> AuditEvent:
    return AuditEvent(action, AT, "p1")


async def logged(audit: AuditLogStore) -> list[dict[str, object]]:
    return [json.loads(entry) for entry in await audit.entries(0, await audit.size())]


async def test_a_session_is_created_touched_and_ended(
    stores: tuple[SessionStore, AuditLogStore],
) -> None:
    sessions, audit = stores
    await sessions.create(session(1), (audit, signed(AuditAction.CONSOLE_SIGNED_IN)))
    assert await sessions.get("s1") == session(1)
    assert await sessions.get("nobody") is None
    await sessions.touch("s1", AT + timedelta(minutes=3))
    assert await sessions.get("s1") == ConsoleSession(
        "s1", "p1", "csrf-1", AT, AT + timedelta(minutes=3))
    ended = (audit, signed(AuditAction.CONSOLE_SIGNED_OUT))
    assert await sessions.delete("s1", ended) is True
    assert await sessions.get("s1") is None
    assert await sessions.delete("s1", ended) is False  # nothing to end, nothing audited
    assert [entry["action"] for entry in await logged(audit)] == [
        "console.signed_in", "console.signed_out"]


async def test_signing_out_everywhere_counts_the_sessions_ended(
    stores: tuple[SessionStore, AuditLogStore],
) -> None:
    sessions, audit = stores
    for n, person in ((1, "p1"), (2, "p1"), (3, "p2")):
        await sessions.create(session(n, person))
    everywhere = (audit, signed(AuditAction.CONSOLE_SIGNED_OUT_EVERYWHERE))
    assert await sessions.delete_person("p1", everywhere) == 2
    assert await sessions.get("s1") is None and await sessions.get("s2") is None
    assert await sessions.get("s3") == session(3, "p2")
    assert await sessions.delete_person("p1", everywhere) == 0
    assert [entry["details"] for entry in await logged(audit)] == [
        {"sessions_ended": 2}, {"sessions_ended": 0}]


async def test_a_session_that_cannot_be_stored_is_not_audited(
    stores: tuple[SessionStore, AuditLogStore],
) -> None:
    sessions, audit = stores
    with pytest.raises(IntegrityError):  # no such person: the foreign key refuses it
        await sessions.create(
            session(1, "nobody"), (audit, signed(AuditAction.CONSOLE_SIGNED_IN)))
    assert await audit.size() == 0


async def test_a_sign_in_is_taken_once_and_stale_ones_are_dropped(
    stores: tuple[SessionStore, AuditLogStore],
) -> None:
    sessions, _audit = stores
    await sessions.begin_sign_in(attempt(1, AT - timedelta(minutes=20)), AT - timedelta(hours=1))
    await sessions.begin_sign_in(attempt(2), AT - timedelta(minutes=10))
    assert await sessions.take_sign_in("a1") is None  # dropped as stale when a2 began
    assert await sessions.take_sign_in("a2") == attempt(2)
    assert await sessions.take_sign_in("a2") is None
