"""Policy versions: proposed by one person, approved by a second (the two-person rule of
``PolicyVersionRepository.approve``), each step audited in its own transaction
(DPA 2018 s.62); and the recorded traffic a draft policy is replayed against.
SQLAlchemy Core, one set of queries for SQLite and PostgreSQL.

Both writes carry their own guard, so that two gateway processes on one PostgreSQL cannot
both succeed: a proposal is an insert that skips a version already stored (versions are
content hashes, so it is the same text), and an approval is an ``UPDATE`` whose ``WHERE``
holds "not yet approved" and "not by its author". On SQLite outcomes are those of
``gateway.storage.sqlite.SqlitePolicyVersions``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from gateway.domain.errors import NotFound
from gateway.domain.model import Decision
from gateway.pipeline.audit import AuditLog
from gateway.pipeline.reports import REPORT_TYPE
from gateway.storage import schema
from gateway.storage.base import (
    EventFor,
    PolicyVersion,
    PolicyVersionRepository,
    RecordedShare,
)
from gateway.storage.engine import Database
from gateway.storage.rows import insert_ignoring_duplicates

_versions = schema.policy_versions


class PolicyVersionStore(PolicyVersionRepository):
    """``PolicyVersionRepository`` on ``gateway.storage.engine.Database``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def propose(
        self, version: PolicyVersion, audit: AuditLog, event_for: EventFor[PolicyVersion] | None
    ) -> PolicyVersion:
        def write(conn: Connection) -> PolicyVersion:
            inserted = insert_ignoring_duplicates(conn, _versions, {
                "version": version.version, "name": version.name,
                "source_text": version.source_text, "author": version.author,
                "proposed_at": version.proposed_at, "reason": version.reason,
            })
            stored = _policy_version(conn, version.version)
            if inserted and event_for is not None:
                audit.append(conn, event_for(stored))
            return stored

        return await self._db.transaction(write)

    async def approve(
        self, version: str, approver: str, at: datetime, effective_from: datetime,
        audit: AuditLog, event_for: EventFor[PolicyVersion] | None, *, second_person: bool = True,
    ) -> tuple[PolicyVersion, bool]:
        def write(conn: Connection) -> tuple[PolicyVersion, bool]:
            guard = [_versions.c.version == version, _versions.c.approved_by.is_(None)]
            if second_person:
                guard.append(_versions.c.author != approver)
            approved = conn.execute(
                update(_versions).where(*guard)
                .values(approved_by=approver, approved_at=at, effective_from=effective_from)
                .returning(_versions.c.version)
            ).first() is not None
            stored = _policy_version(conn, version)
            if approved and event_for is not None:
                audit.append(conn, event_for(stored))
            return stored, approved

        return await self._db.transaction(write)

    async def all(self) -> list[PolicyVersion]:
        def read(conn: Connection) -> list[PolicyVersion]:
            rows = conn.execute(
                select(_versions).order_by(_versions.c.proposed_at, _versions.c.version))
            return [_from_row(row) for row in rows]

        return await self._db.transaction(read)

    async def recent_traffic(self, limit: int) -> list[RecordedShare]:
        def read(conn: Connection) -> list[RecordedShare]:
            messages, deliveries = schema.messages, schema.deliveries
            rows = conn.execute(
                select(messages.c.message_id, messages.c.document_json,
                       deliveries.c.recipient, deliveries.c.decision_json)
                .join_from(messages, deliveries,
                           deliveries.c.message_id == messages.c.message_id)
                .where(messages.c.type != REPORT_TYPE)
                # Newest first; a message's recipients in the order they were planned, so
                # both back-ends replay the same shares in the same order.
                .order_by(messages.c.received_at.desc(), messages.c.message_id,
                          deliveries.c.position)
                .limit(limit)
            )
            return [
                RecordedShare(row.message_id, json.loads(row.document_json), row.recipient,
                              Decision.from_dict(json.loads(row.decision_json)))
                for row in rows
            ]

        return await self._db.transaction(read)


def _policy_version(conn: Connection, version: str) -> PolicyVersion:
    row = conn.execute(select(_versions).where(_versions.c.version == version)).first()
    if row is None:
        raise NotFound(f"There is no policy version {version}.")
    return _from_row(row)


def _from_row(row: Row[*tuple[Any, ...]]) -> PolicyVersion:
    return PolicyVersion(
        version=row.version, name=row.name, source_text=row.source_text, author=row.author,
        proposed_at=row.proposed_at, approved_by=row.approved_by,
        approved_at=row.approved_at, effective_from=row.effective_from, reason=row.reason,
    )
