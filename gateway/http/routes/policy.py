"""``/v1/policy``: the active policy, and safe editing for IG leads (validate, test, diff,
simulate, propose, approve). ``/v1/policy/decide`` lives with messages. What each route
does is in ``gateway.http.policy_actions``, shared with the console's policy pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.domain.errors import MalformedRequest
from gateway.domain.model import Principal
from gateway.http import policy_actions
from gateway.http.body import read_json
from gateway.http.context import principal_of
from gateway.http.policy_actions import MAX_CHANGES_SHOWN
from gateway.http.services import SERVICES
from gateway.pipeline.policy.rules import PolicySet

routes = web.RouteTableDef()


def _ig_lead(request: web.Request) -> Principal:
    return policy_actions.ig_lead(principal_of(request))


def _text(body: Any, key: str = "text") -> str:
    if not isinstance(body, dict) or not isinstance(body.get(key), str):
        raise MalformedRequest(f"Send the policy YAML as a string in '{key}'.")
    return str(body[key])


def _reason(body: Any) -> str | None:
    """An optional reason for a proposal, kept in the audit log."""
    raw = body.get("reason") if isinstance(body, dict) else None
    if raw is None:
        return None
    reason = policy_actions.valid_reason(raw)
    if reason is None:
        raise MalformedRequest(
            f"reason must be text of 1 to {policy_actions.MAX_REASON_CHARS} characters.")
    return reason


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
    body = await read_json(request)
    proposed = await policy_actions.propose(
        request.app[SERVICES], principal, _text(body), _reason(body))
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
    approved = await policy_actions.approve(
        request.app[SERVICES], principal, request.match_info["version"], effective_from)
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
    policy, results = policy_actions.run_policy_cases(
        request.app[SERVICES], _text(body), _text(body, "cases"))
    failed = [r for r in results if not r.passed]
    return web.json_response(
        {"version": policy.version, "passed": len(results) - len(failed), "failed": len(failed),
         "failures": [r.describe() for r in failed]}
    )


@routes.post("/v1/policy/diff")
async def compare(request: web.Request) -> web.Response:
    _ig_lead(request)
    services = request.app[SERVICES]
    body = await read_json(request)
    if not isinstance(body, dict):
        raise MalformedRequest("Send {'before': …, 'after': …}.")
    before = await policy_actions.policy_from(services, body.get("before"))
    after = await policy_actions.policy_from(services, body.get("after"))
    changes = await policy_actions.compare(services, before, after)
    return web.json_response(
        {"before": before.version, "after": after.version, "changed": len(changes),
         "changes": [c.as_dict() for c in changes[:MAX_CHANGES_SHOWN]]}
    )


@routes.post("/v1/policy/simulate")
async def simulate(request: web.Request) -> web.Response:
    _ig_lead(request)
    body = await read_json(request)
    text = _text(body)
    draft, replayed, changes = await policy_actions.simulate(
        request.app[SERVICES], text, body.get("limit", policy_actions.DEFAULT_SIMULATION_LIMIT))
    return web.json_response(
        {"draft": draft.version, "replayed": replayed, "changed": len(changes),
         "changes": [c.as_dict() for c in changes[:MAX_CHANGES_SHOWN]]}
    )
