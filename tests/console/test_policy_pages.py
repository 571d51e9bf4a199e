"""The IG lead's sharing-policy pages (issue 12), in-process on the real app: the active
policy as readable rules, a draft's problems by line, its test cases, the changed decisions,
a replay of past traffic, proposing, a second IG lead's approval, the two-person rule
refused in words, the 403 page for a SPOC, and forms without their CSRF token."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.config import Settings
from gateway.pipeline.audit import AuditAction
from gateway.services.policy import DEFAULT_POLICY
from tests.conftest import AgencyFactory, load, person_bearer
from tests.console.test_console import RA1, sign_in
from tests.test_audit_log import audit_entries
from tests.test_messages_end_to_end import wait_for_inbox

AUTHOR = "cjit-nfk.ig-lead"  # Kiran Shah, Norfolk CJIT
APPROVER = "prb-eoe.ig-lead"  # Yusuf Ibrahim, the probation service
SPOC = "cjit-nfk.spoc"
POLICY = DEFAULT_POLICY.read_text(encoding="utf-8")
# RA1 to probation as well as the CJIT: a rule change an IG lead might propose by mistake.
RA1_RULE = """      sender: police
      recipient: cjit
    reason: >-
      After a positive test"""
WIDER_RA1 = POLICY.replace(RA1_RULE, RA1_RULE.replace("recipient: cjit",
                                                      "recipient: [cjit, probation]"), 1)
# RA1 only with written consent: every RA1 sent without it would have been refused.
STRICTER_RA1 = POLICY.replace("""    consent: not_required
    when:
      type: ra1_notice""", """    consent: written_required
    when:
      type: ra1_notice""", 1)


def text_of(page: str) -> str:
    """The page's words, tags removed and entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def line_number(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


async def post_draft(client: TestClient[Any, Any], csrf: str, action: str, policy: str,
                     **more: str) -> tuple[int, str]:
    response = await client.post("/console/policy/draft", data={
        "csrf_token": csrf, "action": action, "policy": policy,
        "cases": DEFAULT_POLICY.with_name("dip-default.cases.yaml").read_text("utf-8"),
        **more,
    }, allow_redirects=False)
    return response.status, await response.text()


async def test_the_active_policy_reads_as_rules_per_message_type(
    client: TestClient[Any, Any],
) -> None:
    await sign_in(client, AUTHOR)
    home = await (await client.get("/console/")).text()
    assert 'href="/console/policy"' in home
    response = await client.get("/console/policy")
    assert response.status == 200
    page = await response.text()
    words = text_of(page)
    assert "Sharing policy: dip-default" in words
    assert "Shipped with the gateway" in words  # the baseline's author, in words
    for caption in ("RA1 \N{EN DASH} Required Assessment notice", "Disengagement alert",
                    "Every message type"):
        assert f'<caption class="govuk-table__caption govuk-table__caption--m">{caption}' in page
    # The RA1 rule in words: who, to whom, route, consent, basis and handbook paragraph.
    ra1 = page[page.index('id="rules-ra1_notice"'):]
    ra1 = text_of(ra1[: ra1.index("</table>")])
    assert ("Shared Why (rule ra1-statutory) After a positive test the police must tell the "
            "CJIT") in ra1
    assert ("Rule ra1-statutory Police forces Criminal Justice Integrated Teams (CJITs) "
            "Identification by Enforcement Not needed Drugs Act 2005 Part 3") in ra1
    assert "Handbook: H 4.2, H 4.6.1 vii" in ra1
    assert "Never shared" in ra1 and "Identification by Proactive Engagement" in ra1
    alert = page[page.index('id="rules-disengagement_alert"'):]
    alert = text_of(alert[: alert.index("</table>")])
    assert "Removes: Clinical summary, Prescribing, Immediate risks, Risk narrative" in alert
    assert "Disengagement event: breach conditional caution dip condition" in alert


async def test_a_draft_with_problems_lists_each_by_line(client: TestClient[Any, Any]) -> None:
    csrf = await sign_in(client, AUTHOR)
    draft_page = await (await client.get("/console/policy/draft")).text()
    assert html.unescape(draft_page).count("policy: dip-default") == 1
    assert "Started from version dip-default" in text_of(draft_page)
    broken = WIDER_RA1.replace("recipient: [cjit, probation]", "recipient: [cjit, probaton]")
    broken = broken.replace("effect: forbid", "effect: refuse", 1)
    status, page = await post_draft(client, csrf, "check", broken)
    assert status == 200
    words = text_of(page)
    assert page.count('class="govuk-error-summary"') == 1
    summary = page[page.index("govuk-error-summary__list"):page.index("</ul>",
                   page.index("govuk-error-summary__list"))]
    effect_line = line_number(broken, "effect: refuse")
    recipient_line = line_number(broken, "recipient: [cjit, probaton]")
    assert f'<a href="#policy">line {effect_line}: Must be one of' in summary
    assert f'<a href="#policy">line {recipient_line}: &#39;probaton&#39; is not a known' in summary
    assert "Error: Edit a draft" in words  # the title says so too (GOV.UK pattern)
    assert 'id="policy-error"' in page and "govuk-textarea--error" in page
    # What was typed comes back to be corrected.
    assert "recipient: [cjit, probaton]" in html.unescape(page)

    _, page = await post_draft(client, csrf, "check", "policy: x\nrules: [\n")
    assert re.search(r'href="#policy">line \d+: The file is not valid YAML at line \d+', page)
    _, page = await post_draft(client, csrf, "test", "a: b\na: c\n")
    assert "line 2: The key &#39;a&#39; at line 2 is already given at line 1" in page


async def test_huge_and_empty_drafts_get_an_error_summary_never_a_500(
    client: TestClient[Any, Any],
) -> None:
    csrf = await sign_in(client, AUTHOR)
    status, page = await post_draft(client, csrf, "check", "# x\n" * 80_000)
    assert status == 200 and "a policy or cases file may be at most 262144 bytes" in page
    status, page = await post_draft(client, csrf, "diff", "   ")
    assert status == 200 and '<a href="#policy">Enter the policy</a>' in page
    status, page = await post_draft(client, csrf, "check", "x" * 2_000_000)
    assert status == 413 and 'class="govuk-error-summary"' in page
    assert "was not read" in page
    # A bomb of aliases is refused by the parser's own limits.
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    status, page = await post_draft(client, csrf, "check", bomb)
    assert status == 200 and "values, passing the limit" in page


async def test_a_valid_draft_is_checked_and_its_cases_run(client: TestClient[Any, Any]) -> None:
    csrf = await sign_in(client, AUTHOR)
    status, page = await post_draft(client, csrf, "check", WIDER_RA1)
    assert status == 200 and "govuk-notification-banner--success" in page
    assert "The draft has no problems:" in page
    status, page = await post_draft(client, csrf, "test", WIDER_RA1)
    assert status == 200
    words = text_of(page)
    assert re.search(r"Test cases: 5 failed, \d+ passed", words)  # one per consent state
    failed = text_of(page[page.index('id="failed-cases"'):page.index("</table>",
                                                                     page.index('id="failed-cases"'))])
    assert "RA1 to probation has no rule" in failed and "Fail" in failed
    assert ("Decision: expected Not shared, got Shared Rule: expected default-deny, got "
            "ra1-statutory") in failed
    assert "govuk-tag--green" in page  # passed cases are tagged too
    _, page = await post_draft(client, csrf, "test", POLICY)
    assert "Test cases: 0 failed" in text_of(page)
    # Broken cases are reported as the cases' problem.
    _, page = await post_draft(client, csrf, "test", POLICY, cases="cases: 3\n")
    assert "Test cases: line 1: The cases file must hold a list" in text_of(page)


async def test_the_diff_is_a_table_of_changed_decisions(client: TestClient[Any, Any]) -> None:
    csrf = await sign_in(client, AUTHOR)
    status, page = await post_draft(client, csrf, "diff", WIDER_RA1)
    assert status == 200
    words = text_of(page)
    assert "5 decisions would change" in words  # one per state of consent
    table = text_of(page[page.index('id="changes"'):page.index("</table>",
                                                             page.index('id="changes"'))])
    assert ("RA1 \N{EN DASH} Required Assessment notice From Police forces to Probation services "
            "Identification by Enforcement No consent recorded "
            "Not shared: no rule allows it Shared, consent not needed (rule ra1-statutory)"
            ) in table
    _, page = await post_draft(client, csrf, "diff", POLICY)
    assert "0 decisions would change" in text_of(page)


async def test_simulation_counts_the_past_shares_each_change_alters(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    for _ in range(2):
        document = {**load(RA1), "message_id": str(uuid.uuid4())}
        await agency("POL-SFK-IPS").send(document)
        assert await wait_for_inbox(agency("CJIT-NFK"), document["message_id"])
    csrf = await sign_in(client, AUTHOR)
    status, page = await post_draft(client, csrf, "simulate", STRICTER_RA1)
    assert status == 200
    words = text_of(page)
    assert "Past traffic: 2 of 2 past shares would have been decided differently" in words
    by_change = text_of(page[page.index('id="by-change"'):page.index("</table>",
                                                                  page.index('id="by-change"'))])
    assert ("Shared, consent not needed (rule ra1-statutory) → Not shared: the person's "
            "written consent is needed and not recorded (rule ra1-statutory) 2") in by_change
    assert 'id="past-shares"' in page and words.count("Message ") == 2
    _, page = await post_draft(client, csrf, "simulate", POLICY)
    assert "0 of 2 past shares" in text_of(page)


async def propose(client: TestClient[Any, Any], csrf: str, policy: str, reason: str) -> str:
    status, page = await post_draft(client, csrf, "propose", policy, reason=reason)
    assert status == 303, page
    return page


async def test_propose_then_a_second_ig_lead_approves(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    csrf = await sign_in(client, AUTHOR)
    # Without a reason nothing is proposed.
    status, page = await post_draft(client, csrf, "propose", WIDER_RA1, reason=" ")
    assert status == 200 and '<a href="#reason">Enter why the policy should change</a>' in page
    # Every problem at once: the policy's, by line, and the missing reason.
    broken = WIDER_RA1.replace("effect: forbid", "effect: refuse", 1).replace(
        "effect: permit", "effect: allow", 1)
    status, page = await post_draft(client, csrf, "propose", broken, reason="")
    assert status == 200
    assert re.findall(r'<li><a href="#(\w+)">', page) == ["policy", "policy", "reason"]
    assert "There are 2 problems in the policy, listed at the top of the page." in page
    status, page = await post_draft(client, csrf, "propose", POLICY, reason="No change")
    assert status == 200 and "This draft is the active policy" in page
    response = await client.post("/console/policy/draft", data={
        "csrf_token": csrf, "action": "propose", "policy": WIDER_RA1, "cases": "",
        "reason": "Probation asked for RA1 copies (H 4.7.1 review)"}, allow_redirects=False)
    assert response.status == 303
    location = response.headers["Location"]
    version = re.fullmatch(r"/console/policy/versions/(sha256:[0-9a-f]{32})\?proposed=1",
                           location)
    assert version is not None
    page = await (await client.get(location)).text()
    words = text_of(page)
    assert "Your change was proposed" in words and "Waiting for approval" in words
    assert "Kiran Shah, Norfolk CJIT" in words
    assert "Probation asked for RA1 copies (H 4.7.1 review)" in words
    assert "5 decisions would change" in words
    # The author's own page explains why there is no approve button.
    assert "there is no approve button for you" in words and "Approve this version" not in words

    history = text_of(await (await client.get("/console/policy/versions")).text())
    assert "2 versions" in history and "Waiting for approval" in history
    assert "Probation asked for RA1 copies" in history and "Active" in history
    assert "The policy file shipped with the gateway" in history  # the baseline's reason
    # A draft may start from any stored version: this one, still waiting.
    from_proposal = await (await client.get(f"/console/policy/draft?from={version[1]}")).text()
    assert "recipient: [cjit, probation]" in html.unescape(from_proposal)
    assert f"Started from version dip-default {version[1][7:15]}" in text_of(from_proposal)

    client.session.cookie_jar.clear()
    csrf = await sign_in(client, APPROVER)
    page = await (await client.get(location.split("?")[0])).text()
    assert "Approve this version" in page
    response = await client.post(f"/console/policy/versions/{version[1]}/approve",
                                 data={"csrf_token": csrf}, allow_redirects=False)
    assert response.status == 303
    page = text_of(await (await client.get(response.headers["Location"])).text())
    assert "You approved this version. It is now the active sharing policy." in page
    assert "Yusuf Ibrahim, East of England" in page or "Yusuf Ibrahim," in page
    rules = await (await client.get("/console/policy")).text()
    assert version[1] in rules and "Probation services" in text_of(rules)
    entries = await audit_entries(client, settings)
    proposed = [e for e in entries if e["action"] == AuditAction.POLICY_PROPOSED.value]
    approved = [e for e in entries if e["action"] == AuditAction.POLICY_APPROVED.value]
    assert proposed[-1]["details"]["reason"] == "Probation asked for RA1 copies (H 4.7.1 review)"
    assert proposed[-1]["actor"].endswith(AUTHOR)
    assert approved[-1]["details"]["version"] == version[1]
    assert approved[-1]["actor"].endswith(APPROVER)


async def test_the_author_cannot_approve_their_own_change(client: TestClient[Any, Any]) -> None:
    csrf = await sign_in(client, AUTHOR)
    response = await client.post("/console/policy/draft", data={
        "csrf_token": csrf, "action": "propose", "policy": WIDER_RA1, "cases": "",
        "reason": "Copy RA1 to probation"}, allow_redirects=False)
    version = response.headers["Location"].split("/")[-1].split("?")[0]
    response = await client.post(f"/console/policy/versions/{version}/approve",
                                 data={"csrf_token": csrf}, allow_redirects=False)
    assert response.status == 403
    page = await response.text()
    assert '<a href="#approval">You proposed this change, so you cannot approve it' in page
    assert "two-person rule" in page
    active = await (await client.get("/console/policy")).text()
    assert version not in active


async def test_a_spoc_gets_the_403_page_and_no_policy(client: TestClient[Any, Any]) -> None:
    csrf = await sign_in(client, SPOC)
    home = await (await client.get("/console/")).text()
    assert 'href="/console/policy"' not in home
    for path in ("/console/policy", "/console/policy/draft", "/console/policy/versions"):
        response = await client.get(path)
        assert response.status == 403, path
        page = await response.text()
        assert "You do not have permission to see this page" in page
        assert "ra1-statutory" not in page and "sha256:" not in page
    status, page = await post_draft(client, csrf, "propose", WIDER_RA1, reason="x")
    assert status == 403


async def test_forms_without_their_csrf_token_change_nothing(
    client: TestClient[Any, Any],
) -> None:
    csrf = await sign_in(client, AUTHOR)
    before = await (await client.get("/console/policy/versions")).text()
    response = await client.post("/console/policy/draft", data={
        "action": "propose", "policy": WIDER_RA1, "reason": "No token"})
    assert response.status == 400
    assert "Sorry, there is a problem with the form" in await response.text()
    response = await client.post("/console/policy/draft", data={
        "csrf_token": csrf + "x", "action": "check", "policy": WIDER_RA1})
    assert response.status == 400
    version = re.search(r"/console/policy/versions/(sha256:[0-9a-f]{32})", before)
    assert version is not None
    response = await client.post(f"/console/policy/versions/{version[1]}/approve", data={})
    assert response.status == 400
    assert await (await client.get("/console/policy/versions")).text() == before


async def test_unknown_versions_are_404(client: TestClient[Any, Any]) -> None:
    await sign_in(client, AUTHOR)
    for path in ("/console/policy/versions/sha256:" + "0" * 32, "/console/policy/versions/x",
                 "/console/policy?version=nope", "/console/policy/draft?from=sha256:1"):
        assert (await client.get(path)).status == 404, path




async def test_a_reason_given_through_the_api_is_the_one_the_console_shows(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    headers = person_bearer(settings, APPROVER)
    bad = await client.post("/v1/policy/versions", json={"text": WIDER_RA1, "reason": " "},
                            headers=headers)
    assert bad.status == 400
    answer = await client.post("/v1/policy/versions", headers=person_bearer(settings, APPROVER),
                               json={"text": WIDER_RA1, "reason": "Asked by probation"})
    assert answer.status == 201
    version = (await answer.json())["version"]
    await sign_in(client, AUTHOR)
    page = text_of(await (await client.get(f"/console/policy/versions/{version}")).text())
    assert "Why Asked by probation" in page and "Yusuf Ibrahim" in page
    # The author here is the API's caller: the console's IG lead may approve it.
    assert "Approve this version" in page


async def test_an_approval_may_take_effect_from_a_later_day(
    client: TestClient[Any, Any],
) -> None:
    csrf = await sign_in(client, AUTHOR)
    response = await client.post("/console/policy/draft", data={
        "csrf_token": csrf, "action": "propose", "policy": WIDER_RA1, "cases": "",
        "reason": "From the new financial year"}, allow_redirects=False)
    version = response.headers["Location"].split("/")[-1].split("?")[0]
    client.session.cookie_jar.clear()
    csrf = await sign_in(client, APPROVER)
    approve = f"/console/policy/versions/{version}/approve"
    for parts, problem in (
        (("", "4", "2099"), "Enter the date the version comes into force"),
        (("31", "2", "2099"), "The date must be a real date"),
        (("1", "1", "2020"), "The date must be in the future"),
    ):
        response = await client.post(approve, data={
            "csrf_token": csrf, "when": "later", "effective-day": parts[0],
            "effective-month": parts[1], "effective-year": parts[2]})
        assert response.status == 200
        page = await response.text()
        assert f'<a href="#effective-day">{problem}</a>' in page
        assert 'value="later" checked' in page and f'value="{parts[2]}"' in page
    response = await client.post(approve, data={
        "csrf_token": csrf, "when": "later", "effective-day": "1", "effective-month": "4",
        "effective-year": "2099"}, allow_redirects=False)
    assert response.status == 303
    page = text_of(await (await client.get(response.headers["Location"])).text())
    assert "It comes into force 1 April 2099 at 12am." in page
    assert "Approved, not yet in force" in page
    assert version not in await (await client.get("/console/policy")).text()
