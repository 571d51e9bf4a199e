"""SQLite (WAL) storage: the embedded default.

Every call runs on one dedicated thread that owns the connection, so writes are
serialised without blocking the event loop, and each public operation is one
transaction. ``synchronous=FULL`` makes a commit survive power loss, not only a crash:
an accepted message must never be lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import stat
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from gateway.audit import AuditAction, AuditEvent, AuditLog, Pseudonymiser, entry_document
from gateway.consent import ConsentRecord, SubjectKeys, record_from_json, record_to_json
from gateway.consent_notice import withdrawal_notice
from gateway.errors import Conflict, IdempotencyConflict, NotFound
from gateway.model import (
    ChannelSettings,
    Consent,
    Contact,
    Decision,
    Grant,
    MessageStatus,
    Organisation,
    OrgKind,
    Person,
    Role,
    SignIn,
    StatusEvent,
    canonical_json,
)
from gateway.redaction import redact
from gateway.storage.base import (
    Acknowledgement,
    AuditRepository,
    ConsentRepository,
    ConsentShare,
    ConsoleSession,
    DirectoryImport,
    DirectoryRepository,
    Dispatch,
    DispatchPurpose,
    InboxItem,
    Involvement,
    MessageRecord,
    MessageRepository,
    OutboxItem,
    PlannedDelivery,
    PolicyVersion,
    PolicyVersionRepository,
    Receipt,
    RecordedShare,
    Redecide,
    RemoteReceipt,
    SessionRepository,
    SettledShare,
    ShareOutcome,
    ShareState,
    Submission,
    TokenLedger,
    Withdrawal,
)
from gateway.tlog.canonical import canonicalize
from gateway.tlog.merkle import leaf_hash
from gateway.undelivered import GATEWAY_SENDER, REPORT_TYPE, undelivered_report

T = TypeVar("T")

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE organisations (
        code TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        area TEXT NOT NULL,
        spoc_json TEXT NOT NULL,
        jwks_json TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE messages (
        message_id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        sender TEXT NOT NULL,
        route TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        document_json TEXT NOT NULL,
        received_at TEXT NOT NULL,
        submitted_by TEXT NOT NULL,
        audit_index INTEGER
    );
    CREATE TABLE deliveries (
        message_id TEXT NOT NULL REFERENCES messages(message_id),
        recipient TEXT NOT NULL,
        position INTEGER NOT NULL,
        permitted INTEGER NOT NULL,
        decision_json TEXT NOT NULL,
        payload_json TEXT,
        PRIMARY KEY (message_id, recipient)
    );
    CREATE TABLE status_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL REFERENCES messages(message_id),
        recipient TEXT,
        status TEXT NOT NULL,
        at TEXT NOT NULL,
        detail TEXT
    );
    CREATE INDEX status_events_by_message ON status_events(message_id, id);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        created_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        published_at TEXT,
        UNIQUE (message_id, recipient),
        FOREIGN KEY (message_id, recipient) REFERENCES deliveries(message_id, recipient)
    );
    CREATE INDEX outbox_pending ON outbox(next_attempt_at) WHERE published_at IS NULL;
    CREATE TABLE inbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        delivered_at TEXT NOT NULL,
        acknowledged_at TEXT,
        acknowledged_by TEXT,
        UNIQUE (message_id, recipient),
        FOREIGN KEY (message_id, recipient) REFERENCES deliveries(message_id, recipient)
    );
    CREATE INDEX inbox_unacknowledged ON inbox(recipient, seq) WHERE acknowledged_at IS NULL;
    CREATE TABLE token_uses (
        issuer TEXT NOT NULL,
        jti TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        PRIMARY KEY (issuer, jti)
    );
    CREATE INDEX token_uses_expiry ON token_uses(expires_at);
    """,
    """
    ALTER TABLE inbox ADD COLUMN closed_at TEXT;
    ALTER TABLE inbox ADD COLUMN closed_reason TEXT;
    DROP INDEX inbox_unacknowledged;
    CREATE INDEX inbox_open ON inbox(recipient, seq)
        WHERE acknowledged_at IS NULL AND closed_at IS NULL;
    CREATE INDEX messages_received ON messages(received_at);
    """,
    """
    CREATE TABLE consents (
        id TEXT PRIMARY KEY,
        pnc TEXT,
        name_dob TEXT NOT NULL,
        record_json TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        withdrawn_at TEXT
    );
    CREATE INDEX consents_pnc ON consents(pnc);
    CREATE INDEX consents_name_dob ON consents(name_dob);
    ALTER TABLE messages ADD COLUMN subject_pnc TEXT;
    ALTER TABLE messages ADD COLUMN subject_name_dob TEXT;
    CREATE INDEX messages_subject_pnc ON messages(subject_pnc);
    CREATE INDEX messages_subject_name_dob ON messages(subject_name_dob);
    ALTER TABLE deliveries ADD COLUMN consent_based INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE policy_versions (
        version TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        source_text TEXT NOT NULL,
        author TEXT NOT NULL,
        proposed_at TEXT NOT NULL,
        approved_by TEXT,
        approved_at TEXT,
        effective_from TEXT
    );
    """,
    """
    CREATE TABLE audit_entries (
        idx INTEGER PRIMARY KEY,
        entry BLOB NOT NULL,
        leaf_hash BLOB NOT NULL
    );
    CREATE TABLE audit_checkpoints (
        size INTEGER PRIMARY KEY,
        note TEXT NOT NULL,
        issued_at TEXT NOT NULL
    );
    """,
    """
    ALTER TABLE organisations ADD COLUMN areas_served_json TEXT NOT NULL DEFAULT '[]';
    """,
    """
    ALTER TABLE deliveries ADD COLUMN resolved_by TEXT;
    """,
    """
    ALTER TABLE organisations ADD COLUMN delivery_json TEXT NOT NULL DEFAULT '{}';
    CREATE TABLE dispatches (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        channel TEXT NOT NULL,
        purpose TEXT NOT NULL,
        target TEXT NOT NULL,
        created_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        done_at TEXT,
        external_ref TEXT,
        acknowledged_at TEXT,
        UNIQUE (message_id, recipient, purpose),
        FOREIGN KEY (message_id, recipient) REFERENCES deliveries(message_id, recipient)
    );
    CREATE INDEX dispatches_due ON dispatches(next_attempt_at) WHERE done_at IS NULL;
    CREATE INDEX dispatches_awaiting_ack ON dispatches(channel)
        WHERE done_at IS NOT NULL AND acknowledged_at IS NULL AND external_ref IS NOT NULL;
    """,
    """
    CREATE TABLE people (
        id TEXT PRIMARY KEY,
        org_code TEXT NOT NULL REFERENCES organisations(code),
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        sign_in_issuer TEXT,
        sign_in_subject TEXT,
        jwks_json TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        UNIQUE (sign_in_issuer, sign_in_subject)
    );
    CREATE TABLE grants (
        id TEXT PRIMARY KEY,
        person_id TEXT NOT NULL REFERENCES people(id),
        role TEXT NOT NULL,
        granted_by TEXT NOT NULL,
        granted_at TEXT NOT NULL,
        reason TEXT NOT NULL,
        revoked_at TEXT,
        revoked_by TEXT,
        revocation_reason TEXT
    );
    CREATE UNIQUE INDEX grants_active ON grants(person_id, role) WHERE revoked_at IS NULL;
    CREATE TABLE directory_imports (
        id TEXT PRIMARY KEY,
        csv_text TEXT NOT NULL,
        plan_json TEXT NOT NULL,
        proposed_by TEXT NOT NULL,
        proposed_at TEXT NOT NULL,
        approved_by TEXT,
        approved_at TEXT
    );
    """,
    # The consent record a consent-based share relies on, so that withdrawing that record
    # finds exactly the shares resting on it (NULL: decided before this, or on the
    # sender's declaration).
    """
    ALTER TABLE deliveries ADD COLUMN consent_record TEXT;
    CREATE INDEX deliveries_consent_record ON deliveries(consent_record)
        WHERE consent_record IS NOT NULL;
    """,
    # Web console sessions (gateway.console.sessions): the id is the SHA-256 of the
    # cookie's secret; deleting a row revokes the session.
    """
    CREATE TABLE console_sessions (
        id TEXT PRIMARY KEY,
        person_id TEXT NOT NULL REFERENCES people(id),
        csrf_token TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL
    );
    CREATE INDEX console_sessions_person ON console_sessions(person_id);
    """,
)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _json(value: Any) -> str:
    return canonical_json(value).decode("utf-8")


class SqliteDatabase:
    """One connection on one thread, with group commit.

    Operations queued while a commit is in progress run together in the next
    transaction, each inside its own savepoint: one failing operation rolls back only
    itself. Every caller's future resolves only after the shared COMMIT, so "committed"
    still means durable, while concurrent requests share one fsync.
    """

    def __init__(self, path: Path, max_batch: int = 256) -> None:
        self._path = path
        self._max_batch = max_batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._queue: deque[_Operation[Any]] = deque()
        self._draining = False

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open_sync)

    @staticmethod
    def _owner_only(path: Path) -> None:
        """Make the data directory 0700 and the database files 0600, before SQLite opens them.

        The database holds special category health data (UK GDPR Art. 9), so no other local
        account may read it. The directory is the gateway's own, so one left more open is
        tightened rather than trusted. The file is created 0600 with ``os.open`` (never
        ``os.umask``, which is process-wide); SQLite creates ``-wal`` and ``-shm`` with the
        main file's mode, and any left by an earlier run are tightened here too.
        """
        directory = path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if stat.S_IMODE(directory.stat().st_mode) != 0o700:
            directory.chmod(0o700)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        for file in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))):
            if file.exists() and stat.S_IMODE(file.stat().st_mode) & 0o077:
                file.chmod(0o600)

    def _open_sync(self) -> None:
        self._owner_only(self._path)
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._conn = conn

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._conn is not None:
            await loop.run_in_executor(self._executor, self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` atomically; returns after its effects are committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._queue.append(_Operation(fn, future, loop))
            start = not self._draining
            self._draining = True
        if start:
            loop.run_in_executor(self._executor, self._drain)
        return await future

    def _drain(self) -> None:
        while True:
            with self._lock:
                batch = [
                    self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))
                ]
                if not batch:
                    self._draining = False
                    return
            self._commit(batch)

    def _commit(self, batch: list[_Operation[Any]]) -> None:
        conn = self._conn
        if conn is None:
            for op in batch:
                op.settle(None, RuntimeError("database is not open"))
            return
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                conn.execute("SAVEPOINT operation")
                try:
                    result = op.fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO operation")
                    conn.execute("RELEASE operation")
                    outcomes.append((None, exc))
                else:
                    conn.execute("RELEASE operation")
                    outcomes.append((result, None))
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(None, exc)] * len(batch)
        for op, (result, error) in zip(batch, outcomes, strict=True):
            op.settle(result, error)


@dataclass(frozen=True, slots=True)
class _Operation(Generic[T]):
    fn: Callable[[sqlite3.Connection], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop

    def settle(self, result: T | None, error: BaseException | None) -> None:
        self.loop.call_soon_threadsafe(_resolve, self.future, result, error)


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class SqliteDirectory(DirectoryRepository):
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def all(self) -> list[Organisation]:
        def read(conn: sqlite3.Connection) -> list[Organisation]:
            rows = conn.execute(
                "SELECT code, kind, name, area, spoc_json, jwks_json, areas_served_json, "
                "delivery_json FROM organisations "
                "ORDER BY code"
            ).fetchall()
            return [
                Organisation(
                    code=code,
                    kind=OrgKind(kind),
                    name=name,
                    area=area,
                    spoc=Contact(**json.loads(spoc)),
                    jwks=tuple(json.loads(jwks)),
                    areas_served=tuple(json.loads(served)),
                    delivery=ChannelSettings.from_dict(json.loads(delivery)),
                )
                for code, kind, name, area, spoc, jwks, served, delivery in rows
            ]

        return await self._db.transaction(read)

    async def upsert(self, organisations: Sequence[Organisation], at: datetime) -> None:
        def write(conn: sqlite3.Connection) -> None:
            _upsert_organisations(conn, organisations, at)

        await self._db.transaction(write)

    async def set_channel(
        self, code: str, channel: ChannelSettings, actor: str, at: datetime, audit: AuditLog
    ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            updated = conn.execute(
                "UPDATE organisations SET delivery_json = ?, updated_at = ? WHERE code = ?",
                (_json(channel.as_dict()), _ts(at), code),
            ).rowcount
            if not updated:
                raise NotFound(f"There is no organisation {code}.")
            # Pushes still owed follow the new choice at once, not at their next retry.
            conn.execute(
                "UPDATE dispatches SET next_attempt_at = ? "
                "WHERE recipient = ? AND purpose = ? AND done_at IS NULL",
                (_ts(at), code, DispatchPurpose.DELIVERY.value),
            )
            audit.append(conn, AuditEvent(
                action=AuditAction.DIRECTORY_UPDATED, at=at, actor=actor,
                details={"delivery_channel": {code: channel.as_dict()}},
            ))

        await self._db.transaction(write)

    async def set_contact(
        self, code: str, contact: Contact, actor: str, at: datetime, audit: AuditLog
    ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            updated = conn.execute(
                "UPDATE organisations SET spoc_json = ?, updated_at = ? WHERE code = ?",
                (_json(contact.as_dict()), _ts(at), code),
            ).rowcount
            if not updated:
                raise NotFound(f"There is no organisation {code}.")
            audit.append(conn, AuditEvent(
                action=AuditAction.DIRECTORY_UPDATED, at=at, actor=actor,
                details={"contact": {code: contact.as_dict()}},
            ))

        await self._db.transaction(write)

    async def people(self) -> list[Person]:
        def read(conn: sqlite3.Connection) -> list[Person]:
            rows = conn.execute(
                "SELECT id, org_code, name, email, sign_in_issuer, sign_in_subject, jwks_json "
                "FROM people ORDER BY id"
            ).fetchall()
            return [
                Person(
                    id=person_id, org_code=org_code, name=name, email=email,
                    sign_in=SignIn(issuer, subject) if issuer and subject else None,
                    jwks=tuple(json.loads(jwks)),
                )
                for person_id, org_code, name, email, issuer, subject, jwks in rows
            ]

        return await self._db.transaction(read)

    async def grants(self) -> list[Grant]:
        def read(conn: sqlite3.Connection) -> list[Grant]:
            rows = conn.execute(
                "SELECT id, person_id, role, granted_by, granted_at, reason, revoked_at, "
                "revoked_by, revocation_reason FROM grants ORDER BY granted_at, id"
            ).fetchall()
            return [_grant(row) for row in rows]

        return await self._db.transaction(read)

    async def add_person(self, person: Person, actor: str, at: datetime, audit: AuditLog) -> None:
        def write(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM people WHERE id = ?", (person.id,)).fetchone():
                raise Conflict(f"There is already a person {person.id}.")
            sign_in = person.sign_in
            if sign_in is not None and conn.execute(
                "SELECT 1 FROM people WHERE sign_in_issuer = ? AND sign_in_subject = ?",
                (sign_in.issuer, sign_in.subject),
            ).fetchone():
                raise Conflict("That sign-in identity already belongs to another person.")
            conn.execute(
                "INSERT INTO people (id, org_code, name, email, sign_in_issuer, "
                "sign_in_subject, jwks_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (person.id, person.org_code, person.name, person.email,
                 sign_in.issuer if sign_in else None, sign_in.subject if sign_in else None,
                 _json(list(person.jwks)), _ts(at)),
            )
            audit.append(conn, AuditEvent(
                action=AuditAction.PERSON_ADDED, at=at, actor=actor,
                details={"person": person.id, "organisation": person.org_code,
                         "keys": [str(k.get("kid")) for k in person.jwks]},
            ))

        await self._db.transaction(write)

    async def add_person_key(
        self, person_id: str, jwk: Mapping[str, Any], actor: str, at: datetime, audit: AuditLog
    ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            if _edit_keys(conn, _PERSON_KEYS, person_id, lambda jwks: [*jwks, dict(jwk)]) is None:
                raise NotFound(f"There is no person {person_id}.")
            audit.append(conn, AuditEvent(
                action=AuditAction.PERSON_KEY_ADDED, at=at, actor=actor,
                details={"person": person_id, "kid": str(jwk.get("kid"))},
            ))

        await self._db.transaction(write)

    async def add_system_key(
        self, org_code: str, jwk: Mapping[str, Any], actor: str, at: datetime, audit: AuditLog
    ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            if _edit_keys(conn, _SYSTEM_KEYS, org_code, lambda jwks: [*jwks, dict(jwk)]) is None:
                raise NotFound(f"There is no organisation {org_code}.")
            audit.append(conn, AuditEvent(
                action=AuditAction.SYSTEM_KEY_ADDED, at=at, actor=actor,
                details={"organisation": org_code, "kid": str(jwk.get("kid"))},
            ))

        await self._db.transaction(write)

    async def remove_key(
        self, holder: str, kid: str, actor: str, at: datetime, audit: AuditLog
    ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            def without(jwks: list[dict[str, Any]]) -> list[dict[str, Any]]:
                return [k for k in jwks if k.get("kid") != kid]

            removed = any(
                _edit_keys(conn, keys, holder, without) for keys in (_PERSON_KEYS, _SYSTEM_KEYS)
            )
            if not removed:
                raise NotFound(f"{holder} has no key {kid}.")
            audit.append(conn, AuditEvent(
                action=AuditAction.KEY_REMOVED, at=at, actor=actor,
                details={"holder": holder, "kid": kid},
            ))

        await self._db.transaction(write)

    async def add_grant(self, grant: Grant, audit: AuditLog) -> None:
        def write(conn: sqlite3.Connection) -> None:
            if conn.execute(
                "SELECT 1 FROM grants WHERE person_id = ? AND role = ? AND revoked_at IS NULL",
                (grant.person_id, grant.role.value),
            ).fetchone():
                raise Conflict(f"{grant.person_id} already holds {grant.role.value}.")
            conn.execute(
                "INSERT INTO grants (id, person_id, role, granted_by, granted_at, reason) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (grant.id, grant.person_id, grant.role.value, grant.granted_by,
                 _ts(grant.granted_at), grant.reason),
            )
            audit.append(conn, AuditEvent(
                action=AuditAction.GRANT_GIVEN, at=grant.granted_at, actor=grant.granted_by,
                details={"grant": grant.id, "person": grant.person_id,
                         "role": grant.role.value, "reason": grant.reason},
            ))

        await self._db.transaction(write)

    async def revoke_grant(
        self, grant_id: str, by: str, reason: str, at: datetime, audit: AuditLog
    ) -> Grant:
        def write(conn: sqlite3.Connection) -> Grant:
            updated = conn.execute(
                "UPDATE grants SET revoked_at = ?, revoked_by = ?, revocation_reason = ? "
                "WHERE id = ? AND revoked_at IS NULL",
                (_ts(at), by, reason, grant_id),
            ).rowcount
            row = conn.execute(
                "SELECT id, person_id, role, granted_by, granted_at, reason, revoked_at, "
                "revoked_by, revocation_reason FROM grants WHERE id = ?", (grant_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"There is no grant {grant_id}.")
            grant = _grant(row)
            if updated:
                audit.append(conn, AuditEvent(
                    action=AuditAction.GRANT_REVOKED, at=at, actor=by,
                    details={"grant": grant.id, "person": grant.person_id,
                             "role": grant.role.value, "reason": reason},
                ))
            return grant

        return await self._db.transaction(write)

    async def propose_import(self, proposal: DirectoryImport, audit: AuditLog) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO directory_imports (id, csv_text, plan_json, proposed_by, "
                "proposed_at) VALUES (?, ?, ?, ?, ?)",
                (proposal.id, proposal.csv_text, _json(dict(proposal.plan)),
                 proposal.proposed_by, _ts(proposal.proposed_at)),
            )
            audit.append(conn, AuditEvent(
                action=AuditAction.DIRECTORY_IMPORT_PROPOSED, at=proposal.proposed_at,
                actor=proposal.proposed_by,
                details={"import": proposal.id,
                         "added": [o["code"] for o in proposal.plan.get("added", [])],
                         "changed": [c["code"] for c in proposal.plan.get("changed", [])]},
            ))

        await self._db.transaction(write)

    async def get_import(self, import_id: str) -> DirectoryImport | None:
        def read(conn: sqlite3.Connection) -> DirectoryImport | None:
            row = conn.execute(
                "SELECT id, csv_text, plan_json, proposed_by, proposed_at, approved_by, "
                "approved_at FROM directory_imports WHERE id = ?", (import_id,)
            ).fetchone()
            return _directory_import(row) if row else None

        return await self._db.transaction(read)

    async def apply_import(
        self,
        import_id: str,
        organisations: Sequence[Organisation],
        approver: str,
        at: datetime,
        audit: AuditLog,
    ) -> DirectoryImport:
        def write(conn: sqlite3.Connection) -> DirectoryImport:
            updated = conn.execute(
                "UPDATE directory_imports SET approved_by = ?, approved_at = ? "
                "WHERE id = ? AND approved_by IS NULL",
                (approver, _ts(at), import_id),
            ).rowcount
            if not updated:
                raise Conflict(f"Import {import_id} is unknown or already applied.")
            _upsert_organisations(conn, organisations, at)
            audit.append(conn, AuditEvent(
                action=AuditAction.DIRECTORY_UPDATED, at=at, actor=approver,
                details={"import": import_id,
                         "applied": sorted(o.code for o in organisations)},
            ))
            row = conn.execute(
                "SELECT id, csv_text, plan_json, proposed_by, proposed_at, approved_by, "
                "approved_at FROM directory_imports WHERE id = ?", (import_id,)
            ).fetchone()
            return _directory_import(row)

        return await self._db.transaction(write)


# Where keys are kept: a person's (people.id) and an organisation's systems' (organisations.code).
_PERSON_KEYS = ("UPDATE people SET jwks_json = ? WHERE id = ?",
                "SELECT jwks_json FROM people WHERE id = ?")
_SYSTEM_KEYS = ("UPDATE organisations SET jwks_json = ? WHERE code = ?",
                "SELECT jwks_json FROM organisations WHERE code = ?")


def _edit_keys(
    conn: sqlite3.Connection,
    statements: tuple[str, str],
    holder: str,
    edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
) -> bool | None:
    """Apply ``edit`` to a holder's JWKs: None if there is no such holder, else whether the
    keys changed (and were written)."""
    update, select = statements
    row = conn.execute(select, (holder,)).fetchone()
    if row is None:
        return None
    jwks = json.loads(row[0])
    edited = edit(jwks)
    if edited == jwks:
        return False
    conn.execute(update, (_json(edited), holder))
    return True


def _grant(row: tuple[Any, ...]) -> Grant:
    grant_id, person_id, role, granted_by, granted_at, reason, revoked_at, revoked_by, why = row
    return Grant(
        id=grant_id, person_id=person_id, role=Role(role), granted_by=granted_by,
        granted_at=_dt(granted_at), reason=reason,
        revoked_at=_dt(revoked_at) if revoked_at else None, revoked_by=revoked_by,
        revocation_reason=why,
    )


def _directory_import(row: tuple[Any, ...]) -> DirectoryImport:
    import_id, csv_text, plan, proposed_by, proposed_at, approved_by, approved_at = row
    return DirectoryImport(
        id=import_id, csv_text=csv_text, plan=json.loads(plan), proposed_by=proposed_by,
        proposed_at=_dt(proposed_at), approved_by=approved_by,
        approved_at=_dt(approved_at) if approved_at else None,
    )


def _upsert_organisations(
    conn: sqlite3.Connection, organisations: Sequence[Organisation], at: datetime
) -> None:
    """Add or update organisations; an existing one keeps its delivery channel and keys."""
    conn.executemany(
        "INSERT INTO organisations (code, kind, name, area, spoc_json, jwks_json, "
        "updated_at, areas_served_json, delivery_json) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(code) DO UPDATE SET "
        "kind=excluded.kind, name=excluded.name, area=excluded.area, "
        "spoc_json=excluded.spoc_json, "
        "updated_at=excluded.updated_at, areas_served_json=excluded.areas_served_json",
        [
            (
                org.code,
                org.kind.value,
                org.name,
                org.area,
                _json(org.spoc.as_dict()),
                _json(list(org.jwks)),
                _ts(at),
                _json(list(org.areas_served)),
                _json(org.delivery.as_dict()),
            )
            for org in organisations
        ],
    )


class SqliteTokenLedger(TokenLedger):
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def claim(self, issuer: str, token_id: str, expires_at: datetime, now: datetime) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM token_uses WHERE expires_at < ?", (_ts(now),))
            cursor = conn.execute(
                "INSERT OR IGNORE INTO token_uses (issuer, jti, expires_at) VALUES (?, ?, ?)",
                (issuer, token_id, _ts(expires_at)),
            )
            return cursor.rowcount == 1

        return await self._db.transaction(write)


def _decision_to_json(decision: Decision) -> str:
    return _json(decision.as_dict())


def _audited_decision(decision: Decision) -> dict[str, Any]:
    """What the log keeps of a decision: enough to justify the share (s.62(2)(a))."""
    view = decision.as_dict()
    return {k: view[k] for k in ("decision", "rule", "legal_basis", "consent", "consent_state",
                                 "redactions", "policy_version", "denied_because") if k in view}


def _decision_from_json(text: str) -> Decision:
    return Decision.from_dict(json.loads(text))


class SqliteMessages(MessageRepository):
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def ping(self) -> None:
        await self._db.transaction(lambda conn: conn.execute("SELECT 1").fetchone())

    async def accept(self, submission: Submission, audit: AuditLog) -> Receipt:
        envelope = submission.envelope

        def write(conn: sqlite3.Connection) -> Receipt:
            existing = conn.execute(
                "SELECT content_hash FROM messages WHERE message_id = ?",
                (envelope.message_id,),
            ).fetchone()
            if existing is not None:
                if existing[0] != envelope.content_hash:
                    raise IdempotencyConflict(
                        f"message_id {envelope.message_id} was already used for a different "
                        "message; choose a new UUID for new content."
                    )
                return _receipt(conn, envelope.message_id, replayed=True)
            at = _ts(submission.received_at)
            permitted = submission.permitted
            keys = SubjectKeys.of(envelope.document["subject"])
            event = AuditEvent(
                subject=keys,
                action=AuditAction.MESSAGE_ACCEPTED if permitted else AuditAction.MESSAGE_REFUSED,
                at=submission.received_at,
                actor=submission.submitted_by,
                message_id=envelope.message_id,
                message_type=envelope.type.value,
                recipients=tuple(d.recipient for d in submission.deliveries),
                details={
                    "route": envelope.route.value,
                    "from": envelope.sender,
                    "decisions": {
                        d.recipient: _audited_decision(d.decision)
                        for d in submission.deliveries
                    },
                    **({"resolved_by": {d.recipient: d.resolved_by
                                        for d in submission.deliveries if d.resolved_by}}
                       if any(d.resolved_by for d in submission.deliveries) else {}),
                },
            )
            audit_index = audit.append(conn, event)
            document_text = _json(envelope.document)
            conn.execute(
                "INSERT INTO messages (message_id, type, sender, route, content_hash, "
                "document_json, received_at, submitted_by, audit_index, subject_pnc, "
                "subject_name_dob) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    envelope.message_id,
                    envelope.type.value,
                    envelope.sender,
                    envelope.route.value,
                    envelope.content_hash,
                    document_text,
                    at,
                    submission.submitted_by,
                    audit_index,
                    keys.pnc,
                    keys.name_dob,
                ),
            )
            conn.execute(
                "INSERT INTO status_events (message_id, status, at) VALUES (?, ?, ?)",
                (
                    envelope.message_id,
                    (MessageStatus.ACCEPTED if permitted else MessageStatus.REFUSED).value,
                    at,
                ),
            )
            for position, delivery in enumerate(submission.deliveries):
                conn.execute(
                    "INSERT INTO deliveries (message_id, recipient, position, permitted, "
                    "decision_json, payload_json, consent_based, resolved_by, consent_record) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        envelope.message_id,
                        delivery.recipient,
                        position,
                        int(delivery.permitted),
                        _decision_to_json(delivery.decision),
                        _payload_text(delivery, document_text),
                        int(delivery.decision.consent is not Consent.NOT_REQUIRED),
                        delivery.resolved_by,
                        delivery.decision.consent_record,
                    ),
                )
                if delivery.permitted:
                    conn.execute(
                        "INSERT INTO outbox (message_id, recipient, created_at, next_attempt_at) "
                        "VALUES (?, ?, ?, ?)",
                        (envelope.message_id, delivery.recipient, at, at),
                    )
                elif permitted:
                    conn.execute(
                        "INSERT INTO status_events (message_id, recipient, status, at, detail) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (
                            envelope.message_id,
                            delivery.recipient,
                            MessageStatus.REFUSED.value,
                            at,
                            f"refused by rule {delivery.decision.rule}",
                        ),
                    )
            # What _receipt would read back, without reading it back.
            return Receipt(
                message_id=envelope.message_id,
                status=MessageStatus.ACCEPTED if permitted else MessageStatus.REFUSED,
                decisions=tuple((d.recipient, d.decision) for d in submission.deliveries),
                audit_index=audit_index,
                resolved_by={d.recipient: d.resolved_by
                             for d in submission.deliveries if d.resolved_by},
            )

        return await self._db.transaction(write)

    async def get(self, message_id: str) -> MessageRecord | None:
        def read(conn: sqlite3.Connection) -> MessageRecord | None:
            row = conn.execute(
                "SELECT type, sender, received_at FROM messages WHERE message_id = ?",
                (message_id,),
            ).fetchone()
            if row is None:
                return None
            recipients = tuple(
                r[0]
                for r in conn.execute(
                    "SELECT recipient FROM deliveries WHERE message_id = ? ORDER BY position",
                    (message_id,),
                )
            )
            history = tuple(
                StatusEvent(
                    status=MessageStatus(status),
                    at=_dt(at),
                    recipient=recipient,
                    detail=detail,
                )
                for recipient, status, at, detail in conn.execute(
                    "SELECT recipient, status, at, detail FROM status_events "
                    "WHERE message_id = ? ORDER BY id",
                    (message_id,),
                )
            )
            return MessageRecord(
                message_id=message_id,
                message_type=row[0],
                sender=row[1],
                recipients=recipients,
                received_at=_dt(row[2]),
                history=history,
            )

        return await self._db.transaction(read)

    async def senders_of(self, message_ids: Sequence[str]) -> dict[str, str]:
        def read(conn: sqlite3.Connection) -> dict[str, str]:
            found: dict[str, str] = {}
            for message_id in message_ids:
                row = conn.execute(
                    "SELECT sender FROM messages WHERE message_id = ?", (message_id,)
                ).fetchone()
                if row is not None:
                    found[message_id] = row[0]
            return found

        return await self._db.transaction(read)

    async def about_person(self, keys: SubjectKeys, limit: int) -> list[Involvement]:
        def read(conn: sqlite3.Connection) -> list[Involvement]:
            rows = conn.execute(
                "SELECT m.message_id, m.type, m.sender, m.received_at, m.subject_pnc, "
                "m.subject_name_dob, m.direction, d.recipient FROM ("
                " SELECT message_id, type, sender, received_at, subject_pnc, subject_name_dob,"
                " json_extract(document_json, '$.body.direction') AS direction FROM messages"
                " WHERE (subject_pnc = ? OR subject_name_dob = ?) AND type != ?"
                " ORDER BY received_at DESC LIMIT ?) m "
                "JOIN deliveries d ON d.message_id = m.message_id AND d.permitted = 1 "
                "ORDER BY m.received_at DESC, m.message_id, d.position",
                (keys.pnc, keys.name_dob, REPORT_TYPE, limit),
            ).fetchall()
            found: dict[str, Involvement] = {}
            for mid, mtype, sender, received, pnc, name_dob, direction, recipient in rows:
                known = found.get(mid)
                if known is None:
                    found[mid] = Involvement(
                        message_type=mtype, sender=sender, recipients=(recipient,),
                        received_at=_dt(received), keys=SubjectKeys(pnc, name_dob),
                        direction=direction if isinstance(direction, str) else None,
                    )
                else:
                    found[mid] = replace(known, recipients=(*known.recipients, recipient))
            return list(found.values())

        return await self._db.transaction(read)

    async def pending_outbox(self, limit: int, now: datetime) -> list[OutboxItem]:
        def read(conn: sqlite3.Connection) -> list[OutboxItem]:
            rows = conn.execute(
                "SELECT o.id, o.message_id, o.recipient, m.type, d.payload_json, o.attempts "
                "FROM outbox o "
                "JOIN deliveries d ON d.message_id = o.message_id AND d.recipient = o.recipient "
                "JOIN messages m ON m.message_id = o.message_id "
                "WHERE o.published_at IS NULL AND o.next_attempt_at <= ? "
                "ORDER BY o.id LIMIT ?",
                (_ts(now), limit),
            ).fetchall()
            return [
                OutboxItem(
                    outbox_id=oid,
                    message_id=mid,
                    recipient=recipient,
                    message_type=mtype,
                    payload=payload.encode("utf-8"),
                    attempts=attempts,
                )
                for oid, mid, recipient, mtype, payload, attempts in rows
            ]

        return await self._db.transaction(read)

    async def mark_published(self, outbox_ids: Sequence[int], at: datetime) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE outbox SET published_at = ?, attempts = attempts + 1 WHERE id = ?",
                [(_ts(at), oid) for oid in outbox_ids],
            )

        await self._db.transaction(write)

    async def defer_outbox(self, outbox_ids: Sequence[int], until: datetime, error: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                "WHERE id = ?",
                [(_ts(until), error[:500], oid) for oid in outbox_ids],
            )

        await self._db.transaction(write)

    async def deliver(
        self,
        message_id: str,
        recipient: str,
        at: datetime,
        audit: AuditLog,
        *,
        detail: str | None = None,
        notice_to: str | None = None,
    ) -> bool:
        return await self._db.transaction(
            lambda conn: _deliver(conn, message_id, recipient, at, audit, detail, notice_to)
        )

    async def hold_for_push(
        self, message_id: str, recipient: str, channel: str, target: str, at: datetime
    ) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            _permitted_share(conn, message_id, recipient)
            if conn.execute(
                "SELECT 1 FROM inbox WHERE message_id = ? AND recipient = ?",
                (message_id, recipient),
            ).fetchone():
                return False  # already delivered or closed: a late copy from the transport
            return _owe_dispatch(
                conn, message_id, recipient, channel, DispatchPurpose.DELIVERY, target, at
            )

        return await self._db.transaction(write)

    async def due_dispatches(self, now: datetime, limit: int) -> list[Dispatch]:
        def read(conn: sqlite3.Connection) -> list[Dispatch]:
            rows = conn.execute(
                "SELECT x.id, x.message_id, x.recipient, m.type, x.channel, x.purpose, "
                "x.target, x.attempts, x.created_at, d.payload_json FROM dispatches x "
                "JOIN messages m ON m.message_id = x.message_id "
                "JOIN deliveries d ON d.message_id = x.message_id AND d.recipient = x.recipient "
                "WHERE x.done_at IS NULL AND x.next_attempt_at <= ? "
                "ORDER BY x.next_attempt_at LIMIT ?",
                (_ts(now), limit),
            ).fetchall()
            return [
                Dispatch(
                    dispatch_id=did, message_id=mid, recipient=recipient, message_type=mtype,
                    channel=channel, purpose=DispatchPurpose(purpose), target=target,
                    attempts=attempts, created_at=_dt(created),
                    payload=payload.encode("utf-8")
                    if purpose == DispatchPurpose.DELIVERY and payload is not None else None,
                )
                for did, mid, recipient, mtype, channel, purpose, target, attempts, created,
                payload in rows
            ]

        return await self._db.transaction(read)

    async def dispatch_succeeded(
        self,
        dispatch: Dispatch,
        at: datetime,
        audit: AuditLog,
        detail: str,
        external_ref: str | None = None,
        notice_to: str | None = None,
    ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            done = conn.execute(
                "UPDATE dispatches SET done_at = ?, attempts = attempts + 1, external_ref = ?, "
                "last_error = NULL WHERE id = ? AND done_at IS NULL",
                (_ts(at), external_ref, dispatch.dispatch_id),
            ).rowcount
            if not done:
                return
            if dispatch.purpose is DispatchPurpose.DELIVERY:
                _deliver(conn, dispatch.message_id, dispatch.recipient, at, audit, detail,
                         notice_to)
            else:
                _record_status(conn, dispatch.message_id, dispatch.recipient,
                               MessageStatus.NOTIFIED, at, detail)

        await self._db.transaction(write)

    async def dispatch_failed(
        self, dispatch: Dispatch, retry_at: datetime, detail: str, at: datetime
    ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            updated = conn.execute(
                "UPDATE dispatches SET attempts = attempts + 1, next_attempt_at = ?, "
                "last_error = ? WHERE id = ? AND done_at IS NULL",
                (_ts(retry_at), detail[:500], dispatch.dispatch_id),
            ).rowcount
            if updated:
                _record_status(conn, dispatch.message_id, dispatch.recipient,
                               MessageStatus.ATTEMPT_FAILED, at, detail[:500])

        await self._db.transaction(write)

    async def awaiting_remote_ack(self, channel: str, limit: int) -> list[RemoteReceipt]:
        def read(conn: sqlite3.Connection) -> list[RemoteReceipt]:
            rows = conn.execute(
                "SELECT x.id, x.message_id, x.recipient, x.target, x.external_ref "
                "FROM dispatches x JOIN inbox i "
                "ON i.message_id = x.message_id AND i.recipient = x.recipient "
                "WHERE x.channel = ? AND x.done_at IS NOT NULL AND x.acknowledged_at IS NULL "
                "AND x.external_ref IS NOT NULL AND i.acknowledged_at IS NULL "
                "AND i.closed_at IS NULL ORDER BY x.done_at LIMIT ?",
                (channel, limit),
            ).fetchall()
            return [RemoteReceipt(*row) for row in rows]

        return await self._db.transaction(read)

    async def remote_acknowledged(
        self, receipt: RemoteReceipt, actor: str, detail: str, at: datetime, audit: AuditLog
    ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE dispatches SET acknowledged_at = ? WHERE id = ?",
                (_ts(at), receipt.dispatch_id),
            )
            _acknowledge(conn, receipt.message_id, receipt.recipient, actor, at, audit, detail)

        await self._db.transaction(write)

    async def close_delivery(
        self,
        message_id: str,
        recipient: str,
        status: MessageStatus,
        detail: str,
        at: datetime,
        audit: AuditLog,
    ) -> str | None:
        return await self._db.transaction(
            lambda conn: _close_share(conn, message_id, recipient, status, detail, at, audit)
        )

    async def escalate_unacknowledged(
        self, message_type: str, delivered_before: datetime, detail: str, at: datetime,
        audit: AuditLog, notice_to: Callable[[str], str | None] = lambda _: None,
    ) -> list[tuple[str, str, str]]:
        def write(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
            rows = conn.execute(
                "SELECT i.message_id, i.recipient, m.sender, m.subject_pnc, m.subject_name_dob "
                "FROM inbox i JOIN messages m ON m.message_id = i.message_id "
                "WHERE m.type = ? AND i.delivered_at < ? AND i.acknowledged_at IS NULL "
                "AND i.closed_at IS NULL AND NOT EXISTS (SELECT 1 FROM status_events e "
                "WHERE e.message_id = i.message_id AND e.recipient = i.recipient "
                "AND e.status = ?)",
                (message_type, _ts(delivered_before), MessageStatus.ESCALATED.value),
            ).fetchall()
            for message_id, recipient, _, pnc, name_dob in rows:
                _record_status(conn, message_id, recipient, MessageStatus.ESCALATED, at, detail)
                audit.append(conn, AuditEvent(
                    action=AuditAction.ALERT_ESCALATED, at=at, actor="gateway",
                    message_id=message_id, message_type=message_type,
                    recipients=(recipient,), subject=SubjectKeys(pnc=pnc, name_dob=name_dob),
                    details={"detail": detail},
                ))
                address = notice_to(recipient)
                if address is not None:
                    _owe_dispatch(conn, message_id, recipient, "email",
                                  DispatchPurpose.ESCALATION_NOTICE, address, at)
            return [(m, r, sender) for m, r, sender, _, _ in rows]

        return await self._db.transaction(write)

    async def unacknowledged_before(
        self, received_before: datetime, limit: int
    ) -> list[tuple[str, str]]:
        def read(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = conn.execute(
                "SELECT d.message_id, d.recipient FROM messages m "
                "JOIN deliveries d ON d.message_id = m.message_id AND d.permitted = 1 "
                "LEFT JOIN inbox i ON i.message_id = d.message_id AND i.recipient = d.recipient "
                "WHERE m.received_at < ? AND m.type != ? "
                "AND (i.seq IS NULL OR (i.acknowledged_at IS NULL AND i.closed_at IS NULL)) "
                "ORDER BY m.received_at LIMIT ?",
                (_ts(received_before), REPORT_TYPE, limit),
            ).fetchall()
            return [(mid, recipient) for mid, recipient in rows]

        return await self._db.transaction(read)

    async def inbox(self, recipient: str, limit: int, after_seq: int = 0) -> list[InboxItem]:
        def read(conn: sqlite3.Connection) -> list[InboxItem]:
            rows = conn.execute(
                _INBOX_SELECT
                + "WHERE i.recipient = ? AND i.acknowledged_at IS NULL AND i.closed_at IS NULL "
                "AND i.seq > ? "
                "ORDER BY i.seq LIMIT ?",
                (MessageStatus.ESCALATED.value, recipient, after_seq, limit),
            ).fetchall()
            return [_inbox_item(row) for row in rows]

        return await self._db.transaction(read)

    async def inbox_item(self, message_id: str, recipient: str) -> InboxItem | None:
        def read(conn: sqlite3.Connection) -> InboxItem | None:
            row = conn.execute(
                _INBOX_SELECT
                + "WHERE i.message_id = ? AND i.recipient = ? AND i.closed_at IS NULL",
                (MessageStatus.ESCALATED.value, message_id, recipient),
            ).fetchone()
            return None if row is None else _inbox_item(row)

        return await self._db.transaction(read)

    async def acknowledge(
        self, message_id: str, recipient: str, actor: str, at: datetime, audit: AuditLog,
        detail: str | None = None,
    ) -> Acknowledgement:
        return await self._db.transaction(
            lambda conn: _acknowledge(conn, message_id, recipient, actor, at, audit, detail)
        )


# One inbox row with its share (the recipient's decision and payload) and whether the
# alert clock escalated it; the first parameter is the escalated status's value.
_INBOX_SELECT = (
    "SELECT i.seq, i.message_id, m.type, m.sender, i.delivered_at, "
    "d.decision_json, d.payload_json, i.acknowledged_at, "
    "EXISTS (SELECT 1 FROM status_events e WHERE e.message_id = i.message_id "
    "AND e.recipient = i.recipient AND e.status = ?) FROM inbox i "
    "JOIN deliveries d ON d.message_id = i.message_id AND d.recipient = i.recipient "
    "JOIN messages m ON m.message_id = i.message_id "
)


def _inbox_item(row: tuple[Any, ...]) -> InboxItem:
    seq, mid, mtype, sender, delivered, decision, payload, acknowledged, escalated = row
    return InboxItem(
        seq=seq,
        message_id=mid,
        message_type=mtype,
        sender=sender,
        delivered_at=_dt(delivered),
        decision=_decision_from_json(decision),
        envelope=json.loads(payload),
        escalated=bool(escalated),
        acknowledged_at=_dt(acknowledged) if acknowledged else None,
    )


def _acknowledge(
    conn: sqlite3.Connection,
    message_id: str,
    recipient: str,
    actor: str,
    at: datetime,
    audit: AuditLog,
    detail: str | None,
) -> Acknowledgement:
    row = conn.execute(
        "SELECT i.acknowledged_at, m.type, i.closed_reason, m.subject_pnc, "
        "m.subject_name_dob FROM inbox i JOIN messages m USING (message_id) "
        "WHERE i.message_id = ? AND i.recipient = ?",
        (message_id, recipient),
    ).fetchone()
    if row is None:
        raise NotFound(f"Message {message_id} is not in {recipient}'s inbox.")
    if row[2] is not None:
        raise NotFound(f"Message {message_id} was {row[2]} and left the inbox.")
    if row[0] is not None:
        return Acknowledgement(message_id, _dt(row[0]), first_time=False)
    conn.execute(
        "UPDATE inbox SET acknowledged_at = ?, acknowledged_by = ? "
        "WHERE message_id = ? AND recipient = ?",
        (_ts(at), actor, message_id, recipient),
    )
    _record_status(conn, message_id, recipient, MessageStatus.ACKNOWLEDGED, at, detail)
    # A notice not yet e-mailed has nothing left to ask for.
    conn.execute(
        "UPDATE dispatches SET done_at = ?, last_error = 'acknowledged before it was sent' "
        "WHERE message_id = ? AND recipient = ? AND purpose != ? AND done_at IS NULL",
        (_ts(at), message_id, recipient, DispatchPurpose.DELIVERY.value),
    )
    audit.append(
        conn,
        AuditEvent(
            action=AuditAction.MESSAGE_ACKNOWLEDGED,
            at=at,
            actor=actor,
            message_id=message_id,
            message_type=row[1],
            recipients=(recipient,),
            subject=SubjectKeys(pnc=row[3], name_dob=row[4]),
            **({"details": {"detail": detail}} if detail else {}),
        ),
    )
    return Acknowledgement(message_id, at, first_time=True)


def _payload_text(delivery: PlannedDelivery, document_text: str) -> str | None:
    """A recipient's stored payload; with nothing redacted it is the document itself, so
    its JSON is not produced twice."""
    if delivery.payload is None:
        return None
    return document_text if not delivery.decision.redactions else _json(delivery.payload)


def _permitted_share(
    conn: sqlite3.Connection, message_id: str, recipient: str
) -> tuple[str, str | None, str | None, str]:
    """(type, subject pnc, subject name-dob, decision) of a permitted share, else NotFound."""
    row = conn.execute(
        "SELECT m.type, m.subject_pnc, m.subject_name_dob, d.decision_json "
        "FROM deliveries d JOIN messages m USING (message_id) "
        "WHERE d.message_id = ? AND d.recipient = ? AND d.permitted = 1",
        (message_id, recipient),
    ).fetchone()
    if row is None:
        # Fail closed: nothing reaches an inbox without a permitting decision.
        raise NotFound(f"no permitted delivery of {message_id} to {recipient}")
    return row[0], row[1], row[2], row[3]


def _deliver(
    conn: sqlite3.Connection,
    message_id: str,
    recipient: str,
    at: datetime,
    audit: AuditLog,
    detail: str | None,
    notice_to: str | None,
) -> bool:
    message_type, pnc, name_dob, decision = _permitted_share(conn, message_id, recipient)
    cursor = conn.execute(
        "INSERT OR IGNORE INTO inbox (message_id, recipient, delivered_at) VALUES (?, ?, ?)",
        (message_id, recipient, _ts(at)),
    )
    if cursor.rowcount == 0:
        return False
    _record_status(conn, message_id, recipient, MessageStatus.DELIVERED, at, detail)
    audit.append(
        conn,
        AuditEvent(
            action=AuditAction.MESSAGE_DELIVERED,
            at=at,
            actor="gateway",
            message_id=message_id,
            message_type=message_type,
            recipients=(recipient,),
            subject=SubjectKeys(pnc=pnc, name_dob=name_dob),
            details={
                "decision": _audited_decision(_decision_from_json(decision)),
                **({"channel": detail} if detail else {}),
            },
        ),
    )
    if notice_to is not None:
        _owe_dispatch(conn, message_id, recipient, "email", DispatchPurpose.NOTICE,
                      notice_to, at)
    return True


def _owe_dispatch(
    conn: sqlite3.Connection,
    message_id: str,
    recipient: str,
    channel: str,
    purpose: DispatchPurpose,
    target: str,
    at: datetime,
) -> bool:
    stamp = _ts(at)
    return bool(conn.execute(
        "INSERT OR IGNORE INTO dispatches (message_id, recipient, channel, purpose, target, "
        "created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (message_id, recipient, channel, purpose.value, target, stamp, stamp),
    ).rowcount)


def _record_status(
    conn: sqlite3.Connection,
    message_id: str,
    recipient: str,
    status: MessageStatus,
    at: datetime,
    detail: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO status_events (message_id, recipient, status, at, detail) "
        "VALUES (?, ?, ?, ?, ?)",
        (message_id, recipient, status.value, _ts(at), detail),
    )


_CLOSING_ACTIONS = {
    MessageStatus.DEAD_LETTERED: AuditAction.MESSAGE_DEAD_LETTERED,
    MessageStatus.EXPIRED: AuditAction.MESSAGE_EXPIRED,
    MessageStatus.REFUSED: AuditAction.MESSAGE_REFUSED,
}


def _close_share(
    conn: sqlite3.Connection,
    message_id: str,
    recipient: str,
    status: MessageStatus,
    detail: str,
    at: datetime,
    audit: AuditLog,
) -> str | None:
    """End one recipient's share that was not delivered (or not acknowledged); see
    ``MessageRepository.close_delivery``."""
    row = conn.execute(
        "SELECT m.sender, m.type, m.route, m.subject_pnc, m.subject_name_dob "
        "FROM deliveries d JOIN messages m USING (message_id) "
        "WHERE d.message_id = ? AND d.recipient = ? AND d.permitted = 1",
        (message_id, recipient),
    ).fetchone()
    if row is None:
        return None
    sender, message_type, route, subject_pnc, subject_name_dob = row
    state = conn.execute(
        "SELECT acknowledged_at, closed_at FROM inbox "
        "WHERE message_id = ? AND recipient = ?",
        (message_id, recipient),
    ).fetchone()
    if state is not None and (state[0] is not None or state[1] is not None):
        return None
    if state is not None and status is not MessageStatus.EXPIRED:
        # Already in the inbox, so delivered: a dead letter was a redelivery whose ack
        # was lost (e.g. across a reconnect), and a withdrawal comes too late.
        return None
    stamp = _ts(at)
    if state is None:
        # A closed row also makes any later copy from the transport a no-op.
        conn.execute(
            "INSERT INTO inbox (message_id, recipient, delivered_at, closed_at, "
            "closed_reason) VALUES (?, ?, ?, ?, ?)",
            (message_id, recipient, stamp, stamp, status.value),
        )
    else:
        conn.execute(
            "UPDATE inbox SET closed_at = ?, closed_reason = ? "
            "WHERE message_id = ? AND recipient = ?",
            (stamp, status.value, message_id, recipient),
        )
    conn.execute(
        "UPDATE outbox SET published_at = COALESCE(published_at, ?), "
        "last_error = COALESCE(last_error, ?) WHERE message_id = ? AND recipient = ?",
        (stamp, f"closed: {status.value}", message_id, recipient),
    )
    conn.execute(
        "UPDATE dispatches SET done_at = ?, last_error = ? "
        "WHERE message_id = ? AND recipient = ? AND done_at IS NULL",
        (stamp, f"closed: {status.value}", message_id, recipient),
    )
    _record_status(conn, message_id, recipient, status, at, detail)
    audit.append(
        conn,
        AuditEvent(
            action=_CLOSING_ACTIONS[status],
            at=at,
            actor="gateway",
            message_id=message_id,
            message_type=message_type,
            recipients=(recipient,),
            details={"detail": detail},
            subject=SubjectKeys(pnc=subject_pnc, name_dob=subject_name_dob),
        ),
    )
    if message_type != REPORT_TYPE:
        _store_report(
            conn,
            undelivered_report(
                message_id=message_id,
                message_type=message_type,
                sender=sender,
                recipient=recipient,
                reason=status,
                detail=detail,
                at=at,
            ),
            route,
            at,
        )
    return str(sender)


_REPORT_DECISION = Decision(
    permitted=True,
    consent=Consent.NOT_REQUIRED,
    consent_satisfied=True,
    redactions=(),
    rule="gateway-delivery-report",
    legal_basis="the sender's own message: no personal data is shared",
    policy_version="gateway",
)


def _store_report(
    conn: sqlite3.Connection, report: dict[str, Any], route: str, at: datetime
) -> None:
    """Put a gateway report straight into the sender's inbox (no transport: it is local)."""
    stamp = _ts(at)
    text = _json(report)
    inserted = conn.execute(
        "INSERT OR IGNORE INTO messages (message_id, type, sender, route, content_hash, "
        "document_json, received_at, submitted_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            report["message_id"],
            REPORT_TYPE,
            GATEWAY_SENDER,
            route,
            hashlib.sha256(text.encode("utf-8")).hexdigest(),
            text,
            stamp,
            "gateway",
        ),
    ).rowcount
    if not inserted:
        return
    recipient = report["to"][0]
    conn.execute(
        "INSERT INTO deliveries (message_id, recipient, position, permitted, decision_json, "
        "payload_json) VALUES (?, ?, 0, 1, ?, ?)",
        (report["message_id"], recipient, _decision_to_json(_REPORT_DECISION), text),
    )
    conn.execute(
        "INSERT INTO inbox (message_id, recipient, delivered_at) VALUES (?, ?, ?)",
        (report["message_id"], recipient, stamp),
    )
    conn.executemany(
        "INSERT INTO status_events (message_id, recipient, status, at) VALUES (?, ?, ?, ?)",
        [
            (report["message_id"], None, MessageStatus.ACCEPTED.value, stamp),
            (report["message_id"], recipient, MessageStatus.DELIVERED.value, stamp),
        ],
    )


def _receipt(conn: sqlite3.Connection, message_id: str, *, replayed: bool) -> Receipt:
    audit_index = conn.execute(
        "SELECT audit_index FROM messages WHERE message_id = ?", (message_id,)
    ).fetchone()[0]
    rows = conn.execute(
        "SELECT recipient, decision_json, permitted, resolved_by FROM deliveries "
        "WHERE message_id = ? ORDER BY position",
        (message_id,),
    ).fetchall()
    decisions = tuple((recipient, _decision_from_json(text)) for recipient, text, _, _ in rows)
    status = (
        MessageStatus.ACCEPTED if any(p for _, _, p, _ in rows) else MessageStatus.REFUSED
    )
    return Receipt(
        message_id=message_id,
        status=status,
        decisions=decisions,
        audit_index=audit_index,
        replayed=replayed,
        resolved_by={recipient: how for recipient, _, _, how in rows if how},
    )



class SqliteSessions(SessionRepository):
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def create(self, session: ConsoleSession) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO console_sessions (id, person_id, csrf_token, created_at, "
                "last_seen_at) VALUES (?, ?, ?, ?, ?)",
                (session.id, session.person_id, session.csrf_token,
                 _ts(session.created_at), _ts(session.last_seen_at)),
            )

        await self._db.transaction(write)

    async def get(self, session_id: str) -> ConsoleSession | None:
        def read(conn: sqlite3.Connection) -> ConsoleSession | None:
            row = conn.execute(
                "SELECT id, person_id, csrf_token, created_at, last_seen_at "
                "FROM console_sessions WHERE id = ?",
                (session_id,),
            ).fetchone()
            if row is None:
                return None
            return ConsoleSession(row[0], row[1], row[2], _dt(row[3]), _dt(row[4]))

        return await self._db.transaction(read)

    async def touch(self, session_id: str, at: datetime) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE console_sessions SET last_seen_at = ? WHERE id = ?",
                (_ts(at), session_id),
            )

        await self._db.transaction(write)

    async def delete(self, session_id: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute("DELETE FROM console_sessions WHERE id = ?", (session_id,))
            return cursor.rowcount == 1

        return await self._db.transaction(write)

    async def delete_person(self, person_id: str) -> int:
        def write(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM console_sessions WHERE person_id = ?", (person_id,)
            )
            return cursor.rowcount

        return await self._db.transaction(write)


class SqliteConsents(ConsentRepository):
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def add(self, record: ConsentRecord) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO consents (id, pnc, name_dob, record_json, recorded_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.keys.pnc,
                    record.keys.name_dob,
                    _json(record_to_json(record)),
                    _ts(record.recorded_at),
                ),
            )

        await self._db.transaction(write)

    async def get(self, consent_id: str) -> ConsentRecord | None:
        def read(conn: sqlite3.Connection) -> ConsentRecord | None:
            row = conn.execute(
                "SELECT record_json FROM consents WHERE id = ?", (consent_id,)
            ).fetchone()
            return record_from_json(json.loads(row[0])) if row else None

        return await self._db.transaction(read)

    async def matching(self, keys: SubjectKeys) -> list[ConsentRecord]:
        def read(conn: sqlite3.Connection) -> list[ConsentRecord]:
            return _matching_consents(conn, keys)

        return await self._db.transaction(read)

    async def withdraw(
        self, consent_id: str, by: str, reason: str, at: datetime, audit: AuditLog,
        redecide: Redecide,
    ) -> Withdrawal:
        def write(conn: sqlite3.Connection) -> Withdrawal:
            row = conn.execute(
                "SELECT record_json FROM consents WHERE id = ?", (consent_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"There is no consent record {consent_id}.")
            record = record_from_json(json.loads(row[0]))
            if record.withdrawn_at is not None:
                return Withdrawal(record)
            record = replace(record, withdrawn_at=at, withdrawn_by=by, withdrawal_reason=reason)
            conn.execute(
                "UPDATE consents SET record_json = ?, withdrawn_at = ? WHERE id = ?",
                (_json(record_to_json(record)), _ts(at), consent_id),
            )
            settled = [
                _settle(conn, record, share, decision, at, audit)
                for share in _consent_shares(conn, record)
                if (decision := redecide(record, share)) is not None
            ]
            audit.append(conn, AuditEvent(
                action=AuditAction.CONSENT_WITHDRAWN, at=at, actor=by, subject=record.keys,
                details={"consent_id": consent_id, "reason": reason,
                         "shares": [s.as_dict() for s in settled]},
            ))
            return Withdrawal(record, tuple(settled))

        return await self._db.transaction(write)


def _matching_consents(conn: sqlite3.Connection, keys: SubjectKeys) -> list[ConsentRecord]:
    rows = conn.execute(
        "SELECT record_json FROM consents WHERE name_dob = ? OR (pnc IS NOT NULL AND pnc = ?)",
        (keys.name_dob, keys.pnc),
    ).fetchall()
    records = [record_from_json(json.loads(text)) for (text,) in rows]
    return [r for r in records if r.matches(keys)]


def _consent_shares(conn: sqlite3.Connection, record: ConsentRecord) -> list[ConsentShare]:
    """Open permitted shares naming this record, and consent-based ones of the same person
    naming none (see ``ConsentRepository.withdraw``)."""
    keys = record.keys
    rows = conn.execute(
        "SELECT d.message_id, d.recipient, d.decision_json, d.consent_record, m.sender, "
        "m.document_json, m.subject_pnc, m.subject_name_dob, i.seq, i.acknowledged_at, "
        "i.closed_at FROM deliveries d JOIN messages m ON m.message_id = d.message_id "
        "LEFT JOIN inbox i ON i.message_id = d.message_id AND i.recipient = d.recipient "
        "WHERE d.permitted = 1 AND (d.consent_record = ? OR (d.consent_record IS NULL "
        "AND d.consent_based = 1 AND (m.subject_name_dob = ? "
        "OR (m.subject_pnc IS NOT NULL AND m.subject_pnc = ?)))) "
        "ORDER BY m.received_at, d.position",
        (record.id, keys.name_dob, keys.pnc),
    ).fetchall()
    shares = []
    # The person's records, read once per way the messages name them (usually one).
    records_by_keys: dict[SubjectKeys, tuple[ConsentRecord, ...]] = {}
    for (message_id, recipient, decision, named, sender, document, pnc, name_dob, seq,
         acknowledged_at, closed_at) in rows:
        message_keys = SubjectKeys(pnc=pnc, name_dob=name_dob)
        if closed_at is not None or (named is None and not record.matches(message_keys)):
            continue
        if message_keys not in records_by_keys:
            records_by_keys[message_keys] = tuple(_matching_consents(conn, message_keys))
        state = (ShareState.UNDELIVERED if seq is None
                 else ShareState.UNREAD if acknowledged_at is None
                 else ShareState.ACKNOWLEDGED)
        shares.append(ConsentShare(
            message_id=message_id, recipient=recipient, sender=sender,
            document=json.loads(document), decision=_decision_from_json(decision),
            state=state, records=records_by_keys[message_keys],
            consent_record=named,
        ))
    return shares


def _settle(
    conn: sqlite3.Connection,
    record: ConsentRecord,
    share: ConsentShare,
    decision: Decision,
    at: datetime,
    audit: AuditLog,
) -> SettledShare:
    """Carry out what the re-decision says for one share (``ConsentRepository.withdraw``)."""
    message_id, recipient = share.message_id, share.recipient
    if decision.permitted:
        if share.state is ShareState.UNDELIVERED:
            # Not yet delivered: what goes out is what the decision now allows (it may
            # withhold more, e.g. a field group the remaining consent does not list).
            conn.execute(
                "UPDATE deliveries SET decision_json = ?, consent_record = ?, payload_json = ? "
                "WHERE message_id = ? AND recipient = ?",
                (_decision_to_json(decision), decision.consent_record,
                 _json(redact(share.document, decision.redactions)), message_id, recipient),
            )
        else:
            # The disclosure happened on the decision stored; only what it rests on now
            # changes, so a later withdrawal of that record finds it.
            conn.execute(
                "UPDATE deliveries SET consent_record = ? WHERE message_id = ? AND recipient = ?",
                (decision.consent_record, message_id, recipient),
            )
        return SettledShare(message_id, recipient, share.sender, ShareOutcome.KEPT, decision)
    if share.state is ShareState.UNDELIVERED:
        _close_share(
            conn, message_id, recipient, MessageStatus.REFUSED,
            f"consent {record.id} withdrawn before delivery: {decision.reason}", at, audit,
        )
        return SettledShare(message_id, recipient, share.sender, ShareOutcome.STOPPED, decision)
    _withdraw_delivered(conn, record, share, at, audit)
    outcome = (ShareOutcome.WITHDRAWN if share.state is ShareState.UNREAD
               else ShareOutcome.NOTIFIED)
    return SettledShare(message_id, recipient, share.sender, outcome, decision)


def _withdraw_delivered(
    conn: sqlite3.Connection,
    record: ConsentRecord,
    share: ConsentShare,
    at: datetime,
    audit: AuditLog,
) -> None:
    """A delivered share whose consent is withdrawn. The disclosure stands (UK GDPR
    Art. 7(3)); if unread it leaves the inbox, so the gateway discloses it no further;
    either way the history, the log (DPA 2018 s.62) and the recipient (Art. 19) are told."""
    message_id, recipient = share.message_id, share.recipient
    delivered_at, acknowledged_at = conn.execute(
        "SELECT delivered_at, acknowledged_at FROM inbox WHERE message_id = ? AND recipient = ?",
        (message_id, recipient),
    ).fetchone()
    stamp = _ts(at)
    unread = share.state is ShareState.UNREAD
    if unread:
        conn.execute(
            "UPDATE inbox SET closed_at = ?, closed_reason = ? "
            "WHERE message_id = ? AND recipient = ?",
            (stamp, MessageStatus.WITHDRAWN.value, message_id, recipient),
        )
        # Notices and pushes still owed for it are owed no more.
        conn.execute(
            "UPDATE dispatches SET done_at = ?, last_error = ? "
            "WHERE message_id = ? AND recipient = ? AND done_at IS NULL",
            (stamp, "closed: consent withdrawn", message_id, recipient),
        )
    detail = (
        f"disclosed at {delivered_at}; consent {record.id} withdrawn at {stamp}"
        + ("; left the recipient's inbox unread" if unread
           else f"; acknowledged at {acknowledged_at}, the recipient was told")
    )
    _record_status(
        conn, message_id, recipient,
        MessageStatus.WITHDRAWN if unread else MessageStatus.CONSENT_WITHDRAWN, at, detail,
    )
    document = share.document
    audit.append(conn, AuditEvent(
        action=AuditAction.MESSAGE_WITHDRAWN, at=at, actor="gateway",
        message_id=message_id, message_type=str(document["type"]), recipients=(recipient,),
        subject=SubjectKeys.of(document["subject"]),
        details={"consent_id": record.id, "disclosed_at": delivered_at,
                 "acknowledged_at": acknowledged_at, "detail": detail},
    ))
    _store_report(conn, withdrawal_notice(
        message_id=message_id, message_type=str(document["type"]), recipient=recipient,
        consent_id=record.id, disclosed_at=_dt(delivered_at), withdrawn_at=at,
        acknowledged=not unread,
    ), str(document["route"]), at)


class SqlitePolicyVersions(PolicyVersionRepository):
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def propose(self, version: PolicyVersion) -> PolicyVersion:
        def write(conn: sqlite3.Connection) -> PolicyVersion:
            conn.execute(
                "INSERT OR IGNORE INTO policy_versions (version, name, source_text, author, "
                "proposed_at) VALUES (?, ?, ?, ?, ?)",
                (version.version, version.name, version.source_text, version.author,
                 _ts(version.proposed_at)),
            )
            return _policy_version(conn, version.version)

        return await self._db.transaction(write)

    async def approve(
        self, version: str, approver: str, at: datetime, effective_from: datetime
    ) -> PolicyVersion:
        def write(conn: sqlite3.Connection) -> PolicyVersion:
            current = _policy_version(conn, version)
            if current.approved_by is None:
                conn.execute(
                    "UPDATE policy_versions SET approved_by = ?, approved_at = ?, "
                    "effective_from = ? WHERE version = ?",
                    (approver, _ts(at), _ts(effective_from), version),
                )
            return _policy_version(conn, version)

        return await self._db.transaction(write)

    async def all(self) -> list[PolicyVersion]:
        def read(conn: sqlite3.Connection) -> list[PolicyVersion]:
            versions = [
                v for (v,) in conn.execute(
                    "SELECT version FROM policy_versions ORDER BY proposed_at, version"
                )
            ]
            return [_policy_version(conn, v) for v in versions]

        return await self._db.transaction(read)

    async def recent_traffic(self, limit: int) -> list[RecordedShare]:
        def read(conn: sqlite3.Connection) -> list[RecordedShare]:
            rows = conn.execute(
                "SELECT m.message_id, m.document_json, d.recipient, d.decision_json "
                "FROM messages m JOIN deliveries d ON d.message_id = m.message_id "
                "WHERE m.type != ? ORDER BY m.received_at DESC LIMIT ?",
                (REPORT_TYPE, limit),
            ).fetchall()
            return [
                RecordedShare(mid, json.loads(doc), recipient, _decision_from_json(decision))
                for mid, doc, recipient, decision in rows
            ]

        return await self._db.transaction(read)


def _policy_version(conn: sqlite3.Connection, version: str) -> PolicyVersion:
    row = conn.execute(
        "SELECT version, name, source_text, author, proposed_at, approved_by, approved_at, "
        "effective_from FROM policy_versions WHERE version = ?",
        (version,),
    ).fetchone()
    if row is None:
        raise NotFound(f"There is no policy version {version}.")
    return PolicyVersion(
        version=row[0],
        name=row[1],
        source_text=row[2],
        author=row[3],
        proposed_at=_dt(row[4]),
        approved_by=row[5],
        approved_at=_dt(row[6]) if row[6] else None,
        effective_from=_dt(row[7]) if row[7] else None,
    )


_LEAF_HASHES = "SELECT leaf_hash FROM audit_entries WHERE idx >= ? AND idx < ? ORDER BY idx"
_ENTRIES = "SELECT entry FROM audit_entries WHERE idx >= ? AND idx < ? ORDER BY idx"


class SqliteAuditLog(AuditRepository):
    """The audit log in SQLite: entries sequenced inside the caller's transaction.

    Sequencing (an index and a leaf hash, committed with the event) is kept apart from
    integration (growing the tree and signing checkpoints, ``gateway.checkpoints``).
    """

    def __init__(self, db: SqliteDatabase, pseudonyms: Pseudonymiser) -> None:
        self._db = db
        self._pseudonyms = pseudonyms

    def append(self, transaction: Any, event: AuditEvent) -> int:
        conn: sqlite3.Connection = transaction
        index = conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries").fetchone()[0]
        data = canonicalize(entry_document(event, index, self._pseudonyms))
        conn.execute(
            "INSERT INTO audit_entries (idx, entry, leaf_hash) VALUES (?, ?, ?)",
            (index, data, leaf_hash(data)),
        )
        return int(index)

    async def record(self, event: AuditEvent) -> int:
        return await self._db.transaction(lambda conn: self.append(conn, event))

    async def size(self) -> int:
        # Indices are contiguous from 0, so the largest (a primary-key look-up) gives the size.
        return await self._db.transaction(
            lambda conn: int(
                conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries").fetchone()[0]
            )
        )

    async def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        return await self._range(_LEAF_HASHES, start, end)

    async def entries(self, start: int, end: int) -> list[bytes]:
        return await self._range(_ENTRIES, start, end)

    async def _range(self, query: str, start: int, end: int) -> list[bytes]:
        def read(conn: sqlite3.Connection) -> list[bytes]:
            return [bytes(value) for (value,) in conn.execute(query, (start, end))]

        return await self._db.transaction(read)

    async def checkpoints(self) -> list[tuple[int, str]]:
        def read(conn: sqlite3.Connection) -> list[tuple[int, str]]:
            return [
                (int(size), str(note)) for size, note in conn.execute(
                    "SELECT size, note FROM audit_checkpoints ORDER BY size"
                )
            ]

        return await self._db.transaction(read)

    async def checkpoint(self, size: int | None = None) -> tuple[int, str] | None:
        def read(conn: sqlite3.Connection) -> tuple[int, str] | None:
            row = conn.execute(
                "SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
                if size is None
                else "SELECT size, note FROM audit_checkpoints WHERE size = ?",
                () if size is None else (size,),
            ).fetchone()
            return (int(row[0]), str(row[1])) if row else None

        return await self._db.transaction(read)

    async def add_checkpoint(self, size: int, note: str, at: datetime) -> None:
        def write(conn: sqlite3.Connection) -> None:
            latest = conn.execute("SELECT MAX(size) FROM audit_checkpoints").fetchone()[0]
            if latest is not None and size <= latest:
                raise ValueError(f"checkpoint size {size} does not grow the log past {latest}")
            conn.execute(
                "INSERT INTO audit_checkpoints (size, note, issued_at) VALUES (?, ?, ?)",
                (size, note, _ts(at)),
            )

        await self._db.transaction(write)
