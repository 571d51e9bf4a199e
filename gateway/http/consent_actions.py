"""What ``/v1/consents`` does, in one place: recording, finding and withdrawing a person's
consent. The API's routes and the console's consent pages both call these, so every rule
(the request schema, unknown organisations, the period, who may withdraw, the reason, the
notices after a withdrawal, the consultation logged for a read) has one copy."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from gateway.domain.errors import InvalidMessage, MalformedRequest, NotFound, Violation
from gateway.domain.model import Principal
from gateway.http.consultation import consulted
from gateway.http.services import Services
from gateway.pipeline import access
from gateway.pipeline.audit import AuditAction, AuditEvent
from gateway.pipeline.consent import (
    ConsentForm,
    ConsentRecord,
    SubjectKeys,
    name_dob_key,
    normal_pnc,
    purposes_of,
)
from gateway.pipeline.resolution import managing_cjit
from gateway.pipeline.validation import explain, schema_validator
from gateway.storage.base import ShareOutcome, Withdrawal

log = structlog.get_logger(__name__)

REQUEST_SCHEMA_DOCUMENT: Mapping[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "api" / "consent_request.schema.json")
    .read_text(encoding="utf-8")
)
REQUEST_SCHEMA = schema_validator(REQUEST_SCHEMA_DOCUMENT)
MAX_REASON_CHARS = 500


def _when(text: str | None, default: datetime) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else default


def request_problems(services: Services, document: Any) -> list[Violation]:
    """What is wrong with a request to record a consent: its schema first, then (once the
    schema holds) organisation codes the directory does not know."""
    violations = sorted(set(explain(REQUEST_SCHEMA.iter_errors(document), ())),
                        key=lambda v: v.pointer)
    if violations:
        return violations
    return [
        Violation(f"/provision/actor_organisations/{i}",
                  f"{code} is not an organisation in the directory.")
        for i, code in enumerate(document["provision"].get("actor_organisations", []))
        if services.directory.get(code) is None
    ]


async def record_consent(services: Services, principal: Principal, document: Any) -> ConsentRecord:
    """Record a consent (the caller already passed ``access.check_consent_handler``);
    ``InvalidMessage`` with every violation when the request is not one."""
    violations = request_problems(services, document)
    if violations:
        raise InvalidMessage(violations)
    provision = document["provision"]
    now = services.clock()
    period = document.get("period", {})
    record = ConsentRecord(
        id=str(uuid.uuid4()),
        subject=document["subject"],
        keys=SubjectKeys.of(document["subject"]),
        form=ConsentForm(document["form"]),
        permit=provision["type"] == "permit",
        actor_roles=frozenset(provision.get("actor_roles", [])),
        actor_organisations=frozenset(provision.get("actor_organisations", [])),
        # A permit listing no purposes permits nothing (README, "Consent").
        purposes=purposes_of(provision.get("purpose", [])),
        period_start=_when(period.get("start"), now),
        period_end=_when(period["end"], now) if period.get("end") else None,
        information_given=document["information_given"],
        recorded_at=now,
        performer=principal.actor,
    )
    if record.period_end is not None and record.period_end <= record.period_start:
        raise InvalidMessage([Violation("/period/end", "The period must end after it starts.")])
    await services.consents.add(record, (services.audit, AuditEvent(
        action=AuditAction.CONSENT_RECORDED, at=now, actor=record.performer,
        subject=record.keys, details={"consent_id": record.id, "form": record.form.value,
                                      "permit": record.permit,
                                      "actor_roles": sorted(record.actor_roles),
                                      "actor_organisations": sorted(record.actor_organisations),
                                      "purposes": list(record.purposes)},
    )))
    log.info("consent_recorded", consent_id=record.id, form=record.form.value)
    return record


def subject_keys(query: Mapping[str, str]) -> SubjectKeys | None:
    """Whose consents a search asks for: ``pnc_id``, or ``given_name``, ``family_name``
    and ``date_of_birth`` together; None when it says neither."""
    if query.get("pnc_id"):
        return SubjectKeys(pnc=normal_pnc(query["pnc_id"]), name_dob=None)
    if all(query.get(k) for k in ("given_name", "family_name", "date_of_birth")):
        return SubjectKeys(pnc=None, name_dob=name_dob_key(
            query["given_name"], query["family_name"], query["date_of_birth"]))
    return None


async def find_consents(
    services: Services, principal: Principal, keys: SubjectKeys, channel: str | None = None
) -> list[ConsentRecord]:
    """A person's consents, the read logged as a consultation before it is answered (with
    the channel it came through, when not the API)."""
    records = await services.consents.matching(keys)
    subject = records[0].keys if records else None
    if channel is None:
        await consulted(services, principal, "consents", subject=subject, found=len(records))
    else:
        await consulted(services, principal, "consents", subject=subject, found=len(records),
                        channel=channel)
    return records


async def withdrawable(services: Services, principal: Principal, consent_id: str) -> ConsentRecord:
    """The consent, once the caller may withdraw it: the organisation that recorded it, or
    the CJIT managing the person (the gateway's own records decide which CJIT that is)."""
    existing = await services.consents.get(consent_id)
    if existing is None:
        raise NotFound(f"There is no consent record {consent_id}.")
    history = await services.messages.about_person(existing.keys, limit=50)
    access.check_consent_withdrawal(
        principal, existing.recorded_by,
        managing_cjit(history, existing.keys, services.directory.all()),
    )
    return existing


def valid_reason(reason: object) -> str | None:
    """The reason for a withdrawal, stripped, or None unless it is 1 to 500 characters."""
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON_CHARS:
        return None
    return reason.strip()


async def withdraw_consent(
    services: Services, principal: Principal, record: ConsentRecord, reason: object
) -> Withdrawal:
    """Withdraw a consent ``withdrawable`` gave: every open share that rested on it is
    decided again (``gateway.services.consents``), and the sender of each share stopped, or
    the recipient of each withdrawn or notified one, is told."""
    given = valid_reason(reason)
    if given is None:
        raise MalformedRequest(
            f"Say why the consent is withdrawn: {{'reason': '…'}}, 1 to {MAX_REASON_CHARS} "
            "characters."
        )
    withdrawal = await services.consent_withdrawals.withdraw(record.id, principal.actor, given)
    for share in withdrawal.shares:
        if share.outcome is ShareOutcome.STOPPED:
            services.notifier.notify(share.sender)
        elif share.outcome is not ShareOutcome.KEPT:
            services.notifier.notify(share.recipient)
    log.info("consent_withdrawn", consent_id=record.id, shares=len(withdrawal.shares))
    return withdrawal
