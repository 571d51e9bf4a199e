"""The console's consent pages: find a person's consents, record one, withdraw one.

Each asks ``access.check_consent_handler`` what ``/v1/consents`` asks, and does what the
API does through the same functions (``gateway.http.consent_actions``): the same request
schema and service call to record, the same search and consultation to read, the same
withdrawal service, notices and permission to withdraw."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gateway.console import consent_words, pages
from gateway.console.security import form_with_token
from gateway.console.words import LONDON, day, when
from gateway.domain.errors import InvalidMessage, NotFound, Violation
from gateway.domain.model import AGENCY_KINDS, Principal
from gateway.http.consent_actions import (
    MAX_REASON_CHARS,
    REQUEST_SCHEMA_DOCUMENT,
    find_consents,
    record_consent,
    request_problems,
    subject_keys,
    valid_reason,
    withdraw_consent,
    withdrawable,
)
from gateway.http.consultation import consulted
from gateway.pipeline import access
from gateway.pipeline.consent import ConsentRecord
from gateway.pipeline.policy.facts import Purpose
from gateway.storage.base import ShareOutcome

routes = web.RouteTableDef()

_CONSENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# The kinds of organisation a consent may name, in the request schema's order.
_KINDS: tuple[str, ...] = tuple(
    REQUEST_SCHEMA_DOCUMENT["properties"]["provision"]["properties"]["actor_roles"]["items"]["enum"]
)
_SUBJECT_FIELDS = ("pnc_id", "given_name", "family_name")
_DATE_PARTS = ("day", "month", "year")


def _consent_handler(request: web.Request) -> Principal:
    principal = pages.signed_in(request).principal
    access.check_consent_handler(principal)
    return principal


# --- form values --------------------------------------------------------------------------


def _date_parts(values: Mapping[str, str], name: str) -> dict[str, str]:
    return {part: values.get(f"{name}-{part}", "").strip() for part in _DATE_PARTS}


def _iso_date(parts: Mapping[str, str]) -> str | None:
    """YYYY-MM-DD from day, month and year; None when all are blank. A date that does not
    exist comes back as typed, for the schema's ``format`` to refuse."""
    if not any(parts.values()):
        return None
    try:
        return date(int(parts["year"]), int(parts["month"]), int(parts["day"])).isoformat()
    except ValueError:
        return f"{parts['year']}-{parts['month']}-{parts['day']}"


def _start_of_day(parts: Mapping[str, str]) -> str | None:
    """The start of that day, UK time, as the schema's date-time; as typed when no date."""
    iso = _iso_date(parts)
    if iso is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(iso), datetime.min.time(), LONDON).isoformat()
    except ValueError:
        return iso


@dataclass(frozen=True, slots=True)
class Field:
    """Where a violation is shown: the id its error summary link points at, and what it
    says when the field was left empty and when it holds something wrong."""

    id: str
    name: str
    missing: str
    invalid: str


# JSON pointer (longest prefix first) -> the form field it belongs to.
FIELDS: Mapping[str, Field] = {
    "/subject/pnc_id": Field("pnc_id", "pnc_id", "Enter the person's PNC ID",
                             "Enter a PNC ID in the form 2012/118822R"),
    "/subject/given_name": Field("given_name", "given_name", "Enter the person's given name",
                                 "Given name must be 100 characters or fewer"),
    "/subject/family_name": Field("family_name", "family_name",
                                  "Enter the person's family name",
                                  "Family name must be 100 characters or fewer"),
    "/subject/date_of_birth": Field("date_of_birth-day", "date_of_birth",
                                    "Enter the person's date of birth",
                                    "Date of birth must be a real date"),
    "/form": Field("form", "form", "Select whether the person gave consent in writing or "
                   "verbally", "Select whether the person gave consent in writing or verbally"),
    "/provision/actor_roles": Field("actor_roles", "actor_roles",
                                    "Select who may receive the person's information",
                                    "Select kinds of organisation from the list"),
    "/provision/actor_organisations": Field(
        "actor_organisations", "actor_organisations",
        "Select who may receive the person's information",
        "Select organisations from the list"),
    "/provision/purpose": Field("purpose", "purpose",
                                "Select what the person agreed their information may be "
                                "shared for", "Select purposes from the list"),
    # Neither kinds nor organisations chosen: the schema's anyOf on the provision.
    "/provision": Field("actor_roles", "actor_roles",
                        "Select who may receive the person's information: kinds of "
                        "organisation, particular organisations, or both",
                        "Select who may receive the person's information"),
    "/period/start": Field("period_start-day", "period_start",
                           "Enter the date consent starts", "Start date must be a real date"),
    "/period/end": Field("period_end-day", "period_end", "Enter the date consent ends",
                         "End date must be a real date after the start date"),
    "/information_given": Field("information_given", "information_given",
                                "Enter what the person was told about the sharing",
                                "What the person was told must be between 10 and 2000 "
                                "characters"),
}


def _field_for(pointer: str) -> Field | None:
    for prefix in sorted(FIELDS, key=len, reverse=True):
        if pointer == prefix or pointer.startswith(prefix + "/"):
            return FIELDS[prefix]
    return None


def errors_for(violations: list[Violation], blank: set[str]) -> dict[str, dict[str, str]]:
    """One error per form field, in the form's order: {field name: {text, href}}. A
    violation no field holds is linked to the form itself."""
    errors: dict[str, dict[str, str]] = {}
    for violation in violations:
        found = _field_for(violation.pointer)
        if found is None:
            errors.setdefault("_form", {"text": violation.message, "href": "#record-consent"})
            continue
        text = found.missing if found.name in blank else found.invalid
        errors.setdefault(found.name, {"text": text, "href": f"#{found.id}"})
    order = [f.name for f in FIELDS.values()]
    return dict(sorted(errors.items(),
                       key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def consent_document(
    values: Mapping[str, str], lists: Mapping[str, list[str]]
) -> tuple[dict[str, Any], set[str]]:
    """The ``POST /v1/consents`` request a filled-in form makes (the console records only
    permits), and the names of the fields left empty. Empty fields are left out, so the
    schema says they are required."""
    blank: set[str] = set()
    subject: dict[str, Any] = {}
    for name in _SUBJECT_FIELDS:
        value = values.get(name, "").strip()
        if value:
            subject[name] = value.upper() if name == "pnc_id" else value
        else:
            blank.add(name)
    born = _iso_date(_date_parts(values, "date_of_birth"))
    if born is None:
        blank.add("date_of_birth")
    else:
        subject["date_of_birth"] = born
    document: dict[str, Any] = {"subject": subject}
    if values.get("form"):
        document["form"] = values["form"]
    else:
        blank.add("form")
    provision: dict[str, Any] = {"type": "permit"}
    for name, key in (("actor_roles", "actor_roles"),
                      ("actor_organisations", "actor_organisations"),
                      ("purpose", "purpose")):
        if lists.get(name):
            provision[key] = lists[name]
        else:
            blank.add(name)
    document["provision"] = provision
    period: dict[str, str] = {}
    for name, key in (("period_start", "start"), ("period_end", "end")):
        moment = _start_of_day(_date_parts(values, name))
        if moment is not None:
            period[key] = moment
    if period:
        document["period"] = period
    told = values.get("information_given", "").strip()
    if told:
        document["information_given"] = told
    else:
        blank.add("information_given")
    return document, blank


def _console_problems(document: Mapping[str, Any]) -> list[Violation]:
    """What the console asks beyond the API: a permit listing no purpose permits nothing
    (README, "Consent"), so the form, which records permits, asks for at least one."""
    provision = document.get("provision", {})
    if not provision.get("purpose"):
        return [Violation("/provision/purpose", "Select at least one purpose.")]
    return []


# --- pages --------------------------------------------------------------------------------


def _organisations(request: web.Request) -> list[dict[str, str]]:
    directory = pages.services(request).directory
    return [{"code": org.code, "name": org.name,
             "kind": consent_words.KIND_WORDS.get(org.kind.value, org.kind.value)}
            for org in sorted(directory.all(), key=lambda o: (o.kind.value, o.name))
            if org.kind in AGENCY_KINDS]


def _form_context(request: web.Request, values: Mapping[str, str],
                  lists: Mapping[str, list[str]], errors: dict[str, dict[str, str]]
                  ) -> dict[str, Any]:
    return {
        "values": values,
        "lists": lists,
        "errors": errors,
        "kinds": [(k, consent_words.KIND_WORDS.get(k, k)) for k in _KINDS],
        "organisations": _organisations(request),
        "purposes": [(p.value, consent_words.PURPOSE_WORDS[p]) for p in Purpose],
        "date_parts": _DATE_PARTS,
    }


@routes.get("/console/consents/new")
async def new_consent(request: web.Request) -> web.Response:
    _consent_handler(request)
    # The person may come from their consent list; nothing else is prefilled.
    values = {k: v for k, v in request.query.items()
              if k in _SUBJECT_FIELDS or k.startswith("date_of_birth-")}
    return pages.page(request, "consent_new.html", _form_context(request, values, {}, {}))


@routes.post("/console/consents/new")
async def record(request: web.Request) -> web.Response:
    """What ``POST /v1/consents`` does, from a form: the same schema, the same call."""
    principal = _consent_handler(request)
    values = await form_with_token(request, pages.signed_in(request).session.csrf_token)
    posted = await request.post()
    lists = {name: [v for v in posted.getall(name, []) if isinstance(v, str)]
             for name in ("actor_roles", "actor_organisations", "purpose")}
    services = pages.services(request)
    document, blank = consent_document(values, lists)
    violations = request_problems(services, document) + _console_problems(document)
    if not violations:
        try:
            consent = await record_consent(services, principal, document)
        except InvalidMessage as invalid:
            violations = list(invalid.violations)
        else:
            raise web.HTTPSeeOther(
                f"/console/consents?{_person_query(values)}&recorded={consent.id}")
    errors = errors_for(violations, blank)
    return pages.page(request, "consent_new.html",
                       _form_context(request, values, lists, errors))


def _person_query(values: Mapping[str, str]) -> str:
    """The search that finds the person again: by PNC ID when given, else name and birth."""
    if values.get("pnc_id", "").strip():
        return urlencode({"pnc_id": values["pnc_id"].strip().upper()})
    return urlencode({k: values.get(k, "").strip() for k in (
        "given_name", "family_name", *(f"date_of_birth-{p}" for p in _DATE_PARTS))})


def _record_query(record: ConsentRecord) -> str:
    """The search that finds a record's person again."""
    year, month, day_ = str(record.subject["date_of_birth"]).split("-")
    return _person_query({
        "pnc_id": record.keys.pnc or "", "given_name": record.subject["given_name"],
        "family_name": record.subject["family_name"], "date_of_birth-day": day_,
        "date_of_birth-month": month, "date_of_birth-year": year,
    })


def _find_errors(values: Mapping[str, str]) -> tuple[dict[str, str] | None,
                                                     dict[str, dict[str, str]]]:
    """The search ``GET /v1/consents`` takes, from the find form; or what is missing."""
    if values.get("pnc_id", "").strip():
        return {"pnc_id": values["pnc_id"].strip()}, {}
    errors: dict[str, dict[str, str]] = {}
    for name, text in (("given_name", "Enter the person's given name"),
                       ("family_name", "Enter the person's family name")):
        if not values.get(name, "").strip():
            errors[name] = {"text": text + ", or their PNC ID", "href": f"#{name}"}
    parts = _date_parts(values, "date_of_birth")
    born = _iso_date(parts)
    if born is None:
        errors["date_of_birth"] = {"text": "Enter the person's date of birth, or their PNC ID",
                                   "href": "#date_of_birth-day"}
    else:
        try:
            date.fromisoformat(born)
        except ValueError:
            errors["date_of_birth"] = {"text": "Date of birth must be a real date",
                                       "href": "#date_of_birth-day"}
    if errors:
        return None, errors
    assert born is not None
    return {"given_name": values["given_name"].strip(),
            "family_name": values["family_name"].strip(), "date_of_birth": born}, {}


def consent_row(record: ConsentRecord, request: web.Request) -> dict[str, Any]:
    services = pages.services(request)
    directory = services.directory
    now = services.clock()
    status = consent_words.status(record, now)
    return {
        "id": record.id,
        "person": f"{record.subject['given_name']} {record.subject['family_name']}",
        "born": day(date.fromisoformat(record.subject["date_of_birth"])),
        "pnc_id": record.keys.pnc,
        "form": record.form.value.capitalize(),
        "permit": record.permit,
        "recipients": consent_words.recipients(record, directory),
        "purposes": [consent_words.purpose_label(p) for p in record.purposes],
        "period": consent_words.period(record),
        "status": status,
        "recorded": when(record.recorded_at),
        "recorded_by": consent_words.recorded_by(record, directory),
        "information_given": record.information_given,
        "withdrawn": (when(record.withdrawn_at), record.withdrawal_reason)
        if record.withdrawn_at else None,
    }


@routes.get("/console/consents")
async def consents(request: web.Request) -> web.Response:
    """Find a person, and list their consents: exactly what ``GET /v1/consents`` lists,
    read through the same function and logged as the same consultation."""
    principal = _consent_handler(request)
    values = {k: v for k, v in request.query.items()
              if k in _SUBJECT_FIELDS or k.startswith("date_of_birth-")}
    searched = any(v.strip() for v in values.values())
    rows: list[dict[str, Any]] = []
    errors: dict[str, dict[str, str]] = {}
    recorded = None
    if searched:
        query, errors = _find_errors(values)
        keys = subject_keys(query) if query is not None else None
        if keys is not None:
            records = await find_consents(pages.services(request), principal, keys,
                                          channel=pages.CHANNEL)
            rows = [consent_row(r, request) for r in records]
            wanted = request.query.get("recorded", "")
            recorded = next((r for r in rows if r["id"] == wanted), None)
    return pages.page(request, "consents.html", {
        "values": values, "errors": errors, "searched": searched and not errors,
        "rows": rows, "recorded": recorded, "person_query": _person_query(values),
        "date_parts": _DATE_PARTS,
    })


def _consent_id(request: web.Request) -> str:
    consent_id = request.match_info["consent_id"].lower()
    if not _CONSENT_ID.fullmatch(consent_id):
        raise NotFound("no such consent")
    return consent_id


async def _withdrawable(request: web.Request) -> tuple[Principal, ConsentRecord]:
    principal = _consent_handler(request)
    record = await withdrawable(pages.services(request), principal, _consent_id(request))
    return principal, record


@routes.get("/console/consents/{consent_id}/withdraw")
async def confirm_withdrawal(request: web.Request) -> web.Response:
    principal, record = await _withdrawable(request)
    services = pages.services(request)
    # The page shows the person's consent: a read, logged as one.
    await consulted(services, principal, "consent", subject=record.keys,
                    consent_id=record.id, channel=pages.CHANNEL)
    return pages.page(request, "consent_withdraw.html", {
        "row": consent_row(record, request), "reason": "", "errors": {},
        "max_reason": MAX_REASON_CHARS,
    })


@routes.post("/console/consents/{consent_id}/withdraw")
async def withdraw(request: web.Request) -> web.Response:
    """What ``POST /v1/consents/{id}/withdraw`` does, once a reason is given."""
    principal, record = await _withdrawable(request)
    values = await form_with_token(request, pages.signed_in(request).session.csrf_token)
    services = pages.services(request)
    reason = values.get("reason", "")
    if record.withdrawn_at is not None:
        return pages.page(request, "consent_withdrawn.html", {
            "row": consent_row(record, request), "already": True, "shares": [],
            "person_query": _record_query(record)})
    if valid_reason(reason) is None:
        text = ("Enter why the person withdrew their consent" if not reason.strip()
                else f"The reason must be {MAX_REASON_CHARS} characters or fewer")
        return pages.page(request, "consent_withdraw.html", {
            "row": consent_row(record, request), "reason": reason,
            "errors": {"reason": {"text": text, "href": "#reason"}},
            "max_reason": MAX_REASON_CHARS,
        })
    withdrawal = await withdraw_consent(services, principal, record, reason)
    directory = services.directory
    return pages.page(request, "consent_withdrawn.html", {
        "row": consent_row(withdrawal.record, request), "already": False,
        "shares": [{
            "message_id": share.message_id,
            "recipient": consent_words.organisation_name(directory, share.recipient),
            "sender": consent_words.organisation_name(directory, share.sender),
            "outcome": share.outcome.value,
            "kept": share.outcome is ShareOutcome.KEPT,
            "words": consent_words.outcome(share),
        } for share in withdrawal.shares],
        "person_query": _record_query(withdrawal.record),
    })
