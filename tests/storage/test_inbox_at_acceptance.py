"""Shares put into their inboxes by the acceptance itself (issue 14), on SQLite and
PostgreSQL: ``PlannedDelivery.into_inbox``, as the in-process transport asks for it.

The acceptance's one transaction then holds what the outbox path spreads over three (the
acceptance, the delivery, the outbox mark): so it must leave exactly what those three
leave, minus the outbox row, and a replay must deliver nothing twice."""

from __future__ import annotations

import json
from dataclasses import replace

from gateway.domain.model import MessageStatus
from gateway.pipeline.audit import AuditAction
from gateway.storage import schema
from gateway.storage.base import InboxDelivery, Submission
from gateway.storage.engine import Database
from gateway.storage.messages import MessageStore
from tests.storage.test_messages_store import (
    AT,
    accept,
    audit_log,
    decision,
    rows,
    submission,
)


def into_inbox(sub: Submission, *recipients: str, notice_to: str | None = None) -> Submission:
    """``sub`` with its shares to ``recipients`` put into their inboxes as it is accepted."""
    return replace(sub, deliveries=tuple(
        replace(d, into_inbox=InboxDelivery(sub.envelope.message_id, d.recipient,
                                            sub.received_at, notice_to=notice_to))
        if d.recipient in recipients else d
        for d in sub.deliveries
    ))


async def test_the_share_is_in_the_inbox_when_the_acceptance_returns(
    database: Database,
) -> None:
    sub = into_inbox(
        submission({"LA-SFK": decision(True, redactions=("body",)), "PROB-SFK": decision(True),
                    "CJIT-NFK": decision(False)}),
        "LA-SFK",
    )
    message_id = sub.envelope.message_id

    receipt = await accept(database, sub)

    assert [(d.message_id, d.recipient) for d in receipt.delivered] == [(message_id, "LA-SFK")]
    # Only the share not put into its inbox waits in the outbox (for the relay).
    assert await rows(database, schema.outbox, schema.outbox.c.recipient) == [("PROB-SFK",)]
    store = MessageStore(database)
    [item] = await store.inbox("LA-SFK", 10)
    assert (item.message_id, item.delivered_at) == (message_id, AT)
    assert item.envelope == {**sub.envelope.document, "body": {}}  # its redacted payload
    assert item.decision == decision(True, redactions=("body",))
    record = await store.get(message_id)
    assert record is not None
    assert [(e.status, e.recipient) for e in record.history] == [
        (MessageStatus.ACCEPTED, None),
        (MessageStatus.DELIVERED, "LA-SFK"),
        (MessageStatus.REFUSED, "CJIT-NFK"),
    ]
    # The acceptance's entry first, then the disclosure, as the outbox path logs them.
    log = audit_log(database)
    actions = [json.loads(entry)["action"] for entry in await log.entries(0, 10)]
    assert actions == [AuditAction.MESSAGE_ACCEPTED.value, AuditAction.MESSAGE_DELIVERED.value]


async def test_a_replay_delivers_nothing_again(database: Database) -> None:
    sub = into_inbox(submission({"LA-SFK": decision(True)}), "LA-SFK")
    await accept(database, sub)

    again = await accept(database, sub)

    assert again.replayed and again.delivered == () and again.outbox == ()
    assert len(await MessageStore(database).inbox("LA-SFK", 10)) == 1
    assert await audit_log(database).size() == 2


async def test_a_notice_is_owed_with_the_delivery(database: Database) -> None:
    sub = into_inbox(submission({"LA-SFK": decision(True)}), "LA-SFK",
                     notice_to="spoc@la-sfk.gov.uk")

    await accept(database, sub)

    assert await rows(database, schema.dispatches, schema.dispatches.c.recipient,
                      schema.dispatches.c.channel, schema.dispatches.c.purpose,
                      schema.dispatches.c.target) == [
        ("LA-SFK", "email", "notice", "spoc@la-sfk.gov.uk")]


async def test_a_refused_message_puts_nothing_in_any_inbox(database: Database) -> None:
    sub = into_inbox(submission({"LA-SFK": decision(False)}), "LA-SFK")

    receipt = await accept(database, sub)

    assert receipt.status is MessageStatus.REFUSED and receipt.delivered == ()
    assert await rows(database, schema.inbox) == []
