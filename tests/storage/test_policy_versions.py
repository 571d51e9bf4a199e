"""PolicyVersionStore on SQLite and PostgreSQL: a proposal is stored and audited once
however often it is repeated, an approval is guarded in its write (not yet approved, not
by its author) so racing approvals approve once with one entry, timestamps come back as
aware UTC, and recorded traffic is read newest first without delivery reports.

Racing approvals also run on PostgreSQL at READ COMMITTED with no rerun
(``tests.storage.test_directory_store.ReadCommitted``), where only the guard in the
UPDATE keeps a second approval out."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, insert

from gateway.domain.errors import NotFound
from gateway.domain.model import Consent, Decision
from gateway.pipeline.audit import AuditAction, AuditEvent, Pseudonymiser
from gateway.pipeline.reports import REPORT_TYPE
from gateway.storage import schema
from gateway.storage.audit_log import AuditLogStore
from gateway.storage.base import PolicyVersion
from gateway.storage.engine import Database
from gateway.storage.policy_versions import PolicyVersionStore
from gateway.storage.rows import json_text
from tests.storage.test_directory_store import ReadCommitted

AT = datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=UTC)
# The same moment an hour east: stored and read back as UTC.
AT_PLUS_ONE = datetime(2026, 12, 2, 11, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
LATER = AT + timedelta(minutes=5)
AUTHOR = "cjit-nfk.ig-lead"


@pytest.fixture
def log(database: Database) -> AuditLogStore:
    return AuditLogStore(database, Pseudonymiser(b"k" * 32))


@pytest.fixture
def versions(database: Database) -> PolicyVersionStore:
    return PolicyVersionStore(database)


async def entries(log: AuditLogStore) -> list[dict[str, Any]]:
    return [json.loads(entry) for entry in await log.entries(0, await log.size())]


def _version(proposed_at: datetime = AT_PLUS_ONE, reason: str | None = "RA1 to probation"
             ) -> PolicyVersion:
    return PolicyVersion(f"sha256:{uuid.uuid4().hex}", "dip-default", "rules: []\n", AUTHOR,
                         proposed_at, reason=reason)


def _proposal(stored: PolicyVersion) -> AuditEvent:
    return AuditEvent(action=AuditAction.POLICY_PROPOSED, at=stored.proposed_at,
                      actor=stored.author, details={"version": stored.version})


def _approval(stored: PolicyVersion) -> AuditEvent:
    assert stored.approved_at is not None and stored.approved_by is not None
    return AuditEvent(action=AuditAction.POLICY_APPROVED, at=stored.approved_at,
                      actor=stored.approved_by, details={"version": stored.version})


def assert_utc(moment: datetime | None) -> None:
    assert moment is not None and moment.tzinfo is UTC


async def test_a_proposal_is_stored_and_logged_once(
    versions: PolicyVersionStore, log: AuditLogStore,
) -> None:
    version = _version()
    stored = await versions.propose(version, log, _proposal)
    assert stored == version
    assert_utc(stored.proposed_at)
    again = await versions.propose(
        PolicyVersion(version.version, "other", "other text", "someone.else", LATER), log,
        _proposal)
    assert again == version
    assert [(e["action"], e["actor"], e["details"]) for e in await entries(log)] == [
        ("policy.proposed", AUTHOR, {"version": version.version})]


async def test_the_baseline_is_proposed_and_approved_without_entries(
    versions: PolicyVersionStore, log: AuditLogStore,
) -> None:
    version = _version(reason=None)
    assert await versions.propose(version, log, None) == version
    stored, approved = await versions.approve(
        version.version, AUTHOR, AT, AT, log, None, second_person=False)
    assert approved and stored.approved_by == AUTHOR
    assert await log.size() == 0


async def test_a_second_person_approves_once(
    versions: PolicyVersionStore, log: AuditLogStore,
) -> None:
    version = _version()
    await versions.propose(version, log, _proposal)
    effective = LATER + timedelta(days=1)
    stored, approved = await versions.approve(
        version.version, "pol-nfk.ig-lead", AT_PLUS_ONE, effective, log, _approval)
    assert approved
    assert (stored.approved_by, stored.approved_at, stored.effective_from) == (
        "pol-nfk.ig-lead", AT, effective)
    assert_utc(stored.approved_at)
    assert_utc(stored.effective_from)
    again, approved_again = await versions.approve(
        version.version, "cjit-sfk.ig-lead", LATER, LATER, log, _approval)
    assert (again, approved_again) == (stored, False)
    assert [e["action"] for e in await entries(log)] == ["policy.proposed", "policy.approved"]
    assert (await entries(log))[1]["actor"] == "pol-nfk.ig-lead"


async def test_the_author_cannot_approve_their_own_version(
    versions: PolicyVersionStore, log: AuditLogStore,
) -> None:
    version = _version()
    await versions.propose(version, log, _proposal)
    stored, approved = await versions.approve(version.version, AUTHOR, AT, AT, log, _approval)
    assert not approved and stored == version
    assert [e["action"] for e in await entries(log)] == ["policy.proposed"]


async def test_an_unknown_version_is_not_found(
    versions: PolicyVersionStore, log: AuditLogStore,
) -> None:
    with pytest.raises(NotFound, match=f"^{re.escape('There is no policy version v9.')}$"):
        await versions.approve("v9", "pol-nfk.ig-lead", AT, AT, log, _approval)
    assert await log.size() == 0


async def race_approvals(db: Database) -> None:
    versions, log = PolicyVersionStore(db), AuditLogStore(db, Pseudonymiser(b"k" * 32))
    version = _version()
    await versions.propose(version, log, _proposal)
    outcomes = await asyncio.gather(*(
        versions.approve(version.version, f"agency-{n}.ig-lead", AT, AT, log, _approval)
        for n in range(6)
    ))
    assert sorted(changed for _, changed in outcomes) == [False] * 5 + [True]
    winner = next(stored for stored, changed in outcomes if changed)
    assert all(stored == winner for stored, _ in outcomes)
    assert [(e["action"], e["actor"]) for e in await entries(log)] == [
        ("policy.proposed", AUTHOR), ("policy.approved", winner.approved_by)]


async def test_racing_approvals_approve_once_with_one_entry(database: Database) -> None:
    await race_approvals(database)


@pytest.fixture
async def read_committed(postgres_url: str) -> AsyncIterator[ReadCommitted]:
    db = ReadCommitted(postgres_url)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


async def test_the_approval_guard_is_the_write_not_the_isolation_level(
    read_committed: ReadCommitted,
) -> None:
    await race_approvals(read_committed)


async def test_all_lists_versions_in_the_order_proposed(
    versions: PolicyVersionStore, log: AuditLogStore,
) -> None:
    newer, older = _version(LATER), _version(AT)
    tie = PolicyVersion("sha256:0", "dip-default", "x", AUTHOR, AT)
    for version in (newer, older, tie):
        await versions.propose(version, log, _proposal)
    assert await versions.all() == [tie, older, newer]


def _decision(permitted: bool, recipient: str) -> Decision:
    return Decision(
        permitted=permitted, consent=Consent.REQUIRED, consent_satisfied=permitted,
        redactions=("/subject/address",), rule=f"ra1-to-{recipient.lower()}",
        legal_basis="Crime and Disorder Act 1998 s.115", policy_version="sha256:p",
        rules=("ra1", f"ra1-to-{recipient.lower()}"), reason="the rule says so",
        denied_because=None if permitted else "no consent", purpose="treatment",
        consent_record="c1" if permitted else None,
    )


async def test_recent_traffic_is_newest_first_without_reports(
    versions: PolicyVersionStore, database: Database,
) -> None:
    def record(conn: Connection) -> None:
        for n, (kind, received_at) in enumerate(
            [("ra1_notice", AT), ("ra1_notice", LATER), (REPORT_TYPE, LATER + timedelta(1))]
        ):
            conn.execute(insert(schema.messages).values(
                message_id=f"m{n}", type=kind, sender="POL-NFK", route="enforcement",
                content_hash=f"sha256:{n}", document_json=json_text({"n": n, "é": [1.5]}),
                received_at=received_at, submitted_by="POL-NFK"))
            for position, recipient in enumerate(("PROB-NFK", "CJIT-NFK")):
                decision = _decision(position == 0, recipient)
                conn.execute(insert(schema.deliveries).values(
                    message_id=f"m{n}", recipient=recipient, position=position,
                    permitted=decision.permitted, decision_json=json_text(decision.as_dict())))

    await database.transaction(record)
    traffic = await versions.recent_traffic(10)
    assert [(share.message_id, share.recipient) for share in traffic] == [
        ("m1", "PROB-NFK"), ("m1", "CJIT-NFK"), ("m0", "PROB-NFK"), ("m0", "CJIT-NFK")]
    assert traffic[0].document == {"n": 1, "é": [1.5]}
    assert traffic[0].decision == _decision(True, "PROB-NFK")
    assert traffic[1].decision == _decision(False, "CJIT-NFK")
    assert [(s.message_id, s.recipient) for s in await versions.recent_traffic(1)] == [
        ("m1", "PROB-NFK")]
