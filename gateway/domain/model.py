"""Typed domain values shared by every layer. No I/O here."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any


class OrgKind(StrEnum):
    """What an organisation is. The first eight are the programme's agencies, which send and
    receive messages: the five of DOMAIN.md, the Crown Prosecution Service (H 4.2 ¶2 names
    it beside the courts), PPO and Integrated Offender Management schemes (H 2.7, Com 5b)
    and community treatment providers (Com 4, H 4.1.3). An oversight body (the programme's
    audit and assurance function, or a regulator) reads the audit log; the operator is the
    national team running the gateway."""

    POLICE = "police"
    CJIT = "cjit"
    CARAT = "carat"
    PROBATION = "probation"
    COURT = "court"
    CPS = "cps"
    PPO_IOM = "ppo_iom"
    TREATMENT_PROVIDER = "treatment_provider"
    OVERSIGHT = "oversight"
    OPERATOR = "operator"


# The agencies that exchange messages; only these appear in policies and imports.
AGENCY_KINDS = frozenset(
    {OrgKind.POLICE, OrgKind.CJIT, OrgKind.CARAT, OrgKind.PROBATION, OrgKind.COURT,
     OrgKind.CPS, OrgKind.PPO_IOM, OrgKind.TREATMENT_PROVIDER}
)


class Role(StrEnum):
    """What an actor may do. ``system`` belongs to an organisation's machine keys and is never
    granted; every other role is held by a person through a grant the gateway stores."""

    SYSTEM = "system"
    SPOC = "spoc"
    IG_LEAD = "ig_lead"
    ORG_ADMIN = "org_admin"
    AUDITOR = "auditor"
    DIRECTORY_ADMIN = "directory_admin"


class MessageType(StrEnum):
    RA1_NOTICE = "ra1_notice"
    RA2_VARIATION = "ra2_variation"
    DIR_TRANSFER = "dir_transfer"
    DIR_ACCEPTANCE = "dir_acceptance"
    CARAT_REFERRAL = "carat_referral"
    COURT_OUTCOME = "court_outcome"
    DISENGAGEMENT_ALERT = "disengagement_alert"
    ASSESSMENT_OUTCOME = "assessment_outcome"
    # Flows of the handbook added by issue 11 (docs/handbook-coverage.md says where each is).
    PROACTIVE_REFERRAL = "proactive_referral"
    CONDITIONAL_CAUTION_NOTICE = "conditional_caution_notice"
    DRR_PROGRESS = "drr_progress"
    DRR_SUITABILITY = "drr_suitability"
    GATE_PICKUP = "gate_pickup"
    COMPLIANCE_REPORT = "compliance_report"
    PPO_NOMINATION = "ppo_nomination"
    TREATMENT_REFERRAL = "treatment_referral"
    TREATMENT_PROGRESS = "treatment_progress"
    DRR_HANDOVER = "drr_handover"


class Route(StrEnum):
    ENFORCEMENT = "enforcement"
    PROACTIVE_ENGAGEMENT = "proactive_engagement"


class MessageStatus(StrEnum):
    """Steps in a message's life; a message's status is derived from its history."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    DEAD_LETTERED = "dead_lettered"
    EXPIRED = "expired"
    # Delivered but not yet acknowledged when the consent it rested on was withdrawn: it
    # left the recipient's inbox (README, "Consent").
    WITHDRAWN = "withdrawn"
    # Notes in the history, not steps: an alert waited too long for acknowledgement; a
    # push channel's attempt failed (it is retried); the SPOC was sent an e-mail notice.
    ESCALATED = "escalated"
    ATTEMPT_FAILED = "attempt_failed"
    NOTIFIED = "notified"
    # Note: consent was withdrawn after the recipient acknowledged the share; it stays
    # acknowledged and the recipient was told.
    CONSENT_WITHDRAWN = "consent_withdrawn"


HISTORY_NOTES = frozenset(
    {MessageStatus.ESCALATED, MessageStatus.ATTEMPT_FAILED, MessageStatus.NOTIFIED,
     MessageStatus.CONSENT_WITHDRAWN}
)


class DeliveryChannel(StrEnum):
    """How messages held for an organisation reach it (chosen in the directory).

    ``pull``: its systems read the inbox API and stream. ``amqp``: it consumes its own
    RabbitMQ queue. ``webhook``: the gateway POSTs each message, signed, to its HTTPS
    endpoint. ``mesh``: the gateway sends each message to its NHS MESH mailbox.
    """

    PULL = "pull"
    AMQP = "amqp"
    WEBHOOK = "webhook"
    MESH = "mesh"


PUSH_CHANNELS = frozenset({DeliveryChannel.WEBHOOK, DeliveryChannel.MESH})


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """An organisation's channel and where it points; e-mail notices go to the SPOC's
    secure address when ``email_notices`` is on."""

    channel: DeliveryChannel = DeliveryChannel.PULL
    webhook_url: str | None = None
    mesh_mailbox: str | None = None
    email_notices: bool = True

    def as_dict(self) -> dict[str, Any]:
        view: dict[str, Any] = {"channel": self.channel.value, "email_notices": self.email_notices}
        if self.webhook_url is not None:
            view["webhook_url"] = self.webhook_url
        if self.mesh_mailbox is not None:
            view["mesh_mailbox"] = self.mesh_mailbox
        return view

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ChannelSettings:
        return cls(
            channel=DeliveryChannel(raw.get("channel", DeliveryChannel.PULL.value)),
            webhook_url=raw.get("webhook_url"),
            mesh_mailbox=raw.get("mesh_mailbox"),
            email_notices=bool(raw.get("email_notices", True)),
        )


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    phone: str | None = None
    email: str | None = None
    secure_email: str | None = None

    def as_dict(self) -> dict[str, str]:
        fields = {
            "name": self.name,
            "phone": self.phone,
            "email": self.email,
            "secure_email": self.secure_email,
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True, slots=True)
class IdentityProvider:
    """The OpenID Provider an organisation's people sign in to the console with, as the
    organisation registered it: its issuer (OIDC Discovery 1.0 section 4.3: the exact
    ``issuer`` of its discovery document and of every ID token) and the client id it gave
    the gateway. A client secret, if the provider issued one, is configuration
    (``DIPGW_OIDC_CLIENT_SECRET_<CODE>``), never directory data."""

    issuer: str
    client_id: str

    def as_dict(self) -> dict[str, str]:
        return {"issuer": self.issuer, "client_id": self.client_id}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> IdentityProvider | None:
        if not raw:
            return None
        return cls(str(raw["issuer"]), str(raw["client_id"]))


@dataclass(frozen=True, slots=True)
class Organisation:
    """An agency in the directory, with the public keys its systems sign tokens with."""

    code: str
    kind: OrgKind
    name: str
    area: str
    spoc: Contact
    jwks: tuple[Mapping[str, Any], ...] = ()
    # Local authorities / partnerships whose residents this CJIT serves (H 4.7.4).
    areas_served: tuple[str, ...] = ()
    delivery: ChannelSettings = field(default_factory=lambda: ChannelSettings())
    # Where its people sign in to the console (None: no one of it can, but by demo page).
    identity_provider: IdentityProvider | None = None
    # Its messages must carry its systems' signature (gateway.sdjwt); refused unsigned.
    signed_messages_required: bool = False

    def public_view(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "code": self.code,
            "kind": self.kind.value,
            "name": self.name,
            "area": self.area,
            "spoc": self.spoc.as_dict(),
        }
        if self.areas_served:
            view["areas_served"] = list(self.areas_served)
        view["delivery"] = {"channel": self.delivery.channel.value}
        if self.identity_provider is not None:
            view["identity_provider"] = self.identity_provider.as_dict()
        if self.signed_messages_required:
            view["signed_messages_required"] = True
        return view


@dataclass(frozen=True, slots=True)
class SignIn:
    """The verified identity a person signs in to the console with (OpenID Connect issuer
    and subject, OIDC Core 1.0 section 2: the pair is the stable identifier)."""

    issuer: str
    subject: str

    def as_dict(self) -> dict[str, str]:
        return {"issuer": self.issuer, "subject": self.subject}


@dataclass(frozen=True, slots=True)
class Person:
    """A person in the directory: one organisation, the keys they hold for the CLI, and the
    identity they sign in with. What they may do comes from their grants, never a token."""

    id: str
    org_code: str
    name: str
    email: str
    sign_in: SignIn | None = None
    jwks: tuple[Mapping[str, Any], ...] = ()

    def public_view(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": self.id,
            "organisation": self.org_code,
            "name": self.name,
            "email": self.email,
            "keys": [str(k.get("kid")) for k in self.jwks],
        }
        if self.sign_in is not None:
            view["sign_in"] = self.sign_in.as_dict()
        return view


@dataclass(frozen=True, slots=True)
class Grant:
    """A role held by a person: who granted it, when and why; revoked grants are kept."""

    id: str
    person_id: str
    role: Role
    granted_by: str
    granted_at: datetime
    reason: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revocation_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def as_dict(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": self.id,
            "person": self.person_id,
            "role": self.role.value,
            "granted_by": self.granted_by,
            "granted_at": isoformat(self.granted_at),
            "reason": self.reason,
        }
        if self.revoked_at is not None:
            view |= {
                "revoked_at": isoformat(self.revoked_at),
                "revoked_by": self.revoked_by,
                "revocation_reason": self.revocation_reason,
            }
        return view


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as the gateway established it: an organisation's system, or one of
    its people, with the roles the gateway holds for them (narrowed by the token's ``role``
    claim, never widened). ``subject`` is the person's directory id, or for a system the
    name its token gives (a label only: it grants nothing)."""

    org: Organisation
    roles: frozenset[Role]
    subject: str
    token_id: str
    person: Person | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller: ``ORG/person-id`` or ``ORG/system-name``."""
        return f"{self.org.code}/{self.subject}"


class TokenUse:
    """A verified token's single use, still to be recorded (RFC 7519 section 4.1.7): the
    issuer, its ``jti``, and until when to remember it.

    Recorded by default before the request is handled; a submission records it in the
    same transaction as the message, and says so in ``recorded``, saving a transaction
    per message. Whatever the handler did, an unrecorded use is recorded after it, so a
    token is never left usable (``gateway.http.context``)."""

    __slots__ = ("issuer", "recorded", "remember_until", "token_id")

    def __init__(self, issuer: str, token_id: str, remember_until: datetime) -> None:
        self.issuer = issuer
        self.token_id = token_id
        self.remember_until = remember_until
        self.recorded = False


def canonical_json(document: Any) -> bytes:
    """Deterministic JSON bytes used for content hashes (idempotency)."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Envelope:
    """A schema-valid submitted message. Built only from a document that passed validation."""

    message_id: str
    type: MessageType
    sent_at: str
    sender: str
    recipients: tuple[str, ...]
    route: Route
    document: Mapping[str, Any] = field(repr=False)
    content_hash: str = field(repr=False)
    #: ``canonical_json(document)``, kept because the document is stored as this text:
    #: producing it again took about 2% of the event loop's time in
    #: bench/court_results_import.py.
    canonical: bytes = field(repr=False, compare=False)
    #: The sender's SD-JWT of ``document`` with every disclosure (``gateway.sdjwt``),
    #: verified with a key registered to the sender; None for an unsigned message.
    sender_signature: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Envelope:
        # UUIDs are case-insensitive (RFC 9562): one id however it is spelt.
        document = {**document, "message_id": str(document["message_id"]).lower()}
        canonical = canonical_json(document)
        return cls(
            message_id=document["message_id"],
            type=MessageType(document["type"]),
            sent_at=document["sent_at"],
            sender=document["from"],
            recipients=tuple(document.get("to", ())),
            route=Route(document["route"]),
            document=document,
            content_hash=hashlib.sha256(canonical).hexdigest(),
            canonical=canonical,
        )

    def with_recipients(self, codes: tuple[str, ...]) -> Envelope:
        """The envelope addressed by the gateway; its identity (hash) stays the sender's."""
        document = {**self.document, "to": list(codes)}
        return replace(self, recipients=codes, document=document,
                       canonical=canonical_json(document))


class Consent(StrEnum):
    NOT_REQUIRED = "not_required"
    REQUIRED = "required"
    WRITTEN_REQUIRED = "written_required"


@dataclass(frozen=True, slots=True)
class Decision:
    """A sharing decision for one message and one recipient (CONTRACT.md, "A decision")."""

    permitted: bool
    consent: Consent
    consent_satisfied: bool
    redactions: tuple[str, ...]
    rule: str
    legal_basis: str
    policy_version: str
    rules: tuple[str, ...] = ()
    reason: str = ""
    denied_because: str | None = None
    consent_state: str | None = None
    # What the share is for (gateway/pipeline/policy/facts.py), and the consent record a permit
    # that needs consent relied on: withdrawing that record re-decides this share.
    purpose: str | None = None
    consent_record: str | None = None
    # Purposes of field groups withheld because the consent did not list them
    # (gateway.pipeline.policy.facts.FIELD_PURPOSES); their pointers are among the redactions.
    withheld_for: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "decision": "permit" if self.permitted else "deny",
            "consent": self.consent.value,
            "consent_satisfied": self.consent_satisfied,
            "redactions": list(self.redactions),
            "rule": self.rule,
            "rules": list(self.rules or (self.rule,)),
            "reason": self.reason,
            "legal_basis": self.legal_basis,
            "policy_version": self.policy_version,
        }
        if self.consent_state is not None:
            view["consent_state"] = self.consent_state
        if self.purpose is not None:
            view["purpose"] = self.purpose
        if self.consent_record is not None:
            view["consent_record"] = self.consent_record
        if self.withheld_for:
            view["withheld_for"] = list(self.withheld_for)
        if not self.permitted:
            view["denied_because"] = self.denied_because
        return view

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Decision:
        return cls(
            permitted=raw["decision"] == "permit",
            consent=Consent(raw["consent"]),
            consent_satisfied=raw["consent_satisfied"],
            redactions=tuple(raw["redactions"]),
            rule=raw["rule"],
            legal_basis=raw["legal_basis"],
            policy_version=raw["policy_version"],
            rules=tuple(raw.get("rules", (raw["rule"],))),
            reason=raw.get("reason", ""),
            denied_because=raw.get("denied_because"),
            consent_state=raw.get("consent_state"),
            purpose=raw.get("purpose"),
            consent_record=raw.get("consent_record"),
            withheld_for=tuple(raw.get("withheld_for", ())),
        )


@dataclass(frozen=True, slots=True)
class StatusEvent:
    status: MessageStatus
    at: datetime
    recipient: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status.value, "at": isoformat(self.at)}
        if self.recipient is not None:
            out["recipient"] = self.recipient
        if self.detail is not None:
            out["detail"] = self.detail
        return out


def isoformat(moment: datetime) -> str:
    """RFC 3339 UTC time with a ``Z`` suffix, as every API answer shows times."""
    return moment.isoformat().replace("+00:00", "Z")


def recipient_status(history: tuple[StatusEvent, ...], recipient: str) -> MessageStatus:
    """Where a message stands for one recipient: its latest step, else the message's."""
    latest = MessageStatus.ACCEPTED
    for event in history:
        if event.recipient is None and event.status is MessageStatus.REFUSED:
            latest = MessageStatus.REFUSED
        elif event.recipient == recipient and event.status not in HISTORY_NOTES:
            latest = event.status
    return latest


def overall_status(history: tuple[StatusEvent, ...], recipients: tuple[str, ...]) -> MessageStatus:
    """The message's status: the least advanced of its recipients' (refused ones aside)."""
    states = [recipient_status(history, r) for r in recipients]
    live = [s for s in states if s is not MessageStatus.REFUSED]
    if not live:
        return MessageStatus.REFUSED
    for status in (MessageStatus.DEAD_LETTERED, MessageStatus.EXPIRED, MessageStatus.ACCEPTED,
                   MessageStatus.WITHDRAWN):
        if status in live:
            return status
    if all(s is MessageStatus.ACKNOWLEDGED for s in live):
        return MessageStatus.ACKNOWLEDGED
    return MessageStatus.DELIVERED
