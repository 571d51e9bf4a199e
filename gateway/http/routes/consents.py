"""``/v1/consents``: record, list and withdraw a person's consent to share."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import structlog
from aiohttp import web

from gateway import access
from gateway.audit import AuditAction, AuditEvent
from gateway.consent import (
    ConsentForm,
    ConsentRecord,
    SubjectKeys,
    name_dob_key,
    normal_pnc,
    purposes_of,
)
from gateway.errors import InvalidMessage, MalformedRequest, NotFound, Violation
from gateway.http.body import read_json
from gateway.http.consultation import consulted
from gateway.http.context import principal_of
from gateway.http.services import SERVICES
from gateway.model import Principal
from gateway.resolution import managing_cjit
from gateway.storage.base import ShareOutcome
from gateway.validation import explain, schema_validator

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)

_REQUEST_SCHEMA = schema_validator(
    json.loads(
        (Path(__file__).resolve().parents[3] / "schemas" / "api" / "consent_request.schema.json")
        .read_text(encoding="utf-8")
    )
)
MAX_REASON_CHARS = 500


def _consent_caller(request: web.Request) -> Principal:
    principal = principal_of(request)
    access.check_consent_handler(principal)
    return principal


def _when(text: str | None, default: datetime) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else default


@routes.post("/v1/consents")
async def record_consent(request: web.Request) -> web.Response:
    principal = _consent_caller(request)
    services = request.app[SERVICES]
    document = await read_json(request)
    violations = sorted(set(explain(_REQUEST_SCHEMA.iter_errors(document), ())),
                        key=lambda v: v.pointer)
    if violations:
        raise InvalidMessage(violations)
    provision = document["provision"]
    unknown = [
        Violation(f"/provision/actor_organisations/{i}",
                  f"{code} is not an organisation in the directory.")
        for i, code in enumerate(provision.get("actor_organisations", []))
        if services.directory.get(code) is None
    ]
    if unknown:
        raise InvalidMessage(unknown)
    now = services.clock()
    period = document.get("period", {})
    record = ConsentRecord(
        id=str(uuid.uuid4()),
        subject=document["subject"],
        keys=SubjectKeys.of(document["subject"]),
        form=ConsentForm(document["form"]),
        permit=document["provision"]["type"] == "permit",
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
    await services.consents.add(record)
    await services.audit.record(AuditEvent(
        action=AuditAction.CONSENT_RECORDED, at=now, actor=record.performer,
        subject=record.keys, details={"consent_id": record.id, "form": record.form.value,
                                      "permit": record.permit,
                                      "actor_roles": sorted(record.actor_roles),
                                      "actor_organisations": sorted(record.actor_organisations),
                                      "purposes": list(record.purposes)},
    ))
    log.info("consent_recorded", consent_id=record.id, form=record.form.value)
    return web.json_response(
        record.as_fhir(), status=201, headers={"Location": f"/v1/consents/{record.id}"}
    )


@routes.get("/v1/consents")
async def list_consents(request: web.Request) -> web.Response:
    principal = _consent_caller(request)
    query = request.query
    if query.get("pnc_id"):
        keys = SubjectKeys(pnc=normal_pnc(query["pnc_id"]), name_dob=None)
    elif all(query.get(k) for k in ("given_name", "family_name", "date_of_birth")):
        keys = SubjectKeys(
            pnc=None,
            name_dob=name_dob_key(
                query["given_name"], query["family_name"], query["date_of_birth"]
            ),
        )
    else:
        raise MalformedRequest(
            "Say whose consent: ?pnc_id=…, or ?given_name=…&family_name=…&date_of_birth=…"
        )
    records = await request.app[SERVICES].consents.matching(keys)
    await consulted(
        request.app[SERVICES], principal, "consents",
        subject=records[0].keys if records else None, found=len(records),
    )
    return web.json_response({"consents": [r.as_fhir() for r in records]})


@routes.post("/v1/consents/{consent_id}/withdraw")
async def withdraw_consent(request: web.Request) -> web.Response:
    """Withdraw a consent, saying why: by the organisation that recorded it, or by the CJIT
    managing the person (the gateway's own records decide which CJIT that is). Every open
    share that rested on it is decided again (``gateway.consent_service``); the answer
    lists each with its outcome, and ``stopped`` the undelivered ones refused."""
    principal = _consent_caller(request)
    services = request.app[SERVICES]
    consent_id = request.match_info["consent_id"]
    existing = await services.consents.get(consent_id)
    if existing is None:
        raise NotFound(f"There is no consent record {consent_id}.")
    history = await services.messages.about_person(existing.keys, limit=50)
    access.check_consent_withdrawal(
        principal, existing.recorded_by,
        managing_cjit(history, existing.keys, services.directory.all()),
    )
    body = await read_json(request) if request.can_read_body else None
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON_CHARS:
        raise MalformedRequest(
            f"Say why the consent is withdrawn: {{'reason': '…'}}, 1 to {MAX_REASON_CHARS} "
            "characters."
        )
    withdrawal = await services.consent_withdrawals.withdraw(
        consent_id, principal.actor, reason.strip()
    )
    for share in withdrawal.shares:
        if share.outcome is ShareOutcome.STOPPED:
            services.notifier.notify(share.sender)
        elif share.outcome is not ShareOutcome.KEPT:
            services.notifier.notify(share.recipient)
    log.info("consent_withdrawn", consent_id=consent_id, shares=len(withdrawal.shares))
    return web.json_response(
        {
            "consent": withdrawal.record.as_fhir(),
            "stopped": [{"message_id": s.message_id, "recipient": s.recipient}
                        for s in withdrawal.shares if s.outcome is ShareOutcome.STOPPED],
            "shares": [s.as_dict() for s in withdrawal.shares],
        }
    )
