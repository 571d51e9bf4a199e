"""``/v1/messages``: submit a message or a batch, follow its status; ``/v1/policy/decide``."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import structlog
from aiohttp import web

from gateway import access
from gateway.consent import SubjectKeys
from gateway.decision import combined
from gateway.errors import (
    AccessDenied,
    GatewayError,
    InvalidBatch,
    NotFound,
    PayloadTooLarge,
    Violation,
)
from gateway.http.body import read_json
from gateway.http.consultation import consulted
from gateway.http.context import principal_of
from gateway.http.problems import error_problem, internal_problem
from gateway.http.services import SERVICES, Services
from gateway.model import Principal, isoformat, overall_status, recipient_status
from gateway.storage.base import Receipt
from gateway.submission import receipt_view
from gateway.timescales import breaches

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)


@routes.post("/v1/messages")
async def submit_message(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = principal_of(request)
    document = await read_json(request)
    receipt = await services.submissions.submit(principal, document)
    _log_receipt(receipt, document)
    headers = {"Location": f"/v1/messages/{receipt.message_id}"}
    if receipt.replayed:
        headers["Idempotent-Replayed"] = "true"
    return web.json_response(receipt_view(receipt), status=202, headers=headers)


def _log_receipt(receipt: Receipt, document: Any) -> None:
    log.info(
        "message_replayed" if receipt.replayed else "message_accepted",
        message_id=receipt.message_id,
        message_type=document.get("type"),
        recipients=[code for code, _ in receipt.decisions],
    )


MAX_BATCH = 500
"""Items per batch: 500 typical messages stay well inside the 1 MiB body limit."""


@routes.post("/v1/messages/batch")
async def submit_batch(request: web.Request) -> web.Response:
    """Many messages under one token, each answered as ``POST /v1/messages`` would answer it.

    One token per message made bulk imports (court result lists) spend most of their time
    signing and verifying tokens. Every item still goes through ``SubmissionService.submit``
    alone; the items run concurrently so SQLite's group commit shares one fsync among them.
    """
    services = request.app[SERVICES]
    principal = principal_of(request)
    access.authorise(principal, access.Action.SEND, principal.org.code)
    documents = batch_items(await read_json(request))
    results = await asyncio.gather(*(
        _submit_item(services, principal, f"/v1/messages/batch#/messages/{index}", document)
        for index, document in enumerate(documents)
    ))
    # One line per batch, naming every message: a line per item cost more than the rest
    # of the item's handling.
    log.info(
        "batch_submitted",
        accepted=[r["body"]["message_id"] for r in results
                  if r["status"] == 202 and not r["replayed"]],
        replayed=[r["body"]["message_id"] for r in results if r.get("replayed")],
        statuses=dict(Counter(str(r["status"]) for r in results)),
    )
    return web.json_response(
        {"results": [{"index": index, **result} for index, result in enumerate(results)]}
    )


def batch_items(body: Any) -> list[Any]:
    """The batch's messages; a malformed or oversized batch is refused whole, storing nothing."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        raise InvalidBatch([Violation(
            "/messages" if isinstance(body, dict) else "",
            f'Send {{"messages": [envelope, ...]}} with 1 to {MAX_BATCH} messages.',
        )])
    if len(messages) > MAX_BATCH:
        raise PayloadTooLarge(
            f"A batch may hold at most {MAX_BATCH} messages, not {len(messages)}; "
            "split it into several batches."
        )
    return messages


async def _submit_item(
    services: Services, principal: Principal, instance: str, document: Any
) -> dict[str, Any]:
    try:
        receipt = await services.submissions.submit(principal, document)
    except GatewayError as error:
        status, problem = error_problem(error, instance)
        return {"status": status, "body": problem}
    except Exception:
        # Items already committed keep their answers; this one can be resent safely.
        log.exception("batch_item_failed", instance=instance)
        return {"status": 500, "body": internal_problem(instance)}
    return {"status": 202, "replayed": receipt.replayed, "body": receipt_view(receipt)}


@routes.get("/v1/messages/{message_id}")
async def message_status(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = principal_of(request)
    access.authorise(principal, access.Action.READ_STATUS, principal.org.code)
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
    """The decision the gateway would take, without storing or sending anything.

    A message without ``to`` has its recipients worked out from the gateway's records (the
    CJIT its history shows managing the person, the sender of the message it answers), so
    the answer discloses DIP history about that person even though nothing is sent. That
    read is logged as a consultation (DPA 2018 s.62(1)(b)) before answering, whether the
    answer is a decision or a refusal: "no one can be found" says something too.
    """
    services = request.app[SERVICES]
    principal = principal_of(request)
    document = await read_json(request)
    resolving = (
        isinstance(document, dict)
        and not document.get("to")
        and services.schemas.is_valid(document)
    )
    try:
        assessment = await services.submissions.assess(principal, document)
    except GatewayError as refused:
        if resolving:
            await consulted(
                services, principal, "recipient_resolution",
                subject=SubjectKeys.of(document["subject"]), type=document["type"],
                refused=refused.slug,
            )
        raise
    if resolving:
        await consulted(
            services, principal, "recipient_resolution",
            subject=SubjectKeys.of(document["subject"]), type=document["type"],
            resolved=dict(assessment.resolved_by),
        )
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
            "timescale_breaches": [
                b.as_dict()
                for b in breaches(assessment.envelope.document, services.directory.by_code())
            ],
        }
    )
