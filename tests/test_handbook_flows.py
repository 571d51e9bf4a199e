"""The handbook flows issue 11 added: new message types and organisation kinds, a CJIT's
RA2, CARAT release to probation, the new disengagement events.

Every valid, invalid and refused example of the new types also runs through the real app
in ``tests/test_messages_end_to_end.py``; this module holds what those do not: the policy
diff, the sender's side of a two-way type, the rules on the route, resolution through the
gateway's records, consent by purpose, and ``dipgw send`` against a running gateway.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from gateway.client import GatewayProblem
from gateway.domain.model import MessageType
from gateway.pipeline.policy.diff import diff as policy_diff
from gateway.pipeline.policy.diff import fact_domains, situations
from gateway.pipeline.policy.document import load_text
from gateway.pipeline.policy.evaluate import evaluate
from gateway.pipeline.policy.rules import Facts
from gateway.pipeline.validation import SchemaSet
from tests.conftest import EXAMPLES, ROOT, AgencyFactory, load
from tests.test_messages_end_to_end import wait_for_inbox

NEW_TYPES = frozenset({
    "proactive_referral", "conditional_caution_notice", "drr_progress", "drr_suitability",
    "gate_pickup", "compliance_report", "ppo_nomination", "treatment_referral",
    "treatment_progress", "drr_handover",
})
NEW_KINDS = frozenset({"cps", "ppo_iom", "treatment_provider"})
NEW_EVENTS = frozenset({
    "refused_initial_assessment", "refused_follow_up_assessment", "refused_assessment",
    "failed_to_attend_additional_appointment", "refused_additional_appointment",
    "refused_further_intervention", "refused_care_plan",
})
NEW_RULES = frozenset({
    "ra2-by-cjit", "proactive-referral", "conditional-caution-dip-condition",
    "drr-progress-to-cjit", "drr-suitability-request", "drr-suitability-assessment",
    "gate-pickup-request", "gate-pickup-answer", "carat-release-on-licence-to-probation",
    "compliance-report-enforcement", "compliance-report-proactive", "ppo-iom-nomination",
    "treatment-referral", "treatment-progress-to-cjit", "drr-handover-to-probation",
})
# Existing rules that now also cover PPO/IOM schemes and the new refusal events.
ALERT_RULES = frozenset({
    "statutory-non-attendance-to-police", "caseload-disengagement-to-police",
    "proactive-non-engagement-to-police", "disengagement-to-probation-enforcement",
    "disengagement-to-probation-proactive",
})
BEFORE = ROOT / "tests" / "data" / "dip-default-before-issue-11-flows.yaml"
AFTER = ROOT / "policies" / "dip-default.yaml"


def first_valid(message_type: str) -> dict[str, Any]:
    return copy.deepcopy(load(sorted((EXAMPLES / message_type).glob("valid*.json"))[0]))


def example(name: str) -> dict[str, Any]:
    return copy.deepcopy(load(EXAMPLES / name))


def fresh(document: dict[str, Any], **body: Any) -> dict[str, Any]:
    """The document as a new message, with body fields replaced."""
    document = copy.deepcopy(document)
    document["message_id"] = str(uuid.uuid4())
    document["body"].update(body)
    return document


# ------------------------------------------------------------------ the policy diff


@cache
def every_situation() -> tuple[Facts, ...]:
    return tuple(situations(fact_domains(SchemaSet.load(ROOT / "schemas").documents)))


def intended(situation: Facts) -> bool:
    """A situation the issue set out to decide anew: a new type or kind of agency, a CJIT's
    RA2, a CARAT release to probation, or a new disengagement event."""
    return (
        situation.message_type in NEW_TYPES
        or situation.sender_kind in NEW_KINDS
        or situation.recipient_kind in NEW_KINDS
        or (situation.message_type == "ra2_variation" and situation.sender_kind == "cjit")
        or (situation.message_type == "carat_referral"
            and situation.recipient_kind == "probation")
        or situation.message.get("disengagement_event") in NEW_EVENTS
    )


def test_policy_diff_from_before_the_new_flows_changes_exactly_the_new_situations() -> None:
    """``dipgw policy diff`` over the old and new default policy: every situation decided
    differently is one the new flows are about, and every new rule decides some of them.
    Nothing that the old policy could already say is decided differently."""
    before, after = load_text(BEFORE.read_text("utf-8")), load_text(AFTER.read_text("utf-8"))
    untouched = [s for s in every_situation() if not intended(s)]
    assert untouched
    assert policy_diff(before, after, untouched) == []
    changes = policy_diff(before, after, [s for s in every_situation() if intended(s)])
    deciding = {c.after["rule"] for c in changes if c.after["decision"] == "permit"}
    assert deciding >= NEW_RULES
    # A new situation now refused is refused by a new rule whose consent is not met, as a
    # clinical record (never to police, a court, the CPS or a PPO/IOM scheme), or as an RA
    # on the proactive route; a new permit is a new rule's or an existing alert rule's.
    refusing = {c.after["rule"] for c in changes if c.after["decision"] == "deny"}
    assert refusing <= NEW_RULES | {"clinical-records-never-to-police-or-court",
                                    "ra-not-on-proactive-route"}
    assert deciding <= NEW_RULES | ALERT_RULES


def test_every_new_type_is_decided_by_a_rule_and_not_by_default_for_its_own_flow() -> None:
    after = load_text(AFTER.read_text("utf-8"))
    permitted = {s.message_type for s in every_situation()
                 if s.message_type in NEW_TYPES and evaluate(after, s).permitted}
    assert permitted == NEW_TYPES


# ------------------------------------------------------------------ the sender's side


async def test_a_cjit_may_not_send_an_ra2_saying_the_police_varied_it(
    agency: AgencyFactory,
) -> None:
    """A CJIT's own RA2 says the CJIT made the new arrangements (H 4.6.1)."""
    document = fresh(example("ra2_variation/valid-cjit-rearranged-follow-up.json"),
                     varied_by="police", copied_to_custody_record=True)
    with pytest.raises(GatewayProblem) as refused:
        await agency(document["from"]).send(document)
    assert refused.value.status == 403
    assert "varied_by 'cjit'" in refused.value.problem["detail"]


async def test_probation_cannot_send_a_suitability_assessment(agency: AgencyFactory) -> None:
    """Only the CJIT assesses; probation asks (H 2.6)."""
    assessment = next(load(p) for p in sorted((EXAMPLES / "drr_suitability").glob("valid*.json"))
                      if load(p)["body"]["direction"] == "assessment")
    document = fresh(assessment)
    document["from"], document["to"] = "PRB-EOE", ["CJIT-SFK"]
    with pytest.raises(GatewayProblem) as refused:
        await agency("PRB-EOE").send(document)
    assert refused.value.status == 403
    assert "direction 'request'" in refused.value.problem["detail"]


# ------------------------------------------------------------------ the route


async def test_a_proactive_referral_on_the_enforcement_route_is_invalid(
    agency: AgencyFactory,
) -> None:
    document = fresh(first_valid("proactive_referral"))
    document["route"] = "enforcement"
    with pytest.raises(GatewayProblem) as refused:
        await agency(document["from"]).send(document)
    assert refused.value.status == 422
    assert [v["pointer"] for v in refused.value.violations] == ["/route"]


@pytest.mark.parametrize("event", ["refused_assessment", "refused_further_intervention",
                                   "failed_to_attend_additional_appointment"])
async def test_a_proactive_only_event_is_never_statutory(
    event: str, agency: AgencyFactory
) -> None:
    document = fresh(example(
        "disengagement_alert/valid-proactive-refused-additional-appointment.json"),
        event=event, statutory=True)
    with pytest.raises(GatewayProblem) as refused:
        await agency(document["from"]).send(document)
    assert refused.value.status == 422
    assert "/body/statutory" in [v["pointer"] for v in refused.value.violations]


# ------------------------------------------------------------------ who receives it


async def test_release_without_supervision_is_not_sent_to_probation(
    agency: AgencyFactory,
) -> None:
    """The CJIT still gets the release referral; probation, which supervises no licence, is
    refused it and never sees it (H 4.1)."""
    document = fresh(example("carat_referral/valid-release-on-licence-to-probation.json"),
                     statutory_supervision=False)
    answer = await agency(document["from"]).send(document)
    decisions = {r["code"]: r["decision"] for r in answer.body["recipients"]}
    assert decisions["CJIT-NFK"]["decision"] == "permit"
    assert decisions["PRB-EOE"]["denied_because"] == "no_permit"
    assert await wait_for_inbox(agency("CJIT-NFK"), document["message_id"])
    assert document["message_id"] not in [
        m["message_id"] for m in await agency("PRB-EOE").inbox(500)]
    supervised = fresh(example("carat_referral/valid-release-on-licence-to-probation.json"))
    answer = await agency(document["from"]).send(supervised)
    assert {r["code"]: r["decision"]["rule"] for r in answer.body["recipients"]} == {
        "CJIT-NFK": "carat-referral-release",
        "PRB-EOE": "carat-release-on-licence-to-probation",
    }


async def test_a_cjit_varying_its_own_appointment_need_not_send_to_itself(
    agency: AgencyFactory,
) -> None:
    document = fresh(example("ra2_variation/valid-cjit-rearranged-copied-to-police.json"))
    assert document["body"]["new_appointment"]["organisation"] == document["from"]
    answer = await agency(document["from"]).send(document)
    assert answer.status == 202
    police = agency(document["to"][0])
    [item] = await wait_for_inbox(police, document["message_id"])
    # The police see the variation but nothing clinical (minimum necessary).
    assert "/body/prescribing" in item["decision"]["redactions"]


async def test_a_breach_of_a_conditional_caution_goes_back_to_the_force_that_issued_it(
    agency: AgencyFactory,
) -> None:
    caution = fresh(first_valid("conditional_caution_notice"))
    issued = await agency(caution["from"]).send(caution)
    assert issued.status == 202
    cjit = caution["body"]["dip_condition"]["appointment"]["organisation"]
    alert = fresh(example("disengagement_alert/valid-statutory-failed-to-attend-initial.json"),
                  event="breach_conditional_caution_dip_condition",
                  related_message_id=caution["message_id"])
    alert["from"] = cjit
    alert.pop("to")
    alert["subject"] = caution["subject"]
    answer = await agency(cjit).send(alert)
    assert [r["code"] for r in answer.body["recipients"]] == [caution["from"]]
    assert "conditional caution" in answer.body["recipients"][0]["resolved_by"]


async def test_a_gate_pickup_answer_goes_to_the_cjit_that_asked(agency: AgencyFactory) -> None:
    request = next(load(p) for p in sorted((EXAMPLES / "gate_pickup").glob("valid*.json"))
                   if load(p)["body"]["stage"] == "request")
    request = fresh(request)
    assert (await agency(request["from"]).send(request)).status == 202
    asked = request["body"]["asked_cjit"]
    answer_example = next(load(p) for p in sorted((EXAMPLES / "gate_pickup").glob("valid*.json"))
                          if load(p)["body"]["stage"] == "accepted")
    answer = fresh(answer_example, request_message_id=request["message_id"])
    answer["from"], answer["subject"] = asked, request["subject"]
    answer.pop("to")
    sent = await agency(asked).send(answer)
    assert [r["code"] for r in sent.body["recipients"]] == [request["from"]]
    # An answer addressed to a third CJIT contradicts the request it answers.
    wrong = fresh(answer)
    wrong["to"] = sorted({"CJIT-SFK", "CJIT-NFK", "CJIT-CAM"} - {asked, request["from"]})
    with pytest.raises(GatewayProblem) as refused:
        await agency(asked).send(wrong)
    assert refused.value.status == 422


@pytest.mark.parametrize(("message_type", "field", "wrong"), [
    ("proactive_referral", "cjit", "CJIT-CAM"),
    ("drr_progress", "cjit", "CJIT-CAM"),
    ("ppo_nomination", "scheme", "CJIT-CAM"),
    ("treatment_referral", "provider", "CJIT-CAM"),
    ("treatment_progress", "cjit", "CJIT-NFK"),
    ("drr_handover", "probation_provider", "CRT-NOR-CC"),
])
async def test_to_must_hold_the_organisation_the_body_names(
    message_type: str, field: str, wrong: str, agency: AgencyFactory
) -> None:
    document = fresh(first_valid(message_type))
    named = document["body"][field]
    document["body"][field] = wrong if named != wrong else "CJIT-NFK"
    with pytest.raises(GatewayProblem) as refused:
        await agency(document["from"]).send(document)
    assert refused.value.status == 422
    assert f"/body/{field}" in [v["pointer"] for v in refused.value.violations]


async def test_a_compliance_report_goes_to_no_court_its_hearing_does_not_name(
    agency: AgencyFactory,
) -> None:
    document = fresh(next(
        load(p) for p in sorted((EXAMPLES / "compliance_report").glob("valid*.json"))
        if load(p)["route"] == "enforcement"))
    courts = {"CRT-IPS-MC", "CRT-NOR-CC"}
    document["to"] = sorted(courts - {document["body"]["hearing"]["court"]})
    with pytest.raises(GatewayProblem) as refused:
        await agency(document["from"]).send(document)
    assert refused.value.status == 422
    assert [v["pointer"] for v in refused.value.violations] == ["/to/0"]


# ------------------------------------------------------------------ consent by purpose


async def test_suitability_assessment_needs_written_consent_for_court_liaison(
    client: Any, agency: AgencyFactory,
) -> None:
    """Written consent recorded for compliance reporting does not cover telling probation
    about DRR suitability (court liaison); written consent listing court liaison does."""
    assessment = next(load(p) for p in sorted((EXAMPLES / "drr_suitability").glob("valid*.json"))
                      if load(p)["body"]["direction"] == "assessment")
    cjit = agency(assessment["from"])

    async def record(purposes: list[str]) -> None:
        answer = await cjit.request("POST", "/v1/consents", json_body={
            "subject": {k: assessment["subject"][k] for k in
                        ("pnc_id", "given_name", "family_name", "date_of_birth")
                        if k in assessment["subject"]},
            "form": "written",
            "provision": {"type": "permit", "actor_roles": ["probation"], "purpose": purposes},
            "information_given": "Told what will be shared with probation before sentence.",
        })
        assert answer.body["status"] == "active"

    await record(["compliance_reporting"])
    first = fresh(assessment)
    with pytest.raises(GatewayProblem) as refused:
        await cjit.send(first)
    assert refused.value.problem["decision"]["denied_because"] == "consent_not_satisfied"

    await record(["court_liaison"])
    second = fresh(assessment)
    answer = await cjit.send(second)
    assert answer.status == 202
    assert answer.body["decision"]["purpose"] == "court_liaison"
    assert answer.body["decision"]["consent_record"]


# ------------------------------------------------------------------ dipgw send, from make run


def run(*args: str, env: dict[str, str]) -> Any:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                          text=True, env=env, timeout=60)


async def test_every_new_type_goes_end_to_end_through_dipgw_send(tmp_path: Path) -> None:
    """As a newcomer would after ``make run``: each new type's first valid example, sent
    with ``dipgw send`` as its sender, reaches every recipient's inbox."""
    from tests.backends import current_database_url
    from tests.processes import free_port, gateway_process, wait_ready

    port = free_port()
    env = {**os.environ, "DIPGW_DATA_DIR": str(tmp_path), "DIPGW_PORT": str(port)}
    with gateway_process(tmp_path, port, current_database_url()):
        await wait_ready(f"http://127.0.0.1:{port}")
        for message_type in sorted(NEW_TYPES):
            path = sorted((EXAMPLES / message_type).glob("valid*.json"))[0]
            document = load(path)
            sent = run("send", str(path), env=env)
            assert sent.returncode == 0, (message_type, sent.stderr)
            answer = json.loads(sent.stdout)
            assert answer["status"] == "accepted", message_type
            for code in document["to"]:
                listed = run("inbox", "--org", code, env=env)
                assert document["message_id"] in listed.stdout, (message_type, code)


def test_every_type_is_new_or_was_there_before() -> None:
    """The list above names exactly the types this issue added."""
    before = {"ra1_notice", "ra2_variation", "dir_transfer", "dir_acceptance",
              "carat_referral", "court_outcome", "disengagement_alert", "assessment_outcome"}
    assert {t.value for t in MessageType} == before | NEW_TYPES


@pytest.mark.parametrize(("sender", "example_path", "changes"), [
    # A CJIT with its own valid key passing off probation's DRR progress as its own.
    ("CJIT-SFK", "drr_progress/valid-completed-referred-back-to-suffolk-cjit.json",
     {"from": "CJIT-SFK"}),
    # A CJIT asking itself about suitability, as if it were probation.
    ("CJIT-SFK", "drr_suitability/valid-request-probation-to-suffolk.json",
     {"from": "CJIT-SFK", "to": ["CJIT-NFK"]}),
    # A treatment provider referring a person to another provider (only a CJIT refers).
    ("TRT-SFK", "treatment_referral/valid-tier3-structured-treatment-with-prescribing.json",
     {"from": "TRT-SFK"}),
    # Police sending a compliance report to a court (only the CJIT reports compliance).
    ("POL-SFK-IPS",
     "compliance_report/valid-restriction-on-bail-complying-ipswich-magistrates.json",
     {"from": "POL-SFK-IPS"}),
    # A PPO/IOM scheme nominating a person to itself.
    ("IOM-NFK", "ppo_nomination/valid-iom-cohort-review-suffolk-resident.json",
     {"from": "IOM-NFK", "to": ["IOM-NFK"]}),
])
async def test_a_member_agency_cannot_send_another_kinds_flow(
    sender: str, example_path: str, changes: dict[str, Any], agency: AgencyFactory
) -> None:
    document = fresh(example(example_path))
    document.update(changes)
    with pytest.raises(GatewayProblem) as refused:
        await agency(sender).send(document)
    assert refused.value.status == 403
    for code in {*load(EXAMPLES / example_path)["to"], *document.get("to", [])}:
        assert document["message_id"] not in [
            m["message_id"] for m in await agency(code).inbox(500)]
