"""The services a request handler may use, shared through one typed ``web.AppKey``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.config import Settings
from gateway.metrics import Metrics
from gateway.pipeline.validation import SchemaSet
from gateway.services.administration import Administration
from gateway.services.auth import TokenVerifier
from gateway.services.checkpoints import AuditKeys, Checkpointer
from gateway.services.consents import ConsentService
from gateway.services.directory import Directory
from gateway.services.inbox import InboxNotifier
from gateway.services.policy import PolicyService
from gateway.services.relay import OutboxRelay
from gateway.services.submission import SubmissionService
from gateway.services.witnessing import Witnessing
from gateway.storage.base import (
    AuditRepository,
    ConsentRepository,
    MessageRepository,
    SessionRepository,
)
from gateway.transport.base import Transport


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
    witnessing: Witnessing
    audit_keys: AuditKeys
    clock: Callable[[], datetime]
    delivery_key_public: Mapping[str, Any]
    sessions: SessionRepository
    metrics: Metrics


SERVICES = web.AppKey("services", Services)
