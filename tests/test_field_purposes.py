"""Field groups that serve another purpose than their message (``FIELD_PURPOSES``): the
clinical detail of an assessment outcome reported to probation on a DRR goes only when the
consent the share rests on lists clinical care too (H 4.2, 4.7.1)."""

from __future__ import annotations

import asyncio
import copy
import uuid
from typing import Any

from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import Settings
from gateway.domain.model import Consent, Decision
from gateway.pipeline.consent import ConsentFinding
from gateway.pipeline.policy.facts import FIELD_PURPOSES, Purpose, field_groups
from gateway.pipeline.policy.rules import ConsentState
from gateway.services.policy import withhold_field_groups
from tests.conftest import EXAMPLES, AgencyFactory, load
from tests.test_consent_and_policy_api import HeldTransport, as_org, post
from tests.test_consent_and_policy_api import held as held  # the pytest fixture, re-exported
from tests.test_messages_end_to_end import wait_for_inbox

DRR_OUTCOME = "assessment_outcome/valid-drr-written-consent-suffolk.json"
CLINICAL = list(FIELD_PURPOSES["assessment_outcome"][Purpose.CLINICAL_CARE])


def outcome() -> dict[str, Any]:
    document = copy.deepcopy(load(EXAMPLES / DRR_OUTCOME))
    document["message_id"] = str(uuid.uuid4())
    return document


def permit(purpose: str, redactions: tuple[str, ...] = (), record: str | None = "c-1") -> Decision:
    return Decision(
        permitted=True, consent=Consent.WRITTEN_REQUIRED, consent_satisfied=True,
        redactions=redactions, rule="r", legal_basis="b", policy_version="v",
        purpose=purpose, consent_record=record,
    )


def written_consent(purposes: list[str]) -> dict[str, Any]:
    subject = load(EXAMPLES / DRR_OUTCOME)["subject"]
    return {
        "subject": {k: subject[k] for k in ("pnc_id", "given_name", "family_name",
                                           "date_of_birth") if k in subject},
        "form": "written",
        "provision": {"type": "permit", "actor_roles": ["probation"], "purpose": purposes},
        "information_given": "Signed DRR reporting consent; told what probation receives.",
    }


# ------------------------------------------------------------------ the pure rule


def test_a_record_for_compliance_reporting_only_withholds_the_clinical_group() -> None:
    found = ConsentFinding(ConsentState.WRITTEN, "c-1", frozenset({"compliance_reporting"}))
    decision = withhold_field_groups(permit("compliance_reporting"), "assessment_outcome",
                                     found)
    assert list(decision.redactions) == CLINICAL
    assert decision.withheld_for == ("clinical_care",)
    assert decision.as_dict()["withheld_for"] == ["clinical_care"]


def test_a_record_listing_clinical_care_too_lets_the_group_go() -> None:
    found = ConsentFinding(ConsentState.WRITTEN, "c-1",
                           frozenset({"compliance_reporting", "clinical_care"}))
    decision = permit("compliance_reporting")
    assert withhold_field_groups(decision, "assessment_outcome", found) == decision


def test_the_senders_declaration_speaks_for_the_message_as_sent() -> None:
    found = ConsentFinding(ConsentState.WRITTEN, None, None)
    decision = permit("compliance_reporting", record=None)
    assert withhold_field_groups(decision, "assessment_outcome", found) == decision


def test_a_group_the_rules_already_remove_changes_nothing() -> None:
    """An alert's clinical fields are removed by every alert rule: with or without consent
    to clinical care the decision is the same, and it rests on no record."""
    alert_fields = FIELD_PURPOSES["disengagement_alert"][Purpose.CLINICAL_CARE]
    decision = replace_consent(permit("engagement_followup", alert_fields, record=None))
    for found in (ConsentFinding(ConsentState.NONE),
                  ConsentFinding(ConsentState.WRITTEN, "c-2", frozenset({"clinical_care"}))):
        assert withhold_field_groups(decision, "disengagement_alert", found) == decision


def replace_consent(decision: Decision) -> Decision:
    from dataclasses import replace
    return replace(decision, consent=Consent.NOT_REQUIRED)


@given(st.sampled_from(sorted(FIELD_PURPOSES)),
       st.sampled_from([p.value for p in Purpose]),
       st.sampled_from(list(ConsentState)),
       st.one_of(st.none(), st.frozensets(st.sampled_from([p.value for p in Purpose]))))
def test_withholding_only_ever_removes_more(
    message_type: str, purpose: str, state: ConsentState, purposes: frozenset[str] | None
) -> None:
    before = permit(purpose, ("/body/case_manager",))
    after = withhold_field_groups(before, message_type,
                                  ConsentFinding(state, "c-1", purposes))
    assert after.permitted and set(before.redactions) <= set(after.redactions)
    owed = {p for group, pointers in field_groups(message_type, purpose) for p in pointers
            if state not in (ConsentState.VERBAL, ConsentState.WRITTEN)
            or (purposes is not None and group not in purposes)}
    assert owed <= set(after.redactions)
    assert not (set(after.redactions) - set(before.redactions)) - owed


# ------------------------------------------------------------------ through the gateway


async def test_probation_gets_the_outcome_without_clinical_detail_unless_consented(
    agency: AgencyFactory,
) -> None:
    cjit, probation = agency("CJIT-SFK"), agency("PRB-EOE")
    await post(cjit, "/v1/consents", written_consent(["compliance_reporting"]))
    first = outcome()
    answer = await cjit.send(first)
    decision = answer.body["recipients"][0]["decision"]
    assert decision["decision"] == "permit" and decision["withheld_for"] == ["clinical_care"]
    [item] = await wait_for_inbox(probation, first["message_id"])
    assert "substances" in first["body"]
    assert not {"substances", "prescribing", "needs_summary", "risk_narrative"} & set(
        item["envelope"]["body"])
    assert item["envelope"]["body"]["outcome"] == first["body"]["outcome"]

    await post(cjit, "/v1/consents", written_consent(["compliance_reporting", "clinical_care"]))
    second = outcome()
    answer = await cjit.send(second)
    assert "withheld_for" not in answer.body["recipients"][0]["decision"]
    [item] = await wait_for_inbox(probation, second["message_id"])
    assert item["envelope"]["body"]["substances"] == second["body"]["substances"]


async def test_withdrawing_the_clinical_consent_before_delivery_withholds_the_group(
    held: tuple[TestClient[Any, Any], Settings, HeldTransport],
) -> None:
    """Kept on the remaining consent, the waiting share goes out without what that
    consent does not cover."""
    test_client, settings, transport = held
    cjit = as_org(test_client, settings, "CJIT-SFK")
    probation = as_org(test_client, settings, "PRB-EOE")
    await post(cjit, "/v1/consents", written_consent(["compliance_reporting"]))
    both = await post(cjit, "/v1/consents",
                      written_consent(["compliance_reporting", "clinical_care"]))
    document = outcome()
    answer = await cjit.send(document)
    assert answer.body["recipients"][0]["decision"]["consent_record"] == both["id"]

    withdrawn = await post(cjit, f"/v1/consents/{both['id']}/withdraw",
                           {"reason": "agreed to the outcome only"})
    [share] = withdrawn["shares"]
    assert (share["message_id"], share["outcome"]) == (document["message_id"], "kept")
    assert share["withheld_for"] == ["clinical_care"]
    transport.held = False
    for _ in range(100):
        items = [m for m in await probation.inbox(500)
                 if m["message_id"] == document["message_id"]]
        if items:
            break
        await asyncio.sleep(0.02)
    [item] = items
    assert "substances" not in item["envelope"]["body"]
    assert item["decision"]["withheld_for"] == ["clinical_care"]
