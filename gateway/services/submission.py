"""Submitting a message: the one path every message takes into the gateway.

authentication (done by the caller) → sender checks → schema validation → recipient
resolution → does ``to`` agree with the body (``gateway.pipeline.consistency``) → consent look-up
→ a policy decision per recipient → redaction → one transaction storing the message, its
status, the audit entry and the outbox rows. Transport picks it up from the outbox; on the
in-process transport, a recipient that reads its inbox gets its share in that same
transaction instead (``InboxAtAcceptance``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway.domain.errors import GatewayError, InvalidMessage, PolicyRefused, Violation
from gateway.domain.model import (
    Decision,
    Envelope,
    MessageType,
    Organisation,
    Principal,
    TokenUse,
)
from gateway.domain.timescales import breaches
from gateway.metrics import Metrics, message_type_label
from gateway.pipeline import access
from gateway.pipeline.audit import AuditAction, AuditEvent, AuditLog, audited_decision
from gateway.pipeline.consent import SubjectKeys
from gateway.pipeline.consistency import contradictions
from gateway.pipeline.decision import combined
from gateway.pipeline.redaction import redact
from gateway.pipeline.resolution import Known, managing_cjit, related_ids, resolve
from gateway.pipeline.routing import resolve_recipients
from gateway.pipeline.sender_signature import check_signed_if_required, signed_document
from gateway.pipeline.validation import SchemaSet
from gateway.sdjwt.envelope import SignedEnvelope, sender_jws_sha256
from gateway.services.directory import Directory
from gateway.services.policy import PolicyService
from gateway.storage.base import (
    InboxDelivery,
    MessageRepository,
    OutboxItem,
    PlannedDelivery,
    Receipt,
    Submission,
)
from gateway.tlog.receipt import AuditReceipt


class InboxAtAcceptance(Protocol):
    """Shares put into their inboxes by the acceptance itself
    (``gateway.services.inbox.InboxWriter``, on the in-process transport)."""

    def at_acceptance(
        self, message_id: str, recipient: str, message_type: str, at: datetime
    ) -> InboxDelivery | None: ...

    def delivered_at_acceptance(self, deliveries: Sequence[InboxDelivery]) -> None: ...


@dataclass(frozen=True, slots=True)
class Assessment:
    """What the gateway would do with a document, before anything is stored."""

    envelope: Envelope
    sender: Organisation
    decisions: tuple[tuple[Organisation, Decision], ...]
    resolved_by: Mapping[str, str]


class SubmissionService:
    def __init__(
        self,
        schemas: SchemaSet,
        directory: Directory,
        policy: PolicyService,
        messages: MessageRepository,
        audit: AuditLog,
        on_accepted: Callable[[Sequence[OutboxItem]], None],
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        admission: Callable[[], None] = lambda: None,
        into_inbox: InboxAtAcceptance | None = None,
    ) -> None:
        self._admission = admission
        self._into_inbox = into_inbox
        self._schemas = schemas
        self._metrics = metrics
        self._directory = directory
        self._policy = policy
        self._messages = messages
        self._audit = audit
        self._on_accepted = on_accepted
        self._clock = clock

    async def assess(self, principal: Principal, document: Any) -> Assessment:
        """Check and decide without storing anything (``POST /v1/policy/decide``).

        ``document`` is the envelope, or the sender's SD-JWT of it: then the signature is
        checked first and kept with the envelope."""
        signature = None
        if isinstance(document, SignedEnvelope):
            signature = document.compact
            document = signed_document(principal, signature)
        if isinstance(document, Mapping):
            access.check_sender(principal, document.get("from"), document.get("type"))
        else:
            access.authorise(principal, access.Action.DECIDE, principal.org.code)
        envelope = replace(Envelope.from_document(self._schemas.check(document)),
                           sender_signature=signature)
        sender = principal.org
        organisations = self._directory.all()
        known = await self._known(envelope, organisations)
        resolved_by: dict[str, str] = {}
        if not envelope.recipients:
            envelope, resolved_by = self._resolve(envelope, organisations, known)
        recipients = resolve_recipients(envelope, self._directory)
        access.check_recipients(sender, envelope.type, recipients)
        access.check_body_rules(sender, envelope.type, envelope.document.get("body"))
        contradicted = contradictions(envelope, organisations, known)
        if contradicted:
            raise InvalidMessage(contradicted)
        consents = await self._policy.consent_states(envelope, recipients)
        decisions = tuple(
            (r, self._policy.decide(envelope, sender, r, consents[r.code])) for r in recipients
        )
        return Assessment(
            envelope=envelope, sender=sender, decisions=decisions, resolved_by=resolved_by
        )

    async def _known(self, envelope: Envelope, organisations: list[Organisation]) -> Known:
        """What the gateway's records say that resolving or checking the recipients needs:
        the senders of the messages the body refers to, and (only to address a court
        outcome that omits ``to``) the CJIT managing the person."""
        related = related_ids(envelope.type.value, envelope.document["body"])
        return Known(
            senders=await self._messages.senders_of(related) if related else {},
            managing_cjit=await self._managing_cjit(envelope, organisations)
            if envelope.type is MessageType.COURT_OUTCOME and not envelope.recipients
            else None,
        )

    def _resolve(
        self, envelope: Envelope, organisations: list[Organisation], known: Known
    ) -> tuple[Envelope, dict[str, str]]:
        """Address a message that names no recipient, recording how each was found."""
        found = resolve(envelope.type.value, envelope.document["body"], organisations, known,
                        envelope.sender)
        if not found:
            raise InvalidMessage([Violation(
                "/to",
                f"'to' is required here: the gateway cannot work out who receives this "
                f"{envelope.type.value} from what it says.",
            )])
        return (
            envelope.with_recipients(tuple(r.code for r in found)),
            {r.code: r.how for r in found},
        )

    async def _managing_cjit(
        self, envelope: Envelope, organisations: list[Organisation]
    ) -> str | None:
        subject = SubjectKeys.of(envelope.document["subject"])
        history = await self._messages.about_person(subject, limit=50)
        return managing_cjit(history, subject, organisations)

    def admit(self) -> None:
        """Raise ``Overloaded`` (503, ``Retry-After``) while delivery is behind intake
        (``gateway.services.backpressure``): asked once for a single message, once for a
        whole batch, so a batch is never half taken."""
        self._admission()

    async def submit(
        self,
        principal: Principal,
        document: Any,
        *,
        admitted: bool = False,
        token_use: TokenUse | None = None,
    ) -> Receipt:
        """Assess and store one message; each new one is counted accepted or refused by
        its type (``gateway.metrics``), an identical resubmission not again. Unless the
        caller ``admitted`` it already (a batch's items), it waits while delivery is
        behind. The request's ``token_use``, if the caller has not recorded it, is recorded
        with the message, in its transaction."""
        try:
            if not admitted:
                self.admit()
            assessment = await self.assess(principal, document)
            check_signed_if_required(principal, assessment.envelope)
        except GatewayError as error:
            self._metrics.count_refused(
                message_type_label(document.get("type") if isinstance(document, Mapping)
                                   else None),
                error.slug,
            )
            raise
        envelope = assessment.envelope
        received_at = self._clock()
        into_inbox = self._into_inbox
        deliveries = tuple(
            PlannedDelivery(
                recipient=recipient.code,
                decision=decision,
                payload=redact(envelope.document, decision.redactions)
                if decision.permitted
                else None,
                resolved_by=assessment.resolved_by.get(recipient.code),
                into_inbox=into_inbox.at_acceptance(
                    envelope.message_id, recipient.code, envelope.type.value, received_at)
                if into_inbox is not None and decision.permitted else None,
            )
            for recipient, decision in assessment.decisions
        )
        submission = Submission(
            envelope=envelope,
            deliveries=deliveries,
            received_at=received_at,
            submitted_by=principal.actor,
            token_use=token_use,
        )
        receipt = await self._messages.accept(
            submission, acceptance_event(submission), self._audit
        )
        if token_use is not None:
            token_use.recorded = True
        receipt = replace(receipt, message_type=envelope.type.value, timescale_breaches=tuple(
            breaches(envelope.document, self._directory.by_code())))
        permitted = any(decision.permitted for _, decision in receipt.decisions)
        if not receipt.replayed and permitted:
            self._metrics.count_accepted(envelope.type.value)
        elif not receipt.replayed:
            self._metrics.count_refused(envelope.type.value, PolicyRefused.slug)
        if permitted:
            self._on_accepted(receipt.outbox)
            if into_inbox is not None and receipt.delivered:
                into_inbox.delivered_at_acceptance(receipt.delivered)
        else:
            raise PolicyRefused(
                "The sharing policy permits this message for none of its recipients.",
                receipt_view(receipt),
            )
        return receipt


def acceptance_event(submission: Submission) -> AuditEvent:
    """The collection, or refusal, of a message as the log records it (DPA 2018 s.62(1)(a)):
    who sent it, on which route, and each recipient's decision with its rule and legal
    basis; written in the same transaction as the message itself."""
    envelope = submission.envelope
    deliveries = submission.deliveries
    resolved_by = {d.recipient: d.resolved_by for d in deliveries if d.resolved_by}
    return AuditEvent(
        subject=SubjectKeys.of(envelope.document["subject"]),
        action=AuditAction.MESSAGE_ACCEPTED if submission.permitted
        else AuditAction.MESSAGE_REFUSED,
        at=submission.received_at,
        actor=submission.submitted_by,
        message_id=envelope.message_id,
        message_type=envelope.type.value,
        recipients=tuple(d.recipient for d in deliveries),
        details={
            "route": envelope.route.value,
            "from": envelope.sender,
            # What was accepted, bound into the log: the document's SHA-256 (its canonical
            # JSON, as idempotency compares it) and, when the sender signed, its JWS's, so
            # the sender's receipt and signed copy prove the log holds exactly that message.
            "content_sha256": envelope.content_hash,
            **({"sender_jws_sha256": sender_jws_sha256(envelope.sender_signature)}
               if envelope.sender_signature is not None else {}),
            "decisions": {d.recipient: audited_decision(d.decision) for d in deliveries},
            **({"resolved_by": resolved_by} if resolved_by else {}),
        },
    )


def receipt_view(receipt: Receipt) -> dict[str, Any]:
    """The JSON answer to a submission (CONTRACT.md, ``POST /v1/messages``), with the
    acceptance entry's pending receipt (``gateway.tlog.receipt``): its index and leaf hash,
    from the append itself. No checkpoint covers the entry yet, since checkpoints are
    signed periodically; ``GET /v1/messages/{id}/receipt`` answers the proved receipt."""
    return {
        "message_id": receipt.message_id,
        "status": receipt.status.value,
        "recipients": [
            {
                "code": code,
                "decision": decision.as_dict(),
                **({"resolved_by": receipt.resolved_by[code]}
                   if code in receipt.resolved_by else {}),
            }
            for code, decision in receipt.decisions
        ],
        "decision": combined([decision for _, decision in receipt.decisions]),
        "audit_index": receipt.audit_index,
        **({"receipt": AuditReceipt(None, receipt.audit_index, receipt.entry_hash).as_json()}
           if receipt.audit_index is not None and receipt.entry_hash is not None else {}),
        "timescale_breaches": [b.as_dict() for b in receipt.timescale_breaches],
    }
