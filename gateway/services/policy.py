"""The policy at run time: which version is active, consent look-ups, and safe editing.

This is the I/O edge of the policy layer. Versions live in storage with their author,
proposal time and content hash; a version takes effect only once an IG lead other than
its author has approved it, and only from its effective time (two-person rule). On first
start the policy file shipped in ``policies/`` is installed as the approved baseline: it
arrives through code review and deployment, which is its second pair of eyes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from gateway.domain.errors import AccessDenied, ServiceUnavailable
from gateway.domain.model import Consent, Decision, Envelope, Organisation
from gateway.periodic import Periodic
from gateway.pipeline.audit import AuditAction, AuditEvent
from gateway.pipeline.consent import ConsentFinding, ConsentRecord, SubjectKeys, consent_state
from gateway.pipeline.policy.diff import Change, Replay, simulate
from gateway.pipeline.policy.document import load_text
from gateway.pipeline.policy.evaluate import evaluate
from gateway.pipeline.policy.facts import field_groups, message_facts, purpose_of
from gateway.pipeline.policy.rules import ConsentState, Facts, PolicySet
from gateway.services.directory import Directory
from gateway.services.leadership import Leadership
from gateway.storage.base import (
    AuditRepository,
    ConsentRepository,
    EventFor,
    PolicyVersion,
    PolicyVersionRepository,
)

log = structlog.get_logger(__name__)

# Policy texts whose reading is remembered (PolicyService.parse): the drafts under review.
TEXTS_KEPT = 16
DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "policies" / "dip-default.yaml"
BASELINE_AUTHOR = "deployment"


def facts_for(
    envelope: Envelope | Mapping[str, Any],
    sender: Organisation | str,
    recipient_kind: str,
    consent: ConsentState,
) -> Facts:
    document = envelope.document if isinstance(envelope, Envelope) else envelope
    body = document.get("body") or {}
    message_type = str(document["type"])
    found = message_facts(message_type, body)
    return Facts(
        message_type=message_type,
        route=str(document["route"]),
        sender_kind=sender.kind.value if isinstance(sender, Organisation) else sender,
        recipient_kind=recipient_kind,
        consent=consent,
        message=found,
        purpose=purpose_of(message_type, found),
    )


def share_purpose(document: Mapping[str, Any]) -> str | None:
    """What a message is shared for, as the policy and the consent register see it."""
    message_type = str(document["type"])
    return purpose_of(message_type, message_facts(message_type, document.get("body") or {}))


def withhold_field_groups(
    decision: Decision, message_type: str, consent: ConsentFinding
) -> Decision:
    """Withhold each field group that serves another purpose than the share unless the
    consent found lists that purpose too (``FIELD_PURPOSES``): consent to compliance
    reporting is not consent to share clinical detail (H 4.2, 4.7.1). Only ever removes
    more; a group the rules already remove is left as it is. A group that goes on the
    strength of a record makes the share rest on that record, so withdrawing it re-decides
    the share."""
    if not decision.permitted:
        return decision
    consented = consent.state in (ConsentState.VERBAL, ConsentState.WRITTEN)
    withheld: list[str] = []
    purposes: list[str] = []
    rests_on_record = False
    for purpose, pointers in field_groups(message_type, decision.purpose):
        remaining = [p for p in pointers if p not in decision.redactions and p not in withheld]
        if not remaining:
            continue
        if consented and (consent.purposes is None or purpose in consent.purposes):
            rests_on_record = rests_on_record or consent.purposes is not None
            continue
        withheld += remaining
        purposes.append(purpose)
    if rests_on_record and decision.consent_record is None:
        decision = replace(decision, consent_record=consent.record)
    if not withheld:
        return decision
    return replace(decision, redactions=(*decision.redactions, *withheld),
                   withheld_for=tuple(purposes))


class PolicyService:
    def __init__(
        self,
        versions: PolicyVersionRepository,
        consents: ConsentRepository,
        directory: Directory,
        audit: AuditRepository,
        leadership: Leadership,
        *,
        baseline: Path = DEFAULT_POLICY,
        refresh_interval_s: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._versions = versions
        self._consents = consents
        self._directory = directory
        self._audit = audit
        self._leadership = leadership
        self._baseline = baseline
        self._clock = clock
        self._active: PolicySet | None = None
        # The version this process enforced before the active one, and the last version
        # it recorded as in force (policy.activated), as leader.
        self._previous: str | None = None
        self._recorded: str | None = None
        self._recording = asyncio.Lock()
        self._parsed: dict[str, PolicySet] = {}
        self._texts: OrderedDict[bytes, PolicySet] = OrderedDict()
        self._periodic = Periodic("policy-refresh", self.refresh, refresh_interval_s)

    async def start(self) -> None:
        if not await self._versions.all():
            text = self._baseline.read_text(encoding="utf-8")
            policy = load_text(text)
            now = self._clock()
            await self._versions.propose(
                PolicyVersion(policy.version, policy.name, text, BASELINE_AUTHOR, now),
                self._audit, None,
            )
            await self._versions.approve(
                policy.version, BASELINE_AUTHOR, now, now, self._audit, None,
                second_person=False,
            )
        await self.refresh()
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def refresh(self) -> None:
        """Activate the newest approved version whose effective time has come.

        Every process activates it (each enforces the policy on the messages it takes),
        but only the leader (``gateway.services.leadership``) records ``policy.activated``,
        so several processes write one entry per activation rather than one each. The
        entry cannot be left to whichever process activates first instead: entries are
        opaque in the log, so "already recorded" could not be asked in the write. A leader
        records each version it finds in force that it has not recorded itself yet, so an
        activation a dying leader missed is recorded by its successor; the price is that a
        new leader, like a restarted gateway, records the version in force once more.
        """
        now = self._clock()
        approved = [
            v for v in await self._versions.all()
            if v.approved_by and v.effective_from and v.effective_from <= now
        ]
        if not approved:
            return
        newest = max(approved, key=lambda v: (v.effective_from or now, v.approved_at or now))
        if self._active is None or self._active.version != newest.version:
            self._previous = self._active.version if self._active else None
            self._active = self.parse(newest.source_text)
            log.info("policy_activated", version=newest.version, name=newest.name)
        # One refresh records at a time: the periodic one and an approval's may overlap.
        async with self._recording:
            if self._recorded == newest.version or await self._leadership.confirm() is None:
                return
            await self._audit.record(AuditEvent(
                action=AuditAction.POLICY_ACTIVATED, at=now, actor="gateway",
                details={"version": newest.version, "name": newest.name,
                         "previous": self._previous, "approved_by": newest.approved_by},
            ))
            self._recorded = newest.version

    def parse(self, text: str) -> PolicySet:
        """The policy a text states, checked (``InvalidPolicy`` otherwise). Reading and
        checking a policy file takes tens of milliseconds, and an IG lead's draft is read
        again by each step (check, cases, diff, simulate, propose), so the answer for a
        text is remembered (by its SHA-256; a few drafts at a time)."""
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        known = self._texts.get(digest)
        if known is not None:
            self._texts.move_to_end(digest)
            return known
        parsed = load_text(text)
        policy = self._parsed.setdefault(parsed.version, parsed)
        self._texts[digest] = policy
        while len(self._texts) > TEXTS_KEPT:
            self._texts.popitem(last=False)
        return policy

    @property
    def active(self) -> PolicySet:
        if self._active is None:
            # Fail closed: without an approved policy nothing can be decided.
            raise ServiceUnavailable("No approved sharing policy is active.")
        return self._active

    async def consent_states(
        self, envelope: Envelope, recipients: Sequence[Organisation]
    ) -> dict[str, ConsentFinding]:
        """The register's answer per recipient, for the purpose the message serves."""
        records = await self._consents.matching(SubjectKeys.of(envelope.document["subject"]))
        return self.findings(envelope.document, recipients, records, self._clock())

    @staticmethod
    def findings(
        document: Mapping[str, Any],
        recipients: Sequence[Organisation],
        records: Sequence[ConsentRecord],
        at: datetime,
    ) -> dict[str, ConsentFinding]:
        keys = SubjectKeys.of(document["subject"])
        declaration = (document.get("body") or {}).get("consent")
        purpose = share_purpose(document)
        return {
            r.code: consent_state(records, keys, r.code, r.kind.value, purpose, at, declaration)
            for r in recipients
        }

    def decide(
        self,
        envelope: Envelope | Mapping[str, Any],
        sender: Organisation,
        recipient: Organisation,
        consent: ConsentFinding,
    ) -> Decision:
        """The active policy's decision; a permit that needs consent names the consent
        record it relies on, so withdrawing that record finds this share."""
        facts = facts_for(envelope, sender, recipient.kind.value, consent.state)
        decision = evaluate(self.active, facts)
        if decision.permitted and decision.consent is not Consent.NOT_REQUIRED:
            decision = replace(decision, consent_record=consent.record)
        return withhold_field_groups(decision, facts.message_type, consent)

    async def propose(
        self, text: str, author: str, event_for: EventFor[PolicyVersion],
        reason: str | None = None,
    ) -> PolicyVersion:
        """Store a draft as a proposed version, logged by ``event_for`` in the same
        transaction."""
        policy = self.parse(text)
        return await self._versions.propose(
            PolicyVersion(policy.version, policy.name, text, author, self._clock(),
                          reason=reason),
            self._audit, event_for,
        )

    async def approve(
        self, version: str, approver: str, effective_from: datetime | None,
        event_for: EventFor[PolicyVersion],
    ) -> PolicyVersion:
        """Second IG lead's approval; the author can never approve their own change (the
        write itself refuses it, so no second process can slip one in)."""
        now = self._clock()
        approved, changed = await self._versions.approve(
            version, approver, now, effective_from or now, self._audit, event_for
        )
        if not changed and approved.approved_by is None:
            raise AccessDenied(
                "A policy change needs a second IG lead: its author cannot approve it."
            )
        await self.refresh()
        return approved

    async def versions(self) -> list[PolicyVersion]:
        return await self._versions.all()

    async def simulate(self, draft: PolicySet, limit: int) -> tuple[int, list[Change]]:
        """Replay the newest recorded shares through a draft: what would change?"""
        shares = await self._versions.recent_traffic(limit)
        replays = []
        for share in shares:
            org = self._directory.get(share.recipient)
            sender = self._directory.get(str(share.document.get("from")))
            if org is None or sender is None:
                continue
            consent = ConsentState(share.decision.consent_state or ConsentState.NONE.value)
            replays.append(
                Replay(
                    share.message_id,
                    share.recipient,
                    facts_for(share.document, sender, org.kind.value, consent),
                    share.decision,
                )
            )
        return len(replays), simulate(draft, replays)
