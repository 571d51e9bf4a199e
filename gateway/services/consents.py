"""Withdrawing a consent: stop exactly what rested on it, re-deciding each share.

One transaction (``ConsentRepository.unit_of_work``) withdraws the record, settles every
open share that may rest on it and appends the audit entries, so no process can deliver a
share whose consent is already withdrawn, nor see the withdrawal without its
consequences. Storage reads and writes the rows; the rules are here. A share rests on the
record if its decision names it, or if it is consent-based, names no record (decided
before decisions named records, or on the sender's declaration), is about the same person
and the record speaks to its recipient and purpose. Each such share is decided again by
the active sharing policy against the person's records as they now stand (README,
"Consent"). One that another record, still in force, covers for the same recipient and
purpose is kept and rests on that record from then on; one the policy now refuses is
stopped (not delivered: the sender gets a report), leaves the inbox (delivered, unread),
or stays acknowledged with the recipient told (UK GDPR Art. 7(3), 19; DPA 2018 s.62).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from gateway.domain.errors import NotFound
from gateway.domain.model import Decision, MessageStatus
from gateway.pipeline.audit import AuditAction, AuditEvent, AuditLog
from gateway.pipeline.consent import ConsentRecord, SubjectKeys
from gateway.pipeline.consent_notice import withdrawal_notice
from gateway.pipeline.redaction import redact
from gateway.services.directory import Directory
from gateway.services.policy import PolicyService, share_purpose
from gateway.services.undelivered import close_share
from gateway.storage.base import (
    ConsentRepository,
    ConsentRows,
    ConsentShare,
    SettledShare,
    ShareOutcome,
    ShareState,
    Withdrawal,
)

# The share's decision now, or None when it never rested on the record (no I/O: it may
# run again should the transaction be retried).
Redecide = Callable[[ConsentRecord, ConsentShare], Decision | None]


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
        return await withdraw(
            self._consents, consent_id, by, reason, at, self._audit,
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


async def withdraw(
    consents: ConsentRepository, consent_id: str, by: str, reason: str, at: datetime,
    audit: AuditLog, redecide: Redecide,
) -> Withdrawal:
    """Withdraw a consent and settle every open share resting on it, all in one
    transaction; ``redecide`` answers for each share that may rest on it (the module's
    docstring). A record already withdrawn is answered as it stands, with no share.
    Raises ``NotFound`` for an unknown record."""
    def work(rows: ConsentRows) -> Withdrawal:
        record = rows.consent(consent_id)
        if record is None:
            raise NotFound(f"There is no consent record {consent_id}.")
        if record.withdrawn_at is not None:
            return Withdrawal(record)
        record = replace(record, withdrawn_at=at, withdrawn_by=by, withdrawal_reason=reason)
        rows.save_withdrawal(record)
        settled = [
            _settle(rows, record, share, decision, at, audit)
            for share in rows.consent_shares(record)
            # The same person rule, as everywhere: a share naming no record is the
            # record's only if ConsentRecord.matches says the person is the same.
            if share.consent_record is not None or record.matches(share.subject)
            if (decision := redecide(record, share)) is not None
        ]
        rows.audit(audit, AuditEvent(
            action=AuditAction.CONSENT_WITHDRAWN, at=at, actor=by, subject=record.keys,
            details={"consent_id": consent_id, "reason": reason,
                     "shares": [s.as_dict() for s in settled]},
        ))
        return Withdrawal(record, tuple(settled))

    return await consents.unit_of_work(work)


def _settle(
    rows: ConsentRows,
    record: ConsentRecord,
    share: ConsentShare,
    decision: Decision,
    at: datetime,
    audit: AuditLog,
) -> SettledShare:
    """Carry out what the re-decision says for one share."""
    message_id, recipient = share.message_id, share.recipient
    if decision.permitted:
        if share.state is ShareState.UNDELIVERED:
            # Not yet delivered: what goes out is what the decision now allows (it may
            # withhold more, e.g. a field group the remaining consent does not list).
            rows.set_decision(message_id, recipient, decision,
                              redact(share.document, decision.redactions))
        else:
            # The disclosure happened on the decision stored; only what it rests on now
            # changes, so a later withdrawal of that record finds it.
            rows.set_consent_record(message_id, recipient, decision.consent_record)
        return SettledShare(message_id, recipient, share.sender, ShareOutcome.KEPT, decision)
    if share.state is ShareState.UNDELIVERED:
        close_share(
            rows, message_id, recipient, MessageStatus.REFUSED,
            f"consent {record.id} withdrawn before delivery: {decision.reason}", at, audit,
        )
        return SettledShare(message_id, recipient, share.sender, ShareOutcome.STOPPED, decision)
    _withdraw_delivered(rows, record, share, at, audit)
    outcome = (ShareOutcome.WITHDRAWN if share.state is ShareState.UNREAD
               else ShareOutcome.NOTIFIED)
    return SettledShare(message_id, recipient, share.sender, outcome, decision)


def _as_stored(moment: datetime) -> str:
    """A time as earlier releases stored it and quoted it in history and audit details
    (ISO 8601, UTC, microseconds): the text stays the same on either back-end."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _withdraw_delivered(
    rows: ConsentRows,
    record: ConsentRecord,
    share: ConsentShare,
    at: datetime,
    audit: AuditLog,
) -> None:
    """A delivered share whose consent is withdrawn. The disclosure stands (UK GDPR
    Art. 7(3)); if unread it leaves the inbox, so the gateway discloses it no further;
    either way the history, the log (DPA 2018 s.62) and the recipient (Art. 19) are told."""
    message_id, recipient = share.message_id, share.recipient
    assert share.delivered_at is not None  # UNREAD and ACKNOWLEDGED shares are in the inbox
    disclosed, stamp = _as_stored(share.delivered_at), _as_stored(at)
    acknowledged = None if share.acknowledged_at is None else _as_stored(share.acknowledged_at)
    unread = share.state is ShareState.UNREAD
    if unread:
        # Open in this transaction (consent_shares read it so), so the guard closes it.
        rows.close(message_id, recipient, MessageStatus.WITHDRAWN, at, delivered=True)
        # Notices and pushes still owed for it are owed no more.
        rows.end_dispatches(message_id, recipient, at, "closed: consent withdrawn")
    detail = (
        f"disclosed at {disclosed}; consent {record.id} withdrawn at {stamp}"
        + ("; left the recipient's inbox unread" if unread
           else f"; acknowledged at {acknowledged}, the recipient was told")
    )
    rows.record_status(
        message_id, recipient,
        MessageStatus.WITHDRAWN if unread else MessageStatus.CONSENT_WITHDRAWN, at, detail,
    )
    document = share.document
    rows.audit(audit, AuditEvent(
        action=AuditAction.MESSAGE_WITHDRAWN, at=at, actor="gateway",
        message_id=message_id, message_type=str(document["type"]), recipients=(recipient,),
        subject=SubjectKeys.of(document["subject"]),
        details={"consent_id": record.id, "disclosed_at": disclosed,
                 "acknowledged_at": acknowledged, "detail": detail},
    ))
    rows.store_report(withdrawal_notice(
        message_id=message_id, message_type=str(document["type"]), recipient=recipient,
        consent_id=record.id, disclosed_at=share.delivered_at, withdrawn_at=at,
        acknowledged=not unread,
    ), str(document["route"]), at)
