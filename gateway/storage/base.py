"""Repository interfaces shaped by what SQLite and PostgreSQL both offer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from gateway.domain.model import (
    ChannelSettings,
    Contact,
    Decision,
    Envelope,
    Grant,
    IdentityProvider,
    MessageStatus,
    Organisation,
    Person,
    StatusEvent,
    TokenUse,
    isoformat,
)
from gateway.domain.timescales import Breach
from gateway.pipeline.audit import AuditEvent, AuditLog, SequencedEntry
from gateway.pipeline.consent import ConsentRecord, SubjectKeys
from gateway.pipeline.resolution import Involvement
from gateway.tlog.tilehash import HashReads, StoredHashes, Tile

# A change and its audit entry, written in one transaction: the log to append to, and the
# event (or, for ``EventFor``, how to make it from the row as stored).
Audited = tuple[AuditLog, AuditEvent]
RowT = TypeVar("RowT")
T = TypeVar("T")
EventFor = Callable[[RowT], AuditEvent]


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One recipient's share of a submission: its decision and what it will see."""

    recipient: str
    decision: Decision
    payload: Mapping[str, Any] | None
    resolved_by: str | None = None
    # Set when the share goes into the recipient's inbox in the acceptance's own
    # transaction, with no outbox row (``gateway.services.inbox.InboxWriter.at_acceptance``:
    # the in-process transport, a recipient that reads its inbox).
    into_inbox: InboxDelivery | None = None

    @property
    def permitted(self) -> bool:
        return self.decision.permitted


@dataclass(frozen=True, slots=True)
class Submission:
    envelope: Envelope
    deliveries: tuple[PlannedDelivery, ...]
    received_at: datetime
    submitted_by: str
    # The request's token, its single use recorded in the same transaction (refused
    # with TokenReplayed, storing nothing, if it was used before); None when the request
    # recorded it already.
    token_use: TokenUse | None = None

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
    # The acceptance entry's RFC 6962 leaf hash, from the append itself: the pending audit
    # receipt of the answer (gateway.tlog.receipt).
    entry_hash: bytes | None = None
    resolved_by: Mapping[str, str] = field(default_factory=dict)
    # Handbook timescales the message reports as missed (gateway.domain.timescales): read from
    # the message, never stored, so a replay finds the same.
    timescale_breaches: tuple[Breach, ...] = ()
    # The message's type, for the log line (a signed submission is not a JSON object).
    message_type: str | None = field(default=None, compare=False)
    # The outbox rows this acceptance wrote, for the relay to publish without reading them
    # back (the rows stay the truth after a crash); never part of the answer, nor of a
    # receipt's equality (a replay's receipt is the original's).
    outbox: tuple[OutboxItem, ...] = field(default=(), compare=False, repr=False)
    # The shares this acceptance put straight into their inboxes (``PlannedDelivery``'s
    # ``into_inbox``), for the notifications that follow a delivery's commit.
    delivered: tuple[InboxDelivery, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    message_id: str
    message_type: str
    sender: str
    recipients: tuple[str, ...]
    received_at: datetime
    history: tuple[StatusEvent, ...]
    # Who acknowledged each recipient's share (``ORG/person-id`` or ``ORG/system``): the
    # sender's timeline says by whom (issue 12), as the audit log does.
    acknowledged_by: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A committed message waiting to be handed to the transport for one recipient."""

    outbox_id: int
    message_id: str
    recipient: str
    message_type: str
    payload: bytes
    attempts: int
    # When the message was accepted: a delivery's lag is measured from here.
    accepted_at: datetime


@dataclass(frozen=True, slots=True)
class InboxDelivery:
    """One share to put in its recipient's inbox (``MessageRepository.deliver``)."""

    message_id: str
    recipient: str
    at: datetime
    detail: str | None = None
    notice_to: str | None = None


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
    # A signed message's SD-JWT with every disclosure, and the redactions of this
    # recipient's decision: the push carries the presentation of exactly its share.
    sender_signature: str | None = None
    redactions: tuple[str, ...] = ()


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
    # Escalated by the alert clock (gateway.services.alerts): still unacknowledged after its limit.
    escalated: bool = False
    acknowledged_at: datetime | None = None
    # Left the inbox unread because the consent it rested on was withdrawn.
    withdrawn_at: datetime | None = None
    # The sender's SD-JWT with every disclosure (None: sent unsigned); the recipient is
    # shown only the presentation of its share (gateway.sdjwt.envelope.for_recipient).
    sender_signature: str | None = None
    # The delivery's audit entry (MESSAGE_DELIVERED): its index and RFC 6962 leaf hash,
    # the pending receipt beside the item (gateway.tlog.receipt); None for a delivery
    # made before revision 0007 recorded them.
    audit_index: int | None = None
    entry_hash: bytes | None = None


@dataclass(frozen=True, slots=True)
class LoggedEntries:
    """Who a message is between and where the audit log holds its acceptance and each
    recipient's delivery: what ``GET /v1/messages/{id}/receipt`` proves."""

    sender: str
    recipients: tuple[str, ...]
    acceptance: int | None
    deliveries: Mapping[str, int] = field(default_factory=dict)


class InboxState(StrEnum):
    """What a SPOC filters the inbox by (H 4.1.3: alerts acted on within 24 hours).
    Escalated is the alert clock's note, so an escalated message is also waiting or
    acknowledged."""

    WAITING = "waiting"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class InboxFilter:
    """A filter over one recipient's delivered messages; empty ``states`` or ``types``
    mean any."""

    states: frozenset[InboxState] = frozenset({InboxState.WAITING})
    types: frozenset[str] = frozenset()
    delivered_from: datetime | None = None
    delivered_before: datetime | None = None


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
    async def set_signing_required(
        self, code: str, required: bool, actor: str, at: datetime, audit: AuditLog
    ) -> None:
        """Make the gateway refuse (or accept again) an organisation's unsigned messages,
        audited."""

    @abstractmethod
    async def set_identity_provider(
        self, code: str, provider: IdentityProvider | None, actor: str, at: datetime,
        audit: AuditLog,
    ) -> None:
        """Register (or, with None, remove) the OpenID Provider an organisation's people
        sign in to the console with, audited."""

    @abstractmethod
    async def people(self) -> list[Person]: ...

    @abstractmethod
    async def grants(self) -> list[Grant]:
        """Every grant, revoked ones included (they are the record of who could act when)."""

    @abstractmethod
    async def add_person(self, person: Person, actor: str, at: datetime, audit: AuditLog) -> None:
        """Add a person; ``Conflict`` if the id or sign-in identity is taken."""

    @abstractmethod
    async def add_people(
        self, people: Sequence[tuple[Person, Sequence[Grant]]], actor: str, at: datetime,
        audit: AuditLog,
    ) -> None:
        """Add people, each with their first grants, in one transaction: all or none
        (``Conflict`` as :meth:`add_person` and :meth:`add_grant` would raise)."""

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
    async def pending_imports(self, limit: int) -> list[DirectoryImport]:
        """Proposed imports still waiting for a second operator, newest first."""

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
    async def add_organisation(
        self, org: Organisation, actor: str, at: datetime, audit: AuditLog
    ) -> bool:
        """Add one organisation, audited, unless its code is taken (False: nothing written)."""

    @abstractmethod
    async def set_channel(
        self, code: str, channel: ChannelSettings, actor: str, at: datetime, audit: AuditLog
    ) -> None:
        """Choose an organisation's delivery channel, audited; pushes still owed to it
        become due at once, so they follow the new choice."""


class ConsentRepository(ABC):
    @abstractmethod
    async def add(self, record: ConsentRecord, audited: Audited) -> None:
        """Store a consent record and its audit entry in one transaction (DPA 2018 s.62)."""

    @abstractmethod
    async def get(self, consent_id: str) -> ConsentRecord | None: ...

    @abstractmethod
    async def matching(self, keys: SubjectKeys) -> list[ConsentRecord]:
        """Every record that may concern this subject (see ``gateway.pipeline.consent``)."""

    @abstractmethod
    async def unit_of_work(self, work: Callable[[ConsentRows], T]) -> T:
        """Run ``work`` in one transaction and return its result once committed.

        A withdrawal reads the record, settles every share resting on it and appends its
        audit entries through ``work``'s rows, all or nothing (``gateway.services.consents``
        decides; storage only reads and writes the rows). ``work`` may run more than once
        (``gateway.storage.engine``), so it acts through its rows and nothing else."""


class ShareState(StrEnum):
    UNDELIVERED = "undelivered"
    UNREAD = "unread"
    ACKNOWLEDGED = "acknowledged"


@dataclass(frozen=True, slots=True)
class ConsentShare:
    """An open, permitted share that may rest on a consent record, with the person's
    records as they stand after the withdrawal (withdrawn ones included): the subject
    keys its message was stored under and, once delivered, when it reached the inbox and
    was acknowledged."""

    message_id: str
    recipient: str
    sender: str
    document: Mapping[str, Any]
    decision: Decision
    state: ShareState
    records: tuple[ConsentRecord, ...]
    subject: SubjectKeys
    consent_record: str | None = None
    delivered_at: datetime | None = None
    acknowledged_at: datetime | None = None


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
    async def propose(
        self, version: PolicyVersion, audit: AuditLog, event_for: EventFor[PolicyVersion] | None
    ) -> PolicyVersion:
        """Store a proposed version with the audit entry ``event_for`` makes of it, in one
        transaction; an identical version already stored is returned as is, with no entry.
        (None: no entry, for the gateway's own baseline, whose activation is logged.)"""

    @abstractmethod
    async def approve(
        self, version: str, approver: str, at: datetime, effective_from: datetime,
        audit: AuditLog, event_for: EventFor[PolicyVersion] | None, *, second_person: bool = True,
    ) -> tuple[PolicyVersion, bool]:
        """Approve a version not yet approved, with its audit entry, in one transaction;
        returns the stored version and whether this call approved it. The guard is in the
        write itself (not yet approved and, with ``second_person``, not by its author), so
        two approvals racing, or an author approving from a second process, cannot both
        succeed. Raises ``NotFound`` for an unknown version."""

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
    # Why its author proposed it, as they said (also in the signed policy.proposed entry).
    reason: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "name": self.name,
            "author": self.author,
            "proposed_at": isoformat(self.proposed_at),
            "reason": self.reason,
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


class TileConflict(Exception):
    """A hash tile to store differs from the one stored at its place: the tree the
    checkpointer grew is not the tree the stored tiles hold. Never overwritten."""


class AuditRepository(ABC):
    """The stored audit log: sequenced entries, the checkpoints signed over them and the
    hash tiles proofs are read from."""

    @abstractmethod
    def append(self, transaction: Any, event: AuditEvent) -> int:
        """Sequence an entry inside an open transaction (the ``AuditLog`` seam)."""

    @abstractmethod
    def append_entry(self, transaction: Any, event: AuditEvent) -> SequencedEntry:
        """``append``, answering the entry's leaf hash with its index."""

    @abstractmethod
    async def record(self, event: AuditEvent, token_use: TokenUse | None = None) -> int:
        """Sequence an entry in a transaction of its own (consultations, key rotation);
        with the request's ``token_use`` recorded in it (``TokenReplayed``, logging
        nothing, if it was used)."""

    @abstractmethod
    async def size(self) -> int: ...

    @abstractmethod
    async def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes of entries ``start`` to ``end``: for the checkpointer alone, which
        reads the entries it has not yet integrated or tiled; proofs read
        :meth:`stored_hashes`."""

    @abstractmethod
    async def stored_hashes(self, reads: HashReads) -> StoredHashes:
        """The tile rows, tile roots and leaf hashes ``reads`` names, in one transaction
        (``gateway.tlog.tilehash``); a row that is not stored is absent from the answer."""

    @abstractmethod
    async def tiled_size(self) -> int:
        """How many leaves the stored full tiles of level 0 cover (a multiple of 256)."""

    @abstractmethod
    async def add_tiles(self, tiles: Sequence[Tile]) -> None:
        """Store full tiles; one stored already with the same bytes is left as it is, one
        stored with other bytes raises ``TileConflict``."""

    @abstractmethod
    async def entries(self, start: int, end: int) -> list[bytes]: ...

    @abstractmethod
    async def checkpoints(self) -> list[tuple[int, str]]:
        """(size, signed note) of every checkpoint issued, oldest first."""

    @abstractmethod
    async def checkpoint(self, size: int | None = None) -> tuple[int, str] | None:
        """The checkpoint of a size (the newest when None), if one was issued."""

    @abstractmethod
    async def add_checkpoint(
        self, size: int, note: str, at: datetime, tiles: Sequence[Tile] = ()
    ) -> None:
        """Store a signed checkpoint with the tiles it fills, in one transaction (as
        :meth:`add_tiles`); refuses one that does not grow the log."""

    @abstractmethod
    async def newest_checkpoint_issued(self) -> tuple[int, datetime] | None:
        """(size, when signed) of the newest checkpoint, if any: for the checkpoint age
        ``GET /metrics`` reports (``gateway.metrics``)."""


    @abstractmethod
    async def add_cosignature(self, witness: str, size: int, line: str, at: datetime) -> None:
        """Keep a witness's cosignature line of the checkpoint of ``size`` (revision 0006);
        one already kept for that witness and size is left as it is."""

    @abstractmethod
    async def cosignatures(self, size: int | None = None) -> dict[int, list[str]]:
        """Checkpoint size → the cosignature lines kept for it, by witness (of one size,
        or of all when None); only sizes some witness cosigned appear."""

    @abstractmethod
    async def cosigned_size(self, witness: str) -> int:
        """The newest checkpoint size ``witness`` cosigned here; 0 when none."""


class TokenLedger(ABC):
    """Remembers every token id used until the token expires, to refuse replays."""

    @abstractmethod
    async def claim(self, issuer: str, token_id: str, expires_at: datetime, now: datetime) -> bool:
        """Record the token's use; False when it was already used."""


@dataclass(frozen=True, slots=True)
class OpenShare:
    """A permitted share neither acknowledged nor closed, as stored: what a service needs
    to decide whether, and how, to close it. ``delivered``: it is in the inbox, unread."""

    message_id: str
    recipient: str
    sender: str
    message_type: str
    route: str
    subject: SubjectKeys
    delivered: bool


@dataclass(frozen=True, slots=True)
class OverdueShare:
    """A delivered share whose escalation note this transaction inserted."""

    message_id: str
    recipient: str
    sender: str
    subject: SubjectKeys


class ShareRows(ABC):
    """Row operations on messages' shares inside one transaction (``unit_of_work``).

    Each reads or writes rows and decides nothing, except where a guard in the statement
    itself must decide who acts when several gateway processes act at once (``close``,
    ``note_escalations``): the caller acts on what the guard answers."""

    @abstractmethod
    def open_share(self, message_id: str, recipient: str) -> OpenShare | None:
        """The permitted share, unless there is none or it is acknowledged or closed."""

    @abstractmethod
    def close(
        self, message_id: str, recipient: str, reason: MessageStatus, at: datetime, *,
        delivered: bool,
    ) -> bool:
        """Close the share with ``reason`` if it is still open; False if it was not. An
        undelivered share gets a closed inbox row, so a later copy from the transport is a
        no-op; a ``delivered`` one has its open row closed. The statement is the guard:
        of several processes closing one share, one is told True."""

    @abstractmethod
    def release_outbox(self, message_id: str, recipient: str, at: datetime, reason: str) -> None:
        """The share's outbox row counts as published (if not yet), ``reason`` its error
        (if none), so the relay sends it no more."""

    @abstractmethod
    def end_dispatches(self, message_id: str, recipient: str, at: datetime, reason: str) -> None:
        """Every push still owed for the share is owed no more: done, with ``reason`` as
        its last error, and any claim on it released."""

    @abstractmethod
    def owe_dispatch(
        self, message_id: str, recipient: str, channel: str, purpose: DispatchPurpose,
        target: str, at: datetime,
    ) -> bool:
        """Owe one push, due now; False if the share already owes one for ``purpose``."""

    @abstractmethod
    def record_status(
        self, message_id: str, recipient: str | None, status: MessageStatus, at: datetime,
        detail: str | None = None,
    ) -> None:
        """A step or note in a share's history (``recipient`` None: the whole message's)."""

    @abstractmethod
    def note_escalations(
        self, message_type: str, delivered_before: datetime, detail: str, at: datetime
    ) -> list[OverdueShare]:
        """Insert an ESCALATED note for every share of ``message_type`` delivered before
        ``delivered_before``, still unacknowledged and open, and not escalated yet; the
        shares noted, in delivery order. One statement inserts them only where none is,
        so of several processes escalating at once each share is returned to one."""

    @abstractmethod
    def store_report(self, report: Mapping[str, Any], route: str, at: datetime) -> None:
        """Put a gateway report straight into its addressee's inbox (no transport: it is
        local); a report already stored (its id is derived from the event) is left as it
        is."""

    @abstractmethod
    def set_decision(
        self, message_id: str, recipient: str, decision: Decision, payload: Mapping[str, Any]
    ) -> None:
        """Store a new decision for an undelivered share and the payload it will deliver."""

    @abstractmethod
    def set_consent_record(self, message_id: str, recipient: str, record: str | None) -> None:
        """Store the consent record the share rests on from now on."""

    @abstractmethod
    def audit(self, log: AuditLog, event: AuditEvent) -> None:
        """Append ``event`` to ``log`` in this transaction (DPA 2018 s.62)."""


class ConsentRows(ShareRows):
    """``ShareRows`` and the consent rows a withdrawal reads and writes."""

    @abstractmethod
    def consent(self, consent_id: str) -> ConsentRecord | None: ...

    @abstractmethod
    def save_withdrawal(self, record: ConsentRecord) -> None:
        """Store ``record``, withdrawn, over the record with its id."""

    @abstractmethod
    def consent_shares(self, record: ConsentRecord) -> list[ConsentShare]:
        """Open permitted shares naming ``record``, and consent-based ones naming none
        whose message's subject keys share the record's name-dob or PNC (the columns
        narrow; whether it is the same person is the caller's rule), oldest message
        first."""


class MessageRepository(ABC):
    @abstractmethod
    async def ping(self) -> None:
        """Raise if the store cannot answer (readiness)."""

    @abstractmethod
    async def accept(
        self, submission: Submission, event: AuditEvent, audit: AuditLog
    ) -> Receipt:
        """Store message, status, outbox rows and the service's audit ``event`` in one
        transaction (the event is appended only when the message is new), with the
        submission's ``token_use`` first.

        Returns the original receipt for an identical resubmission and raises
        ``IdempotencyConflict`` when the id was used for different content.
        """

    @abstractmethod
    async def get(self, message_id: str) -> MessageRecord | None: ...

    @abstractmethod
    async def logged_entries(self, message_id: str) -> LoggedEntries | None:
        """Where the log holds a message's acceptance and each delivery (for receipts);
        None for an unknown message."""

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
    async def deliver_all(
        self, deliveries: Sequence[InboxDelivery], audit: AuditLog
    ) -> list[bool]:
        """``deliver`` for each, in order, in one transaction (all or none); for each,
        whether it was new."""

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
    async def unit_of_work(self, work: Callable[[ShareRows], T]) -> T:
        """Run ``work`` in one transaction and return its result once committed.

        The services that close or escalate a share (``gateway.services.undelivered``,
        ``gateway.services.alerts``) decide what happens and compose ``work`` from the
        row operations of ``ShareRows``, their audit entries included, so it all commits
        or none of it does. ``work`` may run more than once (``gateway.storage.engine``),
        so it acts through its rows and nothing else."""

    @abstractmethod
    async def unacknowledged_before(
        self, received_before: datetime, limit: int
    ) -> list[tuple[str, str]]:
        """(message id, recipient) of permitted shares still open since before a time."""

    @abstractmethod
    async def inbox(self, recipient: str, limit: int, after_seq: int = 0) -> list[InboxItem]:
        """Delivered, unacknowledged messages, oldest first."""

    @abstractmethod
    async def inbox_history(
        self, recipient: str, where: InboxFilter, limit: int, *, newest_first: bool = False
    ) -> list[InboxItem]:
        """Messages delivered to this recipient that match ``where`` (acknowledged and
        withdrawn ones too, never a share closed before it was delivered), by delivery."""

    @abstractmethod
    async def sent(self, sender: str, limit: int, offset: int = 0) -> list[MessageRecord]:
        """The organisation's own messages, newest first, each with its history."""

    @abstractmethod
    async def inbox_item(self, message_id: str, recipient: str) -> InboxItem | None:
        """One message as delivered to this recipient (its share only), acknowledged or
        not; None if it was never delivered there or has left the inbox (closed)."""

    @abstractmethod
    async def acknowledge(
        self, message_id: str, recipient: str, actor: str, at: datetime, audit: AuditLog,
        detail: str | None = None, token_use: TokenUse | None = None,
    ) -> Acknowledgement:
        """The recipient has read the share; with the request's ``token_use`` recorded in
        the same transaction (``TokenReplayed``, changing nothing, if it was used)."""

    @abstractmethod
    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        """How many outbox rows the transport has not yet confirmed, and when the oldest
        was written (None when there are none): for ``GET /metrics``."""

    @abstractmethod
    async def delivery_backlog(self) -> tuple[int, datetime | None]:
        """How many outbox rows the transport has not yet confirmed, and when the oldest
        the relay has not yet tried was written (None when none waits untried): for
        backpressure, where a row waiting out its retry backoff (one the recipient's side
        keeps failing) must not hold up everyone's intake."""

    @abstractmethod
    async def dispatch_backlog(self) -> dict[str, tuple[int, datetime]]:
        """By channel, how many owed pushes are not yet made and when the oldest was
        owed; channels with none are left out. For ``GET /metrics``."""


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


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    """An OpenID Connect sign-in under way (gateway.console.oidc), held server-side until
    the provider sends the browser back: ``id`` is the SHA-256 of the secret in the
    browser's cookie (binding the answer to the browser that asked, OIDC Core 1.0
    section 3.1.2.1 on ``state``); ``state`` and ``nonce`` are compared with what comes
    back, ``code_verifier`` is the PKCE secret (RFC 7636 section 4.1). Taken once."""

    id: str
    org_code: str
    state: str
    nonce: str
    code_verifier: str
    created_at: datetime


# An audit log and the event to append to it in the same transaction as the change.


class SessionRepository(ABC):
    """Server-side console sessions: a session exists only while its row does, so deleting
    the row (sign-out, or a person's sessions ended) revokes it at once. Given ``audited``,
    a change writes its audit entry in its own transaction (DPA 2018 s.62)."""

    @abstractmethod
    async def create(self, session: ConsoleSession, audited: Audited | None = None) -> None: ...

    @abstractmethod
    async def get(self, session_id: str) -> ConsoleSession | None: ...

    @abstractmethod
    async def touch(self, session_id: str, at: datetime) -> None:
        """Record activity (the idle timeout counts from the last)."""

    @abstractmethod
    async def delete(self, session_id: str, audited: Audited | None = None) -> bool:
        """End one session; False if there was none (and then nothing is audited)."""

    @abstractmethod
    async def delete_person(self, person_id: str, audited: Audited | None = None) -> int:
        """End every session of a person (sign-out everywhere); how many there were (the
        audit entry's ``sessions_ended``)."""

    @abstractmethod
    async def begin_sign_in(self, attempt: SignInAttempt, stale_before: datetime) -> None:
        """Hold a sign-in under way; attempts begun before ``stale_before`` are dropped."""

    @abstractmethod
    async def take_sign_in(self, attempt_id: str) -> SignInAttempt | None:
        """The attempt, removed as it is read: a provider's answer is used once at most."""
