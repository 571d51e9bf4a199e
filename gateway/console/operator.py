"""The operator's pages: the directory's organisations, an organisation's system keys and
people, and the SPOC list import (upload, preview, propose, a second operator approves).

Every page asks what the matching API route asks and does what it does through the same
calls: ``Administration`` for keys, people and imports (``preview_import``,
``propose_import``), ``gateway.http.directory_actions`` to find and approve an import (the
approval then has the transport follow the directory, as ``POST
/v1/directory/imports/{id}/approve`` does). The two-person rule is
``access.check_second_person``: the page explains it to the author, and refuses an author's
approval in the error summary in its words. The API logs no consultation for reads of the
directory, its people or its imports, so neither does the console."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway.console import admin, pages
from gateway.console.security import form_with_token
from gateway.console.words import when
from gateway.domain.errors import (
    AccessDenied,
    Conflict,
    NotFound,
    Violation,
)
from gateway.domain.model import Organisation, OrgKind, Principal, Role
from gateway.http import directory_actions
from gateway.pipeline import access
from gateway.pipeline.directory_import import InvalidDirectoryFile
from gateway.services.directory import Directory
from gateway.storage.base import DirectoryImport

routes = web.RouteTableDef()

_IMPORT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
KIND_NAMES: Mapping[str, str] = {
    OrgKind.POLICE.value: "Police",
    OrgKind.CJIT.value: "CJIT",
    OrgKind.CARAT.value: "Prison CARAT team",
    OrgKind.PROBATION.value: "Probation",
    OrgKind.COURT.value: "Court",
    OrgKind.CPS.value: "Crown Prosecution Service",
    OrgKind.PPO_IOM.value: "PPO or IOM scheme",
    OrgKind.TREATMENT_PROVIDER.value: "Treatment provider",
    OrgKind.OVERSIGHT.value: "Oversight body",
    OrgKind.OPERATOR.value: "Gateway operator",
}
FIELD_NAMES: Mapping[str, str] = {
    "name": "Name", "kind": "Kind", "area": "Area", "areas_served": "Areas served",
    "spoc.name": "SPOC contact", "spoc.phone": "SPOC telephone", "spoc.email": "SPOC email",
    "spoc.secure_email": "SPOC secure email",
}
_UPLOAD = "spoc_list"


def _operator(request: web.Request) -> Principal:
    """An operator person: what every ``/v1/directory/import*`` route asks first."""
    principal = admin.principal_of(request)
    access.authorise(principal, access.Action.IMPORT_DIRECTORY)
    return principal


def kind_name(kind: str) -> str:
    return KIND_NAMES.get(kind, kind)


# --- the directory ------------------------------------------------------------------------


@routes.get("/console/directory")
async def directory_page(request: web.Request) -> web.Response:
    """Every organisation in the directory, and a way to an import by its reference."""
    principal = _operator(request)
    services = pages.services(request)
    errors: admin.Errors = {}
    reference = request.query.get("import", "").strip().lower()
    if "import" in request.query:
        text = "Enter the reference of a proposed import"
        if reference and not _IMPORT_ID.fullmatch(reference):
            text = "Enter a reference like 0b6f5a1e-3c2d-4e5f-8a9b-1c2d3e4f5a6b"
        elif reference:
            try:
                await directory_actions.find_import(services, principal, reference)
            except NotFound:
                text = "There is no import with that reference"
            else:
                raise web.HTTPSeeOther(f"/console/directory/imports/{reference}")
        errors["import"] = admin.error(text, "import")
    pending = await directory_actions.pending_imports(services, principal)
    return pages.page(request, "directory.html", {
        "pending": [_waiting(proposal, principal, services.directory) for proposal in pending],
        "organisations": [{
            "code": org.code, "name": org.name, "kind": kind_name(org.kind.value),
            "area": org.area, "channel": admin.CHANNEL_WORDS[org.delivery.channel][0],
        } for org in services.directory.all()],
        "errors": errors, "reference": request.query.get("import", ""),
    })


# --- an organisation ----------------------------------------------------------------------


@routes.get("/console/directory/{code}")
async def organisation_page(request: web.Request) -> web.Response:
    """An organisation: its settings, its systems' keys and its people. Operators may see
    any organisation's people (``VIEW_PEOPLE`` for any organisation, as the API allows)."""
    principal = admin.principal_of(request)
    services = pages.services(request)
    code = request.match_info["code"]
    found = services.administration.people_of(principal, code)
    org = services.administration.organisation(code)
    directory = services.directory
    return pages.page(request, "directory_organisation.html", {
        "organisation": org,
        "kind": kind_name(org.kind.value),
        "settings": admin.organisation_rows(org),
        "may_view_delivery": access.allowed(principal, access.Action.VIEW_DELIVERY, code),
        "may_change_delivery": access.allowed(principal, access.Action.CHOOSE_DELIVERY, code),
        "may_change_contact": access.allowed(principal, access.Action.EDIT_CONTACT, code),
        "may_keys": access.allowed(principal, access.Action.REGISTER_SYSTEM_KEY, code),
        "keys": admin.key_rows(org.jwks),
        "people": [admin.person_row(directory, p) for p in found],
        "may_add": access.allowed(principal, access.Action.MANAGE_PEOPLE, code),
        "changed": request.query.get("changed", ""),
        "key": request.query.get("key", ""),
        "is_operator": access.allowed(principal, access.Action.IMPORT_DIRECTORY),
    })


def _key_org(request: web.Request, principal: Principal) -> Organisation:
    org = pages.services(request).administration.organisation(request.match_info["code"])
    access.authorise(principal, access.Action.REGISTER_SYSTEM_KEY, org.code)
    return org


def _system_key_page(org: Organisation, jwk: str, errors: admin.Errors) -> dict[str, Any]:
    return {
        "caption": org.name, "heading": "Register a key for its systems",
        "intro": "Its systems can then sign tokens with the matching private key.",
        "action": f"/console/directory/{org.code}/keys/new",
        "back": f"/console/directory/{org.code}", "back_words": f"Back to {org.name}",
        "jwk": jwk, "errors": errors,
    }


@routes.get("/console/directory/{code}/keys/new")
async def new_key(request: web.Request) -> web.Response:
    principal = admin.principal_of(request)
    org = _key_org(request, principal)
    return pages.page(request, "directory_key_new.html", _system_key_page(org, "", {}))


@routes.post("/console/directory/{code}/keys/new")
async def register_key(request: web.Request) -> web.Response:
    """What ``POST /v1/directory/{code}/keys`` does, with the key pasted as JSON: the same
    checks (a public Ed25519 or P-256 JWK, never a private key, never one registered)."""
    principal = admin.principal_of(request)
    org = _key_org(request, principal)
    values = await form_with_token(request, admin.csrf_token(request))
    administration = pages.services(request).administration
    refused = await admin.register_pasted_key(
        values, lambda jwk: administration.add_system_key(principal, org.code, jwk))
    if refused is None:
        raise web.HTTPSeeOther(f"/console/directory/{quote(org.code)}?key=added")
    return pages.page(request, "directory_key_new.html", _system_key_page(
        org, values.get("jwk", ""), {"jwk": admin.error(refused, "jwk")}))


def _system_key_removal(org: Organisation, key: Mapping[str, str]) -> dict[str, Any]:
    return {
        "caption": org.name, "key": key,
        "action": f"/console/directory/{org.code}/keys/{key['kid']}/remove",
        "back": f"/console/directory/{org.code}", "back_words": f"Back to {org.name}",
        "whose": "Systems still using it stop working.",
    }


@routes.get("/console/directory/{code}/keys/{kid}/remove")
async def confirm_key_removal(request: web.Request) -> web.Response:
    principal = admin.principal_of(request)
    org = _key_org(request, principal)
    key = admin.registered_key(org.jwks, request.match_info["kid"])
    return pages.page(request, "directory_key_remove.html", _system_key_removal(org, key))


@routes.post("/console/directory/{code}/keys/{kid}/remove")
async def remove_key(request: web.Request) -> web.Response:
    """What ``DELETE /v1/directory/{code}/keys/{kid}`` does: tokens the key signs are
    refused at once (audited)."""
    principal = admin.principal_of(request)
    org = _key_org(request, principal)
    registered = admin.registered_key(org.jwks, request.match_info["kid"])
    await form_with_token(request, admin.csrf_token(request))
    await pages.services(request).administration.remove_system_key(
        principal, org.code, registered["kid"])
    raise web.HTTPSeeOther(f"/console/directory/{quote(org.code)}?key=removed")


# --- the SPOC list import -----------------------------------------------------------------


def _value(value: Any) -> str:
    if value is None or value == "":
        return "None"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def _contact_lines(spoc: Mapping[str, Any]) -> list[str]:
    return [str(spoc[k]) for k in ("name", "phone", "email", "secure_email") if spoc.get(k)]


def plan_words(plan: Mapping[str, Any], directory: Directory) -> dict[str, Any]:
    """An import's plan (``DirectoryPlan.as_dict``, as the API answers it) in words: one
    row per organisation added, one per field changed, the organisations kept."""
    changed: list[dict[str, str]] = []
    for change in plan.get("changed", []):
        for field, values in sorted(change["fields"].items()):
            before, after = values.get("from"), values.get("to")
            if isinstance(before, Mapping) or isinstance(after, Mapping):
                before, after = dict(before or {}), dict(after or {})
                for sub in sorted(set(before) | set(after)):
                    if before.get(sub) != after.get(sub):
                        changed.append({
                            "code": change["code"],
                            "what": FIELD_NAMES.get(f"{field}.{sub}", f"{field} {sub}"),
                            "before": _value(before.get(sub)),
                            "after": _value(after.get(sub))})
                continue
            changed.append({"code": change["code"], "what": FIELD_NAMES.get(field, field),
                            "before": _value(before), "after": _value(after)})
    unchanged = len(plan.get("unchanged", []))
    return {
        "added": [{"code": o["code"], "name": o["name"], "kind": kind_name(o["kind"]),
                   "area": o["area"], "contact": _contact_lines(o.get("spoc", {}))}
                  for o in plan.get("added", [])],
        "changed": changed,
        "changed_count": len(plan.get("changed", [])),
        "not_in_file": [{"code": code, "name": (org.name if (org := directory.get(code))
                                                 else code)}
                        for code in plan.get("not_in_file", [])],
        "unchanged_words": "" if not unchanged else (
            f"{unchanged} organisation{'s' if unchanged != 1 else ''} in the file "
            f"already match{'es' if unchanged == 1 else ''} the directory."),
        "changes_anything": bool(plan.get("added") or plan.get("changed")),
    }


def file_errors(violations: Sequence[Violation]) -> list[dict[str, str]]:
    """A refused file's problems, each with where it is, as a spreadsheet shows rows."""
    errors = []
    for violation in violations[:20]:
        parts = violation.pointer.strip("/").split("/")
        if parts[0] == "rows" and len(parts) > 1 and parts[1].isdigit():
            where = f"Row {parts[1]}: "
        elif parts[0] == "header":
            where = "Header row: "
        else:
            where = ""
        errors.append(admin.error(where + violation.message, _UPLOAD))
    if len(violations) > 20:
        errors.append(admin.error(f"And {len(violations) - 20} more problems", _UPLOAD))
    return errors


def _upload_page(request: web.Request, errors: list[dict[str, str]]) -> web.Response:
    return pages.page(request, "import_upload.html", {
        "errors": errors, "upload": _UPLOAD,
        "error": ({"text": "The file has problems: see the list above", "href": f"#{_UPLOAD}"}
                  if len(errors) > 1 else (errors[0] if errors else None)),
    })


@routes.get("/console/directory/import")
async def upload_form(request: web.Request) -> web.Response:
    _operator(request)
    return _upload_page(request, [])


async def _uploaded_text(request: web.Request) -> str | None:
    """The uploaded file as text (UTF-8, a spreadsheet's byte order mark allowed), or None
    when no file, or no UTF-8 text, was sent."""
    await form_with_token(request, admin.csrf_token(request))
    upload = (await request.post()).get(_UPLOAD)
    if not isinstance(upload, web.FileField):
        return None
    try:
        return upload.file.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


@routes.post("/console/directory/import")
async def preview(request: web.Request) -> web.Response:
    """What ``POST /v1/directory/import`` answers without ``apply``: the changes the file
    would make, for the operator to check before proposing it."""
    principal = _operator(request)
    try:
        text = await _uploaded_text(request)
    except web.HTTPRequestEntityTooLarge:
        # Nothing was read, so nothing is done: the form again, saying why.
        limit = pages.services(request).settings.max_body_bytes
        size = (f"{limit // 1024 ** 2} MB" if limit % 1024 ** 2 == 0
                else f"{limit // 1024} KB")
        return _upload_page(request, [admin.error(
            f"The file must be smaller than {size}", _UPLOAD)])
    if not text or not text.strip():
        return _upload_page(request, [admin.error(
            "Select a CSV file of the SPOC list, saved as UTF-8", _UPLOAD)])
    services = pages.services(request)
    try:
        plan = await services.administration.preview_import(principal, text)
    except InvalidDirectoryFile as refused:
        return _upload_page(request, file_errors(refused.violations))
    return pages.page(request, "import_preview.html", {
        "plan": plan_words(plan, services.directory), "csv": text,
    })


@routes.post("/console/directory/import/propose")
async def propose(request: web.Request) -> web.Response:
    """What ``POST /v1/directory/import`` does with ``apply``: the import is recorded for a
    second operator to approve, and nothing changes yet."""
    principal = _operator(request)
    values = await form_with_token(request, admin.csrf_token(request))
    try:
        proposal = await pages.services(request).administration.propose_import(
            principal, values.get("csv", ""))
    except InvalidDirectoryFile as refused:
        return _upload_page(request, file_errors(refused.violations))
    raise web.HTTPSeeOther(f"/console/directory/imports/{proposal.id}?proposed=1")


def _import_id(request: web.Request) -> str:
    import_id = request.match_info["import_id"].lower()
    if not _IMPORT_ID.fullmatch(import_id):
        raise NotFound("no such import")
    return import_id


def _waiting(proposal: DirectoryImport, principal: Principal,
             directory: Directory) -> dict[str, Any]:
    """A row of the imports waiting for approval: whose, when, and how much it changes."""
    author = directory.person(proposal.proposed_by)
    return {
        "id": proposal.id,
        "author": author.name if author else proposal.proposed_by,
        "own": principal.person is not None and principal.person.id == proposal.proposed_by,
        "proposed_at": when(proposal.proposed_at),
        "added": len(proposal.plan.get("added", [])),
        "changed": len(proposal.plan.get("changed", [])),
    }


def _import_context(request: web.Request, principal: Principal, proposal: DirectoryImport,
                    errors: list[dict[str, str]]) -> dict[str, Any]:
    directory = pages.services(request).directory
    author = directory.person(proposal.proposed_by)
    approver = directory.person(proposal.approved_by) if proposal.approved_by else None
    own = principal.person is not None and principal.person.id == proposal.proposed_by
    others = [p.name for p in directory.holders_of(Role.DIRECTORY_ADMIN)
              if p.id != proposal.proposed_by]
    return {
        "proposal": proposal,
        "applied": proposal.approved_by is not None,
        "author": author.name if author else proposal.proposed_by,
        "proposed_at": when(proposal.proposed_at),
        "approver": approver.name if approver else proposal.approved_by,
        "approved_at": when(proposal.approved_at) if proposal.approved_at else "",
        "own": own,
        "others": others,
        "plan": plan_words(proposal.plan, directory),
        "errors": errors,
        "proposed": request.query.get("proposed", "") == "1",
        "approved": request.query.get("approved", "") == "1",
    }


@routes.get("/console/directory/imports/{import_id}")
async def import_page(request: web.Request) -> web.Response:
    """A proposed import as it was previewed; its approval, for anyone but its author."""
    principal = _operator(request)
    proposal = await directory_actions.find_import(pages.services(request), principal,
                                                   _import_id(request))
    return pages.page(request, "import_approve.html",
                      _import_context(request, principal, proposal, []))


@routes.post("/console/directory/imports/{import_id}/approve")
async def approve(request: web.Request) -> web.Response:
    """What ``POST /v1/directory/imports/{id}/approve`` does: a second operator applies the
    import as it was previewed; its author's approval is refused in the rule's words."""
    principal = _operator(request)
    services = pages.services(request)
    import_id = _import_id(request)
    proposal = await directory_actions.find_import(services, principal, import_id)
    await form_with_token(request, admin.csrf_token(request))
    try:
        await directory_actions.approve_import(services, principal, import_id)
    except (AccessDenied, Conflict) as refused:
        return pages.page(request, "import_approve.html", _import_context(
            request, principal, proposal, [{"text": refused.detail, "href": "#approve"}]))
    raise web.HTTPSeeOther(f"/console/directory/imports/{import_id}?approved=1")
