"""MessageStore on SQLite and PostgreSQL: accepting a message (new, replayed, conflicting,
refused), reading it back, the inbox and its acknowledgement, and the outbox claimed with a
lease, including what two gateway processes sharing one database do at the same moment
(issue 13). The second process is a second ``Database`` on the same file or server, as a
second gateway would open it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.domain.errors import IdempotencyConflict, NotFound
from gateway.domain.model import Consent, Decision, Envelope, MessageStatus
from gateway.pipeline.audit import AuditAction, AuditEvent, Pseudonymiser
from gateway.pipeline.consent import SubjectKeys
from gateway.services.alerts import escalate_unacknowledged
from gateway.storage import schema
from gateway.storage.audit_log import AuditLogStore
from gateway.storage.base import (
    InboxFilter,
    InboxState,
    PlannedDelivery,
    Receipt,
    Submission,
)
from gateway.storage.engine import Database, open_database
from gateway.storage.messages import OUTBOX_LEASE, MessageStore
from gateway.tlog.merkle import leaf_hash

AT = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
SENDER = "POL-SFK"
SUBJECT = {"given_name": "Ann", "family_name": "Smith", "date_of_birth": "1990-01-01",
           "pnc_id": "2001/0000001A"}


def decision(permitted: bool, *, redactions: tuple[str, ...] = ()) -> Decision:
    """A decision as it reads back from storage (its JSON form fills in ``rules``)."""
    return Decision.from_dict(Decision(
        permitted=permitted, consent=Consent.NOT_REQUIRED, consent_satisfied=True,
        redactions=redactions, rule="test-permit" if permitted else "test-deny",
        legal_basis="a test", policy_version="test",
    ).as_dict())


def submission(
    recipients: dict[str, Decision],
    *,
    message_id: str | None = None,
    notes: str = "first",
    received_at: datetime = AT,
    subject: dict[str, Any] = SUBJECT,
    direction: Any = "outbound",
) -> Submission:
    document = {
        "message_id": message_id or str(uuid.uuid4()), "type": "ra1_notice",
        "sent_at": "2026-12-02T10:00:00Z", "from": SENDER, "to": list(recipients),
        "route": "enforcement", "subject": subject,
        "body": {"notes": notes, "direction": direction},
    }
    envelope = Envelope.from_document(document)
    return Submission(
        envelope=envelope,
        deliveries=tuple(
            PlannedDelivery(
                recipient=code, decision=d,
                payload=({**document, "body": {}} if d.redactions else document)
                if d.permitted else None,
                resolved_by="area" if code == "LA-SFK" else None,
            )
            for code, d in recipients.items()
        ),
        received_at=received_at,
        submitted_by=f"{SENDER}/system",
    )


def accepted(sub: Submission) -> AuditEvent:
    return AuditEvent(action=AuditAction.MESSAGE_ACCEPTED, at=sub.received_at,
                      actor=sub.submitted_by, message_id=sub.envelope.message_id)


def audit_log(db: Database) -> AuditLogStore:
    return AuditLogStore(db, Pseudonymiser(b"k" * 32))


async def accept(db: Database, sub: Submission) -> Receipt:
    return await MessageStore(db).accept(sub, accepted(sub), audit_log(db))


@pytest.fixture
async def other_process(
    database: Database, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Database]:
    """A second gateway's connection to the ``database`` fixture's own SQLite file or
    PostgreSQL database (same names as tests/storage/conftest.py gives them)."""
    if database.dialect == "sqlite":
        db = open_database(None, tmp_path / "dipgw.sqlite3")
    else:
        db = open_database(request.getfixturevalue("postgres_url"), tmp_path / "unused")
    await db.open()
    try:
        yield db
    finally:
        await db.close()


async def rows(db: Database, table: Any, *columns: Any) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in await db.transaction(
        lambda conn: conn.execute(select(*(columns or (table,)))).all())]


# Accepting


async def test_a_new_message_is_stored_with_its_shares_outbox_and_audit_entry(
    database: Database,
) -> None:
    sub = submission({"LA-SFK": decision(True), "PROB-SFK": decision(False)})
    receipt = await accept(database, sub)

    entry, = await audit_log(database).entries(0, 1)
    assert receipt == Receipt(
        message_id=sub.envelope.message_id, status=MessageStatus.ACCEPTED,
        decisions=(("LA-SFK", decision(True)), ("PROB-SFK", decision(False))),
        audit_index=0, resolved_by={"LA-SFK": "area"}, entry_hash=leaf_hash(entry),
    )
    assert await audit_log(database).size() == 1
    assert await rows(database, schema.outbox, schema.outbox.c.recipient,
                      schema.outbox.c.next_attempt_at) == [("LA-SFK", AT)]
    record = await MessageStore(database).get(sub.envelope.message_id)
    assert record is not None
    assert (record.message_type, record.sender, record.recipients, record.received_at) == (
        "ra1_notice", SENDER, ("LA-SFK", "PROB-SFK"), AT)
    assert [(e.status, e.recipient, e.detail) for e in record.history] == [
        (MessageStatus.ACCEPTED, None, None),
        (MessageStatus.REFUSED, "PROB-SFK", "refused by rule test-deny"),
    ]
    stored = await rows(database, schema.messages, schema.messages.c.audit_index,
                        schema.messages.c.subject_pnc, schema.messages.c.document_json)
    assert stored[0][:2] == (0, SubjectKeys.of(SUBJECT).pnc)
    assert json.loads(stored[0][2]) == sub.envelope.document


async def test_an_identical_resubmission_gets_the_receipt_back_and_logs_nothing(
    database: Database,
) -> None:
    sub = submission({"LA-SFK": decision(True)})
    first = await accept(database, sub)
    again = await accept(database, sub)

    assert again == Receipt(
        message_id=first.message_id, status=first.status, decisions=first.decisions,
        audit_index=first.audit_index, replayed=True, resolved_by=first.resolved_by,
        entry_hash=first.entry_hash,
    )
    assert first.entry_hash is not None
    assert await audit_log(database).size() == 1
    assert len(await rows(database, schema.outbox)) == 1


async def test_a_used_id_with_other_content_is_a_conflict(database: Database) -> None:
    sub = submission({"LA-SFK": decision(True)})
    await accept(database, sub)
    other = submission({"LA-SFK": decision(True)}, message_id=sub.envelope.message_id,
                       notes="changed")

    with pytest.raises(IdempotencyConflict, match="already used for a different message"):
        await accept(database, other)
    assert await audit_log(database).size() == 1


async def test_a_refused_message_is_stored_without_outbox_rows(database: Database) -> None:
    sub = submission({"LA-SFK": decision(False), "PROB-SFK": decision(False)})
    receipt = await accept(database, sub)

    assert receipt.status is MessageStatus.REFUSED
    assert await rows(database, schema.outbox) == []
    record = await MessageStore(database).get(sub.envelope.message_id)
    assert record is not None
    # A refused message says so once; per-recipient refusals are for partly permitted ones.
    assert [(e.status, e.recipient) for e in record.history] == [(MessageStatus.REFUSED, None)]
    replay = await accept(database, sub)
    assert (replay.status, replay.replayed) == (MessageStatus.REFUSED, True)


async def test_a_redacted_share_carries_its_own_payload(database: Database) -> None:
    sub = submission({"LA-SFK": decision(True, redactions=("/body",)),
                      "PROB-SFK": decision(True)})
    await accept(database, sub)

    items = {i.recipient: i for i in await MessageStore(database).pending_outbox(10, AT)}
    assert json.loads(items["LA-SFK"].payload)["body"] == {}
    assert json.loads(items["PROB-SFK"].payload) == sub.envelope.document


async def test_two_processes_accepting_one_id_store_it_once(
    database: Database, other_process: Database,
) -> None:
    sub = submission({"LA-SFK": decision(True), "PROB-SFK": decision(True)})

    receipts = await asyncio.gather(accept(database, sub), accept(other_process, sub))

    assert sorted(r.replayed for r in receipts) == [False, True]
    assert receipts[0].decisions == receipts[1].decisions
    assert receipts[0].audit_index == receipts[1].audit_index == 0
    assert await audit_log(database).size() == 1
    assert len(await rows(database, schema.messages)) == 1
    assert len(await rows(database, schema.outbox)) == 2
    assert len(await rows(database, schema.status_events)) == 1


async def test_two_processes_racing_with_different_content_one_conflicts(
    database: Database, other_process: Database,
) -> None:
    sub = submission({"LA-SFK": decision(True)})
    other = submission({"LA-SFK": decision(True)}, message_id=sub.envelope.message_id,
                       notes="changed")

    outcomes = await asyncio.gather(accept(database, sub), accept(other_process, other),
                                    return_exceptions=True)

    assert sorted(type(o).__name__ for o in outcomes) == ["IdempotencyConflict", "Receipt"]
    assert await audit_log(database).size() == 1


# Reading


async def test_sent_senders_and_about_person(database: Database) -> None:
    store = MessageStore(database)
    older = submission({"LA-SFK": decision(True), "PROB-SFK": decision(False)})
    newer = submission({"LA-SFK": decision(True), "CJIT-SFK": decision(True)},
                       received_at=AT + timedelta(minutes=1), direction=7)
    stranger = submission({"LA-SFK": decision(True)}, received_at=AT + timedelta(minutes=2),
                          subject={**SUBJECT, "given_name": "Bob", "pnc_id": None})
    for sub in (older, newer, stranger):
        await accept(database, sub)

    assert [r.message_id for r in await store.sent(SENDER, 10)] == [
        stranger.envelope.message_id, newer.envelope.message_id, older.envelope.message_id]
    assert [r.message_id for r in await store.sent(SENDER, 1, offset=1)] == [
        newer.envelope.message_id]
    assert await store.sent("LA-SFK", 10) == []
    assert await store.senders_of([older.envelope.message_id, "unknown"]) == {
        older.envelope.message_id: SENDER}
    assert await store.senders_of([]) == {}
    assert await store.get("unknown") is None

    found = await store.about_person(SubjectKeys.of(SUBJECT), 10)
    assert [(i.recipients, i.received_at, i.direction) for i in found] == [
        (("LA-SFK", "CJIT-SFK"), AT + timedelta(minutes=1), None),  # 7 is not a direction
        (("LA-SFK",), AT, "outbound"),  # the refused share is not an involvement
    ]
    assert found[0].keys == SubjectKeys.of(SUBJECT)
    assert len(await store.about_person(SubjectKeys.of(SUBJECT), 1)) == 1
    # A key the person lacks matches nothing, not every message that lacks it too.
    by_pnc_only = SubjectKeys(pnc=SubjectKeys.of(SUBJECT).pnc, name_dob=None)
    assert len(await store.about_person(by_pnc_only, 10)) == 2
    assert await store.about_person(SubjectKeys(pnc=None, name_dob=None), 10) == []


# The inbox


async def test_the_inbox_lists_filters_and_acknowledges(database: Database) -> None:
    store, audit = MessageStore(database), audit_log(database)
    first = submission({"LA-SFK": decision(True), "PROB-SFK": decision(True)})
    second = submission({"LA-SFK": decision(True)}, received_at=AT + timedelta(minutes=1))
    for sub in (first, second):
        await accept(database, sub)
        await store.deliver(sub.envelope.message_id, "LA-SFK", sub.received_at, audit)
    one, two = first.envelope.message_id, second.envelope.message_id

    waiting = await store.inbox("LA-SFK", 10)
    assert [(i.message_id, i.delivered_at, i.escalated, i.acknowledged_at) for i in waiting] == [
        (one, AT, False, None), (two, AT + timedelta(minutes=1), False, None)]
    assert waiting[0].decision == decision(True)
    assert waiting[0].envelope == first.envelope.document
    assert [i.message_id for i in await store.inbox("LA-SFK", 10, waiting[0].seq)] == [two]
    assert await store.inbox("PROB-SFK", 10) == []  # accepted, not yet delivered there

    ack_at = AT + timedelta(hours=1)
    ack = await store.acknowledge(one, "LA-SFK", "LA-SFK/p1", ack_at, audit)
    again = await store.acknowledge(one, "LA-SFK", "LA-SFK/p2", ack_at + timedelta(hours=1),
                                    audit)
    assert (ack.acknowledged_at, ack.first_time) == (ack_at, True)
    assert (again.acknowledged_at, again.first_time) == (ack_at, False)
    with pytest.raises(NotFound, match="is not in PROB-SFK's inbox"):
        await store.acknowledge(one, "PROB-SFK", "PROB-SFK/p1", ack_at, audit)
    record = await store.get(one)
    assert record is not None and record.acknowledged_by == {"LA-SFK": "LA-SFK/p1"}

    assert [i.message_id for i in await store.inbox("LA-SFK", 10)] == [two]
    item = await store.inbox_item(one, "LA-SFK")
    assert item is not None and item.acknowledged_at == ack_at
    assert await store.inbox_item(one, "PROB-SFK") is None

    def history(**where: Any) -> Any:
        return store.inbox_history("LA-SFK", InboxFilter(**where), 10)

    assert [i.message_id for i in await history()] == [two]
    assert [i.message_id for i in await history(
        states=frozenset({InboxState.ACKNOWLEDGED}))] == [one]
    assert [i.message_id for i in await history(states=frozenset())] == [one, two]
    assert [i.message_id for i in await store.inbox_history(
        "LA-SFK", InboxFilter(states=frozenset()), 10, newest_first=True)] == [two, one]
    assert [i.message_id for i in await history(
        states=frozenset(), delivered_from=AT + timedelta(seconds=1))] == [two]
    assert [i.message_id for i in await history(
        states=frozenset(), delivered_before=AT + timedelta(seconds=1))] == [one]
    assert await history(states=frozenset(), types=frozenset({"court_outcome"})) == []
    assert await history(states=frozenset({InboxState.ESCALATED, InboxState.WITHDRAWN})) == []


async def test_escalated_and_withdrawn_shares_in_the_inbox(database: Database) -> None:
    store, audit = MessageStore(database), audit_log(database)
    kept = submission({"LA-SFK": decision(True)})
    withdrawn = submission({"LA-SFK": decision(True)}, received_at=AT + timedelta(minutes=1))
    for sub in (kept, withdrawn):
        await accept(database, sub)
        await store.deliver(sub.envelope.message_id, "LA-SFK", sub.received_at, audit)
    await escalate_unacknowledged(store, "ra1_notice", AT + timedelta(seconds=1), "late",
                                        AT + timedelta(hours=2), audit)
    gone_at = AT + timedelta(hours=3)
    await database.transaction(lambda conn: conn.execute(
        schema.inbox.update()
        .where(schema.inbox.c.message_id == withdrawn.envelope.message_id)
        .values(closed_at=gone_at, closed_reason=MessageStatus.WITHDRAWN.value)))

    [waiting] = await store.inbox("LA-SFK", 10)
    assert (waiting.message_id, waiting.escalated) == (kept.envelope.message_id, True)
    escalated = await store.inbox_history(
        "LA-SFK", InboxFilter(states=frozenset({InboxState.ESCALATED})), 10)
    assert [i.message_id for i in escalated] == [kept.envelope.message_id]
    [out] = await store.inbox_history(
        "LA-SFK", InboxFilter(states=frozenset({InboxState.WITHDRAWN})), 10)
    assert (out.message_id, out.withdrawn_at) == (withdrawn.envelope.message_id, gone_at)
    assert await store.inbox_item(withdrawn.envelope.message_id, "LA-SFK") is None
    with pytest.raises(NotFound, match="was withdrawn and left the inbox"):
        await store.acknowledge(withdrawn.envelope.message_id, "LA-SFK", "LA-SFK/p1",
                                gone_at, audit)


async def test_two_processes_acknowledging_at_once_make_one_first_acknowledgement(
    database: Database, other_process: Database,
) -> None:
    sub = submission({"LA-SFK": decision(True)})
    await accept(database, sub)
    audit = audit_log(database)
    await MessageStore(database).deliver(sub.envelope.message_id, "LA-SFK", AT, audit)
    size = await audit.size()

    acks = await asyncio.gather(*(
        MessageStore(db).acknowledge(sub.envelope.message_id, "LA-SFK", f"LA-SFK/{who}",
                                     AT + timedelta(minutes=1), audit_log(db))
        for db, who in ((database, "p1"), (other_process, "p2"))
    ))

    assert sorted(a.first_time for a in acks) == [False, True]
    assert await audit.size() == size + 1
    record = await MessageStore(database).get(sub.envelope.message_id)
    assert record is not None
    assert [e.status for e in record.history].count(MessageStatus.ACKNOWLEDGED) == 1


# The outbox


async def fill_outbox(db: Database, messages: int) -> None:
    for i in range(messages):
        await accept(db, submission({"LA-SFK": decision(True)},
                                    received_at=AT + timedelta(seconds=i)))


async def test_two_processes_never_claim_the_same_row(
    database: Database, other_process: Database,
) -> None:
    if database.dialect == "sqlite":
        pytest.skip("claims take a lease on PostgreSQL only: one gateway process owns a "
                    "SQLite file (gateway.storage.rows.claim_lease)")
    await fill_outbox(database, 6)
    now = AT + timedelta(minutes=1)

    mine, theirs = await asyncio.gather(MessageStore(database).pending_outbox(4, now),
                                        MessageStore(other_process).pending_outbox(4, now))

    claimed = [i.outbox_id for i in (*mine, *theirs)]
    assert len(claimed) == len(set(claimed)) == 6
    leases = await rows(database, schema.outbox, schema.outbox.c.lease_until,
                        schema.outbox.c.leased_by)
    assert {until for until, _ in leases} == {now + OUTBOX_LEASE}
    assert len({owner for _, owner in leases}) == 2


async def test_a_lease_holds_until_it_runs_out_or_the_row_is_settled(
    database: Database,
) -> None:
    if database.dialect == "sqlite":
        pytest.skip("claims take a lease on PostgreSQL only: one gateway process owns a "
                    "SQLite file (gateway.storage.rows.claim_lease)")
    await fill_outbox(database, 3)
    first, second = MessageStore(database), MessageStore(database)
    now = AT + timedelta(seconds=2)  # all three are due

    claimed = await first.pending_outbox(10, now)
    assert [i.attempts for i in claimed] == [0, 0, 0]
    assert await second.pending_outbox(10, now + OUTBOX_LEASE - timedelta(seconds=1)) == []

    published, deferred, abandoned = (i.outbox_id for i in claimed)
    await first.mark_published([published], now + timedelta(seconds=1))
    await first.defer_outbox([deferred], now + timedelta(seconds=5), "broker said no" * 100)

    # Deferring ends the lease: the row is due again at its new time, whoever asks.
    retry = await second.pending_outbox(10, now + timedelta(seconds=5))
    assert [(i.outbox_id, i.attempts) for i in retry] == [(deferred, 1)]
    # The first process died holding a row: it comes back once the lease runs out.
    later = await second.pending_outbox(10, now + OUTBOX_LEASE)
    assert [i.outbox_id for i in later] == [abandoned]
    # The first, back late, cannot end the second's lease by deferring the row.
    await first.defer_outbox([abandoned], now + OUTBOX_LEASE, "late")
    assert await first.pending_outbox(10, now + OUTBOX_LEASE + timedelta(seconds=1)) == []
    # A published row never comes back.
    await second.mark_published([deferred, abandoned], now + timedelta(hours=1))
    assert await first.pending_outbox(10, now + timedelta(days=1)) == []
    settled = await rows(database, schema.outbox, schema.outbox.c.attempts,
                         schema.outbox.c.lease_until, schema.outbox.c.last_error)
    assert sorted(attempts for attempts, _, _ in settled) == [1, 1, 2]
    assert {lease for _, lease, _ in settled} == {None}
    assert max(len(error or "") for _, _, error in settled) == 500


async def test_the_outbox_backlog_counts_unpublished_rows(database: Database) -> None:
    store = MessageStore(database)
    assert await store.outbox_backlog() == (0, None)
    await fill_outbox(database, 2)
    assert await store.outbox_backlog() == (2, AT)
    [first, _] = await store.pending_outbox(10, AT + timedelta(seconds=1))
    await store.mark_published([first.outbox_id], AT + timedelta(seconds=2))
    assert await store.outbox_backlog() == (1, AT + timedelta(seconds=1))


async def test_ping_answers(database: Database) -> None:
    await MessageStore(database).ping()


async def test_on_sqlite_a_restarted_process_resumes_the_outbox_at_once(
    database: Database,
) -> None:
    """No lease on SQLite: what a killed gateway had claimed is sent by the next one
    straight away (tests/test_crash_recovery.py), not after a lease runs out."""
    if database.dialect != "sqlite":
        pytest.skip("PostgreSQL's claims are leased (the tests above)")
    await fill_outbox(database, 2)
    now = AT + timedelta(minutes=1)
    before_crash = await MessageStore(database).pending_outbox(10, now)
    after_restart = await MessageStore(database).pending_outbox(10, now)
    assert [i.outbox_id for i in after_restart] == [i.outbox_id for i in before_crash]
    assert len(after_restart) == 2
