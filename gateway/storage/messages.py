"""Messages: accepting a submission, its history, the outbox the relay claims rows from,
and the recipient's inbox with its acknowledgement. The first half of ``MessageStore``
(the delivery half is ``gateway.storage.delivery``); SQLAlchemy Core over
``gateway.storage.schema``, one set of queries for SQLite and PostgreSQL.

Several gateway processes may share one database, so every write here stays correct when
another process does the same thing at the same moment:

* ``accept`` inserts the message row first, skipping it when the id is already stored
  (``INSERT ... ON CONFLICT DO NOTHING``), and only then compares the stored content hash:
  of two processes accepting one message id at once, one stores it and the other answers
  with the replayed receipt (or ``IdempotencyConflict`` for different content), never a
  second copy or a constraint error.
* ``pending_outbox`` claims rows with a lease (``OUTBOX_LEASE``): on PostgreSQL they are
  selected ``FOR UPDATE SKIP LOCKED`` (the queue pattern of the PostgreSQL manual,
  "The Locking Clause"), on SQLite the one writer at a time already serialises claims. A
  row leased to a process that dies is claimed again once its lease runs out.
* ``acknowledge`` is ``gateway.storage.delivery.acknowledge``, shared with an
  acknowledgement made in the recipient's own system (MESH).

The statements on every message's path (the accept transaction's inserts, the lookup of
the person's earlier shares, the relay's claim and ``mark_published``, the open inbox) are
``HotStatement``s: Core compiled once per dialect and run on the DB-API cursor, which
bench/storage_core.py measured at raw sqlite3's cost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql

from gateway.domain.errors import IdempotencyConflict
from gateway.domain.model import Consent, Decision, MessageStatus, StatusEvent, TokenUse
from gateway.pipeline.audit import AuditEvent, AuditLog
from gateway.pipeline.consent import SubjectKeys
from gateway.pipeline.reports import REPORT_TYPE
from gateway.pipeline.resolution import Involvement
from gateway.storage.base import (
    Acknowledgement,
    InboxDelivery,
    InboxFilter,
    InboxItem,
    InboxState,
    LoggedEntries,
    MessageRecord,
    MessageRepository,
    OutboxItem,
    PlannedDelivery,
    Receipt,
    Submission,
)
from gateway.storage.delivery import (
    DeliveryStore,
    acknowledge,
    put_in_inbox,
    record_status,
)
from gateway.storage.rows import (
    HotStatement,
    claim_lease,
    insert_ignoring_duplicates,
    json_text,
)
from gateway.storage.schema import (
    audit_entries,
    deliveries,
    inbox,
    messages,
    outbox,
    status_events,
)
from gateway.storage.tokens import spend

# How long a claimed outbox row stays with the process that claimed it. The relay holds a
# batch for one publish, which the RabbitMQ transport bounds at 15 s
# (gateway.transport.rabbitmq, publish_timeout_s), so four times that never takes a row from
# a live process; a killed process's rows wait at most this long before another takes them.
OUTBOX_LEASE = timedelta(seconds=60)


def _columns(*names: str) -> dict[str, Any]:
    """Bind parameters named after the columns they fill, for a ``HotStatement`` insert."""
    return {name: bindparam(name) for name in names}


# Claimed by the relay for every batch it publishes: a HotStatement.
_DUE_OUTBOX = HotStatement(
    select(outbox.c.id, outbox.c.message_id, outbox.c.recipient, messages.c.type,
           deliveries.c.payload_json, outbox.c.attempts, outbox.c.created_at)
    .join(deliveries, and_(deliveries.c.message_id == outbox.c.message_id,
                           deliveries.c.recipient == outbox.c.recipient))
    .join(messages, messages.c.message_id == outbox.c.message_id)
    .where(outbox.c.published_at.is_(None), outbox.c.next_attempt_at <= bindparam("now"),
           or_(outbox.c.lease_until.is_(None), outbox.c.lease_until <= bindparam("now")))
    .order_by(outbox.c.id).limit(bindparam("limit", type_=Integer))
    # PostgreSQL: rows another process is claiming right now are passed over, not waited
    # for. SQLite has no row locks and compiles this to nothing.
    .with_for_update(of=outbox, skip_locked=True)
)
_SET_AUDIT_INDEX = HotStatement(
    update(messages).where(messages.c.message_id == bindparam("stored_id"))
    .values(audit_index=bindparam("audit_index"))
)
_DELIVERY = HotStatement(insert(deliveries).values(_columns(
    "message_id", "recipient", "position", "permitted", "decision_json", "payload_json",
    "consent_based", "resolved_by", "consent_record",
)))
_OUTBOX = HotStatement(
    insert(outbox).values(_columns("message_id", "recipient", "created_at", "next_attempt_at"))
    .returning(outbox.c.id)
)
_PUBLISHED = HotStatement(
    update(outbox).where(outbox.c.id == bindparam("outbox_id")).values(
        published_at=bindparam("at"),
        attempts=outbox.c.attempts + literal_column("1"),
        lease_until=null(),
        leased_by=null(),
    )
)


def _decision_to_json(decision: Decision) -> str:
    return json_text(decision.as_dict())


def _decision_from_json(stored: str) -> Decision:
    return Decision.from_dict(json.loads(stored))


def _payload_text(delivery: PlannedDelivery, document_text: str) -> str | None:
    """A recipient's stored payload; with nothing redacted it is the document itself, so
    its JSON is not produced twice."""
    if delivery.payload is None:
        return None
    return document_text if not delivery.decision.redactions else json_text(delivery.payload)


class MessageStore(DeliveryStore, MessageRepository):
    """``MessageRepository`` on SQLAlchemy Core (see the module's docstring)."""

    async def ping(self) -> None:
        await self._db.transaction(lambda conn: conn.execute(text("SELECT 1")).one())

    async def accept(
        self, submission: Submission, event: AuditEvent, audit: AuditLog
    ) -> Receipt:
        envelope = submission.envelope
        permitted = submission.permitted
        at = submission.received_at
        keys = SubjectKeys.of(envelope.document["subject"])
        document_text = envelope.canonical.decode("utf-8")

        token_use = submission.token_use

        def write(conn: Connection) -> Receipt:
            spend(conn, token_use, at)
            # On PostgreSQL a concurrent insert of the same id ends this one with SQLSTATE
            # 40001, which PostgresDatabase retries; the retry then finds the stored row
            # and answers as a replay.
            stored = insert_ignoring_duplicates(conn, messages, {
                "message_id": envelope.message_id,
                "type": envelope.type.value,
                "sender": envelope.sender,
                "route": envelope.route.value,
                "content_hash": envelope.content_hash,
                "document_json": document_text,
                "received_at": at,
                "submitted_by": submission.submitted_by,
                "audit_index": None,
                "subject_pnc": keys.pnc,
                "subject_name_dob": keys.name_dob,
                "sender_signature": envelope.sender_signature,
            })
            if not stored:
                # The id was taken, by an earlier request or by another process just now.
                known = conn.execute(
                    select(messages.c.content_hash)
                    .where(messages.c.message_id == envelope.message_id)
                ).scalar_one()
                if known != envelope.content_hash:
                    raise IdempotencyConflict(
                        f"message_id {envelope.message_id} was already used for a different "
                        "message; choose a new UUID for new content."
                    )
                return _receipt(conn, envelope.message_id, replayed=True)
            logged = audit.append_entry(conn, event)
            audit_index = logged.index if logged is not None else None
            _SET_AUDIT_INDEX.execute(
                conn, {"stored_id": envelope.message_id, "audit_index": audit_index})
            record_status(conn, envelope.message_id, None,
                    MessageStatus.ACCEPTED if permitted else MessageStatus.REFUSED, at)
            # Where one process owns the database (SQLite: no lease is needed), its relay
            # gets the outbox rows in memory (``Receipt.outbox``). On PostgreSQL every
            # process's relay is woken to claim them, with a lease, as before: handing
            # them over would need a lease from the start, which would hold a crashed
            # process's rows back from the others for the lease's length.
            hand_over = claim_lease(conn, OUTBOX_LEASE) is None
            handed: list[OutboxItem] = []
            delivered: list[InboxDelivery] = []
            for position, delivery in enumerate(submission.deliveries):
                payload_text = _payload_text(delivery, document_text)
                _DELIVERY.execute(conn, {
                    "message_id": envelope.message_id,
                    "recipient": delivery.recipient,
                    "position": position,
                    "permitted": delivery.permitted,
                    "decision_json": _decision_to_json(delivery.decision),
                    "payload_json": payload_text,
                    "consent_based": delivery.decision.consent is not Consent.NOT_REQUIRED,
                    "resolved_by": delivery.resolved_by,
                    "consent_record": delivery.decision.consent_record,
                })
                if payload_text is not None and delivery.into_inbox is not None:
                    if put_in_inbox(conn, delivery.into_inbox, audit, envelope.type.value,
                                    keys, delivery.decision):
                        delivered.append(delivery.into_inbox)
                elif payload_text is not None:  # permitted
                    (outbox_id,), = _OUTBOX.execute(conn, {
                        "message_id": envelope.message_id, "recipient": delivery.recipient,
                        "created_at": at, "next_attempt_at": at,
                    }).fetchall()
                    if hand_over:
                        handed.append(OutboxItem(
                            outbox_id=outbox_id, message_id=envelope.message_id,
                            recipient=delivery.recipient, message_type=envelope.type.value,
                            payload=payload_text.encode("utf-8"),
                            attempts=0, accepted_at=at,
                        ))
                elif permitted:
                    record_status(conn, envelope.message_id, delivery.recipient,
                            MessageStatus.REFUSED, at,
                            f"refused by rule {delivery.decision.rule}")
            # What _receipt would read back, without reading it back.
            return Receipt(
                message_id=envelope.message_id,
                status=MessageStatus.ACCEPTED if permitted else MessageStatus.REFUSED,
                decisions=tuple((d.recipient, d.decision) for d in submission.deliveries),
                audit_index=audit_index,
                entry_hash=logged.leaf_hash if logged is not None else None,
                resolved_by={d.recipient: d.resolved_by
                             for d in submission.deliveries if d.resolved_by},
                outbox=tuple(handed),
                delivered=tuple(delivered),
            )

        return await self._db.transaction(write)

    async def get(self, message_id: str) -> MessageRecord | None:
        return await self._db.read(lambda conn: _message_record(conn, message_id))

    async def logged_entries(self, message_id: str) -> LoggedEntries | None:
        def read(conn: Connection) -> LoggedEntries | None:
            found = conn.execute(
                select(messages.c.sender, messages.c.audit_index)
                .where(messages.c.message_id == message_id)
            ).first()
            if found is None:
                return None
            shares = conn.execute(
                select(deliveries.c.recipient, inbox.c.audit_index)
                .select_from(deliveries.outerjoin(inbox, and_(
                    inbox.c.message_id == deliveries.c.message_id,
                    inbox.c.recipient == deliveries.c.recipient)))
                .where(deliveries.c.message_id == message_id)
                .order_by(deliveries.c.position)
            ).all()
            return LoggedEntries(
                sender=found.sender,
                recipients=tuple(row.recipient for row in shares),
                acceptance=found.audit_index,
                deliveries={row.recipient: int(row.audit_index) for row in shares
                            if row.audit_index is not None},
            )

        return await self._db.read(read)

    async def sent(self, sender: str, limit: int, offset: int = 0) -> list[MessageRecord]:
        def read(conn: Connection) -> list[MessageRecord]:
            ids = conn.execute(
                select(messages.c.message_id).where(messages.c.sender == sender)
                .order_by(messages.c.received_at.desc(), messages.c.message_id)
                .limit(limit).offset(offset)
            ).scalars().all()
            return [r for r in (_message_record(conn, i) for i in ids) if r is not None]

        return await self._db.read(read)

    async def senders_of(self, message_ids: Sequence[str]) -> dict[str, str]:
        def read(conn: Connection) -> dict[str, str]:
            rows = conn.execute(
                select(messages.c.message_id, messages.c.sender)
                .where(messages.c.message_id.in_(list(message_ids)))
            )
            return {message_id: sender for message_id, sender in rows}

        return await self._db.read(read)

    async def about_person(self, keys: SubjectKeys, limit: int) -> list[Involvement]:
        if keys.pnc is None and keys.name_dob is None:
            return []

        def read(conn: Connection) -> list[Involvement]:
            # A key the person lacks is bound as NULL, and "= NULL" matches nothing.
            rows = _ABOUT_PERSON[conn.dialect.name].rows(conn, {
                "pnc": keys.pnc, "name_dob": keys.name_dob, "limit": limit,
            })
            found: dict[str, Involvement] = {}
            for mid, mtype, sender, received, pnc, name_dob, direction, recipient in rows:
                known = found.get(mid)
                if known is None:
                    found[mid] = Involvement(
                        message_type=mtype, sender=sender, recipients=(recipient,),
                        received_at=received, keys=SubjectKeys(pnc, name_dob),
                        direction=direction,
                    )
                else:
                    found[mid] = replace(known, recipients=(*known.recipients, recipient))
            return list(found.values())

        return await self._db.read(read)

    async def pending_outbox(self, limit: int, now: datetime) -> list[OutboxItem]:
        """Claim up to ``limit`` due rows for this store's process until ``now`` plus
        ``OUTBOX_LEASE``: no other process is given them meanwhile, unless they are
        published, deferred (either ends the lease) or the lease runs out."""
        def claim(conn: Connection) -> list[OutboxItem]:
            rows = _DUE_OUTBOX.rows(conn, {"now": now, "limit": limit})
            lease = claim_lease(conn, OUTBOX_LEASE)
            if rows and lease is not None:
                conn.execute(
                    update(outbox).where(outbox.c.id.in_([row[0] for row in rows]))
                    .values(lease_until=now + lease, leased_by=self._owner)
                )
            return [
                OutboxItem(
                    outbox_id=oid, message_id=mid, recipient=recipient, message_type=mtype,
                    payload=payload.encode("utf-8"), attempts=attempts, accepted_at=created,
                )
                for oid, mid, recipient, mtype, payload, attempts, created in rows
            ]

        return await self._db.transaction(claim, onward=True)

    async def mark_published(self, outbox_ids: Sequence[int], at: datetime) -> None:
        def write(conn: Connection) -> None:
            for outbox_id in outbox_ids:
                _PUBLISHED.execute(conn, {"outbox_id": outbox_id, "at": at})

        await self._db.transaction(write, onward=True)

    async def defer_outbox(self, outbox_ids: Sequence[int], until: datetime, error: str) -> None:
        def write(conn: Connection) -> None:
            # Only this process's own claims: a row whose lease ran out and that another
            # relay claimed since keeps that relay's lease (as DeliveryStore.dispatch_failed).
            conn.execute(
                update(outbox).where(
                    outbox.c.id.in_(list(outbox_ids)),
                    or_(outbox.c.leased_by.is_(None), outbox.c.leased_by == self._owner),
                ).values(
                    attempts=outbox.c.attempts + 1, next_attempt_at=until,
                    last_error=error[:500], lease_until=None, leased_by=None,
                )
            )

        await self._db.transaction(write, onward=True)

    async def inbox(self, recipient: str, limit: int, after_seq: int = 0) -> list[InboxItem]:
        def read(conn: Connection) -> list[InboxItem]:
            rows = _OPEN_INBOX.rows(
                conn, {"recipient": recipient, "after_seq": after_seq, "limit": limit})
            return [_inbox_item(row) for row in rows]

        return await self._db.read(read)

    async def inbox_history(
        self, recipient: str, where: InboxFilter, limit: int, *, newest_first: bool = False
    ) -> list[InboxItem]:
        # A share closed before delivery has an inbox row too (so a late copy is ignored),
        # but was never disclosed: only open, acknowledged or withdrawn rows are shown.
        conditions: list[ColumnElement[bool]] = [
            inbox.c.recipient == recipient,
            or_(inbox.c.closed_at.is_(None),
                inbox.c.closed_reason == MessageStatus.WITHDRAWN.value),
        ]
        if where.states:
            conditions.append(or_(*(_INBOX_STATES[s] for s in sorted(where.states))))
        if where.types:
            conditions.append(messages.c.type.in_(sorted(where.types)))
        if where.delivered_from is not None:
            conditions.append(inbox.c.delivered_at >= where.delivered_from)
        if where.delivered_before is not None:
            conditions.append(inbox.c.delivered_at < where.delivered_before)
        query = (_inbox_select().where(*conditions)
                 .order_by(inbox.c.seq.desc() if newest_first else inbox.c.seq).limit(limit))

        def read(conn: Connection) -> list[InboxItem]:
            return [_inbox_item(row) for row in conn.execute(query).all()]

        return await self._db.read(read)

    async def inbox_item(self, message_id: str, recipient: str) -> InboxItem | None:
        def read(conn: Connection) -> InboxItem | None:
            row = conn.execute(
                _inbox_select()
                .where(inbox.c.message_id == message_id, inbox.c.recipient == recipient,
                       inbox.c.closed_at.is_(None))
            ).first()
            return None if row is None else _inbox_item(row)

        return await self._db.read(read)

    async def acknowledge(
        self, message_id: str, recipient: str, actor: str, at: datetime, audit: AuditLog,
        detail: str | None = None, token_use: TokenUse | None = None,
    ) -> Acknowledgement:
        def write(conn: Connection) -> Acknowledgement:
            spend(conn, token_use, at)
            return acknowledge(conn, message_id, recipient, actor, at, audit, detail)

        acknowledged = await self._db.transaction(write)
        if token_use is not None:
            token_use.recorded = True
        return acknowledged

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        def read(conn: Connection) -> tuple[int, datetime | None]:
            count, oldest = conn.execute(
                select(func.count(), func.min(outbox.c.created_at))
                .where(outbox.c.published_at.is_(None))
            ).one()
            return int(count), oldest

        return await self._db.read(read)

    async def delivery_backlog(self) -> tuple[int, datetime | None]:
        def read(conn: Connection) -> tuple[int, datetime | None]:
            count, oldest_untried = conn.execute(
                select(func.count(),
                       func.min(case((outbox.c.attempts == 0, outbox.c.created_at))))
                .where(outbox.c.published_at.is_(None))
            ).one()
            return int(count), oldest_untried

        return await self._db.read(read)


def _direction(dialect: str) -> ColumnElement[str | None]:
    """The document's ``body.direction`` when it is a JSON string, else NULL, read in the
    database (JSON1's json_type/json_extract on SQLite, the json operators on PostgreSQL)
    so that only the row's answer, not its document, comes back."""
    document = messages.c.document_json
    if dialect == "postgresql":
        value = cast(document, postgresql.JSON)[("body", "direction")]
        return case((func.json_typeof(value) == "string", value.astext))
    return case((func.json_type(document, "$.body.direction") == "text",
                 func.json_extract(document, "$.body.direction")))


def _about_person(dialect: str) -> Select[Any]:
    """Every permitted share of the newest messages about a person (by PNC or by name and
    date of birth), built once per dialect: building this statement for each message cost
    about 3 ms of the database thread's time, compiling it again each time, against
    0.1 ms for one built once. It runs for nearly every message (to find the person's
    other agencies), so it is a ``HotStatement``: run as plain Core it still took about
    13% of the SQLite thread's GIL-holding samples in bench/court_results_import.py."""
    newest = (
        select(messages.c.message_id, messages.c.type, messages.c.sender,
               messages.c.received_at, messages.c.subject_pnc, messages.c.subject_name_dob,
               _direction(dialect).label("direction"))
        .where(or_(messages.c.subject_pnc == bindparam("pnc"),
                   messages.c.subject_name_dob == bindparam("name_dob")),
               messages.c.type != REPORT_TYPE)
        .order_by(messages.c.received_at.desc())
        .limit(bindparam("limit", type_=Integer))
        .subquery("m")
    )
    return (
        select(newest, deliveries.c.recipient)
        .join(deliveries, and_(deliveries.c.message_id == newest.c.message_id,
                               deliveries.c.permitted))
        .order_by(newest.c.received_at.desc(), newest.c.message_id, deliveries.c.position)
    )


_ABOUT_PERSON = {dialect: HotStatement(_about_person(dialect))
                 for dialect in ("sqlite", "postgresql")}


def _receipt(conn: Connection, message_id: str, *, replayed: bool) -> Receipt:
    # A replay only: the acceptance's leaf hash for its receipt, read back with its index.
    audit_index, entry_hash = conn.execute(
        select(messages.c.audit_index, audit_entries.c.leaf_hash)
        .select_from(messages.outerjoin(audit_entries,
                                        audit_entries.c.idx == messages.c.audit_index))
        .where(messages.c.message_id == message_id)
    ).one()
    rows = conn.execute(
        select(deliveries.c.recipient, deliveries.c.decision_json, deliveries.c.permitted,
               deliveries.c.resolved_by)
        .where(deliveries.c.message_id == message_id).order_by(deliveries.c.position)
    ).all()
    return Receipt(
        message_id=message_id,
        status=MessageStatus.ACCEPTED if any(row.permitted for row in rows)
        else MessageStatus.REFUSED,
        decisions=tuple((row.recipient, _decision_from_json(row.decision_json))
                        for row in rows),
        audit_index=audit_index,
        entry_hash=None if entry_hash is None else bytes(entry_hash),
        replayed=replayed,
        resolved_by={row.recipient: row.resolved_by for row in rows if row.resolved_by},
    )


def _message_record(conn: Connection, message_id: str) -> MessageRecord | None:
    """A message with its recipients, history and who acknowledged each share."""
    row = conn.execute(
        select(messages.c.type, messages.c.sender, messages.c.received_at)
        .where(messages.c.message_id == message_id)
    ).first()
    if row is None:
        return None
    recipients = tuple(conn.execute(
        select(deliveries.c.recipient).where(deliveries.c.message_id == message_id)
        .order_by(deliveries.c.position)
    ).scalars())
    history = tuple(
        StatusEvent(status=MessageStatus(status), at=at, recipient=recipient, detail=detail)
        for recipient, status, at, detail in conn.execute(
            select(status_events.c.recipient, status_events.c.status, status_events.c.at,
                   status_events.c.detail)
            .where(status_events.c.message_id == message_id).order_by(status_events.c.id)
        )
    )
    acknowledged_by = {
        recipient: by for recipient, by in conn.execute(
            select(inbox.c.recipient, inbox.c.acknowledged_by)
            .where(inbox.c.message_id == message_id, inbox.c.acknowledged_by.is_not(None))
        )
    }
    return MessageRecord(
        message_id=message_id,
        message_type=row.type,
        sender=row.sender,
        recipients=recipients,
        received_at=row.received_at,
        history=history,
        acknowledged_by=acknowledged_by,
    )


def _escalated(events: Any) -> ColumnElement[bool]:
    """Whether the alert clock escalated the inbox row's share (a status event says so)."""
    return exists().where(
        events.c.message_id == inbox.c.message_id, events.c.recipient == inbox.c.recipient,
        events.c.status == MessageStatus.ESCALATED.value,
    )


def _inbox_select() -> Select[Any]:
    """One inbox row with its share (the recipient's decision and payload), whether the
    alert clock escalated it and when a consent withdrawal took it out unread."""
    return (
        select(
            inbox.c.seq, inbox.c.message_id, messages.c.type, messages.c.sender,
            inbox.c.delivered_at, deliveries.c.decision_json, deliveries.c.payload_json,
            inbox.c.acknowledged_at, _escalated(status_events.alias("e")).label("escalated"),
            case((inbox.c.closed_reason == MessageStatus.WITHDRAWN.value, inbox.c.closed_at))
            .label("withdrawn_at"), messages.c.sender_signature,
            inbox.c.audit_index, audit_entries.c.leaf_hash,
        )
        .select_from(inbox)
        .join(deliveries, and_(deliveries.c.message_id == inbox.c.message_id,
                               deliveries.c.recipient == inbox.c.recipient))
        .join(messages, messages.c.message_id == inbox.c.message_id)
        # The delivery's entry, by its primary key, for the item's receipt.
        .outerjoin(audit_entries, audit_entries.c.idx == inbox.c.audit_index)
    )


# Read for every poll and every batch of a live stream: a HotStatement.
_OPEN_INBOX = HotStatement(
    _inbox_select()
    .where(inbox.c.recipient == bindparam("recipient"), inbox.c.acknowledged_at.is_(None),
           inbox.c.closed_at.is_(None), inbox.c.seq > bindparam("after_seq"))
    .order_by(inbox.c.seq).limit(bindparam("limit", type_=Integer))
)


def _inbox_item(row: Any) -> InboxItem:
    (seq, mid, mtype, sender, delivered, decision, payload, acknowledged, escalated,
     withdrawn, signature, audit_index, entry_hash) = row
    return InboxItem(
        seq=seq,
        message_id=mid,
        message_type=mtype,
        sender=sender,
        delivered_at=delivered,
        decision=_decision_from_json(decision),
        envelope=json.loads(payload),
        escalated=bool(escalated),
        acknowledged_at=acknowledged,
        withdrawn_at=withdrawn,
        sender_signature=signature,
        audit_index=audit_index,
        entry_hash=None if entry_hash is None else bytes(entry_hash),
    )


# Each state a SPOC filters by, as a condition on an inbox row (InboxState's words);
# 'withdrawn' and 'escalated' are MessageStatus values, as closed_reason and status hold.
_INBOX_STATES: dict[InboxState, ColumnElement[bool]] = {
    InboxState.WAITING: and_(inbox.c.acknowledged_at.is_(None), inbox.c.closed_at.is_(None)),
    InboxState.ACKNOWLEDGED: inbox.c.acknowledged_at.is_not(None),
    InboxState.WITHDRAWN: inbox.c.closed_reason == MessageStatus.WITHDRAWN.value,
    InboxState.ESCALATED: _escalated(status_events.alias("x")),
}
