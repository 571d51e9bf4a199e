"""``/v1/policy``: the active policy, and safe editing for IG leads (validate, test, diff,
simulate, propose, approve). ``/v1/policy/decide`` lives with messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from aiohttp import web

from gateway import access
from gateway.audit import AuditAction, AuditEvent
from gateway.errors import AccessDenied, MalformedRequest
from gateway.http.body import read_json
from gateway.http.context import principal_of
from gateway.http.services import SERVICES, Services
from gateway.model import Principal
from gateway.policy.cases import run_cases
from gateway.policy.diff import diff, fact_domains, situations
from gateway.policy.document import parse_text
from gateway.policy.rules import PolicySet

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)

MAX_CHANGES_SHOWN = 500


def _ig_lead(request: web.Request) -> Principal:
    principal = principal_of(request)
    access.authorise(principal, access.Action.WORK_ON_POLICY)
    return principal


def _person_id(principal: Principal) -> str:
    """Policy versions name their author and approver by directory person id, so the
    two-person rule compares identities the gateway verified, never caller-chosen strings."""
    if principal.person is None:
        raise AccessDenied("Only a person proposes or approves a policy change.")
    return principal.person.id


def _text(body: Any, key: str = "text") -> str:
    if not isinstance(body, dict) or not isinstance(body.get(key), str):
        raise MalformedRequest(f"Send the policy YAML as a string in '{key}'.")
    return str(body[key])


def _rules_view(policy: PolicySet) -> list[dict[str, Any]]:
    return [
        {"id": r.id, "effect": r.effect.value, "consent": r.consent.value,
         "reason": r.reason, "legal_basis": r.legal_basis, "redact": list(r.redact)}
        for r in policy.rules
    ]


@routes.get("/v1/policy")
async def active_policy(request: web.Request) -> web.Response:
    principal_of(request)
    policy = request.app[SERVICES].policy.active
    return web.json_response(
        {"name": policy.name, "version": policy.version, "rules": _rules_view(policy)}
    )


@routes.get("/v1/policy/versions")
async def versions(request: web.Request) -> web.Response:
    _ig_lead(request)
    listed = await request.app[SERVICES].policy.versions()
    active = request.app[SERVICES].policy.active.version
    return web.json_response(
        {"active": active, "versions": [v.summary() for v in listed]}
    )


@routes.post("/v1/policy/versions")
async def propose(request: web.Request) -> web.Response:
    principal = _ig_lead(request)
    text = _text(await read_json(request))
    services = request.app[SERVICES]
    proposed = await services.policy.propose(text, _person_id(principal))
    await services.audit.record(AuditEvent(
        action=AuditAction.POLICY_PROPOSED, at=services.clock(), actor=principal.actor,
        details={"version": proposed.version, "name": proposed.name},
    ))
    log.info("policy_proposed", version=proposed.version)
    return web.json_response(proposed.summary(), status=201)


@routes.post("/v1/policy/versions/{version}/approve")
async def approve(request: web.Request) -> web.Response:
    principal = _ig_lead(request)
    body = await read_json(request) if request.can_read_body else {}
    effective_from = None
    raw = body.get("effective_from") if isinstance(body, dict) else None
    if raw is not None:
        try:
            effective_from = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            raise MalformedRequest("effective_from must be an RFC 3339 time.") from None
        if effective_from.tzinfo is None:
            raise MalformedRequest("effective_from needs a time zone, e.g. ...T09:00:00Z.")
    services = request.app[SERVICES]
    approved = await services.policy.approve(
        request.match_info["version"], _person_id(principal), effective_from
    )
    await services.audit.record(AuditEvent(
        action=AuditAction.POLICY_APPROVED, at=services.clock(), actor=principal.actor,
        details={"version": approved.version, "author": approved.author,
                 "effective_from": approved.summary()["effective_from"]},
    ))
    log.info("policy_approved", version=approved.version)
    return web.json_response(approved.summary())


@routes.post("/v1/policy/validate")
async def validate(request: web.Request) -> web.Response:
    _ig_lead(request)
    policy = request.app[SERVICES].policy.parse(_text(await read_json(request)))
    return web.json_response(
        {"valid": True, "name": policy.name, "version": policy.version,
         "rules": len(policy.rules)}
    )


@routes.post("/v1/policy/test")
async def test_cases(request: web.Request) -> web.Response:
    _ig_lead(request)
    body = await read_json(request)
    policy = request.app[SERVICES].policy.parse(_text(body))
    results = run_cases(policy, parse_text(_text(body, "cases")))
    failed = [r for r in results if not r.passed]
    return web.json_response(
        {"version": policy.version, "passed": len(results) - len(failed), "failed": len(failed),
         "failures": [r.describe() for r in failed]}
    )


async def _policy_from(services: Services, spec: Any) -> PolicySet:
    """A policy named by version (stored) or given as text; the active one by default."""
    if spec is None:
        return services.policy.active
    if isinstance(spec, dict) and isinstance(spec.get("text"), str):
        return services.policy.parse(spec["text"])
    if isinstance(spec, dict) and isinstance(spec.get("version"), str):
        for version in await services.policy.versions():
            if version.version == spec["version"]:
                return services.policy.parse(version.source_text)
        raise MalformedRequest(f"There is no policy version {spec['version']}.")
    raise MalformedRequest("Name a policy as {'version': …} or {'text': …}.")


@routes.post("/v1/policy/diff")
async def compare(request: web.Request) -> web.Response:
    _ig_lead(request)
    services = request.app[SERVICES]
    body = await read_json(request)
    if not isinstance(body, dict):
        raise MalformedRequest("Send {'before': …, 'after': …}.")
    before = await _policy_from(services, body.get("before"))
    after = await _policy_from(services, body.get("after"))
    changes = diff(before, after, situations(fact_domains(services.schemas.documents)))
    return web.json_response(
        {"before": before.version, "after": after.version, "changed": len(changes),
         "changes": [c.as_dict() for c in changes[:MAX_CHANGES_SHOWN]]}
    )


@routes.post("/v1/policy/simulate")
async def simulate(request: web.Request) -> web.Response:
    _ig_lead(request)
    services = request.app[SERVICES]
    body = await read_json(request)
    draft = services.policy.parse(_text(body))
    limit = body.get("limit", 10_000)
    if not isinstance(limit, int) or not 1 <= limit <= 100_000:
        raise MalformedRequest("limit must be a whole number from 1 to 100000.")
    replayed, changes = await services.policy.simulate(draft, limit)
    return web.json_response(
        {"draft": draft.version, "replayed": replayed, "changed": len(changes),
         "changes": [c.as_dict() for c in changes[:MAX_CHANGES_SHOWN]]}
    )
