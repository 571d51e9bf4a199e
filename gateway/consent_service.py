"""Withdrawing a consent: stop exactly what rested on it, re-deciding each share.

Storage finds the open shares that may rest on the withdrawn record and carries out the
outcome in one transaction with its audit entries; this service supplies the decision,
made by the active sharing policy against the person's records as they now stand (README,
"Consent"). A share that another record, still in force, covers for the same recipient
and purpose is kept and rests on that record from then on; one the policy now refuses is
stopped (not delivered), leaves the inbox (delivered, unread), or stays acknowledged with
the recipient told (UK GDPR Art. 7(3), 19; DPA 2018 s.62).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from gateway.audit import AuditLog
from gateway.consent import ConsentRecord
from gateway.directory import Directory
from gateway.model import Decision
from gateway.policy.service import PolicyService, share_purpose
from gateway.storage.base import ConsentRepository, ConsentShare, Withdrawal


class ConsentService:
    def __init__(
        self,
        consents: ConsentRepository,
        policy: PolicyService,
        directory: Directory,
        audit: AuditLog,
        clock: Callable[[], datetime],
    ) -> None:
        self._consents = consents
        self._policy = policy
        self._directory = directory
        self._audit = audit
        self._clock = clock

    async def withdraw(self, consent_id: str, by: str, reason: str) -> Withdrawal:
        at = self._clock()
        return await self._consents.withdraw(
            consent_id, by, reason, at, self._audit,
            lambda record, share: self.redecide(record, share, at),
        )

    def redecide(self, record: ConsentRecord, share: ConsentShare, at: datetime) -> Decision | None:
        """The share's decision now, or None when it never rested on ``record``.

        A share naming the record rested on it. One naming no record (decided on the
        sender's declaration, or before decisions named records) rested on it only if the
        record speaks to that recipient and purpose; otherwise it is left alone.
        """
        recipient = self._directory.get(share.recipient)
        sender = self._directory.get(share.sender)
        if share.consent_record != record.id and (
            recipient is None
            or not record.covers(share.recipient, recipient.kind.value,
                                 share_purpose(share.document))
        ):
            return None
        if recipient is None or sender is None:
            # Fail closed: a party the directory no longer knows cannot be decided for.
            return replace(
                share.decision, permitted=False, consent_satisfied=False, consent_record=None,
                denied_because="consent_not_satisfied",
                reason=f"Consent {record.id} was withdrawn and {share.recipient} or "
                       f"{share.sender} is no longer in the directory.",
            )
        finding = PolicyService.findings(share.document, [recipient], share.records, at)
        return self._policy.decide(share.document, sender, recipient, finding[recipient.code])
