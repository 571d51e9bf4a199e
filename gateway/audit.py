"""The audit seam: an entry is appended inside the same transaction as its event.

The signed Merkle log plugs in here by implementing :class:`AuditLog`; storage calls
``append`` with its open transaction, so an event and its audit entry commit together
or not at all. Until then :class:`NoAuditLog` records nothing and answers no index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class AuditAction(StrEnum):
    MESSAGE_ACCEPTED = "message.accepted"
    MESSAGE_REFUSED = "message.refused"
    MESSAGE_DELIVERED = "message.delivered"
    MESSAGE_ACKNOWLEDGED = "message.acknowledged"
    MESSAGE_DEAD_LETTERED = "message.dead_lettered"
    MESSAGE_EXPIRED = "message.expired"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened, to which message, by whom and on what basis (DPA 2018 s.62)."""

    action: AuditAction
    at: datetime
    actor: str
    message_id: str
    message_type: str
    recipients: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


class AuditLog(Protocol):
    def append(self, transaction: Any, event: AuditEvent) -> int | None:
        """Append inside ``transaction``; return the entry's index once it is sequenced."""
        ...


class NoAuditLog:
    """Records nothing; the signed audit log replaces it."""

    def append(self, transaction: Any, event: AuditEvent) -> int | None:
        return None
