"""The auditor's pages: checkpoint, inclusion, entries, export, disclosure report (issue 12).

Each page asks ``gateway.pipeline.access`` what ``/v1/audit`` asks (``READ_AUDIT``), reads through
the functions the API's routes call (``gateway.http.routes.audit``) and logs its read as a
consultation with the console's channel. What the gateway signs is checked in the page with
the independent verifier (``gateway.tlog``): the newest checkpoint's signature against the
gateway's own verifier keys (C2SP signed-note), and an entry's RFC 9162 §2.1.3.2 inclusion
proof against the signed root; ``static/audit.js`` does the Merkle part again in the
browser (WebCrypto SHA-256), as progressive enhancement. The disclosure report is what a
subject access request or the ICO asks of the s.62 logs (DPA 2018), from
``gateway.services.disclosures``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gateway.console import consent_words, pages
from gateway.console.words import LONDON, when
from gateway.domain.model import Principal
from gateway.http.body import whole_number
from gateway.http.consultation import consulted
from gateway.http.routes.audit import disclosures_of, export_archive, inclusion_of, latest
from gateway.http.services import Services
from gateway.pipeline import access
from gateway.pipeline.audit import AuditAction
from gateway.pipeline.consent import SubjectKeys, name_dob_key, normal_pnc
from gateway.services.directory import Directory
from gateway.services.disclosures import (
    CSV_HEADER,
    Disclosure,
    DisclosureReport,
    EntryFilter,
    select_entries,
)
from gateway.tlog.checkpoint import Checkpoint, open_checkpoint
from gateway.tlog.errors import TlogError
from gateway.tlog.merkle import leaf_hash, verify_inclusion
from gateway.tlog.note import Verifier, parse_signed_note, parse_verifier_key

routes = web.RouteTableDef()

ENTRIES_PAGE = 50
KEYS_FILE = "dipgw-audit-keys.txt"
_DATE_PARTS = ("day", "month", "year")
_PNC = re.compile(r"[0-9A-Za-z/ ]{1,30}")

# What each kind of entry means, in the words an auditor reads.
ACTION_WORDS: Mapping[str, str] = {
    AuditAction.MESSAGE_ACCEPTED: "Message accepted for sharing",
    AuditAction.MESSAGE_REFUSED: "Message refused",
    AuditAction.MESSAGE_DELIVERED: "Disclosed (delivered)",
    AuditAction.MESSAGE_ACKNOWLEDGED: "Acknowledged by the recipient",
    AuditAction.MESSAGE_DEAD_LETTERED: "Could not be delivered",
    AuditAction.MESSAGE_EXPIRED: "Expired undelivered",
    AuditAction.MESSAGE_WITHDRAWN: "Withdrawn after consent was withdrawn",
    AuditAction.CONSULTED: "Consulted (read)",
    AuditAction.CONSENT_RECORDED: "Consent recorded",
    AuditAction.CONSENT_WITHDRAWN: "Consent withdrawn",
    AuditAction.POLICY_PROPOSED: "Sharing policy proposed",
    AuditAction.POLICY_APPROVED: "Sharing policy approved",
    AuditAction.POLICY_ACTIVATED: "Sharing policy in force",
    AuditAction.AUDIT_EXPORTED: "Audit log exported",
    AuditAction.DIRECTORY_UPDATED: "Directory updated",
    AuditAction.DIRECTORY_IMPORT_PROPOSED: "Directory import proposed",
    AuditAction.PERSON_ADDED: "Person added",
    AuditAction.PERSON_KEY_ADDED: "Person's key added",
    AuditAction.SYSTEM_KEY_ADDED: "System key added",
    AuditAction.KEY_REMOVED: "Key removed",
    AuditAction.GRANT_GIVEN: "Role granted",
    AuditAction.GRANT_REVOKED: "Role revoked",
    AuditAction.ALERT_ESCALATED: "Alert escalated",
    AuditAction.SIGNING_KEY_ROTATED: "Log signing key rotated",
}


def _auditor(request: web.Request) -> Principal:
    """The question every ``/v1/audit`` route asks: may this person read the audit log?"""
    principal = pages.signed_in(request).principal
    access.authorise(principal, access.Action.READ_AUDIT)
    return principal


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _action_words(action: str) -> str:
    """The event in words; one added since this table was written still reads plainly."""
    return ACTION_WORDS.get(action) or action.replace(".", " ").replace("_", " ").capitalize()


def _who(directory: Directory, actor: str) -> str:
    """'Jack Turner, Norfolk CJIT' for a person, the organisation's system, or the gateway."""
    if actor == "gateway" or "/" not in actor:
        return "The gateway" if actor == "gateway" else actor
    org_code, _, name = actor.partition("/")
    org = directory.get(org_code)
    person = directory.person(name)
    where = org.name if org else org_code
    return f"{person.name}, {where}" if person else f"{where} ({org_code}), its {name}"


def _type_title(services: Services, message_type: object) -> str:
    """A message type by its JSON Schema's title, as the inbox names it."""
    if not message_type:
        return ""
    schema = services.schemas.documents.get(str(message_type), {})
    return str(schema.get("title") or message_type)


def _at(text: str) -> str:
    try:
        return when(datetime.fromisoformat(text))
    except ValueError:
        return text


# --- the newest checkpoint -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckedCheckpoint:
    """A signed checkpoint as the page shows it, after its signature was checked against
    the gateway's verifier keys (C2SP signed-note v1.0.0, Ed25519)."""

    size: int
    note: str
    checkpoint: Checkpoint | None
    signers: tuple[dict[str, str], ...]
    problem: str | None

    @property
    def verified(self) -> bool:
        return self.problem is None


def _verifiers(services: Services) -> list[Verifier]:
    return [parse_verifier_key(line) for line in services.audit_keys.verifier_keys()]


def check_checkpoint(services: Services, size: int, note: str) -> CheckedCheckpoint:
    """Parse the note and verify it with the gateway's own keys (current and retired) only;
    a note no trusted key signed is shown as not verified, never trusted (fail closed)."""
    current = services.audit_keys.current.verifier_key()
    try:
        opened = open_checkpoint(note, _verifiers(services))
    except TlogError as problem:
        try:
            body: Checkpoint | None = Checkpoint.from_text(parse_signed_note(note).text)
        except TlogError:
            body = None
        return CheckedCheckpoint(size, note, body, (), str(problem))
    signers = tuple({
        "name": v.name, "key_id": v.key_id.hex(),
        "state": "current" if v.key_string() == current else "retired",
    } for v in opened.signers)
    return CheckedCheckpoint(size, note, opened.checkpoint, signers, None)


async def _last_entry_time(services: Services, size: int) -> str | None:
    if size == 0:
        return None
    found = await services.audit.entries(size - 1, size)
    if not found:
        return None
    return _at(str(json.loads(found[0]).get("at", "")))


@routes.get("/console/audit")
async def checkpoint_page(request: web.Request) -> web.Response:
    """The newest signed checkpoint, what ``GET /v1/audit/checkpoint`` answers, checked."""
    principal = _auditor(request)
    services = pages.services(request)
    size, note = await latest(services)
    await consulted(services, principal, "checkpoint", size=size, channel=pages.CHANNEL)
    checked = check_checkpoint(services, size, note)
    return pages.page(request, "audit.html", {
        "checked": checked,
        "root_hex": checked.checkpoint.root_hash.hex() if checked.checkpoint else "",
        "root_b64": _b64(checked.checkpoint.root_hash) if checked.checkpoint else "",
        "covers_until": await _last_entry_time(services, size),
        "errors": {}, "index": "",
    })


# --- inclusion of an entry -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InclusionCheck:
    """An RFC 9162 inclusion proof as served, and what the server-side check found."""

    index: int
    size: int
    entry: bytes
    leaf_hash: bytes
    proof: tuple[bytes, ...]
    checkpoint: CheckedCheckpoint
    leaf_matches: bool
    problem: str | None

    @property
    def verified(self) -> bool:
        return self.problem is None and self.leaf_matches and self.checkpoint.verified


def check_inclusion(
    answer: Mapping[str, Any], entry: bytes, checkpoint: CheckedCheckpoint
) -> InclusionCheck:
    """Check the proof ``inclusion_of`` served with the independent verifier: the entry's
    RFC 6962 leaf hash, then the path to the signed root (RFC 9162 §2.1.3.2)."""
    index, size = int(answer["index"]), int(answer["size"])
    served_leaf = base64.b64decode(str(answer["leaf_hash"]))
    proof = tuple(base64.b64decode(str(h)) for h in answer["proof"])
    leaf_matches = leaf_hash(entry) == served_leaf
    problem: str | None = checkpoint.problem
    if checkpoint.checkpoint is None:
        problem = problem or "the checkpoint could not be read"
    elif checkpoint.checkpoint.size != size:
        problem = f"the checkpoint is of size {checkpoint.checkpoint.size}, not {size}"
    else:
        try:
            verify_inclusion(index, size, served_leaf, proof, checkpoint.checkpoint.root_hash)
        except TlogError as failed:
            problem = str(failed)
    if not leaf_matches:
        problem = problem or "the entry does not hash to the leaf hash the proof is for"
    return InclusionCheck(index, size, entry, served_leaf, proof, checkpoint, leaf_matches,
                          problem)


def _index_errors(raw: str, size: int) -> tuple[int | None, dict[str, dict[str, str]]]:
    if not raw.strip():
        return None, {"index": {"text": "Enter the number of the entry to check",
                                "href": "#index"}}
    index = whole_number(raw.strip())
    if index is None or index >= size:
        return None, {"index": {
            "text": f"Entry number must be a whole number from 0 to {size - 1}",
            "href": "#index"}}
    return index, {}


@routes.get("/console/audit/inclusion")
async def inclusion_page(request: web.Request) -> web.Response:
    """Entry ``?index=N`` proved in the newest checkpoint: the proof ``GET
    /v1/audit/proof/inclusion`` serves, verified here and again in the browser."""
    principal = _auditor(request)
    services = pages.services(request)
    size, _ = await latest(services)
    logged = await services.audit.size()
    raw = request.query.get("index", "")
    index, errors = _index_errors(raw, logged)
    if index is None:
        return pages.page(request, "audit_inclusion.html", {
            "errors": errors, "index": raw, "size": logged, "check": None},
            status=400 if raw else 200)
    if index >= size:
        # Newer than the newest checkpoint: sign one now, as POST /v1/audit/checkpoint does
        # for an auditor, so that a just-logged entry can be proved at once.
        await consulted(services, principal, "checkpoint", on_demand=True,
                        channel=pages.CHANNEL)
        size, _ = await services.checkpointer.integrate() or await latest(services)
    answer = await inclusion_of(services, index, size)
    # The page shows the entry itself, which the proof alone does not disclose.
    await consulted(services, principal, "inclusion_proof", index=index, size=size,
                    channel=pages.CHANNEL)
    entry = (await services.audit.entries(index, index + 1))[0]
    checkpoint = check_checkpoint(services, size, str(answer["checkpoint"]))
    checked = check_inclusion(answer, entry, checkpoint)
    try:
        parsed = json.loads(entry)
        fields = [(key, value if isinstance(value, str)
                   else json.dumps(value, ensure_ascii=False))
                  for key, value in parsed.items()]
    except ValueError:
        fields = [("entry", entry.decode("utf-8", errors="replace"))]
    return pages.page(request, "audit_inclusion.html", {
        "errors": {}, "index": str(index), "size": size, "check": checked,
        "entry_fields": fields,
        "entry_b64": _b64(entry),
        "leaf_hex": checked.leaf_hash.hex(),
        "leaf_b64": _b64(checked.leaf_hash),
        "proof_hex": [h.hex() for h in checked.proof],
        "proof_b64": " ".join(_b64(h) for h in checked.proof),
        "root_hex": checked.checkpoint.checkpoint.root_hash.hex()
        if checked.checkpoint.checkpoint else "",
        "note": str(answer["checkpoint"]),
    })


# --- entries by time and event ---------------------------------------------------------------


def _date_parts(values: Mapping[str, str], name: str) -> dict[str, str]:
    return {part: values.get(f"{name}-{part}", "").strip() for part in _DATE_PARTS}


def _date(values: Mapping[str, str], name: str, label: str
          ) -> tuple[date | None, dict[str, str] | None]:
    """A GOV.UK date input's day, or None when blank; an error when it is no real date."""
    parts = _date_parts(values, name)
    if not any(parts.values()):
        return None, None
    try:
        return date(int(parts["year"]), int(parts["month"]), int(parts["day"])), None
    except ValueError:
        return None, {"text": f"{label} must be a real date", "href": f"#{name}-day"}


def _start_of(day_: date) -> datetime:
    return datetime.combine(day_, datetime.min.time(), LONDON)


@routes.get("/console/audit/entries")
async def entries_page(request: web.Request) -> web.Response:
    """The log's entries, newest first, chosen by day (UK time) and event, pseudonymised as
    ``GET /v1/audit/entries`` serves them."""
    principal = _auditor(request)
    services = pages.services(request)
    values = dict(request.query)
    errors: dict[str, dict[str, str]] = {}
    since, problem = _date(values, "since", "The first day")
    if problem:
        errors["since"] = problem
    until, problem = _date(values, "until", "The last day")
    if problem:
        errors["until"] = problem
    if since and until and until < since:
        errors["until"] = {"text": "The last day must be the same as or after the first day",
                           "href": "#until-day"}
    action = values.get("action", "")
    if action and action not in {a.value for a in AuditAction}:
        errors["action"] = {"text": "Select an event from the list", "href": "#action"}
    page_number = whole_number(values.get("page", "1") or "1", minimum=1, maximum=10**6)
    if page_number is None:
        page_number = 1
    actions = [(a.value, _action_words(a.value)) for a in AuditAction]
    if errors:
        return pages.page(request, "audit_entries.html", {
            "values": values, "errors": errors, "actions": actions, "rows": [],
            "total": 0, "pagination": None, "shown": False}, status=400)
    wanted = EntryFilter(
        since=_start_of(since) if since else None,
        until=_start_of(until + timedelta(days=1)) if until else None,
        actions=frozenset({action}) if action else frozenset(),
    )
    found = await select_entries(services.audit, wanted, (page_number - 1) * ENTRIES_PAGE,
                                 ENTRIES_PAGE)
    await consulted(services, principal, "entries", message_ids=(), subject=None,
                    indices=[int(e["index"]) for e in found.entries],
                    filter={"since": since.isoformat() if since else None,
                            "until": until.isoformat() if until else None,
                            "action": action or None},
                    channel=pages.CHANNEL)
    directory = services.directory
    rows = [{
        "index": e["index"], "at": _at(str(e.get("at", ""))),
        "action": _action_words(str(e.get("action", ""))),
        "actor": _who(directory, str(e.get("actor", ""))),
        "message_type": _type_title(services, e.get("message_type")),
        "recipients": ", ".join(e.get("recipients", [])),
        "subject": e.get("subject") or "",
    } for e in found.entries]
    pages_count = max(1, -(-found.total // ENTRIES_PAGE))
    query = {k: v for k, v in values.items() if k != "page" and v}
    return pages.page(request, "audit_entries.html", {
        "values": values, "errors": {}, "actions": actions, "rows": rows,
        "total": found.total, "shown": True,
        "pagination": _pagination(query, page_number, pages_count),
    })


def _pagination(query: Mapping[str, str], current: int, count: int) -> dict[str, Any] | None:
    """The GOV.UK pagination component's items: first, last, and those beside the current."""
    if count <= 1:
        return None

    def href(number: int) -> str:
        return "/console/audit/entries?" + urlencode({**query, "page": str(number)})

    items: list[dict[str, Any]] = []
    for number in range(1, count + 1):
        if number in (1, count) or abs(number - current) <= 1:
            items.append({"number": number, "href": href(number), "current": number == current})
        elif items and not items[-1].get("ellipsis"):
            items.append({"ellipsis": True})
    return {
        "items": items,
        "previous": href(current - 1) if current > 1 else None,
        "next": href(current + 1) if current < count else None,
    }


# --- export ----------------------------------------------------------------------------------


def verify_command(start: int, end: int) -> str:
    """The exact ``dipgw audit verify`` command for the bundle the page's link downloads."""
    return (f"dipgw audit verify dipgw-audit-{start}-{end}.tar.gz --public-key {KEYS_FILE} "
            f"--from {start} --to {end}")


def _range(values: Mapping[str, str], head: int
           ) -> tuple[tuple[int, int] | None, dict[str, dict[str, str]]]:
    raw_from = values.get("from", "").strip() or "0"
    raw_to = values.get("to", "").strip() or str(head)
    errors: dict[str, dict[str, str]] = {}
    start = whole_number(raw_from)
    end = whole_number(raw_to)
    if start is None:
        errors["from"] = {"text": "The first entry must be a whole number", "href": "#from"}
    if end is None or not 0 < end <= head:
        errors["to"] = {"text": f"The end must be a whole number from 1 to {head}, the "
                        "newest checkpoint's size", "href": "#to"}
    elif start is not None and start >= end:
        errors["from"] = {"text": "The first entry must be before the end", "href": "#from"}
    if errors or start is None or end is None:
        return None, errors
    return (start, end), {}


@routes.get("/console/audit/export")
async def export_page(request: web.Request) -> web.Response:
    """A download of what ``GET /v1/audit/export`` answers, with the command that checks it
    offline and the verifier keys it needs."""
    principal = _auditor(request)
    services = pages.services(request)
    size, _ = await latest(services)
    await consulted(services, principal, "checkpoint", size=size, channel=pages.CHANNEL)
    values = {k: request.query.get(k, "") for k in ("from", "to")}
    chosen, errors = _range(values, size)
    context: dict[str, Any] = {"values": values, "errors": errors, "size": size,
                               "keys_file": KEYS_FILE, "href": None}
    if chosen is not None:
        start, end = chosen
        values.update({"from": str(start), "to": str(end)})
        context.update(start=start, end=end, command=verify_command(start, end),
                       href="/console/audit/export/download?"
                       + urlencode({"from": start, "to": end}))
    return pages.page(request, "audit_export.html", context, status=400 if errors else 200)


@routes.get("/console/audit/export/download")
async def export_download(request: web.Request) -> web.Response:
    principal = _auditor(request)
    services = pages.services(request)
    start = whole_number(request.query.get("from", ""))
    end = whole_number(request.query.get("to", ""))
    if start is None or end is None:
        raise web.HTTPBadRequest
    name, body = await export_archive(services, principal, start, end, channel=pages.CHANNEL)
    return web.Response(body=body, content_type="application/gzip",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


@routes.get("/console/audit/keys.txt")
async def keys_file(request: web.Request) -> web.Response:
    """The verifier keys, one a line, as ``GET /v1/audit/keys`` answers them."""
    _auditor(request)
    lines = pages.services(request).audit_keys.verifier_keys()
    return web.Response(text="".join(f"{line}\n" for line in lines), content_type="text/plain",
                        headers={"Content-Disposition": f'attachment; filename="{KEYS_FILE}"'})


# --- the disclosure report -------------------------------------------------------------------


_PERSON_FIELDS = ("pnc_id", "given_name", "family_name")


def person_keys(values: Mapping[str, str]
                ) -> tuple[SubjectKeys | None, dict[str, dict[str, str]]]:
    """Whom the report is about: the PNC ID, or name and date of birth, or both (then the
    entries under either count); what is missing or wrong otherwise."""
    errors: dict[str, dict[str, str]] = {}
    pnc = values.get("pnc_id", "").strip()
    if pnc and not _PNC.fullmatch(pnc):
        errors["pnc_id"] = {"text": "Enter a PNC ID in the form 2012/118822R",
                            "href": "#pnc_id"}
    given = values.get("given_name", "").strip()
    family = values.get("family_name", "").strip()
    born, problem = _date(values, "date_of_birth", "Date of birth")
    if problem:
        errors["date_of_birth"] = problem
    elif born is not None and born > date.today():
        errors["date_of_birth"] = {"text": "Date of birth must be in the past",
                                   "href": "#date_of_birth-day"}
    named = bool(given and family and born)
    if not pnc and not named and not errors:
        for name, text in (("given_name", "Enter the person's given name"),
                           ("family_name", "Enter the person's family name")):
            if not values.get(name, "").strip():
                errors[name] = {"text": text + ", or their PNC ID", "href": f"#{name}"}
        if born is None:
            errors["date_of_birth"] = {
                "text": "Enter the person's date of birth, or their PNC ID",
                "href": "#date_of_birth-day"}
    if errors:
        return None, errors
    return SubjectKeys(
        pnc=normal_pnc(pnc) if pnc else None,
        name_dob=name_dob_key(given, family, born.isoformat()) if named and born else None,
    ), {}


def _disclosure_row(row: Disclosure, services: Services) -> dict[str, Any]:
    directory = services.directory
    recipients = [consent_words.organisation_name(directory, r) for r in row.recipients]
    why = [{
        "recipient": consent_words.organisation_name(directory, b.recipient),
        "decision": "Shared" if b.decision == "permit" else "Withheld",
        "rule": b.rule, "legal_basis": b.legal_basis,
    } for b in row.bases]
    reading = None
    if row.consultation:
        through = "the console" if row.channel == pages.CHANNEL else "the API"
        reading = f"Read {(row.resource or 'a record').replace('_', ' ')} through {through}"
    return {
        "index": row.index, "at": _at(row.at), "what": _action_words(row.action),
        "kind": "disclosure" if row.disclosure else "consultation" if row.consultation
        else "other",
        "who": _who(directory, row.actor),
        "sender": consent_words.organisation_name(directory, row.sender)
        if row.sender else None,
        "recipients": recipients, "why": why, "reading": reading,
        "message_type": _type_title(services, row.message_type),
        "message_id": row.message_id,
    }


def _person_query(values: Mapping[str, str]) -> str:
    return urlencode({k: v for k, v in values.items() if v.strip()})


def _person_values(request: web.Request) -> dict[str, str]:
    return {k: v for k, v in request.query.items()
            if k in _PERSON_FIELDS or k.startswith("date_of_birth-")}


@routes.get("/console/audit/disclosures")
async def disclosures_page(request: web.Request) -> web.Response:
    """Every disclosure and consultation about a person, what ``GET
    /v1/audit/disclosures`` answers (DPA 2018 s.62), in a GOV.UK table."""
    principal = _auditor(request)
    values = _person_values(request)
    searched = any(v.strip() for v in values.values())
    context: dict[str, Any] = {"values": values, "errors": {}, "report": None,
                               "date_parts": _DATE_PARTS}
    if not searched:
        return pages.page(request, "audit_disclosures.html", context)
    keys, errors = person_keys(values)
    if keys is None:
        context["errors"] = errors
        return pages.page(request, "audit_disclosures.html", context, status=400)
    services = pages.services(request)
    report = await disclosures_of(services, principal, keys, channel=pages.CHANNEL)
    context.update(
        report=report,
        rows=[_disclosure_row(row, services) for row in report.rows],
        others=len(report.rows) - report.disclosures - report.consultations,
        csv_href="/console/audit/disclosures.csv?" + _person_query(values),
    )
    return pages.page(request, "audit_disclosures.html", context)


def report_csv(report: DisclosureReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for line in report.csv_rows():
        # A spreadsheet runs a cell that starts like a formula (OWASP CSV injection).
        writer.writerow(["'" + c if c[:1] in ("=", "+", "-", "@") else c for c in line])
    return out.getvalue()


@routes.get("/console/audit/disclosures.csv")
async def disclosures_csv(request: web.Request) -> web.Response:
    """The same report as a CSV file (RFC 4180), one line per recipient's basis."""
    principal = _auditor(request)
    keys, _ = person_keys(_person_values(request))
    if keys is None:
        raise web.HTTPBadRequest
    report = await disclosures_of(pages.services(request), principal, keys,
                                  channel=pages.CHANNEL, format="csv")
    return web.Response(
        text=report_csv(report), content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="disclosure-report.csv"'})
