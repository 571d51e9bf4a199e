"""Consent records (the lawful basis of consent-based shares, UK GDPR Art. 6(1)(a) and
9(2)(a)) and the rows their withdrawal reads and writes, on SQLAlchemy Core for SQLite and
PostgreSQL.

``gateway.services.consents`` withdraws a record and settles every open share that may
rest on it in one transaction (``ConsentStore.unit_of_work``), through these consent rows
and the share rows of ``gateway.storage.delivery``, so no process can deliver a share
whose consent is already withdrawn, nor see the withdrawal without its consequences.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, and_, bindparam, insert, or_, select, true, update

from gateway.domain.model import Decision
from gateway.pipeline.consent import ConsentRecord, SubjectKeys, record_from_json, record_to_json
from gateway.storage import schema
from gateway.storage.base import (
    Audited,
    ConsentRepository,
    ConsentRows,
    ConsentShare,
    ShareState,
)
from gateway.storage.delivery import SqlShareRows
from gateway.storage.engine import Database
from gateway.storage.rows import HotStatement, json_text

_consents = schema.consents
_deliveries = schema.deliveries
_messages = schema.messages
_inbox = schema.inbox

T = TypeVar("T")


class ConsentStore(ConsentRepository):
    """``ConsentRepository`` on a ``gateway.storage.engine.Database``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, record: ConsentRecord, audited: Audited) -> None:
        def write(conn: Connection) -> None:
            audit, event = audited
            audit.append(conn, event)
            conn.execute(insert(_consents), {
                "id": record.id, "pnc": record.keys.pnc, "name_dob": record.keys.name_dob,
                "record_json": json_text(record_to_json(record)),
                "recorded_at": record.recorded_at,
            })

        await self._db.transaction(write)

    async def get(self, consent_id: str) -> ConsentRecord | None:
        def read(conn: Connection) -> ConsentRecord | None:
            return _stored(conn, consent_id)

        return await self._db.read(read)

    async def matching(self, keys: SubjectKeys) -> list[ConsentRecord]:
        return await self._db.read(lambda conn: _matching_consents(conn, keys))

    async def unit_of_work(self, work: Callable[[ConsentRows], T]) -> T:
        return await self._db.transaction(lambda conn: work(SqlConsentRows(conn)))


class SqlConsentRows(SqlShareRows, ConsentRows):
    """``ConsentRows`` on one ``Connection``, inside ``ConsentStore.unit_of_work``."""

    def consent(self, consent_id: str) -> ConsentRecord | None:
        return _stored(self._conn, consent_id)

    def save_withdrawal(self, record: ConsentRecord) -> None:
        self._conn.execute(
            update(_consents).where(_consents.c.id == record.id)
            .values(record_json=json_text(record_to_json(record)),
                    withdrawn_at=record.withdrawn_at)
        )

    def consent_shares(self, record: ConsentRecord) -> list[ConsentShare]:
        return _consent_shares(self._conn, record)


def _stored(conn: Connection, consent_id: str) -> ConsentRecord | None:
    text = conn.execute(
        select(_consents.c.record_json).where(_consents.c.id == consent_id)
    ).scalar_one_or_none()
    return None if text is None else record_from_json(json.loads(text))


# On every submission's path (the consent a decision rests on), so compiled once per
# dialect (gateway.storage.rows): built for each call it took a fifth of the SQLite
# thread's time in bench/court_results_import.py.
_MATCHING = HotStatement(
    select(_consents.c.record_json).where(or_(
        _consents.c.name_dob == bindparam("name_dob"),
        and_(_consents.c.pnc.is_not(None), _consents.c.pnc == bindparam("pnc")),
    ))
)


def _matching_consents(conn: Connection, keys: SubjectKeys) -> list[ConsentRecord]:
    """Every record that may concern the person: the indexed columns narrow the search,
    ``ConsentRecord.matches`` decides (the same person rule as everywhere)."""
    found = _MATCHING.execute(conn, {"name_dob": keys.name_dob, "pnc": keys.pnc}).fetchall()
    records = [record_from_json(json.loads(text)) for (text,) in found]
    return [r for r in records if r.matches(keys)]


def _consent_shares(conn: Connection, record: ConsentRecord) -> list[ConsentShare]:
    """``ConsentRows.consent_shares``: whether a share naming no record is the same
    person's is left to the caller (``gateway.services.consents``)."""
    keys = record.keys
    rows = conn.execute(
        select(
            _deliveries.c.message_id, _deliveries.c.recipient, _deliveries.c.decision_json,
            _deliveries.c.consent_record, _messages.c.sender, _messages.c.document_json,
            _messages.c.subject_pnc, _messages.c.subject_name_dob, _inbox.c.seq,
            _inbox.c.delivered_at, _inbox.c.acknowledged_at, _inbox.c.closed_at,
        )
        .select_from(_deliveries.join(
            _messages, _messages.c.message_id == _deliveries.c.message_id,
        ).outerjoin(_inbox, and_(
            _inbox.c.message_id == _deliveries.c.message_id,
            _inbox.c.recipient == _deliveries.c.recipient,
        )))
        .where(
            _deliveries.c.permitted == true(),
            or_(
                _deliveries.c.consent_record == record.id,
                and_(
                    _deliveries.c.consent_record.is_(None),
                    _deliveries.c.consent_based == true(),
                    or_(
                        _messages.c.subject_name_dob == keys.name_dob,
                        and_(_messages.c.subject_pnc.is_not(None),
                             _messages.c.subject_pnc == keys.pnc),
                    ),
                ),
            ),
        )
        .order_by(_messages.c.received_at, _deliveries.c.position)
    ).all()
    shares = []
    # The person's records, read once per way the messages name them (usually one).
    records_by_keys: dict[SubjectKeys, tuple[ConsentRecord, ...]] = {}
    for (message_id, recipient, decision, named, sender, document, pnc, name_dob, seq,
         delivered_at, acknowledged_at, closed_at) in rows:
        if closed_at is not None:
            continue
        message_keys = SubjectKeys(pnc=pnc, name_dob=name_dob)
        if message_keys not in records_by_keys:
            records_by_keys[message_keys] = tuple(_matching_consents(conn, message_keys))
        state = (ShareState.UNDELIVERED if seq is None
                 else ShareState.UNREAD if acknowledged_at is None
                 else ShareState.ACKNOWLEDGED)
        shares.append(ConsentShare(
            message_id=message_id, recipient=recipient, sender=sender,
            document=json.loads(document), decision=Decision.from_dict(json.loads(decision)),
            state=state, records=records_by_keys[message_keys], subject=message_keys,
            consent_record=named, delivered_at=delivered_at, acknowledged_at=acknowledged_at,
        ))
    return shares
