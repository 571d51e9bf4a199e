"""The IG lead's sharing-policy pages (issue 12): the active policy as readable rules, a
draft edited as YAML and checked, its test cases, the changed decisions over every input,
a replay of past traffic, proposing, a colleague's approval, and the version history.

IG leads are not programmers: every result is shown in words, a problem in the YAML by its
line. Each page asks what ``/v1/policy`` asks (``access.Action.WORK_ON_POLICY``) and does
what it does through the same functions (``gateway.http.policy_actions``): the same parser
and limits, the same cases, diff and replay, the same two-person rule
(``access.check_second_person``: no one approves their own change) and the same audit
entries. Reading a policy concerns no person, so, as in the API, it is not a consultation
(DPA 2018 s.62 logs reads of personal data)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

from aiohttp import web

from gateway.console import pages, policy_words
from gateway.console.security import form_with_token
from gateway.console.words import LONDON, humanise, when
from gateway.domain.errors import AccessDenied, InvalidPolicy, NotFound, Violation
from gateway.domain.model import Principal
from gateway.http import policy_actions
from gateway.http.policy_actions import MAX_CHANGES_SHOWN, MAX_REASON_CHARS
from gateway.pipeline.policy.cases import CaseResult
from gateway.pipeline.policy.diff import Change
from gateway.pipeline.policy.document import MAX_POLICY_BYTES
from gateway.pipeline.policy.lines import located
from gateway.services.policy import BASELINE_AUTHOR, DEFAULT_POLICY
from gateway.storage.base import PolicyVersion

routes = web.RouteTableDef()

_VERSION = re.compile(r"sha256:[0-9a-f]{32}")
# The agreed outcomes shipped beside the baseline policy (``gateway.pipeline.policy.cases``).
DEFAULT_CASES = DEFAULT_POLICY.with_name(DEFAULT_POLICY.stem + ".cases.yaml")
ACTIONS = ("check", "test", "diff", "simulate", "propose")
# Shares listed one by one on the simulation page; the counts cover all of them.
SHARES_LISTED = 100
_BASELINE_REASON = ("The policy file shipped with the gateway, installed when it first "
                    "started; its changes are reviewed with the gateway's code.")


def _ig_lead(request: web.Request) -> Principal:
    return policy_actions.ig_lead(pages.signed_in(request).principal)


def _version_id(request: web.Request) -> str:
    version = request.match_info["version"]
    if not _VERSION.fullmatch(version):
        raise NotFound("no such policy version")
    return version


async def _stored(request: web.Request, version: str) -> PolicyVersion:
    found = await policy_actions.find_version(pages.services(request), version)
    if found is None:
        raise NotFound("no such policy version")
    return found


def _who(request: web.Request, person_id: str | None) -> str:
    """'Kiran Shah, Norfolk CJIT' for a directory person."""
    if person_id is None:
        return ""
    if person_id == BASELINE_AUTHOR:
        return "Shipped with the gateway (reviewed with its code)"
    directory = pages.services(request).directory
    person = directory.person(person_id)
    if person is None:
        return person_id
    org = directory.get(person.org_code)
    return f"{person.name}, {org.name}" if org else person.name


def _version_view(request: web.Request, version: PolicyVersion) -> dict[str, Any]:
    services = pages.services(request)
    active = services.policy.active.version
    return {
        "version": version.version,
        "name": version.name,
        "status": policy_actions.status(version, active, services.clock()),
        "author_id": version.author,
        "author": _who(request, version.author),
        "proposed": when(version.proposed_at),
        "approver": _who(request, version.approved_by),
        "approved": when(version.approved_at) if version.approved_at else "",
        "effective": when(version.effective_from) if version.effective_from else "",
        "reason": version.reason or (
            _BASELINE_REASON if version.author == BASELINE_AUTHOR else ""),
    }


# --- the active policy as readable rules ----------------------------------------------------


@routes.get("/console/policy")
async def rules(request: web.Request) -> web.Response:
    """The policy in force (or a stored version, ``?version=``) as a table of rules per
    message type, with who proposed and approved it."""
    _ig_lead(request)
    services = pages.services(request)
    wanted = request.query.get("version")
    if wanted and not _VERSION.fullmatch(wanted):
        raise NotFound("no such policy version")
    version = wanted or services.policy.active.version
    stored = await _stored(request, version)
    policy = services.policy.parse(stored.source_text)
    titles = policy_words.type_titles(services.schemas.documents)
    return pages.page(request, "policy.html", {
        "policy": policy,
        "stored": _version_view(request, stored),
        "tables": policy_words.readable(policy, titles),
        "is_active": version == services.policy.active.version,
    })


# --- a draft: check, test, compare, simulate, propose ---------------------------------------


def _problems(text: str, violations: list[Violation]) -> list[dict[str, str]]:
    """Each problem as 'line N: …', linked to the policy's text box (GOV.UK error summary)."""
    found = []
    for violation in violations:
        line, message = located(text, violation)
        words = f"line {line}: {message}" if line is not None else message
        found.append({"text": words, "href": "#policy"})
    return found


def _draft_context(text: str, cases: str, reason: str, **more: Any) -> dict[str, Any]:
    return {"text": text, "cases": cases, "reason": reason, "errors": [],
            "reason_error": None, "policy_error": None, "cases_error": None, "result": None,
            "max_reason": MAX_REASON_CHARS,
            "from_version": "", "from_name": "", **more}


@routes.get("/console/policy/draft")
async def draft(request: web.Request) -> web.Response:
    """A draft's text box, filled with the active policy or the version chosen."""
    _ig_lead(request)
    services = pages.services(request)
    wanted = request.query.get("from") or services.policy.active.version
    if not _VERSION.fullmatch(wanted):
        raise NotFound("no such policy version")
    stored = await _stored(request, wanted)
    return pages.page(request, "policy_draft.html", _draft_context(
        stored.source_text, _default_cases(), "", **_origin(stored)))


def _origin(stored: PolicyVersion) -> dict[str, str]:
    return {"from_version": stored.version, "from_name": f"{stored.name} {stored.version[7:15]}"}


async def _started_from(request: web.Request, version: str) -> dict[str, str]:
    """The stored version a draft started from (named by the form's hidden field)."""
    if not _VERSION.fullmatch(version):
        return {}
    stored = await policy_actions.find_version(pages.services(request), version)
    return _origin(stored) if stored is not None else {}


def _default_cases() -> str:
    return DEFAULT_CASES.read_text(encoding="utf-8")


def _case_row(result: CaseResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "consent": policy_words.CONSENT_STATE_WORDS.get(result.consent.value,
                                                        result.consent.value),
        "passed": result.passed,
        "differences": [
            f"{humanise(key)}: expected "
            f"{policy_words.expectation_words(key, expected)}, got "
            f"{policy_words.expectation_words(key, result.actual.get(key))}"
            for key, expected in result.expected.items()
            if expected != result.actual.get(key)
        ],
    }


def _change_row(change: Change, titles: Mapping[str, str]) -> dict[str, Any]:
    return {
        "situation": policy_words.situation_words(change.situation, titles),
        "before": policy_words.decision_words(change.before),
        "after": policy_words.decision_words(change.after),
        "message_id": change.situation.get("message_id"),
    }


async def _result(request: web.Request, action: str, text: str,
                  cases: str) -> dict[str, Any]:
    """What one button asks for, done as ``/v1/policy/<action>`` does it."""
    services = pages.services(request)
    titles = policy_words.type_titles(services.schemas.documents)
    if action == "check":
        policy = services.policy.parse(text)
        return {"kind": "check", "name": policy.name, "version": policy.version,
                "rules": len(policy.rules),
                "is_active": policy.version == services.policy.active.version}
    if action == "test":
        try:
            policy, results = policy_actions.run_policy_cases(services, text, cases)
        except InvalidPolicy as invalid:
            # A problem in the cases, not the policy: say so, with the cases' lines.
            services.policy.parse(text)
            raise _CasesInvalid(invalid.violations) from None
        rows = [_case_row(r) for r in results]
        return {"kind": "test", "version": policy.version,
                "failed": [r for r in rows if not r["passed"]],
                "passed": [r for r in rows if r["passed"]]}
    if action == "diff":
        after = services.policy.parse(text)
        before = services.policy.active
        changes = await policy_actions.compare(services, before, after)
        return {"kind": "diff", "before": before.version, "after": after.version,
                "changed": len(changes), "shown": MAX_CHANGES_SHOWN,
                "rows": [_change_row(c, titles) for c in changes[:MAX_CHANGES_SHOWN]]}
    policy, replayed, changes = await policy_actions.simulate(services, text)
    counted = Counter(policy_words.change_summary(c.before, c.after) for c in changes)
    return {"kind": "simulate", "version": policy.version, "replayed": replayed,
            "changed": len(changes), "listed": SHARES_LISTED,
            "by_change": counted.most_common(),
            "rows": [_change_row(c, titles) for c in changes[:SHARES_LISTED]]}


class _CasesInvalid(Exception):
    def __init__(self, violations: tuple[Violation, ...] | list[Violation]) -> None:
        super().__init__("the cases are malformed")
        self.violations = list(violations)


@routes.post("/console/policy/draft")
async def work_on_draft(request: web.Request) -> web.Response:
    """Check, test, compare, simulate or propose the draft in the text box."""
    principal = _ig_lead(request)
    try:
        form = await form_with_token(request, pages.signed_in(request).session.csrf_token)
    except web.HTTPRequestEntityTooLarge:
        limit = pages.services(request).settings.max_body_bytes
        context = _draft_context("", "", "")
        _show_problems(context, [{"text": (
            f"The form was larger than {limit // 1024} KiB and was not read. A policy file "
            f"may be at most {MAX_POLICY_BYTES // 1024} KiB: start again from the active "
            "policy."), "href": "#policy"}])
        return pages.page(request, "policy_draft.html", context, status=413)
    text, cases = form.get("policy", ""), form.get("cases", "")
    reason = form.get("reason", "")
    action = form.get("action", "check")
    if action not in ACTIONS:
        action = "check"
    context = _draft_context(text, cases, reason, action=action,
                             **await _started_from(request, form.get("from_version", "")))
    if not text.strip():
        _show_problems(context, [{"text": "Enter the policy", "href": "#policy"}])
        return pages.page(request, "policy_draft.html", context)
    if action == "propose":
        return await _propose(request, principal, context)
    try:
        context["result"] = await _result(request, action, text, cases)
    except InvalidPolicy as invalid:
        _show_problems(context, _problems(text, list(invalid.violations)))
    except _CasesInvalid as invalid:
        _show_problems(context, [
            {"text": f"Test cases: {e['text']}", "href": "#cases"}
            for e in _problems(cases, invalid.violations)])
        context["cases_error"] = context["errors"][0]
    return pages.page(request, "policy_draft.html", context)


async def _propose(request: web.Request, principal: Principal,
                   context: dict[str, Any]) -> web.Response:
    """``POST /v1/policy/versions`` with a reason; then the proposal's own page. Every
    problem (the policy's and a missing reason) is listed at once."""
    services = pages.services(request)
    reason = policy_actions.valid_reason(context["reason"])
    if reason is None:
        context["reason_error"] = {
            "text": "Enter why the policy should change" if not context["reason"].strip()
            else f"The reason must be {MAX_REASON_CHARS} characters or fewer",
            "href": "#reason"}
    try:
        policy = services.policy.parse(context["text"])
    except InvalidPolicy as invalid:
        _show_problems(context, _problems(context["text"], list(invalid.violations)))
        return pages.page(request, "policy_draft.html", context)
    if reason is None:
        _show_problems(context, [])
        return pages.page(request, "policy_draft.html", context)
    if policy.version == services.policy.active.version:
        _show_problems(context, [{"text": "This draft is the active policy: change a rule "
                                  "before proposing it", "href": "#policy"}])
        return pages.page(request, "policy_draft.html", context)
    proposed = await policy_actions.propose(services, principal, context["text"], reason)
    raise web.HTTPSeeOther(f"/console/policy/versions/{proposed.version}?proposed=1")


def _show_problems(context: dict[str, Any], problems: list[dict[str, str]]) -> None:
    """The error summary's list, and the message beside the field (GOV.UK error message:
    one per field; several problems in the policy are counted there and listed above)."""
    context["errors"] = problems + ([context["reason_error"]] if context["reason_error"] else [])
    mine = [p for p in problems if p["href"] == "#policy"]
    if len(mine) == 1:
        context["policy_error"] = mine[0]
    elif mine:
        context["policy_error"] = {"text": f"There are {len(mine)} problems in the policy, "
                                           f"listed at the top of the page. The first is "
                                           f"{mine[0]['text']}", "href": "#policy"}


# --- versions: history, one version, approval -----------------------------------------------


@routes.get("/console/policy/versions")
async def history(request: web.Request) -> web.Response:
    _ig_lead(request)
    services = pages.services(request)
    listed = await services.policy.versions()
    rows = [_version_view(request, v)
            for v in sorted(listed, key=lambda v: v.proposed_at, reverse=True)]
    return pages.page(request, "policy_history.html", {"rows": rows})


async def _version_page(request: web.Request, principal: Principal, version: str, *,
                        errors: list[dict[str, str]] | None = None,
                        form: Mapping[str, str] | None = None,
                        status: int = 200) -> web.Response:
    services = pages.services(request)
    stored = await _stored(request, version)
    view = _version_view(request, stored)
    own = principal.person is not None and principal.person.id == stored.author
    waiting = stored.approved_by is None
    changes: list[dict[str, Any]] = []
    changed = 0
    if waiting:
        # What the approver approves: every decision it changes against the policy in force.
        titles = policy_words.type_titles(services.schemas.documents)
        found = await policy_actions.compare(services, services.policy.active,
                                       services.policy.parse(stored.source_text))
        changed = len(found)
        changes = [_change_row(c, titles) for c in found[:MAX_CHANGES_SHOWN]]
    return pages.page(request, "policy_version.html", {
        "v": view, "text": stored.source_text, "own": own, "waiting": waiting,
        "changes": changes, "changed": changed, "shown": MAX_CHANGES_SHOWN,
        "errors": errors or [], "form": form or {},
        "date_error": next((e for e in errors or [] if e["href"] == "#effective-day"), None),
        "proposed_now": request.query.get("proposed") == "1",
        "approved_now": request.query.get("approved") == "1",
    }, status=status)


@routes.get("/console/policy/versions/{version}")
async def version_page(request: web.Request) -> web.Response:
    principal = _ig_lead(request)
    return await _version_page(request, principal, _version_id(request))


def _effective_from(form: Mapping[str, str], today: date
                    ) -> tuple[datetime | None, dict[str, str] | None]:
    """When an approved version takes effect: at once, or from the start of a later day,
    UK time (``effective_from`` of ``POST /v1/policy/versions/{version}/approve``)."""
    if form.get("when") != "later":
        return None, None
    parts = [form.get(f"effective-{p}", "").strip() for p in ("day", "month", "year")]
    if not all(parts):
        return None, {"text": "Enter the date the version comes into force",
                      "href": "#effective-day"}
    try:
        chosen = date(int(parts[2]), int(parts[1]), int(parts[0]))
    except ValueError:
        return None, {"text": "The date must be a real date", "href": "#effective-day"}
    if chosen <= today:
        return None, {"text": "The date must be in the future", "href": "#effective-day"}
    return datetime.combine(chosen, time.min, LONDON), None


@routes.post("/console/policy/versions/{version}/approve")
async def approve(request: web.Request) -> web.Response:
    """``POST /v1/policy/versions/{version}/approve``: a second IG lead's approval, in
    force at once or from a later day. The author's own approval is refused with the page
    saying why (two-person rule, ``access.check_second_person``)."""
    principal = _ig_lead(request)
    version = _version_id(request)
    form = await form_with_token(request, pages.signed_in(request).session.csrf_token)
    await _stored(request, version)
    services = pages.services(request)
    effective_from, problem = _effective_from(form, services.clock().astimezone(LONDON).date())
    if problem is not None:
        return await _version_page(request, principal, version, errors=[problem], form=form)
    try:
        await policy_actions.approve(services, principal, version, effective_from)
    except AccessDenied:
        return await _version_page(request, principal, version, status=403, errors=[{
            "text": "You proposed this change, so you cannot approve it: a second IG lead "
                    "must approve it", "href": "#approval"}])
    raise web.HTTPSeeOther(f"/console/policy/versions/{version}?approved=1")
