"""What ``/v1/policy`` does, in one place: checking a draft, running its cases, comparing
two policies, replaying past traffic, proposing and approving a version. The API's routes
and the console's policy pages (``gateway.console.policy_pages``) both call these, so every
rule (who may edit, the two-person rule, the limits, what is audited) has one copy.

A version takes effect only once an IG lead other than its author has approved it
(``access.check_second_person``, ``PolicyService.approve``). Proposals and approvals are
logged in the signed audit log with the reason given (DPA 2018 s.62(1)(c): alteration, with
its justification); reading a policy concerns no person and is not logged as a
consultation, as the API does not log it either."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from gateway.domain.errors import AccessDenied, MalformedRequest
from gateway.domain.model import Principal
from gateway.http.services import Services
from gateway.pipeline import access
from gateway.pipeline.audit import AuditAction, AuditEvent
from gateway.pipeline.policy.cases import CaseResult, run_cases
from gateway.pipeline.policy.diff import Change, diff, fact_domains, situations
from gateway.pipeline.policy.document import parse_text
from gateway.pipeline.policy.rules import PolicySet
from gateway.storage.base import PolicyVersion

log = structlog.get_logger(__name__)

MAX_CHANGES_SHOWN = 500
DEFAULT_SIMULATION_LIMIT = 10_000
MAX_SIMULATION_LIMIT = 100_000
MAX_REASON_CHARS = 1000
# Comparisons remembered (least recently used dropped): a few drafts under review at once.
COMPARISONS_KEPT = 16
_COMPARED: OrderedDict[tuple[str, str, str], tuple[Change, ...]] = OrderedDict()


def ig_lead(principal: Principal) -> Principal:
    """Only IG leads work on the policy (any organisation's: the policy is the gateway's)."""
    access.authorise(principal, access.Action.WORK_ON_POLICY)
    return principal


def person_id(principal: Principal) -> str:
    """Policy versions name their author and approver by directory person id, so the
    two-person rule compares identities the gateway verified, never caller-chosen strings."""
    if principal.person is None:
        raise AccessDenied("Only a person proposes or approves a policy change.")
    return principal.person.id


def valid_reason(reason: Any) -> str | None:
    """A reason as stored: trimmed, 1 to ``MAX_REASON_CHARS`` characters; None otherwise."""
    if not isinstance(reason, str):
        return None
    text = reason.strip()
    return text if 0 < len(text) <= MAX_REASON_CHARS else None


def run_policy_cases(
    services: Services, text: str, cases_text: str
) -> tuple[PolicySet, list[CaseResult]]:
    """A draft and its agreed outcomes (``gateway.pipeline.policy.cases``): every case's result."""
    policy = services.policy.parse(text)
    return policy, run_cases(policy, parse_text(cases_text))


async def find_version(services: Services, version: str) -> PolicyVersion | None:
    for stored in await services.policy.versions():
        if stored.version == version:
            return stored
    return None


async def policy_from(services: Services, spec: Any) -> PolicySet:
    """A policy named by version (stored) or given as text; the active one by default."""
    if spec is None:
        return services.policy.active
    if isinstance(spec, dict) and isinstance(spec.get("text"), str):
        return services.policy.parse(spec["text"])
    if isinstance(spec, dict) and isinstance(spec.get("version"), str):
        stored = await find_version(services, spec["version"])
        if stored is not None:
            return services.policy.parse(stored.source_text)
        raise MalformedRequest(f"There is no policy version {spec['version']}.")
    raise MalformedRequest("Name a policy as {'version': …} or {'text': …}.")


async def compare(services: Services, before: PolicySet, after: PolicySet) -> list[Change]:
    """Every situation the two policies decide differently: each message type with every
    value of its facts (read from the schemas), route, sender and recipient kind and
    consent state (``gateway.pipeline.policy.diff``). Some 86,000 situations take a second or two
    of pure computation, so they are decided in a worker thread: the event loop goes on
    delivering messages and alerts meanwhile.

    The answer depends only on the two policies' texts (their versions are content hashes)
    and the facts' values, so it is remembered: an IG lead who checks a draft, proposes it
    and opens the proposal, and the colleague who then reviews it, wait for it once."""
    domains = fact_domains(services.schemas.documents)
    key = (before.version, after.version,
           hashlib.sha256(json.dumps(domains, sort_keys=True, default=str).encode()).hexdigest())
    known = _COMPARED.get(key)
    if known is not None:
        _COMPARED.move_to_end(key)
        return list(known)
    changes = await asyncio.to_thread(diff, before, after, situations(domains))
    _COMPARED[key] = tuple(changes)
    while len(_COMPARED) > COMPARISONS_KEPT:
        _COMPARED.popitem(last=False)
    return changes


def simulation_limit(raw: Any) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or not (
        1 <= raw <= MAX_SIMULATION_LIMIT
    ):
        raise MalformedRequest(
            f"limit must be a whole number from 1 to {MAX_SIMULATION_LIMIT}.")
    return raw


async def simulate(
    services: Services, text: str, limit: int = DEFAULT_SIMULATION_LIMIT
) -> tuple[PolicySet, int, list[Change]]:
    """The draft, how many recorded shares were replayed through it, and those it would
    have decided differently."""
    draft = services.policy.parse(text)
    replayed, changes = await services.policy.simulate(draft, simulation_limit(limit))
    return draft, replayed, changes


async def propose(
    services: Services, principal: Principal, text: str, reason: str | None = None
) -> PolicyVersion:
    """Store a proposed version and log its proposal, with the reason when one is given."""
    author = person_id(ig_lead(principal))

    def proposal(stored: PolicyVersion) -> AuditEvent:
        details: dict[str, Any] = {"version": stored.version, "name": stored.name}
        if reason is not None:
            details["reason"] = reason
        return AuditEvent(action=AuditAction.POLICY_PROPOSED, at=stored.proposed_at,
                          actor=principal.actor, details=details)

    proposed = await services.policy.propose(text, author, proposal, reason)
    log.info("policy_proposed", version=proposed.version)
    return proposed


async def approve(
    services: Services, principal: Principal, version: str,
    effective_from: datetime | None = None,
) -> PolicyVersion:
    """A second IG lead's approval: never the author's own (two-person rule)."""
    approver = person_id(ig_lead(principal))
    stored = await find_version(services, version)
    if stored is not None:
        access.check_second_person(principal, stored.author, "a policy change")

    def approval(stored: PolicyVersion) -> AuditEvent:
        return AuditEvent(
            action=AuditAction.POLICY_APPROVED, at=stored.approved_at or services.clock(),
            actor=principal.actor,
            details={"version": stored.version, "author": stored.author,
                     "effective_from": stored.summary()["effective_from"]},
        )

    approved = await services.policy.approve(version, approver, effective_from, approval)
    log.info("policy_approved", version=approved.version)
    return approved


@dataclass(frozen=True, slots=True)
class Status:
    """Where a version stands: its words, and a GOV.UK tag colour."""

    words: str
    colour: str


def status(version: PolicyVersion, active: str, now: datetime) -> Status:
    if version.version == active:
        return Status("Active", "green")
    if version.approved_by is None:
        return Status("Waiting for approval", "yellow")
    if version.effective_from is not None and version.effective_from > now:
        return Status("Approved, not yet in force", "blue")
    return Status("Replaced", "grey")
