"""No entry, no event: a consent recorded, a policy version proposed or approved, is written
with its audit entry in one transaction (DPA 2018 s.62), and approval is guarded in the
write itself, so neither a second process nor a race slips past the two-person rule."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.domain.errors import AccessDenied
from gateway.http.services import SERVICES
from gateway.pipeline.audit import (
    AuditAction,
    AuditEvent,
    AuditLog,
    Pseudonymiser,
    SequencedEntry,
)
from gateway.pipeline.consent import ConsentForm, ConsentRecord, SubjectKeys
from gateway.storage.audit_log import AuditLogStore
from gateway.storage.base import PolicyVersion
from gateway.storage.consents import ConsentStore
from gateway.storage.engine import Database, open_database
from gateway.storage.policy_versions import PolicyVersionStore
from tests.backends import current_database_url
from tests.conftest import ROOT

AT = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
SUBJECT = {"given_name": "Alex", "family_name": "Doe", "date_of_birth": "1990-01-01"}


@dataclass
class Store:
    db: Database
    audit: AuditLogStore
    consents: ConsentStore
    versions: PolicyVersionStore

    async def actions(self) -> list[str]:
        size = await self.audit.size()
        return [json.loads(e)["action"] for e in await self.audit.entries(0, size)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    db = open_database(current_database_url(), tmp_path / "dipgw.sqlite3")
    await db.open()
    try:
        yield Store(db, AuditLogStore(db, Pseudonymiser(b"k" * 32)), ConsentStore(db),
                    PolicyVersionStore(db))
    finally:
        await db.close()


class FailingLog:
    """An audit log whose append fails, as a full disk or a broken entry would."""

    def append(self, transaction: Any, event: AuditEvent) -> int | None:
        raise OSError("the audit entry could not be written")

    def append_entry(self, transaction: Any, event: AuditEvent) -> SequencedEntry | None:
        raise OSError("the audit entry could not be written")


def _consent() -> ConsentRecord:
    return ConsentRecord(
        id=str(uuid.uuid4()), subject=SUBJECT, keys=SubjectKeys.of(SUBJECT),
        form=ConsentForm("written"), permit=True, actor_roles=frozenset({"cjit"}),
        actor_organisations=frozenset(), purposes=("treatment",), period_start=AT,
        period_end=None, information_given="leaflet", recorded_at=AT, performer="CJIT-NFK",
    )


def _recorded(record: ConsentRecord) -> AuditEvent:
    return AuditEvent(action=AuditAction.CONSENT_RECORDED, at=AT, actor=record.performer,
                      subject=record.keys, details={"consent_id": record.id})


def _version(author: str) -> PolicyVersion:
    return PolicyVersion(f"sha256:{uuid.uuid4().hex}", "dip-default", "text", author, AT)


def _approval(stored: PolicyVersion) -> AuditEvent:
    return AuditEvent(action=AuditAction.POLICY_APPROVED, at=AT, actor=stored.approved_by or "",
                      details={"version": stored.version})


def _proposal(stored: PolicyVersion) -> AuditEvent:
    return AuditEvent(action=AuditAction.POLICY_PROPOSED, at=AT, actor=stored.author,
                      details={"version": stored.version})


async def test_a_consent_whose_entry_cannot_be_written_is_not_recorded(store: Store) -> None:
    record = _consent()
    failing: AuditLog = FailingLog()
    with pytest.raises(OSError):
        await store.consents.add(record, (failing, _recorded(record)))
    assert await store.consents.get(record.id) is None


async def test_a_consent_is_recorded_with_its_entry(store: Store) -> None:
    record = _consent()
    await store.consents.add(record, (store.audit, _recorded(record)))
    assert await store.consents.get(record.id) is not None
    assert await store.actions() == ["consent.recorded"]


async def test_a_proposal_is_logged_once_however_often_it_is_repeated(store: Store) -> None:
    version = _version("cjit-nfk.ig-lead")
    for _ in range(2):
        await store.versions.propose(version, store.audit, _proposal)
    assert await store.actions() == ["policy.proposed"]


async def test_the_author_cannot_approve_their_own_version_in_the_write_itself(
    store: Store,
) -> None:
    version = _version("cjit-nfk.ig-lead")
    await store.versions.propose(version, store.audit, _proposal)
    stored, approved = await store.versions.approve(
        version.version, "cjit-nfk.ig-lead", AT, AT, store.audit, _approval)
    assert not approved and stored.approved_by is None
    assert await store.actions() == ["policy.proposed"]


async def test_two_approvals_racing_approve_once_with_one_entry(store: Store) -> None:
    version = _version("cjit-nfk.ig-lead")
    await store.versions.propose(version, store.audit, _proposal)
    outcomes = await asyncio.gather(*(
        store.versions.approve(version.version, approver, AT, AT, store.audit, _approval)
        for approver in ("cjit-sfk.ig-lead", "pol-nfk.ig-lead")
    ))
    assert sorted(changed for _, changed in outcomes) == [False, True]
    winner = next(stored.approved_by for stored, changed in outcomes if changed)
    assert all(stored.approved_by == winner for stored, _ in outcomes)
    assert await store.actions() == ["policy.proposed", "policy.approved"]


async def test_the_policy_service_refuses_an_authors_approval(
    client: Any, settings: Any,
) -> None:
    """Through the service, bypassing the HTTP layer's own early check."""
    services = client.app[SERVICES]
    ra1 = ("      type: ra1_notice\n      route: enforcement\n"
           "      sender: police\n      recipient: cjit\n")
    text = (ROOT / "policies" / "dip-default.yaml").read_text(encoding="utf-8").replace(
        ra1, ra1.replace("recipient: cjit", "recipient: [cjit, probation]"))
    proposed = await services.policy.propose(text, "cjit-nfk.ig-lead", _proposal)
    assert proposed.approved_by is None
    with pytest.raises(AccessDenied):
        await services.policy.approve(proposed.version, "cjit-nfk.ig-lead", None, _approval)
    assert (await services.policy.versions())[-1].approved_by is None
