"""Console sessions: stored server-side, revocable, behind an HttpOnly cookie.

The cookie carries a random secret; the store keeps only its SHA-256 (the session id), so
the store cannot be replayed as cookies. A session ends after 30 minutes without activity
or 12 hours after sign-in, whichever comes first, and at once when its row is deleted
(sign-out, or sign-out of every device). The person it belongs to acts with the roles
their grants give them *now*
(``gateway.services.auth.person_principal``, the builder the API uses for a person's token), so a
revoked grant stops working in the console at the same moment as in the API.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from gateway.domain.model import Principal
from gateway.pipeline.audit import AuditAction, AuditEvent, AuditLog
from gateway.services.auth import person_principal
from gateway.services.directory import Directory
from gateway.storage.base import ConsoleSession, SessionRepository

IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
# Activity is written at most this often: the idle clock may start up to a minute early,
# never late, and a page view does not always cost a write.
TOUCH_EVERY = timedelta(minutes=1)

DEV_COOKIE = "dipgw_session"
# In production the __Host- prefix makes browsers insist on Secure, Path=/ and no Domain.
PRODUCTION_COOKIE = "__Host-dipgw_session"


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The session of this request and the principal it acts as."""

    session: ConsoleSession
    principal: Principal


def session_id(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class SessionManager:
    def __init__(
        self,
        repository: SessionRepository,
        directory: Directory,
        clock: Callable[[], datetime],
        *,
        production: bool,
    ) -> None:
        self._repository = repository
        self._directory = directory
        self._clock = clock
        self.production = production
        self.cookie_name = PRODUCTION_COOKIE if production else DEV_COOKIE

    async def start(
        self, person_id: str, audit: AuditLog | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> tuple[str, ConsoleSession]:
        """A new session for a person (never a reused id: no session fixation); returns
        the cookie's secret and the stored session. Given ``audit``, the sign-in is
        audited in the transaction that stores the session (``details``: how)."""
        secret = secrets.token_urlsafe(32)
        now = self._clock()
        session = ConsoleSession(
            id=session_id(secret), person_id=person_id,
            csrf_token=secrets.token_urlsafe(32), created_at=now, last_seen_at=now,
        )
        audited = None if audit is None else (audit, AuditEvent(
            action=AuditAction.CONSOLE_SIGNED_IN, at=now, actor=self._actor(person_id),
            details={"person": person_id, "session": session.id[:16], **(details or {})},
        ))
        await self._repository.create(session, audited)
        return secret, session

    async def load(self, request: web.Request) -> SignedIn | None:
        """The live session the request's cookie names, or None (no cookie, unknown,
        expired, or its person gone); an expired one is deleted."""
        secret = request.cookies.get(self.cookie_name)
        if not secret or len(secret) > 100:
            return None
        session = await self._repository.get(session_id(secret))
        if session is None:
            return None
        now = self._clock()
        person = self._directory.person(session.person_id)
        if (
            person is None
            or now - session.created_at >= ABSOLUTE_TIMEOUT
            or now - session.last_seen_at >= IDLE_TIMEOUT
        ):
            await self._repository.delete(session.id)
            return None
        if now - session.last_seen_at >= TOUCH_EVERY:
            await self._repository.touch(session.id, now)
        # The token id names the session in logs without revealing its cookie.
        return SignedIn(session, person_principal(
            self._directory, person, f"console-session:{session.id[:16]}"
        ))

    async def end(self, session: ConsoleSession, audit: AuditLog | None = None) -> None:
        """End one session (sign-out), audited in the same transaction given ``audit``."""
        audited = None if audit is None else (audit, AuditEvent(
            action=AuditAction.CONSOLE_SIGNED_OUT, at=self._clock(),
            actor=self._actor(session.person_id),
            details={"person": session.person_id, "session": session.id[:16]},
        ))
        await self._repository.delete(session.id, audited)

    async def end_everywhere(self, person_id: str, audit: AuditLog) -> int:
        """End every session of a person, on every device (the audit entry says how many
        in the same transaction); how many there were."""
        return await self._repository.delete_person(person_id, (audit, AuditEvent(
            action=AuditAction.CONSOLE_SIGNED_OUT_EVERYWHERE, at=self._clock(),
            actor=self._actor(person_id), details={"person": person_id},
        )))

    def _actor(self, person_id: str) -> str:
        """How the audit log names a person: ``ORG/person-id``, as ``Principal.actor``."""
        person = self._directory.person(person_id)
        return f"{person.org_code if person else '-'}/{person_id}"

    def set_cookie(self, response: web.StreamResponse, secret: str) -> None:
        response.set_cookie(
            self.cookie_name, secret, path="/", httponly=True, samesite="Lax",
            secure=self.production, max_age=int(ABSOLUTE_TIMEOUT.total_seconds()),
        )

    def clear_cookie(self, response: web.StreamResponse) -> None:
        response.del_cookie(
            self.cookie_name, path="/", httponly=True, samesite="Lax", secure=self.production
        )


def same_token(expected: str, given: object) -> bool:
    """A CSRF token check in constant time (no early exit on the first differing byte)."""
    if not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))
