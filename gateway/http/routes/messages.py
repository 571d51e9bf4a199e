"""``/v1/messages``: submit a message, follow its status; ``/v1/policy/decide``."""

from __future__ import annotations

import structlog
from aiohttp import web

from gateway import access
from gateway.decision import combined
from gateway.errors import AccessDenied, NotFound
from gateway.http.body import read_json
from gateway.http.consultation import consulted
from gateway.http.context import principal_of
from gateway.http.services import SERVICES
from gateway.model import isoformat, overall_status, recipient_status
from gateway.submission import receipt_view

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)


@routes.post("/v1/messages")
async def submit_message(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = principal_of(request)
    document = await read_json(request)
    receipt = await services.submissions.submit(principal, document)
    log.info(
        "message_replayed" if receipt.replayed else "message_accepted",
        message_id=receipt.message_id,
        message_type=document.get("type"),
        recipients=[code for code, _ in receipt.decisions],
    )
    headers = {"Location": f"/v1/messages/{receipt.message_id}"}
    if receipt.replayed:
        headers["Idempotent-Replayed"] = "true"
    return web.json_response(receipt_view(receipt), status=202, headers=headers)


@routes.get("/v1/messages/{message_id}")
async def message_status(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = principal_of(request)
    access.require_role(principal, access.RECIPIENT_ROLES | access.SENDER_ROLES)
    message_id = request.match_info["message_id"].lower()
    record = await services.messages.get(message_id)
    if record is None:
        raise NotFound(f"There is no message {message_id}.")
    caller = principal.org.code
    if caller == record.sender:
        recipients = record.recipients
        history = record.history
        status = overall_status(history, recipients)
    elif caller in record.recipients:
        # A recipient sees its own share only, not who else received the message.
        recipients = (caller,)
        history = tuple(e for e in record.history if e.recipient in (None, caller))
        status = recipient_status(history, caller)
    else:
        raise AccessDenied("Only the sender and the recipients of a message may see it.")
    await consulted(services, principal, "message_status", message_ids=(record.message_id,))
    return web.json_response(
        {
            "message_id": record.message_id,
            "type": record.message_type,
            "from": record.sender,
            "recipients": list(recipients),
            "received_at": isoformat(record.received_at),
            "status": status.value,
            "history": [event.as_dict() for event in history],
        }
    )


@routes.post("/v1/policy/decide")
async def decide(request: web.Request) -> web.Response:
    """The decision the gateway would take, without storing or sending anything."""
    services = request.app[SERVICES]
    document = await read_json(request)
    assessment = await services.submissions.assess(principal_of(request), document)
    decisions = [decision for _, decision in assessment.decisions]
    return web.json_response(
        {
            "message_id": assessment.envelope.message_id,
            "recipients": [
                {
                    "code": org.code,
                    "decision": decision.as_dict(),
                    **({"resolved_by": assessment.resolved_by[org.code]}
                       if org.code in assessment.resolved_by else {}),
                }
                for org, decision in assessment.decisions
            ],
            "decision": combined(decisions),
        }
    )
