"""Delivery rows: a permitted share into the recipient's inbox, owed pushes (webhook, MESH,
e-mail), remote acknowledgements, the row operations with which services close or
escalate a share and report it (``SqlShareRows``), and the backlog figures. The second
half of ``MessageStore`` (``gateway.storage.messages``); SQLAlchemy Core, one set of
queries for SQLite and PostgreSQL.

Several gateway processes may share one database (issue 13), so every step that must
happen once per share is guarded in the statement that makes it, not only by a read
before it: an owed push is *claimed* with a lease before it is attempted
(``DeliveryStore.due_dispatches``), an escalation note is inserted only where none is
(``SqlShareRows.note_escalations``), and a share is closed only by the statement that
finds it open (``SqlShareRows.close``). The services that compose these operations
(``gateway.services.undelivered``, ``alerts``, ``consents``) write a report or an audit
entry only for what the guard answered, so concurrent closers produce one of each.
PostgreSQL's SERIALIZABLE runner would abort one of two colliding transactions anyway;
the guards make the outcome plain in each query and keep it right should a query ever
run at a weaker isolation level.

The module-level functions act on one ``Connection`` inside the caller's transaction:
``gateway.storage.messages`` runs ``acknowledge`` and ``record_status`` in its own, and
``SqlShareRows`` builds on them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import Text

from gateway.domain.errors import NotFound
from gateway.domain.model import Consent, Decision, MessageStatus
from gateway.pipeline.audit import AuditAction, AuditEvent, AuditLog, audited_decision
from gateway.pipeline.consent import SubjectKeys
from gateway.pipeline.reports import GATEWAY_SENDER, REPORT_TYPE
from gateway.storage import schema
from gateway.storage.base import (
    Acknowledgement,
    Dispatch,
    DispatchPurpose,
    InboxDelivery,
    OpenShare,
    OverdueShare,
    RemoteReceipt,
    ShareRows,
)
from gateway.storage.engine import Database
from gateway.storage.rows import (
    HotStatement,
    claim_lease,
    insert_ignoring_duplicates,
    json_text,
)

# How long a claimed push stays with the process that claimed it. It must outlast the
# slowest attempt, or a second process could push the same message while the first is
# still waiting for an answer: the channels' own time-outs are 15 s (webhook), 30 s
# (SMTP) and 60 s by default (MESH, DIPGW_MESH_TIMEOUT_SECONDS), so five minutes leaves a
# margin. A process killed mid-attempt delays its claims' retry by at most this long.
CLAIM_LEASE = timedelta(minutes=5)

T = TypeVar("T")

_inbox = schema.inbox
_messages = schema.messages
_deliveries = schema.deliveries
_dispatches = schema.dispatches
_status = schema.status_events

# The two statements every delivered message runs (bench/storage_core.py measured plain
# Core at 2.6x the raw driver's CPU on this path; see gateway.storage.rows). The inbox
# insert skips a row already there (a redelivery) and says so through RETURNING, which
# needs each dialect's own INSERT ... ON CONFLICT DO NOTHING.
_INBOX_VALUES: dict[str, BindParameter[Any]] = {
    "message_id": bindparam("message_id"),
    "recipient": bindparam("recipient"),
    "delivered_at": bindparam("delivered_at"),
}
_INBOX_INSERT = {
    "sqlite": HotStatement(sqlite.insert(_inbox).values(_INBOX_VALUES)
                           .on_conflict_do_nothing().returning(_inbox.c.seq)),
    "postgresql": HotStatement(postgresql.insert(_inbox).values(_INBOX_VALUES)
                               .on_conflict_do_nothing().returning(_inbox.c.seq)),
}
_INBOX_AUDIT_INDEX = HotStatement(
    update(_inbox).where(_inbox.c.seq == bindparam("seq"))
    .values(audit_index=bindparam("audit_index"))
)
# Read for every delivery, so a HotStatement (see gateway.storage.rows).
_PERMITTED_SHARE = HotStatement(
    select(_messages.c.type, _messages.c.subject_pnc, _messages.c.subject_name_dob,
           _deliveries.c.decision_json)
    .select_from(_deliveries.join(_messages, _messages.c.message_id == _deliveries.c.message_id))
    .where(_deliveries.c.message_id == bindparam("message_id"),
           _deliveries.c.recipient == bindparam("recipient"),
           _deliveries.c.permitted == true())
)
# Run for every acknowledgement, so HotStatements too.
_SHARE_IN_INBOX = HotStatement(
    select(_inbox.c.acknowledged_at, _messages.c.type, _inbox.c.closed_reason,
           _messages.c.subject_pnc, _messages.c.subject_name_dob)
    .select_from(_inbox.join(_messages, _messages.c.message_id == _inbox.c.message_id))
    .where(_inbox.c.message_id == bindparam("message_id"),
           _inbox.c.recipient == bindparam("recipient"))
)
_MARK_ACKNOWLEDGED = HotStatement(
    update(_inbox)
    .where(_inbox.c.message_id == bindparam("message_id"),
           _inbox.c.recipient == bindparam("recipient"))
    .values(acknowledged_at=bindparam("at", type_=_inbox.c.acknowledged_at.type),
            acknowledged_by=bindparam("actor"))
)
_END_NOTICES = HotStatement(
    update(_dispatches)
    .where(_dispatches.c.message_id == bindparam("message_id"),
           _dispatches.c.recipient == bindparam("recipient"),
           _dispatches.c.purpose != DispatchPurpose.DELIVERY.value,
           _dispatches.c.done_at.is_(None))
    .values(done_at=bindparam("at", type_=_dispatches.c.done_at.type),
            last_error="acknowledged before it was sent", lease_until=None, leased_by=None)
)
_STATUS_INSERT = HotStatement(insert(_status).values({
    name: bindparam(name) for name in ("message_id", "recipient", "status", "at", "detail")
}))

# The decision stored with a gateway report: it carries no one's personal data
# (gateway.pipeline.reports), so no rule is needed to share it with its addressee.
_REPORT_DECISION = Decision(
    permitted=True,
    consent=Consent.NOT_REQUIRED,
    consent_satisfied=True,
    redactions=(),
    rule="gateway-delivery-report",
    legal_basis="the sender's own message: no personal data is shared",
    policy_version="gateway",
)


class DeliveryStore:
    """The delivery side of ``MessageRepository``; ``MessageStore`` inherits it.

    Each store names itself with a random owner id, written beside every push it claims,
    so an operator can see which process holds a lease (``dispatches.leased_by``).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._owner = uuid.uuid4().hex

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
            lambda conn: deliver(conn, message_id, recipient, at, audit, detail, notice_to),
            onward=True,
        )

    async def deliver_all(
        self, deliveries: Sequence[InboxDelivery], audit: AuditLog
    ) -> list[bool]:
        return await self._db.transaction(lambda conn: [
            deliver(conn, d.message_id, d.recipient, d.at, audit, d.detail, d.notice_to)
            for d in deliveries
        ], onward=True)

    async def hold_for_push(
        self, message_id: str, recipient: str, channel: str, target: str, at: datetime
    ) -> bool:
        def write(conn: Connection) -> bool:
            permitted_share(conn, message_id, recipient)
            if conn.execute(select(_inbox.c.seq).where(
                _inbox.c.message_id == message_id, _inbox.c.recipient == recipient,
            )).first() is not None:
                return False  # already delivered or closed: a late copy from the transport
            return owe_dispatch(
                conn, message_id, recipient, channel, DispatchPurpose.DELIVERY, target, at
            )

        return await self._db.transaction(write, onward=True)

    async def due_dispatches(self, now: datetime, limit: int) -> list[Dispatch]:
        """Claim up to ``limit`` due pushes for this process, oldest due first.

        A claim is a lease (``CLAIM_LEASE``): the pushes returned are not returned to any
        other process until ``dispatch_succeeded`` or ``dispatch_failed`` settles them or
        the lease runs out (the claimer died), so two gateways never push the same message
        at once. On PostgreSQL the rows are locked with ``FOR UPDATE SKIP LOCKED`` (manual,
        "The Locking Clause"): a concurrent claimer passes over them instead of waiting.
        """
        def claim(conn: Connection) -> list[Dispatch]:
            rows = conn.execute(
                select(
                    _dispatches.c.id, _dispatches.c.message_id, _dispatches.c.recipient,
                    _messages.c.type, _dispatches.c.channel, _dispatches.c.purpose,
                    _dispatches.c.target, _dispatches.c.attempts, _dispatches.c.created_at,
                    _deliveries.c.payload_json, _messages.c.sender_signature,
                    _deliveries.c.decision_json,
                )
                .select_from(_dispatches.join(
                    _messages, _messages.c.message_id == _dispatches.c.message_id,
                ).join(_deliveries, and_(
                    _deliveries.c.message_id == _dispatches.c.message_id,
                    _deliveries.c.recipient == _dispatches.c.recipient,
                )))
                .where(
                    _dispatches.c.done_at.is_(None),
                    _dispatches.c.next_attempt_at <= now,
                    or_(_dispatches.c.lease_until.is_(None), _dispatches.c.lease_until <= now),
                )
                .order_by(_dispatches.c.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True, of=_dispatches)
            ).all()
            if not rows:
                return []
            lease = claim_lease(conn, CLAIM_LEASE)
            claimed = {row.id for row in rows} if lease is None else set(conn.execute(
                update(_dispatches)
                .where(_dispatches.c.id.in_([row.id for row in rows]))
                .values(lease_until=now + lease, leased_by=self._owner)
                .returning(_dispatches.c.id)
            ).scalars())
            return [
                Dispatch(
                    dispatch_id=row.id, message_id=row.message_id, recipient=row.recipient,
                    message_type=row.type, channel=row.channel,
                    purpose=DispatchPurpose(row.purpose), target=row.target,
                    attempts=row.attempts, created_at=row.created_at,
                    payload=row.payload_json.encode("utf-8")
                    if row.purpose == DispatchPurpose.DELIVERY and row.payload_json is not None
                    else None,
                    sender_signature=row.sender_signature,
                    redactions=tuple(json.loads(row.decision_json).get("redactions", ()))
                    if row.sender_signature is not None else (),
                )
                for row in rows if row.id in claimed
            ]

        return await self._db.transaction(claim)

    async def dispatch_succeeded(
        self,
        dispatch: Dispatch,
        at: datetime,
        audit: AuditLog,
        detail: str,
        external_ref: str | None = None,
        notice_to: str | None = None,
    ) -> None:
        def write(conn: Connection) -> None:
            done = conn.execute(
                update(_dispatches)
                .where(_dispatches.c.id == dispatch.dispatch_id, _dispatches.c.done_at.is_(None))
                .values(done_at=at, attempts=_dispatches.c.attempts + 1,
                        external_ref=external_ref, last_error=None,
                        lease_until=None, leased_by=None)
            ).rowcount
            if not done:
                return
            if dispatch.purpose is DispatchPurpose.DELIVERY:
                deliver(conn, dispatch.message_id, dispatch.recipient, at, audit, detail,
                        notice_to)
            else:
                record_status(conn, dispatch.message_id, dispatch.recipient,
                              MessageStatus.NOTIFIED, at, detail)

        await self._db.transaction(write)

    async def dispatch_failed(
        self, dispatch: Dispatch, retry_at: datetime, detail: str, at: datetime
    ) -> None:
        def write(conn: Connection) -> None:
            # Only this process's own claim is settled: if its lease ran out during a slow
            # push and another process claimed the push since, clearing that lease would
            # let a third process push it too while the second is still sending.
            updated = conn.execute(
                update(_dispatches)
                .where(
                    _dispatches.c.id == dispatch.dispatch_id,
                    _dispatches.c.done_at.is_(None),
                    or_(_dispatches.c.leased_by.is_(None),
                        _dispatches.c.leased_by == self._owner),
                )
                .values(attempts=_dispatches.c.attempts + 1, next_attempt_at=retry_at,
                        last_error=detail[:500], lease_until=None, leased_by=None)
            ).rowcount
            if updated:
                record_status(conn, dispatch.message_id, dispatch.recipient,
                              MessageStatus.ATTEMPT_FAILED, at, detail[:500])

        await self._db.transaction(write)

    async def awaiting_remote_ack(self, channel: str, limit: int) -> list[RemoteReceipt]:
        def read(conn: Connection) -> list[RemoteReceipt]:
            rows = conn.execute(
                select(_dispatches.c.id, _dispatches.c.message_id, _dispatches.c.recipient,
                       _dispatches.c.target, _dispatches.c.external_ref)
                .select_from(_dispatches.join(_inbox, and_(
                    _inbox.c.message_id == _dispatches.c.message_id,
                    _inbox.c.recipient == _dispatches.c.recipient,
                )))
                .where(
                    _dispatches.c.channel == channel,
                    _dispatches.c.done_at.is_not(None),
                    _dispatches.c.acknowledged_at.is_(None),
                    _dispatches.c.external_ref.is_not(None),
                    _inbox.c.acknowledged_at.is_(None),
                    _inbox.c.closed_at.is_(None),
                )
                .order_by(_dispatches.c.done_at)
                .limit(limit)
            ).all()
            return [RemoteReceipt(*row) for row in rows]

        return await self._db.transaction(read)

    async def remote_acknowledged(
        self, receipt: RemoteReceipt, actor: str, detail: str, at: datetime, audit: AuditLog
    ) -> None:
        def write(conn: Connection) -> None:
            conn.execute(update(_dispatches).where(_dispatches.c.id == receipt.dispatch_id)
                         .values(acknowledged_at=at))
            acknowledge(conn, receipt.message_id, receipt.recipient, actor, at, audit, detail)

        await self._db.transaction(write)

    async def unit_of_work(self, work: Callable[[ShareRows], T]) -> T:
        return await self._db.transaction(lambda conn: work(SqlShareRows(conn)))

    async def unacknowledged_before(
        self, received_before: datetime, limit: int
    ) -> list[tuple[str, str]]:
        def read(conn: Connection) -> list[tuple[str, str]]:
            rows = conn.execute(
                select(_deliveries.c.message_id, _deliveries.c.recipient)
                .select_from(_messages.join(_deliveries, and_(
                    _deliveries.c.message_id == _messages.c.message_id,
                    _deliveries.c.permitted == true(),
                )).outerjoin(_inbox, and_(
                    _inbox.c.message_id == _deliveries.c.message_id,
                    _inbox.c.recipient == _deliveries.c.recipient,
                )))
                .where(
                    _messages.c.received_at < received_before,
                    _messages.c.type != REPORT_TYPE,
                    or_(_inbox.c.seq.is_(None), and_(_inbox.c.acknowledged_at.is_(None),
                                                    _inbox.c.closed_at.is_(None))),
                )
                .order_by(_messages.c.received_at)
                .limit(limit)
            ).all()
            return [(mid, recipient) for mid, recipient in rows]

        return await self._db.transaction(read)

    async def dispatch_backlog(self) -> dict[str, tuple[int, datetime]]:
        def read(conn: Connection) -> dict[str, tuple[int, datetime]]:
            return {
                str(channel): (int(count), oldest)
                for channel, count, oldest in conn.execute(
                    select(_dispatches.c.channel, func.count(),
                           func.min(_dispatches.c.created_at))
                    .where(_dispatches.c.done_at.is_(None))
                    .group_by(_dispatches.c.channel)
                )
            }

        return await self._db.read(read)


def permitted_share(
    conn: Connection, message_id: str, recipient: str
) -> tuple[str, str | None, str | None, str]:
    """(type, subject pnc, subject name-dob, decision JSON) of a permitted share.

    Fails closed with ``NotFound``: nothing reaches an inbox without a permitting decision.
    """
    found = _PERMITTED_SHARE.rows(conn, {"message_id": message_id, "recipient": recipient})
    if not found:
        raise NotFound(f"no permitted delivery of {message_id} to {recipient}")
    message_type, pnc, name_dob, decision = found[0]
    return message_type, pnc, name_dob, decision


def deliver(
    conn: Connection,
    message_id: str,
    recipient: str,
    at: datetime,
    audit: AuditLog,
    detail: str | None,
    notice_to: str | None,
) -> bool:
    """Put a permitted share in the recipient's inbox, with its DELIVERED note and its
    audit entry (a disclosure, DPA 2018 s.62); False if it was already there."""
    message_type, pnc, name_dob, decision = permitted_share(conn, message_id, recipient)
    return put_in_inbox(
        conn, InboxDelivery(message_id, recipient, at, detail=detail, notice_to=notice_to),
        audit, message_type, SubjectKeys(pnc=pnc, name_dob=name_dob),
        Decision.from_dict(json.loads(decision)),
    )


def put_in_inbox(
    conn: Connection,
    delivery: InboxDelivery,
    audit: AuditLog,
    message_type: str,
    subject: SubjectKeys,
    decision: Decision,
) -> bool:
    """``deliver`` once the permitting share is known: by ``deliver``, which reads it, and
    by the acceptance that has just written it (``Submission``'s ``into_inbox``)."""
    message_id, recipient, at = delivery.message_id, delivery.recipient, delivery.at
    inserted = _INBOX_INSERT[conn.dialect.name].execute(
        conn, {"message_id": message_id, "recipient": recipient, "delivered_at": at},
    ).fetchall()
    if not inserted:
        return False
    record_status(conn, message_id, recipient, MessageStatus.DELIVERED, at, delivery.detail)
    logged = audit.append_entry(
        conn,
        AuditEvent(
            action=AuditAction.MESSAGE_DELIVERED,
            at=at,
            actor="gateway",
            message_id=message_id,
            message_type=message_type,
            recipients=(recipient,),
            subject=subject,
            details={
                "decision": audited_decision(decision),
                **({"channel": delivery.detail} if delivery.detail else {}),
            },
        ),
    )
    if logged is not None:
        # By the row's key, just returned: the delivery's receipt (revision 0007).
        _INBOX_AUDIT_INDEX.execute(conn, {"seq": inserted[0][0], "audit_index": logged.index})
    if delivery.notice_to is not None:
        owe_dispatch(conn, message_id, recipient, "email", DispatchPurpose.NOTICE,
                     delivery.notice_to, at)
    return True


def owe_dispatch(
    conn: Connection,
    message_id: str,
    recipient: str,
    channel: str,
    purpose: DispatchPurpose,
    target: str,
    at: datetime,
) -> bool:
    """Owe one push, due now; False if this share already owes one for this purpose."""
    return bool(insert_ignoring_duplicates(conn, _dispatches, {
        "message_id": message_id, "recipient": recipient, "channel": channel,
        "purpose": purpose.value, "target": target, "created_at": at, "next_attempt_at": at,
    }))


def record_status(
    conn: Connection,
    message_id: str,
    recipient: str | None,
    status: MessageStatus,
    at: datetime,
    detail: str | None = None,
) -> None:
    """A step or note in a share's history (``recipient`` None: the whole message's)."""
    _STATUS_INSERT.execute(conn, {"message_id": message_id, "recipient": recipient,
                                  "status": status.value, "at": at, "detail": detail})


def acknowledge(
    conn: Connection,
    message_id: str,
    recipient: str,
    actor: str,
    at: datetime,
    audit: AuditLog,
    detail: str | None,
) -> Acknowledgement:
    """The recipient has read the share (``MessageRepository.acknowledge``): the first
    time is recorded, audited and ends any e-mail notice still owed; a repeat answers
    with the first time. Raises ``NotFound`` if the share is not, or no longer, in the
    inbox. Here rather than in ``gateway.storage.messages`` because a remote
    acknowledgement (MESH) runs it in the same transaction as its dispatch row."""
    share = {"message_id": message_id, "recipient": recipient}
    found = _SHARE_IN_INBOX.rows(conn, share)
    if not found:
        raise NotFound(f"Message {message_id} is not in {recipient}'s inbox.")
    acknowledged_at, message_type, closed_reason, pnc, name_dob = found[0]
    if closed_reason is not None:
        raise NotFound(f"Message {message_id} was {closed_reason} and left the inbox.")
    if acknowledged_at is not None:
        return Acknowledgement(message_id, acknowledged_at, first_time=False)
    _MARK_ACKNOWLEDGED.execute(conn, {**share, "at": at, "actor": actor})
    record_status(conn, message_id, recipient, MessageStatus.ACKNOWLEDGED, at, detail)
    # A notice not yet e-mailed has nothing left to ask for.
    _END_NOTICES.execute(conn, {**share, "at": at})
    audit.append(
        conn,
        AuditEvent(
            action=AuditAction.MESSAGE_ACKNOWLEDGED,
            at=at,
            actor=actor,
            message_id=message_id,
            message_type=message_type,
            recipients=(recipient,),
            subject=SubjectKeys(pnc=pnc, name_dob=name_dob),
            **({"details": {"detail": detail}} if detail else {}),
        ),
    )
    return Acknowledgement(message_id, at, first_time=True)


class SqlShareRows(ShareRows):
    """``ShareRows`` on one ``Connection``, inside the transaction that
    ``DeliveryStore.unit_of_work`` (or ``ConsentStore.unit_of_work``) opened."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def open_share(self, message_id: str, recipient: str) -> OpenShare | None:
        conn = self._conn
        row = conn.execute(
            select(_messages.c.sender, _messages.c.type, _messages.c.route,
                   _messages.c.subject_pnc, _messages.c.subject_name_dob)
            .select_from(_deliveries.join(_messages,
                                          _messages.c.message_id == _deliveries.c.message_id))
            .where(_deliveries.c.message_id == message_id, _deliveries.c.recipient == recipient,
                   _deliveries.c.permitted == true())
        ).first()
        if row is None:
            return None
        sender, message_type, route, subject_pnc, subject_name_dob = row
        state = conn.execute(
            select(_inbox.c.acknowledged_at, _inbox.c.closed_at)
            .where(_inbox.c.message_id == message_id, _inbox.c.recipient == recipient)
        ).first()
        if state is not None and (state[0] is not None or state[1] is not None):
            return None
        return OpenShare(
            message_id=message_id, recipient=recipient, sender=str(sender),
            message_type=message_type, route=route,
            subject=SubjectKeys(pnc=subject_pnc, name_dob=subject_name_dob),
            delivered=state is not None,
        )

    def close(
        self, message_id: str, recipient: str, reason: MessageStatus, at: datetime, *,
        delivered: bool,
    ) -> bool:
        if not delivered:
            return bool(insert_ignoring_duplicates(self._conn, _inbox, {
                "message_id": message_id, "recipient": recipient, "delivered_at": at,
                "closed_at": at, "closed_reason": reason.value,
            }))
        return bool(self._conn.execute(
            update(_inbox)
            .where(_inbox.c.message_id == message_id, _inbox.c.recipient == recipient,
                   _inbox.c.acknowledged_at.is_(None), _inbox.c.closed_at.is_(None))
            .values(closed_at=at, closed_reason=reason.value)
        ).rowcount)

    def release_outbox(self, message_id: str, recipient: str, at: datetime, reason: str) -> None:
        outbox = schema.outbox
        self._conn.execute(
            update(outbox)
            .where(outbox.c.message_id == message_id, outbox.c.recipient == recipient)
            .values(published_at=func.coalesce(outbox.c.published_at,
                                               literal(at, schema.Timestamp())),
                    last_error=func.coalesce(outbox.c.last_error, reason))
        )

    def end_dispatches(self, message_id: str, recipient: str, at: datetime, reason: str) -> None:
        self._conn.execute(
            update(_dispatches)
            .where(_dispatches.c.message_id == message_id, _dispatches.c.recipient == recipient,
                   _dispatches.c.done_at.is_(None))
            .values(done_at=at, last_error=reason, lease_until=None, leased_by=None)
        )

    def owe_dispatch(
        self, message_id: str, recipient: str, channel: str, purpose: DispatchPurpose,
        target: str, at: datetime,
    ) -> bool:
        return owe_dispatch(self._conn, message_id, recipient, channel, purpose, target, at)

    def record_status(
        self, message_id: str, recipient: str | None, status: MessageStatus, at: datetime,
        detail: str | None = None,
    ) -> None:
        record_status(self._conn, message_id, recipient, status, at, detail)

    def note_escalations(
        self, message_type: str, delivered_before: datetime, detail: str, at: datetime
    ) -> list[OverdueShare]:
        conn = self._conn
        noted = _status.alias("noted")
        overdue = (
            select(_inbox.c.message_id, _inbox.c.recipient,
                   literal(MessageStatus.ESCALATED.value, Text()),
                   literal(at, schema.Timestamp()), literal(detail, Text()))
            .select_from(_inbox.join(_messages,
                                     _messages.c.message_id == _inbox.c.message_id))
            .where(
                _messages.c.type == message_type,
                _inbox.c.delivered_at < delivered_before,
                _inbox.c.acknowledged_at.is_(None),
                _inbox.c.closed_at.is_(None),
                ~exists().where(
                    noted.c.message_id == _inbox.c.message_id,
                    noted.c.recipient == _inbox.c.recipient,
                    noted.c.status == MessageStatus.ESCALATED.value,
                ),
            )
        )
        escalated = conn.execute(
            insert(_status)
            .from_select(["message_id", "recipient", "status", "at", "detail"], overdue)
            .returning(_status.c.message_id, _status.c.recipient)
        ).all()
        if not escalated:
            return []
        rows = conn.execute(
            select(_inbox.c.message_id, _inbox.c.recipient, _messages.c.sender,
                   _messages.c.subject_pnc, _messages.c.subject_name_dob)
            .select_from(_inbox.join(_messages,
                                     _messages.c.message_id == _inbox.c.message_id))
            .where(tuple_(_inbox.c.message_id, _inbox.c.recipient).in_(
                [tuple(row) for row in escalated]))
            .order_by(_inbox.c.seq)
        ).all()
        return [
            OverdueShare(message_id=message_id, recipient=recipient, sender=sender,
                         subject=SubjectKeys(pnc=pnc, name_dob=name_dob))
            for message_id, recipient, sender, pnc, name_dob in rows
        ]

    def store_report(self, report: Mapping[str, Any], route: str, at: datetime) -> None:
        conn = self._conn
        text = json_text(report)
        if not insert_ignoring_duplicates(conn, _messages, {
            "message_id": report["message_id"], "type": REPORT_TYPE, "sender": GATEWAY_SENDER,
            "route": route, "content_hash": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "document_json": text, "received_at": at, "submitted_by": "gateway",
        }):
            return
        recipient = report["to"][0]
        conn.execute(insert(_deliveries), {
            "message_id": report["message_id"], "recipient": recipient, "position": 0,
            "permitted": True, "decision_json": json_text(_REPORT_DECISION.as_dict()),
            "payload_json": text,
        })
        conn.execute(insert(_inbox), {
            "message_id": report["message_id"], "recipient": recipient, "delivered_at": at,
        })
        record_status(conn, report["message_id"], None, MessageStatus.ACCEPTED, at)
        record_status(conn, report["message_id"], recipient, MessageStatus.DELIVERED, at)

    def set_decision(
        self, message_id: str, recipient: str, decision: Decision, payload: Mapping[str, Any]
    ) -> None:
        self._conn.execute(update(_deliveries).where(*_share(message_id, recipient)).values(
            decision_json=json_text(decision.as_dict()),
            consent_record=decision.consent_record,
            payload_json=json_text(payload),
        ))

    def set_consent_record(self, message_id: str, recipient: str, record: str | None) -> None:
        self._conn.execute(update(_deliveries).where(*_share(message_id, recipient))
                           .values(consent_record=record))

    def audit(self, log: AuditLog, event: AuditEvent) -> None:
        log.append(self._conn, event)


def _share(message_id: str, recipient: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """The WHERE clause of one share's deliveries row."""
    return _deliveries.c.message_id == message_id, _deliveries.c.recipient == recipient
