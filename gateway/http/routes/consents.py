"""``/v1/consents``: record, list and withdraw a person's consent to share. What each does
is in ``gateway.http.consent_actions``, shared with the console's consent pages."""

from __future__ import annotations

from aiohttp import web

from gateway.domain.errors import MalformedRequest
from gateway.domain.model import Principal
from gateway.http.body import read_json
from gateway.http.consent_actions import (
    find_consents,
    subject_keys,
    withdrawable,
)
from gateway.http.consent_actions import (
    record_consent as record,
)
from gateway.http.consent_actions import (
    withdraw_consent as withdraw,
)
from gateway.http.context import principal_of
from gateway.http.services import SERVICES
from gateway.pipeline import access
from gateway.storage.base import ShareOutcome

routes = web.RouteTableDef()


def _consent_caller(request: web.Request) -> Principal:
    principal = principal_of(request)
    access.check_consent_handler(principal)
    return principal


@routes.post("/v1/consents")
async def record_consent(request: web.Request) -> web.Response:
    principal = _consent_caller(request)
    document = await read_json(request)
    consent = await record(request.app[SERVICES], principal, document)
    return web.json_response(
        consent.as_fhir(), status=201, headers={"Location": f"/v1/consents/{consent.id}"}
    )


@routes.get("/v1/consents")
async def list_consents(request: web.Request) -> web.Response:
    principal = _consent_caller(request)
    keys = subject_keys(request.query)
    if keys is None:
        raise MalformedRequest(
            "Say whose consent: ?pnc_id=…, or ?given_name=…&family_name=…&date_of_birth=…"
        )
    records = await find_consents(request.app[SERVICES], principal, keys)
    return web.json_response({"consents": [r.as_fhir() for r in records]})


@routes.post("/v1/consents/{consent_id}/withdraw")
async def withdraw_consent(request: web.Request) -> web.Response:
    """Withdraw a consent, saying why: by the organisation that recorded it, or by the CJIT
    managing the person (the gateway's own records decide which CJIT that is). Every open
    share that rested on it is decided again (``gateway.services.consents``); the answer
    lists each with its outcome, and ``stopped`` the undelivered ones refused."""
    principal = _consent_caller(request)
    services = request.app[SERVICES]
    existing = await withdrawable(services, principal, request.match_info["consent_id"])
    body = await read_json(request) if request.can_read_body else None
    reason = body.get("reason") if isinstance(body, dict) else None
    withdrawal = await withdraw(services, principal, existing, reason)
    return web.json_response(
        {
            "consent": withdrawal.record.as_fhir(),
            "stopped": [{"message_id": s.message_id, "recipient": s.recipient}
                        for s in withdrawal.shares if s.outcome is ShareOutcome.STOPPED],
            "shares": [s.as_dict() for s in withdrawal.shares],
        }
    )
