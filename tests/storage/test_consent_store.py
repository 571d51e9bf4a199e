"""ConsentStore on SQLite and PostgreSQL: a record is stored with its audit entry, and a
withdrawal settles every share resting on it in the same transaction, with each outcome
(kept, stopped, withdrawn, notified) as ``SqliteConsents`` settled it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, select

from gateway.domain.errors import NotFound
from gateway.domain.model import Consent, Decision
from gateway.pipeline.audit import AuditAction, AuditEvent
from gateway.pipeline.consent import ConsentForm, ConsentRecord, SubjectKeys
from gateway.services.consents import withdraw
from gateway.storage import schema
from gateway.storage.base import ConsentShare, ShareOutcome, ShareState
from gateway.storage.consents import ConsentStore
from gateway.storage.delivery import DeliveryStore, acknowledge
from gateway.storage.engine import Database
from tests.storage.test_delivery_store import (
    AT,
    PERMIT,
    SENDER,
    SUBJECT,
    actions,
    audit_log,
    seed,
    statuses,
)

KEYS = SubjectKeys.of(SUBJECT)
WITHDRAWN_AT = AT + timedelta(days=1)


def consent(consent_id: str, subject: Mapping[str, Any] = SUBJECT) -> ConsentRecord:
    return ConsentRecord(
        id=consent_id, subject=subject, keys=SubjectKeys.of(subject),
        form=ConsentForm.WRITTEN, permit=True, actor_roles=frozenset({"LA"}),
        purposes=(), period_start=AT - timedelta(days=30), period_end=None,
        information_given="leaflet", recorded_at=AT - timedelta(days=30),
        performer="LA-SFK/worker-1",
    )


def on_consent(record: str | None, permitted: bool = True) -> Decision:
    return Decision(
        permitted=permitted, consent=Consent.REQUIRED, consent_satisfied=permitted,
        redactions=(), rule="test-consent", legal_basis="consent", policy_version="test",
        consent_record=record, reason="" if permitted else "no consent in force",
    )


async def add(store: ConsentStore, db: Database, record: ConsentRecord) -> None:
    await store.add(record, (audit_log(db), AuditEvent(
        action=AuditAction.CONSENT_RECORDED, at=record.recorded_at, actor=record.performer,
        subject=record.keys, details={"consent_id": record.id})))


async def test_a_record_is_stored_with_its_entry(database: Database) -> None:
    store = ConsentStore(database)
    other = {**SUBJECT, "given_name": "Bea", "pnc_id": "2001/0000001A"}
    await add(store, database, consent("c1"))
    await add(store, database, consent("c2", other))

    assert await store.get("c1") == consent("c1")
    assert await store.get("nope") is None
    assert [r.id for r in await store.matching(KEYS)] == ["c1"]
    assert [r.id for r in await store.matching(SubjectKeys.of(other))] == ["c2"]
    assert (await actions(database))[AuditAction.CONSENT_RECORDED.value] == 2


async def test_a_withdrawal_settles_each_share_in_one_go(database: Database) -> None:
    consents, delivery, audit = (ConsentStore(database), DeliveryStore(database),
                                 audit_log(database))
    await add(consents, database, consent("c1"))
    await add(consents, database, consent("c2"))
    name_dob = KEYS.name_dob
    for message_id, recipient in (("m-stop", "LA-A"), ("m-unread", "LA-B"),
                                  ("m-acked", "LA-C"), ("m-kept", "LA-D")):
        await seed(database, message_id, {recipient: on_consent("c1")}, consent_based=True,
                   consent_record="c1", subject_keys=(None, name_dob))
    # Consent-based but naming no record: found by the person it is about.
    await seed(database, "m-unnamed", {"LA-E": PERMIT}, consent_based=True,
               subject_keys=(None, name_dob))
    await seed(database, "m-not-consent", {"LA-F": PERMIT}, subject_keys=(None, name_dob))
    # The unread one still owes its SPOC an e-mail notice.
    await delivery.deliver("m-unread", "LA-B", AT, audit, notice_to="spoc@la-b.gov.uk")
    await delivery.deliver("m-acked", "LA-C", AT, audit)
    await database.transaction(
        lambda conn: acknowledge(conn, "m-acked", "LA-C", "LA-C/p1", AT, audit, None))
    seen: list[ConsentShare] = []

    def redecide(record: ConsentRecord, share: ConsentShare) -> Decision | None:
        seen.append(share)
        if share.recipient in ("LA-D", "LA-E"):
            return on_consent("c2")
        return on_consent(None, permitted=False)

    withdrawal = await withdraw(consents, "c1", "LA-SFK/worker-1", "asked", WITHDRAWN_AT,
                                audit, redecide)

    outcomes = {s.message_id: s.outcome for s in withdrawal.shares}
    assert outcomes == {"m-stop": ShareOutcome.STOPPED, "m-unread": ShareOutcome.WITHDRAWN,
                        "m-acked": ShareOutcome.NOTIFIED, "m-kept": ShareOutcome.KEPT,
                        "m-unnamed": ShareOutcome.KEPT}
    assert {s.message_id: s.state for s in seen} == {
        "m-stop": ShareState.UNDELIVERED, "m-unread": ShareState.UNREAD,
        "m-acked": ShareState.ACKNOWLEDGED, "m-kept": ShareState.UNDELIVERED,
        "m-unnamed": ShareState.UNDELIVERED}
    assert all(sorted(r.id for r in s.records) == ["c1", "c2"] for s in seen)
    assert withdrawal.record.withdrawn_at == WITHDRAWN_AT
    assert (await consents.get("c1")) == replace(
        consent("c1"), withdrawn_at=WITHDRAWN_AT, withdrawn_by="LA-SFK/worker-1",
        withdrawal_reason="asked")

    assert await statuses(database, "m-stop", "LA-A") == ["refused"]
    assert await statuses(database, "m-unread", "LA-B") == ["delivered", "withdrawn"]
    assert await statuses(database, "m-acked", "LA-C") == [
        "delivered", "acknowledged", "consent_withdrawn"]
    counted = await actions(database)
    assert counted[AuditAction.CONSENT_WITHDRAWN.value] == 1
    assert counted[AuditAction.MESSAGE_WITHDRAWN.value] == 2
    assert counted[AuditAction.MESSAGE_REFUSED.value] == 1

    def read(c: Connection) -> tuple[Any, ...]:
        kept = c.execute(
            select(schema.deliveries.c.recipient, schema.deliveries.c.consent_record)
            .where(schema.deliveries.c.recipient.in_(["LA-D", "LA-E"]))
            .order_by(schema.deliveries.c.recipient)).all()
        inbox = c.execute(
            select(schema.inbox.c.recipient, schema.inbox.c.closed_reason)
            .where(schema.inbox.c.recipient.in_(["LA-A", "LA-B", "LA-C"]))
            .order_by(schema.inbox.c.recipient, schema.inbox.c.seq)).all()
        owed = c.execute(
            select(schema.dispatches.c.last_error)).scalars().all()
        reports = c.execute(
            select(schema.inbox.c.recipient, schema.messages.c.document_json)
            .join(schema.messages, schema.messages.c.message_id == schema.inbox.c.message_id)
            .where(schema.messages.c.type == "delivery_report")
            .order_by(schema.inbox.c.recipient)).all()
        return [tuple(r) for r in kept], [tuple(r) for r in inbox], list(owed), reports

    kept, inbox, owed, reports = await database.transaction(read)
    assert kept == [("LA-D", "c2"), ("LA-E", "c2")]
    assert inbox == [("LA-A", "refused"), ("LA-B", "withdrawn"), ("LA-B", None),
                     ("LA-C", None), ("LA-C", None)]
    assert owed == ["closed: consent withdrawn"]
    bodies = {to: json.loads(text)["body"] for to, text in reports}
    assert bodies["LA-B"]["outcome"] == bodies["LA-C"]["outcome"] == "consent_withdrawn"
    assert bodies[SENDER]["original_message_id"] == "m-stop"

    again = await withdraw(consents, "c1", "LA-SFK/worker-2", "again", WITHDRAWN_AT, audit,
                           redecide)
    assert again.shares == () and again.record.withdrawn_by == "LA-SFK/worker-1"


async def test_withdrawing_an_unknown_record_is_not_found(database: Database) -> None:
    with pytest.raises(NotFound, match=r"There is no consent record c9\."):
        await withdraw(
            ConsentStore(database), "c9", "LA-SFK/w", "x", datetime(2027, 1, 1, tzinfo=UTC),
            audit_log(database), lambda record, share: None)
