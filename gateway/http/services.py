"""The services a request handler may use, shared through one typed ``web.AppKey``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.administration import Administration
from gateway.auth import TokenVerifier
from gateway.checkpoints import AuditKeys, Checkpointer
from gateway.config import Settings
from gateway.consent_service import ConsentService
from gateway.directory import Directory
from gateway.inbox import InboxNotifier
from gateway.policy.service import PolicyService
from gateway.relay import OutboxRelay
from gateway.storage.base import (
    AuditRepository,
    ConsentRepository,
    MessageRepository,
    SessionRepository,
)
from gateway.submission import SubmissionService
from gateway.transport.base import Transport
from gateway.validation import SchemaSet


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    schemas: SchemaSet
    directory: Directory
    administration: Administration
    verifier: TokenVerifier
    submissions: SubmissionService
    messages: MessageRepository
    notifier: InboxNotifier
    transport: Transport
    relay: OutboxRelay
    policy: PolicyService
    consents: ConsentRepository
    consent_withdrawals: ConsentService
    audit: AuditRepository
    checkpointer: Checkpointer
    audit_keys: AuditKeys
    clock: Callable[[], datetime]
    delivery_key_public: Mapping[str, Any]
    sessions: SessionRepository


SERVICES = web.AppKey("services", Services)
