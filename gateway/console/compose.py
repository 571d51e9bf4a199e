"""Compose and send a message through a form generated from its JSON Schema (issue 12).

Small agencies without a case management system send here what agency systems send to
``POST /v1/messages``. The pages follow the GOV.UK "Question pages" and "Check answers"
patterns: choose a type, answer the form, check the answers and the sharing decision, send,
see the confirmation panel. Every rule is the API's own, never a copy:

* who may send what: ``gateway.pipeline.access`` (``Action.SEND``, ``SENDING_RULES``, the sender's
  kind and ``SENDER_STATES``), asked through ``access.check_sender`` as the API asks it;
* whether the answers make a valid message: ``SubmissionService.assess``, the schema
  validator (``gateway.pipeline.validation``) and the consistency and recipient checks of the
  submission path, whose violations carry the RFC 6901 pointers the error summary links;
* the decision shown before sending: ``gateway.http.decide_actions.assess_and_log``, what
  ``POST /v1/policy/decide`` answers, with its consultation (DPA 2018 s.62(1)(b));
* sending: ``SubmissionService.submit`` with the person as the principal, stored and
  audited in one transaction as the API's submissions are.

The draft lives in the form itself, not on the server: the check page carries every answer
in hidden fields, with the ``message_id`` and ``sent_at`` fixed when that page is made. Hidden
fields are enough because they grant nothing: whatever comes back is validated and decided
again by ``submit``, exactly as if the person had typed it, and a person may send only
what their own grants allow. They also make "Send" idempotent without any draft store: a
double click posts the same document twice, and the gateway answers the second with the
first's receipt and never delivers twice (CONTRACT.md, ``POST /v1/messages``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog
from aiohttp import web

from gateway.console import pages
from gateway.console.pages import CHANNEL
from gateway.console.schema_form import (
    Choice,
    ErrorLink,
    Field,
    Kind,
    Schemas,
    add_row,
    answer_rows,
    build,
    document_of,
    error_links,
    field_at,
)
from gateway.console.security import form_with_token
from gateway.console.words import humanise
from gateway.domain.errors import (
    GatewayError,
    IdempotencyConflict,
    InvalidMessage,
    NotFound,
    PolicyRefused,
)
from gateway.domain.model import Consent, Decision, MessageType, Organisation, Principal, isoformat
from gateway.domain.timescales import breaches
from gateway.http.consultation import consulted
from gateway.http.decide_actions import assess_and_log
from gateway.http.services import Services
from gateway.pipeline import access
from gateway.pipeline.policy.facts import FIELD_PURPOSES
from gateway.services.submission import Assessment

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)

ORG_CODE = "urn:dipgw:schema:common:1#/$defs/org_code"
ENVELOPE_PARTS = ("to", "route", "subject")
"""The parts of the envelope a person answers; ``message_id``, ``type``, ``schema_version``,
``sent_at`` and ``from`` are the gateway's to fill (``from`` is always their organisation)."""
_ANSWER = re.compile(r"(to|route|subject|body)(-[A-Za-z0-9_-]*)?")
_MESSAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_SENT_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


# --- who may send what ------------------------------------------------------------------


def _sender(request: web.Request) -> Principal:
    """The question ``POST /v1/messages`` asks first: may this person send for their
    organisation at all?"""
    principal = pages.signed_in(request).principal
    access.authorise(principal, access.Action.SEND, principal.org.code)
    return principal


def sendable(principal: Principal) -> list[MessageType]:
    """The types this person's organisation may send (``access.SENDING_RULES``)."""
    return [t for t in MessageType if principal.org.kind in access.SENDING_RULES[t]]


def _message_type(request: web.Request, principal: Principal) -> MessageType:
    """The type in the path, once ``access.check_sender`` (the API's check) allows it."""
    name = request.match_info["type"]
    if name not in MessageType.__members__.values():
        raise NotFound("no such message type")
    access.check_sender(principal, principal.org.code, name)
    return MessageType(name)


# --- the form ---------------------------------------------------------------------------


def form_schema(documents: Mapping[str, Mapping[str, Any]], message_type: str) -> dict[str, Any]:
    """The questions of a message of ``message_type``: the envelope's recipients, route and
    person, and the type's body schema, as one object schema."""
    envelope = documents["envelope"]
    properties = envelope["properties"]
    return {
        "type": "object",
        "required": [p for p in envelope["required"] if p in (*ENVELOPE_PARTS, "body")],
        "properties": {
            **{part: properties[part] for part in ENVELOPE_PARTS},
            "body": {"$ref": str(documents[message_type]["$id"])},
        },
    }


def _recipients(services: Services, principal: Principal,
                message_type: MessageType) -> tuple[Choice, ...]:
    """Organisations of the kinds this sender's kind may send the type to."""
    kinds = access.SENDING_RULES[message_type].get(principal.org.kind, frozenset())
    return tuple(
        Choice(org.code, f"{org.name} ({org.code})", org.area or None)
        for org in sorted(services.directory.all(), key=lambda o: o.name)
        if org.kind in kinds and org.code != principal.org.code
    )


def _offers(services: Services, principal: Principal, message_type: MessageType) -> tuple[
        dict[str, Sequence[Choice]], dict[str, Sequence[Choice]]]:
    """Answers given as choices: recipients from the directory, any organisation code from
    the directory, and a field ``SENDER_STATES`` restricts to what this sender may say."""
    choices: dict[str, Sequence[Choice]] = {"/to": _recipients(services, principal,
                                                                message_type)}
    rule = access.SENDER_STATES.get(message_type)
    if rule is not None:
        field, by_kind = rule
        allowed = by_kind.get(principal.org.kind, frozenset())
        words = services.schemas.documents[message_type]["properties"][field].get("enum", [])
        choices[f"/body/{field}"] = tuple(Choice(w, humanise(w)) for w in words if w in allowed)
    everyone = tuple(Choice(org.code, f"{org.name} ({org.code})")
                     for org in sorted(services.directory.all(), key=lambda o: o.name))
    return choices, {ORG_CODE: everyone}


def _form(services: Services, principal: Principal, message_type: MessageType,
          values: Mapping[str, Sequence[str]]) -> Field:
    choices, ref_choices = _offers(services, principal, message_type)
    documents = services.schemas.documents
    root = build(form_schema(documents, message_type.value), Schemas(list(documents.values())),
                 values, choices=choices, ref_choices=ref_choices)
    # The envelope's titles and descriptions are written for agency systems' developers.
    return replace(root, children=tuple(
        replace(child, label=ENVELOPE_WORDS[child.pointer][0],
                hint=ENVELOPE_WORDS[child.pointer][1])
        if child.pointer in ENVELOPE_WORDS else child for child in root.children))


ENVELOPE_WORDS: Mapping[str, tuple[str, str]] = {
    "/to": ("Who should receive it?",
            "Select all that apply. If you select none, the gateway works out who receives "
            "it from what the message says, such as the receiving CJIT it names, and shows "
            "you before anything is sent."),
    "/route": ("Identification route",
               "How the person came to DIP (H 4.2, 4.3). It decides whether sharing needs "
               "their consent."),
    "/subject": ("The person this message is about",
                 "As on your records. Give the PNC ID where you know it."),
}


async def _posted(request: web.Request) -> tuple[dict[str, list[str]], Mapping[str, str]]:
    """The answers (every value of each, for checkboxes) and the form's other fields, once
    its CSRF token is checked."""
    single = await form_with_token(request, pages.signed_in(request).session.csrf_token)
    form = await request.post()
    answers: dict[str, list[str]] = {}
    for name in form:
        if _ANSWER.fullmatch(name) and name not in answers:
            answers[name] = [v for v in form.getall(name) if isinstance(v, str)]
    return answers, single


def _title(services: Services, message_type: MessageType) -> str:
    return str(services.schemas.documents[message_type.value].get("title")
               or humanise(message_type.value))


def _form_page(request: web.Request, services: Services, message_type: MessageType,
               root: Field, values: Mapping[str, Sequence[str]], message_id: str = "",
               errors: Sequence[ErrorLink] = (), status: int = 200) -> web.Response:
    schema = services.schemas.documents[message_type.value]
    return pages.page(request, "compose_form.html", {
        "type": message_type.value,
        "title": _title(services, message_type),
        "description": schema.get("description", ""),
        "root": root,
        "parts": {child.pointer: child for child in root.children},
        "values": values,
        "message_id": message_id,
        "errors": list(errors),
        "field_errors": {e.field_id: e.text for e in errors if e.field_id},
        "Kind": Kind,
    }, status=status)


# --- pages ------------------------------------------------------------------------------


@routes.get("/console/compose")
async def choose(request: web.Request) -> web.Response:
    principal = _sender(request)
    services = pages.services(request)
    documents = services.schemas.documents
    return pages.page(request, "compose.html", {
        "types": [
            {"type": t.value, "title": _title(services, t),
             "description": str(documents[t.value].get("description", ""))}
            for t in sendable(principal)
        ],
    })


@routes.get("/console/compose/{type}")
async def form(request: web.Request) -> web.Response:
    principal = _sender(request)
    services = pages.services(request)
    message_type = _message_type(request, principal)
    return _form_page(request, services, message_type,
                      _form(services, principal, message_type, {}), {})


@routes.post("/console/compose/{type}")
async def check(request: web.Request) -> web.Response:
    """Answers in: "Add another" and "Change your answers" show the form again; otherwise
    the API's checks run and either the errors or the check page come back."""
    principal = _sender(request)
    services = pages.services(request)
    message_type = _message_type(request, principal)
    values, fields = await _posted(request)
    message_id = _kept_message_id(fields.get("message_id", ""))
    root = _form(services, principal, message_type, values)
    if fields.get("add"):
        values = add_row(values, root, fields["add"])
        root = _form(services, principal, message_type, values)
        return _form_page(request, services, message_type, root, values, message_id)
    if fields.get("action") == "change":
        return _form_page(request, services, message_type, root, values, message_id)
    document = _document(root, principal, message_type,
                         message_id or str(uuid.uuid4()),
                         isoformat(services.clock().replace(microsecond=0)))
    try:
        assessment = await assess_and_log(services, principal, document, channel=CHANNEL)
    except GatewayError as refused:
        return _refused(request, services, message_type, root, values, message_id, refused)
    return _check_page(request, services, message_type, root, values, document, assessment)


def _kept_message_id(posted: str) -> str:
    """The id the check page fixed, carried back by "Change your answers"."""
    return posted if _MESSAGE_ID.fullmatch(posted) else ""


def _document(root: Field, principal: Principal, message_type: MessageType, message_id: str,
              sent_at: str) -> dict[str, Any]:
    """The envelope (CONTRACT.md, "The envelope") around the answers."""
    answers = document_of(root)
    return {
        "message_id": message_id,
        "type": message_type.value,
        "schema_version": "1",
        "sent_at": sent_at,
        "from": principal.org.code,
        **{part: answers[part] for part in (*ENVELOPE_PARTS, "body") if part in answers},
        **({} if "body" in answers else {"body": {}}),
    }


def _refused(request: web.Request, services: Services, message_type: MessageType,
             root: Field, values: Mapping[str, Sequence[str]], message_id: str,
             refused: GatewayError) -> web.Response:
    """The form again, with what the gateway refused in a GOV.UK error summary."""
    if isinstance(refused, InvalidMessage):
        violations = [(v.pointer, v.message) for v in refused.violations]
    else:
        violations = [("", str(refused))]
    return _form_page(request, services, message_type, root, values, message_id,
                      error_links(root, violations), status=422 if isinstance(
                          refused, InvalidMessage) else 200)


def _check_page(request: web.Request, services: Services, message_type: MessageType,
                root: Field, values: Mapping[str, Sequence[str]], document: Mapping[str, Any],
                assessment: Assessment, problem: str | None = None) -> web.Response:
    parts = {child.pointer: child for child in root.children}
    body = parts["/body"].children
    sections = [
        ("Who receives it", [*(answer_rows(parts["/to"], ("Recipients",))
                               or [("Recipients", "Worked out by the gateway")]),
                             *answer_rows(parts["/route"], ("Identification route",))]),
        ("The person", answer_rows(parts["/subject"])),
        ("The message", [row for child in body if child.kind is not Kind.GROUP
                         for row in answer_rows(child, (child.label,))]),
        *((child.label, answer_rows(child)) for child in body if child.kind is Kind.GROUP),
    ]
    sections = [(heading, rows) for heading, rows in sections if rows]
    shares = [_share(services, root, message_type, org, decision,
                     assessment.resolved_by.get(org.code))
              for org, decision in assessment.decisions]
    return pages.page(request, "compose_check.html", {
        "type": message_type.value,
        "title": _title(services, message_type),
        "sections": sections,
        "shares": shares,
        "sendable": any(share["permitted"] for share in shares),
        "breaches": breaches(document, services.directory.by_code()),
        "hidden": [(name, value) for name, items in values.items() for value in items],
        "message_id": document["message_id"],
        "sent_at": document["sent_at"],
        "problem": problem,
    })


CONSENT_WORDS: Mapping[Consent, str] = {
    Consent.NOT_REQUIRED: "Not needed",
    Consent.REQUIRED: "Needed",
    Consent.WRITTEN_REQUIRED: "Needed in writing",
}


def _share(services: Services, root: Field, message_type: MessageType, org: Organisation,
           decision: Decision, resolved_by: str | None) -> dict[str, Any]:
    """One recipient's decision in words: shared or not, what is withheld and why, the
    consent it needs and the legal basis (the decision ``POST /v1/policy/decide`` gives)."""
    by_purpose = FIELD_PURPOSES.get(message_type.value, {})
    purposes = {
        pointer: purpose.value.replace("_", " ")
        for purpose, pointers in by_purpose.items() if purpose.value in decision.withheld_for
        for pointer in pointers
    }
    withheld = []
    for pointer in decision.redactions:
        node = field_at(root, pointer)
        label = node.label if node is not None and node is not root else pointer
        because = (f"the person's consent does not cover {purposes[pointer]}"
                   if pointer in purposes else
                   f"the sharing policy withholds it from a {org.kind.value.replace('_', ' ')}"
                   f" organisation (rule {decision.rule})")
        withheld.append((label, because))
    consent = CONSENT_WORDS[decision.consent]
    if decision.consent is not Consent.NOT_REQUIRED:
        consent += (": the person's recorded consent covers it" if decision.consent_satisfied
                    else ": no recorded consent covers it")
    return {
        "name": f"{org.name} ({org.code})",
        "permitted": decision.permitted,
        "withheld": withheld,
        "denied_because": decision.denied_because or decision.reason,
        "consent": consent,
        "legal_basis": decision.legal_basis,
        "rule": decision.rule,
        "resolved_by": humanise(resolved_by) if resolved_by else None,
    }


@routes.post("/console/compose/{type}/send")
async def send(request: web.Request) -> web.Response:
    """Send what the check page showed: ``SubmissionService.submit``, as ``POST
    /v1/messages`` calls it, with the ``message_id`` and ``sent_at`` that page fixed."""
    principal = _sender(request)
    services = pages.services(request)
    message_type = _message_type(request, principal)
    values, fields = await _posted(request)
    message_id = _kept_message_id(fields.get("message_id", ""))
    sent_at = fields.get("sent_at", "")
    root = _form(services, principal, message_type, values)
    if not message_id or not _SENT_AT.fullmatch(sent_at):
        # Not from the check page: check the answers first.
        return _form_page(request, services, message_type, root, values)
    document = _document(root, principal, message_type, message_id, sent_at)
    try:
        # Admitted whatever the delivery backlog: a person sends a handful of messages,
        # and the bound (gateway.services.backpressure) is for systems' bulk intake.
        receipt = await services.submissions.submit(principal, document, admitted=True)
    except IdempotencyConflict:
        # Sent before with other answers: the next check gives the message a new id.
        return _form_page(request, services, message_type, root, values, "", [ErrorLink(
            f"A message with reference {message_id} was already sent with different "
            "answers. Check your answers again to send these as a new message.", None, None)])
    except PolicyRefused:
        return _form_page(request, services, message_type, root, values, "", [ErrorLink(
            "The sharing policy now permits this message for none of its recipients, so "
            "nothing was sent. Check your answers again to see why.", None, None)])
    except GatewayError as refused:
        return _refused(request, services, message_type, root, values, message_id, refused)
    log.info("message_replayed" if receipt.replayed else "message_accepted",
             message_id=receipt.message_id, message_type=message_type.value,
             recipients=[code for code, _ in receipt.decisions], channel=CHANNEL)
    raise web.HTTPSeeOther(f"/console/compose/sent/{receipt.message_id}")


@routes.get("/console/compose/sent/{message_id}")
async def sent(request: web.Request) -> web.Response:
    """The GOV.UK confirmation panel: the message's reference and who it went to, for its
    sender only (as ``GET /v1/messages/{id}`` shows a sender), the read logged as that
    route logs it."""
    principal = _sender(request)
    services = pages.services(request)
    message_id = request.match_info["message_id"].lower()
    record = await services.messages.get(message_id) if _MESSAGE_ID.fullmatch(
        message_id) else None
    if record is None or record.sender != principal.org.code:
        raise NotFound("no such message")
    await consulted(services, principal, "message_status", message_ids=(message_id,),
                    channel=CHANNEL)
    names = {code: org.name for code, org in services.directory.by_code().items()}
    message_type = MessageType(record.message_type)
    return pages.page(request, "compose_sent.html", {
        "message_id": message_id,
        "title": _title(services, message_type),
        "type": message_type.value,
        "recipients": [f"{names.get(code, code)} ({code})" for code in record.recipients],
    })
