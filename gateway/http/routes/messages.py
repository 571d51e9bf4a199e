"""``/v1/messages``: submit a message or a batch, follow its status; ``/v1/policy/decide``."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import structlog
from aiohttp import web

from gateway.domain.errors import (
    AccessDenied,
    GatewayError,
    InvalidBatch,
    NotFound,
    PayloadTooLarge,
    Violation,
)
from gateway.domain.model import (
    MessageStatus,
    Principal,
    StatusEvent,
    isoformat,
    overall_status,
    recipient_status,
)
from gateway.domain.timescales import breaches
from gateway.http.body import query_int, read_json, read_message
from gateway.http.consultation import consulted
from gateway.http.context import TOKEN_USE, principal_of
from gateway.http.decide_actions import assess_and_log
from gateway.http.problems import error_problem, internal_problem
from gateway.http.services import SERVICES, Services
from gateway.pipeline import access
from gateway.pipeline.decision import combined
from gateway.sdjwt.envelope import SignedEnvelope
from gateway.services import receipts
from gateway.services.submission import receipt_view
from gateway.storage.base import MessageRecord, Receipt

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)


@routes.post("/v1/messages")
async def submit_message(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = principal_of(request)
    document = await read_message(request)
    receipt = await services.submissions.submit(
        principal, document, token_use=request[TOKEN_USE])
    _log_receipt(receipt, document)
    headers = {"Location": f"/v1/messages/{receipt.message_id}"}
    if receipt.replayed:
        headers["Idempotent-Replayed"] = "true"
    return web.json_response(receipt_view(receipt), status=202, headers=headers)


def _log_receipt(receipt: Receipt, document: Any) -> None:
    log.info(
        "message_replayed" if receipt.replayed else "message_accepted",
        message_id=receipt.message_id,
        message_type=receipt.message_type,
        signed=isinstance(document, SignedEnvelope),
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
    An item is an envelope, or (a string) the sender's SD-JWT of one.
    """
    services = request.app[SERVICES]
    principal = principal_of(request)
    access.authorise(principal, access.Action.SEND, principal.org.code)
    documents = batch_items(await read_json(request))
    services.submissions.admit()
    results = await asyncio.gather(*(
        _submit_item(services, principal, f"/v1/messages/batch#/messages/{index}",
                     SignedEnvelope(document) if isinstance(document, str) else document)
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
        receipt = await services.submissions.submit(principal, document, admitted=True)
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
    recipients, history, status = visible_status(record, principal.org.code)
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


@routes.get("/v1/messages/{message_id}/receipt")
async def message_receipt(request: web.Request) -> web.Response:
    """The audit receipt of the caller's part in a message (``gateway.services.receipts``):
    its log entry and an inclusion proof in the newest signed checkpoint, or in the one of
    ``?size=N``, to carry an older receipt to a later checkpoint. Authorised as
    ``GET /v1/messages/{id}`` is, from the caller's grants; a message that is not the
    caller's is answered as one that does not exist. Logged as a consultation: the entry
    names the message's subject by pseudonym (DPA 2018 s.62(1)(b))."""
    services = request.app[SERVICES]
    principal = principal_of(request)
    access.authorise(principal, access.Action.READ_STATUS, principal.org.code)
    message_id = request.match_info["message_id"].lower()
    size = query_int(request, "size", minimum=1) if "size" in request.query else None
    receipt = await receipts.message_receipt(
        services.messages, services.audit, services.checkpointer, services.audit_keys.origin,
        message_id, principal.org.code, size)
    await consulted(services, principal, "message_receipt", message_ids=(message_id,),
                    index=receipt.index)
    return web.json_response(receipt.as_json())


def visible_status(
    record: MessageRecord, caller: str
) -> tuple[tuple[str, ...], tuple[StatusEvent, ...], MessageStatus]:
    """The recipients, history and status of a message as ``caller`` may see them: all of
    it for its sender, only its own share for a recipient (not who else received it), and
    nothing for anyone else. ``GET /v1/messages/{id}`` and the console's sent pages ask it."""
    if caller == record.sender:
        return record.recipients, record.history, overall_status(
            record.history, record.recipients)
    if caller in record.recipients:
        history = tuple(e for e in record.history if e.recipient in (None, caller))
        return (caller,), history, recipient_status(history, caller)
    raise AccessDenied("Only the sender and the recipients of a message may see it.")


@routes.post("/v1/policy/decide")
async def decide(request: web.Request) -> web.Response:
    """The decision the gateway would take, without storing or sending anything, with the
    consultation working out the recipients is (``gateway.http.decide_actions``, which the
    console's check page calls too)."""
    services = request.app[SERVICES]
    principal = principal_of(request)
    document = await read_json(request)
    assessment = await assess_and_log(services, principal, document)
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
