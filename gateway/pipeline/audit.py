"""Audit events and their log entries (UK DPA 2018 s.62).

Every event that touches personal data — collection (accepted), disclosure (delivered),
consultation (any read), alteration (acknowledged, consent withdrawn), refusal, expiry —
becomes an entry that says what happened, when, who did it, to which message and
recipients, why (the rule and legal basis, or the stated purpose), and about whom as a
keyed pseudonym, never a name. Entries are appended inside the transaction of the event
itself (``AuditLog.append``), so an accepted message without its entry cannot exist.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from gateway.domain.model import Decision, isoformat
from gateway.pipeline.consent import SubjectKeys


class AuditAction(StrEnum):
    MESSAGE_ACCEPTED = "message.accepted"
    MESSAGE_REFUSED = "message.refused"
    MESSAGE_DELIVERED = "message.delivered"
    MESSAGE_ACKNOWLEDGED = "message.acknowledged"
    MESSAGE_DEAD_LETTERED = "message.dead_lettered"
    MESSAGE_EXPIRED = "message.expired"
    MESSAGE_WITHDRAWN = "message.withdrawn"
    CONSULTED = "consulted"
    CONSENT_RECORDED = "consent.recorded"
    CONSENT_WITHDRAWN = "consent.withdrawn"
    POLICY_PROPOSED = "policy.proposed"
    POLICY_APPROVED = "policy.approved"
    POLICY_ACTIVATED = "policy.activated"
    AUDIT_EXPORTED = "audit.exported"
    DIRECTORY_UPDATED = "directory.updated"
    DIRECTORY_IMPORT_PROPOSED = "directory.import_proposed"
    PERSON_ADDED = "person.added"
    PERSON_KEY_ADDED = "person.key_added"
    SYSTEM_KEY_ADDED = "system.key_added"
    KEY_REMOVED = "key.removed"
    GRANT_GIVEN = "grant.given"
    GRANT_REVOKED = "grant.revoked"
    ALERT_ESCALATED = "alert.escalated"
    SIGNING_KEY_ROTATED = "signing_key.rotated"
    # The web console (gateway.console): who signed in and out, and how (OIDC or demo);
    # refused sign-ins name why, never who the provider said it was.
    CONSOLE_SIGNED_IN = "console.signed_in"
    CONSOLE_SIGN_IN_REFUSED = "console.sign_in_refused"
    CONSOLE_SIGNED_OUT = "console.signed_out"
    CONSOLE_SIGNED_OUT_EVERYWHERE = "console.signed_out_everywhere"


def audited_decision(decision: Decision) -> dict[str, Any]:
    """What the log keeps of a decision: enough to justify the share (s.62(2)(a))."""
    view = decision.as_dict()
    return {k: view[k] for k in ("decision", "rule", "legal_basis", "consent", "consent_state",
                                 "redactions", "policy_version", "denied_because") if k in view}


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened, to which message, by whom and on what basis (DPA 2018 s.62)."""

    action: AuditAction
    at: datetime
    actor: str
    message_id: str | None = None
    message_type: str | None = None
    recipients: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    subject: SubjectKeys | None = None


class Pseudonymiser:
    """Keyed pseudonyms (HMAC-SHA-256): the same person always gets the same pseudonym,
    which no one without the key can turn back into, or test against, an identity."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the pseudonym key must be at least 32 bytes")
        self._key = key

    def of(self, keys: SubjectKeys) -> str:
        basis = f"pnc:{keys.pnc}" if keys.pnc else f"name-dob:{keys.name_dob}"
        digest = hmac.new(self._key, basis.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"psn:{digest[:32]}"


def entry_document(event: AuditEvent, index: int, pseudonyms: Pseudonymiser) -> dict[str, Any]:
    """The logged form of an event: JSON canonicalised (RFC 8785) before hashing."""
    entry: dict[str, Any] = {
        "index": index,
        "action": event.action.value,
        "at": isoformat(event.at),
        "actor": event.actor,
    }
    if event.message_id is not None:
        entry["message_id"] = event.message_id
    if event.message_type is not None:
        entry["message_type"] = event.message_type
    if event.recipients:
        entry["recipients"] = list(event.recipients)
    if event.subject is not None:
        entry["subject"] = pseudonyms.of(event.subject)
    if event.details:
        entry["details"] = dict(event.details)
    return entry


@dataclass(frozen=True, slots=True)
class SequencedEntry:
    """An entry as sequenced: its index and its RFC 6962 §2.1 leaf hash, both known when it
    is appended, so a receipt (``gateway.tlog.receipt``) costs the appender no read."""

    index: int
    leaf_hash: bytes


class AuditLog(Protocol):
    def append(self, transaction: Any, event: AuditEvent) -> int | None:
        """Append inside ``transaction``; return the entry's index once it is sequenced."""
        ...

    def append_entry(self, transaction: Any, event: AuditEvent) -> SequencedEntry | None:
        """``append``, answering the index with the entry's leaf hash."""
        ...
