"""DeliveryStore on SQLite and PostgreSQL: a share reaches the inbox once, owed pushes are
claimed by one process at a time, and closing or escalating a share happens once even
when several gateway processes do it at the same moment (issue 13)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, func, insert, select

from gateway.domain.errors import NotFound
from gateway.domain.model import Consent, Decision, MessageStatus
from gateway.pipeline.audit import AuditAction, Pseudonymiser
from gateway.pipeline.reports import REPORT_TYPE
from gateway.services.alerts import escalate_unacknowledged
from gateway.services.undelivered import close_delivery
from gateway.storage import schema
from gateway.storage.audit_log import AuditLogStore
from gateway.storage.base import DispatchPurpose
from gateway.storage.delivery import CLAIM_LEASE, DeliveryStore, acknowledge
from gateway.storage.engine import Database
from gateway.storage.rows import json_text

AT = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
SENDER = "POL-SFK"
PERMIT = Decision(
    permitted=True, consent=Consent.NOT_REQUIRED, consent_satisfied=True, redactions=(),
    rule="test-permit", legal_basis="a test", policy_version="test",
)
DENY = Decision(
    permitted=False, consent=Consent.NOT_REQUIRED, consent_satisfied=True, redactions=(),
    rule="test-deny", legal_basis="a test", policy_version="test",
)
SUBJECT = {"given_name": "Ann", "family_name": "Smith", "date_of_birth": "1990-01-01",
           "pnc_id": None}


def audit_log(db: Database) -> AuditLogStore:
    return AuditLogStore(db, Pseudonymiser(b"k" * 32))


async def seed(
    db: Database,
    message_id: str,
    recipients: dict[str, Decision],
    *,
    message_type: str = "safeguarding_alert",
    received_at: datetime = AT,
    document: dict[str, Any] | None = None,
    consent_based: bool = False,
    consent_record: str | None = None,
    subject_keys: tuple[str | None, str | None] = (None, "smith|ann|1990-01-01"),
) -> None:
    """A message and its shares as accepting it leaves them (``MessageStore.accept``)."""
    text = json_text(document or {"message_id": message_id, "type": message_type,
                                  "route": "r1", "subject": SUBJECT})

    def write(conn: Connection) -> None:
        conn.execute(insert(schema.messages), {
            "message_id": message_id, "type": message_type, "sender": SENDER, "route": "r1",
            "content_hash": "0" * 64, "document_json": text, "received_at": received_at,
            "submitted_by": f"{SENDER}/system", "subject_pnc": subject_keys[0],
            "subject_name_dob": subject_keys[1],
        })
        for position, (recipient, decision) in enumerate(recipients.items()):
            conn.execute(insert(schema.deliveries), {
                "message_id": message_id, "recipient": recipient, "position": position,
                "permitted": decision.permitted, "decision_json": json_text(decision.as_dict()),
                "payload_json": text if decision.permitted else None,
                "consent_based": consent_based, "consent_record": consent_record,
            })

    await db.transaction(write)


async def count(db: Database, table: Any, *where: Any) -> int:
    return int(await db.transaction(
        lambda conn: conn.execute(select(func.count()).select_from(table).where(*where))
        .scalar_one()))


async def actions(db: Database) -> Counter[str]:
    entries = await audit_log(db).entries(0, 10_000)
    return Counter(json.loads(entry)["action"] for entry in entries)


async def statuses(db: Database, message_id: str, recipient: str) -> list[str]:
    return list(await db.transaction(lambda conn: conn.execute(
        select(schema.status_events.c.status)
        .where(schema.status_events.c.message_id == message_id,
               schema.status_events.c.recipient == recipient)
        .order_by(schema.status_events.c.id)).scalars().all()))


async def test_a_share_is_delivered_once_with_its_entry_and_notice(database: Database) -> None:
    store, audit = DeliveryStore(database), audit_log(database)
    await seed(database, "m1", {"LA-SFK": PERMIT})

    first = await store.deliver("m1", "LA-SFK", AT, audit, detail="webhook",
                                notice_to="spoc@example.gov.uk")
    again = await store.deliver("m1", "LA-SFK", AT + timedelta(seconds=1), audit)

    assert (first, again) == (True, False)
    assert await statuses(database, "m1", "LA-SFK") == ["delivered"]
    assert (await actions(database))[AuditAction.MESSAGE_DELIVERED.value] == 1
    assert await count(database, schema.dispatches,
                       schema.dispatches.c.purpose == DispatchPurpose.NOTICE.value) == 1
    delivered_at = await database.transaction(lambda conn: conn.execute(
        select(schema.inbox.c.delivered_at)).scalar_one())
    assert delivered_at == AT


async def test_nothing_reaches_an_inbox_without_a_permit(database: Database) -> None:
    store = DeliveryStore(database)
    await seed(database, "m1", {"LA-SFK": DENY})
    with pytest.raises(NotFound, match="no permitted delivery of m1 to LA-SFK"):
        await store.deliver("m1", "LA-SFK", AT, audit_log(database))
    with pytest.raises(NotFound):
        await store.hold_for_push("m1", "LA-SFK", "webhook", "https://x", AT)


async def test_a_push_is_owed_once_and_not_after_delivery(database: Database) -> None:
    store, audit = DeliveryStore(database), audit_log(database)
    await seed(database, "m1", {"LA-SFK": PERMIT, "LA-NFK": PERMIT})

    assert await store.hold_for_push("m1", "LA-SFK", "webhook", "https://a", AT)
    assert not await store.hold_for_push("m1", "LA-SFK", "webhook", "https://a", AT)
    await store.deliver("m1", "LA-NFK", AT, audit)
    assert not await store.hold_for_push("m1", "LA-NFK", "webhook", "https://b", AT)
    assert await store.dispatch_backlog() == {"webhook": (1, AT)}


async def owe_pushes(db: Database, n: int) -> None:
    store = DeliveryStore(db)
    for i in range(n):
        await seed(db, f"m{i}", {"LA-SFK": PERMIT})
        await store.hold_for_push(f"m{i}", "LA-SFK", "webhook", "https://a",
                                  AT + timedelta(seconds=i))


async def test_concurrent_claims_never_share_a_push(database: Database) -> None:
    if database.dialect == "sqlite":
        pytest.skip("claims take a lease on PostgreSQL only: one gateway process owns a "
                    "SQLite file (gateway.storage.rows.claim_lease)")
    await owe_pushes(database, 12)
    stores = [DeliveryStore(database) for _ in range(4)]
    now = AT + timedelta(minutes=1)

    claims = await asyncio.gather(*(s.due_dispatches(now, 5) for s in stores))

    ids = [d.dispatch_id for claim in claims for d in claim]
    assert len(ids) == len(set(ids)) == 12
    assert all(d.payload is not None and d.message_type == "safeguarding_alert"
               for claim in claims for d in claim)
    # Each is leased: no process gets it again until the lease runs out.
    assert await stores[0].due_dispatches(now + CLAIM_LEASE - timedelta(seconds=1), 50) == []
    holders = await database.transaction(lambda conn: conn.execute(
        select(schema.dispatches.c.leased_by).distinct()).scalars().all())
    assert len(holders) == sum(1 for claim in claims if claim)


async def test_an_expired_claim_is_claimed_again(database: Database) -> None:
    await owe_pushes(database, 2)
    died, survivor = DeliveryStore(database), DeliveryStore(database)
    now = AT + timedelta(minutes=1)
    first = await died.due_dispatches(now, 50)

    later = await survivor.due_dispatches(now + CLAIM_LEASE, 50)

    assert [d.dispatch_id for d in later] == [d.dispatch_id for d in first]
    assert [d.message_id for d in later] == ["m0", "m1"]  # oldest due first


async def test_a_late_failure_leaves_the_new_claimers_lease_alone(database: Database) -> None:
    """A process whose lease ran out mid-push, and which then fails, must not clear the
    lease of the process that claimed the push since: a third would push it again while
    the second is still sending."""
    if database.dialect == "sqlite":
        pytest.skip("claims take a lease on PostgreSQL only: one gateway process owns a "
                    "SQLite file (gateway.storage.rows.claim_lease)")
    await owe_pushes(database, 1)
    slow, second, third = (DeliveryStore(database) for _ in range(3))
    now = AT + timedelta(minutes=1)
    (stale,) = await slow.due_dispatches(now, 50)
    (claimed,) = await second.due_dispatches(now + CLAIM_LEASE, 50)

    await slow.dispatch_failed(stale, now + CLAIM_LEASE, "timed out", now + CLAIM_LEASE)

    assert await third.due_dispatches(now + CLAIM_LEASE + timedelta(seconds=1), 50) == []
    assert await statuses(database, claimed.message_id, "LA-SFK") == []
    # The second's own failure still settles its claim.
    await second.dispatch_failed(claimed, now + CLAIM_LEASE, "HTTP 503", now + CLAIM_LEASE)
    (again,) = await third.due_dispatches(now + CLAIM_LEASE + timedelta(seconds=1), 50)
    assert (again.dispatch_id, again.attempts) == (claimed.dispatch_id, 1)


async def test_settled_pushes_release_or_end_their_claim(database: Database) -> None:
    await owe_pushes(database, 2)
    store, audit = DeliveryStore(database), audit_log(database)
    now = AT + timedelta(minutes=1)
    done, failed = await store.due_dispatches(now, 50)

    await store.dispatch_succeeded(done, now, audit, "webhook")
    await store.dispatch_succeeded(done, now, audit, "webhook")  # a repeat changes nothing
    await store.dispatch_failed(failed, now + timedelta(seconds=30), "HTTP 503", now)

    # A failed push is due again at its retry time, lease or not; a done one never.
    assert await store.due_dispatches(now + timedelta(seconds=29), 50) == []
    retried = await store.due_dispatches(now + timedelta(seconds=30), 50)
    assert [(d.dispatch_id, d.attempts) for d in retried] == [(failed.dispatch_id, 1)]
    assert await store.dispatch_backlog() == {"webhook": (1, AT + timedelta(seconds=1))}
    await store.dispatch_succeeded(retried[0], now, audit, "webhook")
    assert await store.due_dispatches(now + 10 * CLAIM_LEASE, 50) == []
    assert await statuses(database, done.message_id, "LA-SFK") == ["delivered"]
    assert await statuses(database, failed.message_id, "LA-SFK") == [
        "attempt_failed", "delivered"]
    assert (await actions(database))[AuditAction.MESSAGE_DELIVERED.value] == 2
    assert await store.dispatch_backlog() == {}


async def test_a_remote_acknowledgement_acknowledges_the_share(database: Database) -> None:
    await seed(database, "m1", {"NHS-X": PERMIT})
    store, audit = DeliveryStore(database), audit_log(database)
    await store.hold_for_push("m1", "NHS-X", "mesh", "MBX01", AT)
    (push,) = await store.due_dispatches(AT, 5)
    await store.dispatch_succeeded(push, AT, audit, "mesh", external_ref="ref-1",
                                   notice_to="spoc@example.gov.uk")

    (receipt,) = await store.awaiting_remote_ack("mesh", 10)
    assert (receipt.message_id, receipt.target, receipt.external_ref) == ("m1", "MBX01", "ref-1")
    await store.remote_acknowledged(receipt, "NHS-X/system", "MESH ack", AT, audit)

    assert await store.awaiting_remote_ack("mesh", 10) == []
    assert await statuses(database, "m1", "NHS-X") == ["delivered", "acknowledged"]
    # The e-mail notice still owed has nothing left to ask for.
    notice = await database.transaction(lambda conn: conn.execute(
        select(schema.dispatches.c.done_at, schema.dispatches.c.last_error)
        .where(schema.dispatches.c.purpose == DispatchPurpose.NOTICE.value)).one())
    assert tuple(notice) == (AT, "acknowledged before it was sent")


async def reports_to_sender(db: Database) -> int:
    return await count(
        db, schema.inbox.join(schema.messages,
                              schema.messages.c.message_id == schema.inbox.c.message_id),
        schema.inbox.c.recipient == SENDER, schema.messages.c.type == REPORT_TYPE)


async def test_closing_a_share_reports_to_its_sender_once(database: Database) -> None:
    await seed(database, "m1", {"LA-SFK": PERMIT})
    store, audit = DeliveryStore(database), audit_log(database)
    await store.hold_for_push("m1", "LA-SFK", "webhook", "https://a", AT)

    first = await close_delivery(store, "m1", "LA-SFK", MessageStatus.DEAD_LETTERED,
                                 "gone", AT, audit)
    again = await close_delivery(store, "m1", "LA-SFK", MessageStatus.DEAD_LETTERED,
                                 "gone", AT, audit)

    assert (first, again) == (SENDER, None)
    assert await reports_to_sender(database) == 1
    assert (await actions(database))[AuditAction.MESSAGE_DEAD_LETTERED.value] == 1
    assert await store.dispatch_backlog() == {}
    # A later copy from the transport is ignored.
    assert not await store.deliver("m1", "LA-SFK", AT, audit)


async def test_concurrent_closes_produce_one_report(database: Database) -> None:
    await seed(database, "m1", {"LA-SFK": PERMIT})
    stores = [DeliveryStore(database) for _ in range(5)]
    audit = audit_log(database)

    senders = await asyncio.gather(*(
        close_delivery(s, "m1", "LA-SFK", MessageStatus.EXPIRED, "too old", AT, audit)
        for s in stores))

    assert Counter(senders) == {SENDER: 1, None: 4}
    assert await reports_to_sender(database) == 1
    assert (await actions(database))[AuditAction.MESSAGE_EXPIRED.value] == 1
    assert await statuses(database, "m1", "LA-SFK") == ["expired"]


async def test_only_expiry_closes_a_delivered_share(database: Database) -> None:
    await seed(database, "m1", {"LA-SFK": PERMIT, "LA-NFK": PERMIT})
    store, audit = DeliveryStore(database), audit_log(database)
    await store.deliver("m1", "LA-SFK", AT, audit)
    await store.deliver("m1", "LA-NFK", AT, audit)
    await database.transaction(
        lambda conn: acknowledge(conn, "m1", "LA-NFK", "LA-NFK/system", AT, audit, None))

    # A dead letter of a delivered share was a redelivery whose ack was lost.
    assert await close_delivery(
        store, "m1", "LA-SFK", MessageStatus.DEAD_LETTERED, "x", AT, audit) is None
    assert await close_delivery(
        store, "m1", "LA-NFK", MessageStatus.EXPIRED, "x", AT, audit) is None
    assert await close_delivery(
        store, "m1", "LA-SFK", MessageStatus.EXPIRED, "x", AT, audit) == SENDER
    assert await statuses(database, "m1", "LA-SFK") == ["delivered", "expired"]
    assert await reports_to_sender(database) == 1


async def test_escalation_happens_once_under_concurrency(database: Database) -> None:
    for i in range(3):
        await seed(database, f"m{i}", {"LA-SFK": PERMIT})
    await seed(database, "other", {"LA-SFK": PERMIT}, message_type="referral")
    store, audit = DeliveryStore(database), audit_log(database)
    for message_id in ("m0", "m1", "m2", "other"):
        await store.deliver(message_id, "LA-SFK", AT, audit)
    await close_delivery(store, "m2", "LA-SFK", MessageStatus.EXPIRED, "old", AT, audit)
    stores = [DeliveryStore(database) for _ in range(4)]
    later = AT + timedelta(hours=2)

    runs = await asyncio.gather(*(
        escalate_unacknowledged(s, "safeguarding_alert", AT + timedelta(hours=1), "2 h",
                                later, audit, notice_to=lambda r: f"spoc@{r}.gov.uk")
        for s in stores))

    escalated = sorted(row for run in runs for row in run)
    assert escalated == [("m0", "LA-SFK", SENDER), ("m1", "LA-SFK", SENDER)]
    assert (await actions(database))[AuditAction.ALERT_ESCALATED.value] == 2
    assert await count(database, schema.status_events,
                       schema.status_events.c.status == MessageStatus.ESCALATED.value) == 2
    assert await count(
        database, schema.dispatches,
        schema.dispatches.c.purpose == DispatchPurpose.ESCALATION_NOTICE.value) == 2
    assert await escalate_unacknowledged(
        store, "safeguarding_alert", AT + timedelta(hours=1), "2 h", later, audit) == []


async def test_open_shares_received_before_a_time(database: Database) -> None:
    await seed(database, "m1", {"LA-SFK": PERMIT, "LA-NFK": PERMIT, "LA-X": DENY})
    await seed(database, "m2", {"LA-SFK": PERMIT}, received_at=AT + timedelta(hours=1))
    store, audit = DeliveryStore(database), audit_log(database)
    await store.deliver("m1", "LA-NFK", AT, audit)
    await close_delivery(store, "m1", "LA-SFK", MessageStatus.DEAD_LETTERED, "x", AT, audit)

    assert await store.unacknowledged_before(AT + timedelta(minutes=1), 10) == [
        ("m1", "LA-NFK")]
