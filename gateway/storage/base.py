"""Repository interfaces shaped by what SQLite and PostgreSQL both offer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from gateway.audit import AuditEvent, AuditLog
from gateway.consent import ConsentRecord, SubjectKeys
from gateway.model import (
    ChannelSettings,
    Contact,
    Decision,
    Envelope,
    Grant,
    MessageStatus,
    Organisation,
    Person,
    StatusEvent,
    isoformat,
)
from gateway.timescales import Breach


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One recipient's share of a submission: its decision and what it will see."""

    recipient: str
    decision: Decision
    payload: Mapping[str, Any] | None
    resolved_by: str | None = None

    @property
    def permitted(self) -> bool:
        return self.decision.permitted


@dataclass(frozen=True, slots=True)
class Submission:
    envelope: Envelope
    deliveries: tuple[PlannedDelivery, ...]
    received_at: datetime
    submitted_by: str

    @property
    def permitted(self) -> bool:
        return any(d.permitted for d in self.deliveries)


@dataclass(frozen=True, slots=True)
class Receipt:
    """The answer to a submission; an identical resubmission gets the same receipt back."""

    message_id: str
    status: MessageStatus
    decisions: tuple[tuple[str, Decision], ...]
    audit_index: int | None
    replayed: bool = False
    resolved_by: Mapping[str, str] = field(default_factory=dict)
    # Handbook timescales the message reports as missed (gateway.timescales): read from
    # the message, never stored, so a replay finds the same.
    timescale_breaches: tuple[Breach, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageRecord:
    message_id: str
    message_type: str
    sender: str
    recipients: tuple[str, ...]
    received_at: datetime
    history: tuple[StatusEvent, ...]


@dataclass(frozen=True, slots=True)
class Involvement:
    """An earlier accepted message about a person: who sent it, who was permitted it."""

    message_type: str
    sender: str
    recipients: tuple[str, ...]
    received_at: datetime
    keys: SubjectKeys
    direction: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A committed message waiting to be handed to the transport for one recipient."""

    outbox_id: int
    message_id: str
    recipient: str
    message_type: str
    payload: bytes
    attempts: int


class DispatchPurpose(StrEnum):
    """Why the gateway pushes something out itself rather than waiting to be read."""

    DELIVERY = "delivery"  # the message, over the recipient's webhook or MESH channel
    NOTICE = "notice"  # an e-mail to the SPOC: an alert has arrived
    ESCALATION_NOTICE = "escalation_notice"  # an e-mail to the SPOC: still unacknowledged


@dataclass(frozen=True, slots=True)
class Dispatch:
    """One push the gateway owes a recipient, retried until it succeeds or the share ends."""

    dispatch_id: int
    message_id: str
    recipient: str
    message_type: str
    channel: str
    purpose: DispatchPurpose
    target: str
    attempts: int
    created_at: datetime
    payload: bytes | None = None


@dataclass(frozen=True, slots=True)
class RemoteReceipt:
    """A push the recipient's own system holds, whose acknowledgement we wait to see."""

    dispatch_id: int
    message_id: str
    recipient: str
    target: str
    external_ref: str


@dataclass(frozen=True, slots=True)
class InboxItem:
    seq: int
    message_id: str
    message_type: str
    sender: str
    delivered_at: datetime
    decision: Decision
    envelope: Mapping[str, Any]
    # Escalated by the alert clock (gateway.alerts): still unacknowledged after its limit.
    escalated: bool = False
    acknowledged_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    message_id: str
    acknowledged_at: datetime
    first_time: bool


@dataclass(frozen=True, slots=True)
class DirectoryImport:
    """A SPOC-list import proposed by one operator person, applied when a second approves."""

    id: str
    csv_text: str
    plan: Mapping[str, Any]
    proposed_by: str
    proposed_at: datetime
    approved_by: str | None = None
    approved_at: datetime | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "import_id": self.id,
            "status": "applied" if self.approved_by else "awaiting_approval",
            "proposed_by": self.proposed_by,
            "proposed_at": isoformat(self.proposed_at),
            "approved_by": self.approved_by,
            "approved_at": isoformat(self.approved_at) if self.approved_at else None,
            **self.plan,
        }


class DirectoryRepository(ABC):
    """Organisations, their people and the grants those people hold. Every change is
    audited inside its own transaction."""

    @abstractmethod
    async def all(self) -> list[Organisation]: ...

    @abstractmethod
    async def set_contact(
        self, code: str, contact: Contact, actor: str, at: datetime, audit: AuditLog
    ) -> None:
        """Change an organisation's SPOC contact, audited."""

    @abstractmethod
    async def people(self) -> list[Person]: ...

    @abstractmethod
    async def grants(self) -> list[Grant]:
        """Every grant, revoked ones included (they are the record of who could act when)."""

    @abstractmethod
    async def add_person(self, person: Person, actor: str, at: datetime, audit: AuditLog) -> None:
        """Add a person; ``Conflict`` if the id or sign-in identity is taken."""

    @abstractmethod
    async def add_person_key(
        self, person_id: str, jwk: Mapping[str, Any], actor: str, at: datetime, audit: AuditLog
    ) -> None: ...

    @abstractmethod
    async def add_system_key(
        self, org_code: str, jwk: Mapping[str, Any], actor: str, at: datetime, audit: AuditLog
    ) -> None: ...

    @abstractmethod
    async def remove_key(
        self, holder: str, kid: str, actor: str, at: datetime, audit: AuditLog
    ) -> None:
        """Remove a key from a person (``holder`` their id) or an organisation's systems
        (``holder`` its code); ``NotFound`` if that holder has no such key."""

    @abstractmethod
    async def add_grant(self, grant: Grant, audit: AuditLog) -> None:
        """Store a grant; ``Conflict`` if the person already holds the role."""

    @abstractmethod
    async def revoke_grant(
        self, grant_id: str, by: str, reason: str, at: datetime, audit: AuditLog
    ) -> Grant: ...

    @abstractmethod
    async def propose_import(self, proposal: DirectoryImport, audit: AuditLog) -> None: ...

    @abstractmethod
    async def get_import(self, import_id: str) -> DirectoryImport | None: ...

    @abstractmethod
    async def apply_import(
        self,
        import_id: str,
        organisations: Sequence[Organisation],
        approver: str,
        at: datetime,
        audit: AuditLog,
    ) -> DirectoryImport:
        """Apply an approved import: organisations, approval and audit entry in one unit."""

    @abstractmethod
    async def upsert(self, organisations: Sequence[Organisation], at: datetime) -> None:
        """Add or update organisations; an existing one keeps its delivery channel."""

    @abstractmethod
    async def set_channel(
        self, code: str, channel: ChannelSettings, actor: str, at: datetime, audit: AuditLog
    ) -> None:
        """Choose an organisation's delivery channel, audited; pushes still owed to it
        become due at once, so they follow the new choice."""


class ConsentRepository(ABC):
    @abstractmethod
    async def add(self, record: ConsentRecord) -> None: ...

    @abstractmethod
    async def get(self, consent_id: str) -> ConsentRecord | None: ...

    @abstractmethod
    async def matching(self, keys: SubjectKeys) -> list[ConsentRecord]:
        """Every record that may concern this subject (see ``gateway.consent``)."""

    @abstractmethod
    async def withdraw(
        self, consent_id: str, by: str, reason: str, at: datetime, audit: AuditLog,
        redecide: Redecide,
    ) -> Withdrawal:
        """Withdraw a consent and, in the same transaction, settle every open share that
        may rest on it: those whose decision names the record, and consent-based ones of
        the same person that name none (decided before records named, or on the sender's
        declaration). ``redecide`` (the caller's policy, no I/O) answers for each share:
        None if it does not depend on the record, else the decision against what remains.
        A share still permitted is kept (and rests on its new record from then on); one
        refused is stopped if undelivered, leaves the inbox if unread, or is noted with
        the recipient told if already acknowledged. The withdrawal and every outcome are
        audited in the same transaction."""


class ShareState(StrEnum):
    UNDELIVERED = "undelivered"
    UNREAD = "unread"
    ACKNOWLEDGED = "acknowledged"


@dataclass(frozen=True, slots=True)
class ConsentShare:
    """An open, permitted share that may rest on a consent record, with the person's
    records as they stand after the withdrawal (withdrawn ones included)."""

    message_id: str
    recipient: str
    sender: str
    document: Mapping[str, Any]
    decision: Decision
    state: ShareState
    records: tuple[ConsentRecord, ...]
    consent_record: str | None = None


Redecide = Callable[[ConsentRecord, ConsentShare], Decision | None]


class ShareOutcome(StrEnum):
    KEPT = "kept"            # another record (or no need for consent) still permits it
    STOPPED = "stopped"      # not delivered: refused, the sender gets a report
    WITHDRAWN = "withdrawn"  # delivered, unread: left the inbox, the recipient is told
    NOTIFIED = "notified"    # acknowledged: stays so, the recipient is told


@dataclass(frozen=True, slots=True)
class SettledShare:
    message_id: str
    recipient: str
    sender: str
    outcome: ShareOutcome
    decision: Decision

    def as_dict(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "recipient": self.recipient,
                "outcome": self.outcome.value, "rule": self.decision.rule,
                **({"consent_record": self.decision.consent_record}
                   if self.decision.consent_record else {}),
                **({"withheld_for": list(self.decision.withheld_for)}
                   if self.decision.withheld_for else {})}


@dataclass(frozen=True, slots=True)
class Withdrawal:
    record: ConsentRecord
    shares: tuple[SettledShare, ...] = ()


class PolicyVersionRepository(ABC):
    @abstractmethod
    async def propose(self, version: PolicyVersion) -> PolicyVersion:
        """Store a proposed version; an identical one already stored is returned as is."""

    @abstractmethod
    async def approve(
        self, version: str, approver: str, at: datetime, effective_from: datetime
    ) -> PolicyVersion: ...

    @abstractmethod
    async def all(self) -> list[PolicyVersion]: ...

    @abstractmethod
    async def recent_traffic(self, limit: int) -> list[RecordedShare]:
        """The newest decided shares, for replaying through a draft policy."""


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    version: str
    name: str
    source_text: str
    author: str
    proposed_at: datetime
    approved_by: str | None = None
    approved_at: datetime | None = None
    effective_from: datetime | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "name": self.name,
            "author": self.author,
            "proposed_at": isoformat(self.proposed_at),
            "approved_by": self.approved_by,
            "approved_at": isoformat(self.approved_at) if self.approved_at else None,
            "effective_from": isoformat(self.effective_from) if self.effective_from else None,
        }


@dataclass(frozen=True, slots=True)
class RecordedShare:
    """One recorded decision: the message as sent and the decision taken for a recipient."""

    message_id: str
    document: Mapping[str, Any]
    recipient: str
    decision: Decision


class AuditRepository(ABC):
    """The stored audit log: sequenced entries and the checkpoints signed over them."""

    @abstractmethod
    def append(self, transaction: Any, event: AuditEvent) -> int:
        """Sequence an entry inside an open transaction (the ``AuditLog`` seam)."""

    @abstractmethod
    async def record(self, event: AuditEvent) -> int:
        """Sequence an entry in a transaction of its own (consultations, key rotation)."""

    @abstractmethod
    async def size(self) -> int: ...

    @abstractmethod
    async def leaf_hashes(self, start: int, end: int) -> list[bytes]: ...

    @abstractmethod
    async def entries(self, start: int, end: int) -> list[bytes]: ...

    @abstractmethod
    async def checkpoints(self) -> list[tuple[int, str]]:
        """(size, signed note) of every checkpoint issued, oldest first."""

    @abstractmethod
    async def checkpoint(self, size: int | None = None) -> tuple[int, str] | None:
        """The checkpoint of a size (the newest when None), if one was issued."""

    @abstractmethod
    async def add_checkpoint(self, size: int, note: str, at: datetime) -> None:
        """Store a signed checkpoint; refuses one that does not grow the log."""


class TokenLedger(ABC):
    """Remembers every token id used until the token expires, to refuse replays."""

    @abstractmethod
    async def claim(self, issuer: str, token_id: str, expires_at: datetime, now: datetime) -> bool:
        """Record the token's use; False when it was already used."""


class MessageRepository(ABC):
    @abstractmethod
    async def ping(self) -> None:
        """Raise if the store cannot answer (readiness)."""

    @abstractmethod
    async def accept(self, submission: Submission, audit: AuditLog) -> Receipt:
        """Store message, status, outbox rows and audit entry in one transaction.

        Returns the original receipt for an identical resubmission and raises
        ``IdempotencyConflict`` when the id was used for different content.
        """

    @abstractmethod
    async def get(self, message_id: str) -> MessageRecord | None: ...

    @abstractmethod
    async def senders_of(self, message_ids: Sequence[str]) -> dict[str, str]:
        """The sending organisation of each known message id."""

    @abstractmethod
    async def about_person(self, keys: SubjectKeys, limit: int) -> list[Involvement]:
        """The newest accepted messages that may concern this person (same PNC ID, or same
        name and date of birth), newest first; callers decide who is the same person."""

    @abstractmethod
    async def pending_outbox(self, limit: int, now: datetime) -> list[OutboxItem]: ...

    @abstractmethod
    async def mark_published(self, outbox_ids: Sequence[int], at: datetime) -> None: ...

    @abstractmethod
    async def defer_outbox(
        self, outbox_ids: Sequence[int], until: datetime, error: str
    ) -> None: ...

    @abstractmethod
    async def deliver(
        self,
        message_id: str,
        recipient: str,
        at: datetime,
        audit: AuditLog,
        *,
        detail: str | None = None,
        notice_to: str | None = None,
    ) -> bool:
        """Put the message in the recipient's inbox; False if it already was (a redelivery).

        ``notice_to``: the SPOC's secure address, to owe an e-mail notice in the same
        transaction, so a crash cannot deliver an alert without its notice.
        """

    @abstractmethod
    async def hold_for_push(
        self, message_id: str, recipient: str, channel: str, target: str, at: datetime
    ) -> bool:
        """Owe the recipient a push of this message; False if it already was owed."""

    @abstractmethod
    async def due_dispatches(self, now: datetime, limit: int) -> list[Dispatch]: ...

    @abstractmethod
    async def dispatch_succeeded(
        self,
        dispatch: Dispatch,
        at: datetime,
        audit: AuditLog,
        detail: str,
        external_ref: str | None = None,
        notice_to: str | None = None,
    ) -> None:
        """Close a push; a delivery push puts the message in the inbox (delivered)."""

    @abstractmethod
    async def dispatch_failed(
        self, dispatch: Dispatch, retry_at: datetime, detail: str, at: datetime
    ) -> None:
        """Record a failed attempt in the status history; it is retried at ``retry_at``."""

    @abstractmethod
    async def awaiting_remote_ack(self, channel: str, limit: int) -> list[RemoteReceipt]:
        """Pushes delivered over ``channel`` whose recipient has not acknowledged yet."""

    @abstractmethod
    async def remote_acknowledged(
        self, receipt: RemoteReceipt, actor: str, detail: str, at: datetime, audit: AuditLog
    ) -> None:
        """The recipient acknowledged in its own system (e.g. MESH): acknowledge the share."""

    @abstractmethod
    async def close_delivery(
        self,
        message_id: str,
        recipient: str,
        status: MessageStatus,
        detail: str,
        at: datetime,
        audit: AuditLog,
    ) -> str | None:
        """End an undelivered or unacknowledged share (dead-lettered, expired, refused).

        It leaves the inbox, a later copy from the transport is ignored, and the sender
        gets an undelivered report. Returns the sender's code, or None if the share was
        already acknowledged or closed.
        """

    @abstractmethod
    async def escalate_unacknowledged(
        self, message_type: str, delivered_before: datetime, detail: str, at: datetime,
        audit: AuditLog, notice_to: Callable[[str], str | None] = lambda _: None,
    ) -> list[tuple[str, str, str]]:
        """Mark, once, every delivered share of a type still unacknowledged since before a
        time as escalated; returns (message id, recipient, sender) of each. An escalation
        e-mail is owed, in the same transaction, to ``notice_to(recipient)`` if any."""

    @abstractmethod
    async def unacknowledged_before(
        self, received_before: datetime, limit: int
    ) -> list[tuple[str, str]]:
        """(message id, recipient) of permitted shares still open since before a time."""

    @abstractmethod
    async def inbox(self, recipient: str, limit: int, after_seq: int = 0) -> list[InboxItem]:
        """Delivered, unacknowledged messages, oldest first."""

    @abstractmethod
    async def inbox_item(self, message_id: str, recipient: str) -> InboxItem | None:
        """One message as delivered to this recipient (its share only), acknowledged or
        not; None if it was never delivered there or has left the inbox (closed)."""

    @abstractmethod
    async def acknowledge(
        self, message_id: str, recipient: str, actor: str, at: datetime, audit: AuditLog,
        detail: str | None = None,
    ) -> Acknowledgement: ...


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A person signed in to the web console. ``id`` is the SHA-256 of the cookie's secret,
    so a copy of the store cannot be replayed as a cookie; ``csrf_token`` goes in every
    form the session is shown."""

    id: str
    person_id: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime


class SessionRepository(ABC):
    """Server-side console sessions: a session exists only while its row does, so deleting
    the row (sign-out, or a person's sessions ended) revokes it at once."""

    @abstractmethod
    async def create(self, session: ConsoleSession) -> None: ...

    @abstractmethod
    async def get(self, session_id: str) -> ConsoleSession | None: ...

    @abstractmethod
    async def touch(self, session_id: str, at: datetime) -> None:
        """Record activity (the idle timeout counts from the last)."""

    @abstractmethod
    async def delete(self, session_id: str) -> bool:
        """End one session; False if there was none."""

    @abstractmethod
    async def delete_person(self, person_id: str) -> int:
        """End every session of a person (sign-out everywhere); how many there were."""
