"""Consent scope (recipients and purposes) and withdrawal that stops exactly what rested on
the withdrawn record, end to end over HTTP (issue 11; README, "Consent")."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.client import GatewayClient, GatewayProblem
from gateway.config import Settings
from gateway.domain.model import Role
from tests.conftest import EXAMPLES, AgencyFactory, load
from tests.test_consent_and_policy_api import PROACTIVE_DIR, SUBJECT, HeldTransport, as_org, post
from tests.test_consent_and_policy_api import held as held  # the pytest fixture, re-exported
from tests.test_granted_roles import audit_entries
from tests.test_messages_end_to_end import wait_for_inbox

# A DRR assessment outcome to probation, about the same person as the proactive DIR
# transfer, with the worker's declaration of written consent in its body.
DRR_OUTCOME = {
    **load(EXAMPLES / "assessment_outcome" / "valid-drr-written-consent-suffolk.json"),
    "subject": SUBJECT,
}
Held = tuple[TestClient[Any, Any], Settings, HeldTransport]


def consent(actor_roles: list[str], purpose: list[str]) -> dict[str, Any]:
    return {
        "subject": SUBJECT,
        "form": "written",
        "provision": {"type": "permit", "actor_roles": actor_roles, "purpose": purpose},
        "information_given": "Told who receives what, and for what, in leaflet DIP-7.",
    }


def fresh(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "message_id": str(uuid.uuid4())}


# Tests of behaviour record purposes with codes the API already accepted before the
# purpose vocabulary (case_transfer is kept as care_coordination, drr_supervision as
# compliance_reporting), so each also runs against the code before the change and fails
# there on the behaviour itself.


async def refusal(client: GatewayClient, document: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(GatewayProblem) as refused:
        await client.send(document)
    assert refused.value.status == 403
    decision: dict[str, Any] = refused.value.problem["decision"]
    return decision


# ------------------------------------------------------------------ 1: who is covered


async def test_a_record_for_cjits_only_is_not_consent_for_probation_whatever_the_body_says(
    agency: AgencyFactory,
) -> None:
    await post(agency("CJIT-NFK"), "/v1/consents", consent(["cjit"], ["case_transfer"]))

    decision = await refusal(agency("CJIT-SFK"), fresh(DRR_OUTCOME))

    # The register knows the person, so the body's declaration of written consent no
    # longer stands in; the CJIT record does not cover probation.
    assert decision["denied_because"] == "consent_not_satisfied"
    assert decision["consent_state"] == "none"


async def test_with_no_record_at_all_the_declaration_still_stands_in(
    agency: AgencyFactory,
) -> None:
    answer = await agency("CJIT-SFK").send(fresh(DRR_OUTCOME))
    assert answer.body["decision"]["consent_state"] == "written"
    assert "consent_record" not in answer.body["recipients"][0]["decision"]


async def test_a_consent_may_name_an_organisation_rather_than_a_kind(
    agency: AgencyFactory,
) -> None:
    sender = agency("CJIT-NFK")
    other_cjit = await post(sender, "/v1/consents", {
        **consent([], []),
        "provision": {"type": "permit", "actor_organisations": ["CJIT-SFK"],
                      "purpose": ["care_coordination"]},
    })
    assert other_cjit["provision"]["actor"][0]["reference"]["identifier"]["value"] == "CJIT-SFK"
    assert (await refusal(sender, fresh(PROACTIVE_DIR)))["consent_state"] == "none"

    cambridgeshire = await post(sender, "/v1/consents", {
        **consent([], []),
        "provision": {"type": "permit", "actor_organisations": ["CJIT-CAM"],
                      "purpose": ["care_coordination"]},
    })
    answer = await sender.send(fresh(PROACTIVE_DIR))
    assert answer.body["recipients"][0]["decision"]["consent_record"] == cambridgeshire["id"]

    with pytest.raises(GatewayProblem) as unknown:
        await post(sender, "/v1/consents", {
            **consent([], []),
            "provision": {"type": "permit", "actor_organisations": ["CJIT-NOWHERE"],
                          "purpose": ["care_coordination"]},
        })
    assert unknown.value.status == 422
    assert [v["pointer"] for v in unknown.value.violations] == [
        "/provision/actor_organisations/0"
    ]


# ------------------------------------------------------------------ 2: for what purpose


async def test_consent_for_compliance_reporting_does_not_permit_a_dir_transfer(
    agency: AgencyFactory,
) -> None:
    sender = agency("CJIT-NFK")
    await post(sender, "/v1/consents", consent(["cjit"], ["compliance_reporting"]))

    decision = await refusal(sender, fresh(PROACTIVE_DIR))

    assert decision["purpose"] == "care_coordination"
    assert decision["consent_state"] == "none"
    assert "for care_coordination" in decision["reason"]


async def test_consent_to_follow_up_disengagement_does_not_permit_the_drr_report(
    agency: AgencyFactory,
) -> None:
    cjit = agency("CJIT-SFK")
    await post(cjit, "/v1/consents", consent(["probation"], ["continuity_of_care"]))
    assert (await refusal(cjit, fresh(DRR_OUTCOME)))["consent_state"] == "none"

    record = await post(cjit, "/v1/consents", consent(["probation"], ["drr_supervision"]))
    answer = await cjit.send(fresh(DRR_OUTCOME))
    decision = answer.body["recipients"][0]["decision"]
    assert (decision["decision"], decision["purpose"], decision["consent_record"]) == (
        "permit", "compliance_reporting", record["id"]
    )


async def test_a_permit_listing_no_purpose_permits_nothing(agency: AgencyFactory) -> None:
    sender = agency("CJIT-NFK")
    await post(sender, "/v1/consents", consent(["cjit"], []))
    assert (await refusal(sender, fresh(PROACTIVE_DIR)))["consent_state"] == "none"


async def test_older_purpose_codes_are_kept_under_the_vocabulary(agency: AgencyFactory) -> None:
    recorded = await post(agency("CJIT-NFK"), "/v1/consents",
                          consent(["cjit", "probation"], ["case_transfer", "drr_supervision"]))
    assert [p["code"] for p in recorded["provision"]["purpose"]] == [
        "care_coordination", "compliance_reporting"
    ]


# ------------------------------------------------------------------ 3: withdrawal, exactly


async def test_withdrawing_the_probation_consent_leaves_the_cjit_transfer_waiting(
    held: Held,
) -> None:
    test_client, settings, transport = held
    norfolk, suffolk = as_org(test_client, settings, "CJIT-NFK"), as_org(
        test_client, settings, "CJIT-SFK")
    for_cjit = await post(norfolk, "/v1/consents", consent(["cjit"], ["case_transfer"]))
    for_probation = await post(suffolk, "/v1/consents",
                               consent(["probation"], ["drr_supervision"]))
    transfer, report = fresh(PROACTIVE_DIR), fresh(DRR_OUTCOME)
    sent = await norfolk.send(transfer)
    await suffolk.send(report)

    withdrawn = await post(suffolk, f"/v1/consents/{for_probation['id']}/withdraw",
                           {"reason": "no longer wants probation told"})

    assert withdrawn["stopped"] == [
        {"message_id": report["message_id"], "recipient": "PRB-EOE"}
    ]
    transport.held = False
    cambridgeshire = as_org(test_client, settings, "CJIT-CAM")
    assert await wait_for_inbox(cambridgeshire, transfer["message_id"])
    assert await as_org(test_client, settings, "PRB-EOE").inbox(500) == []
    assert sent.body["recipients"][0]["decision"]["consent_record"] == for_cjit["id"]
    history = (await suffolk.status(report["message_id"]))["history"]
    assert history[-1]["status"] == "refused"
    assert for_probation["id"] in history[-1]["detail"]
    logged = [e for e in await audit_entries(test_client, settings)
              if e["action"] == "consent.withdrawn"]
    assert logged[-1]["details"]["shares"] == [
        {"message_id": report["message_id"], "recipient": "PRB-EOE", "outcome": "stopped",
         "rule": "drr-assessment-outcome-to-probation"}
    ]


async def test_a_share_another_record_still_covers_is_kept_and_rests_on_that_record(
    held: Held,
) -> None:
    test_client, settings, transport = held
    norfolk = as_org(test_client, settings, "CJIT-NFK")
    older = await post(norfolk, "/v1/consents", consent(["cjit"], ["case_transfer"]))
    newer = await post(norfolk, "/v1/consents", consent(["cjit"], ["case_transfer"]))
    transfer = fresh(PROACTIVE_DIR)
    assert (await norfolk.send(transfer)).body["recipients"][0]["decision"][
        "consent_record"] == newer["id"]

    first = await post(norfolk, f"/v1/consents/{newer['id']}/withdraw",
                       {"reason": "recorded twice by mistake"})
    assert first["stopped"] == []
    assert first["shares"][0]["outcome"] == "kept"
    assert first["shares"][0]["consent_record"] == older["id"]

    # Withdrawing the remaining record finds the share through its new basis.
    second = await post(norfolk, f"/v1/consents/{older['id']}/withdraw",
                        {"reason": "changed her mind"})
    assert second["stopped"] == [
        {"message_id": transfer["message_id"], "recipient": "CJIT-CAM"}
    ]
    transport.held = False
    await asyncio.sleep(0.3)
    assert await as_org(test_client, settings, "CJIT-CAM").inbox(500) == []


# ------------------------------------------------------------------ 4: after delivery


async def test_an_unread_share_leaves_the_inbox_when_its_consent_is_withdrawn(
    agency: AgencyFactory, client: TestClient[Any, Any], settings: Settings,
) -> None:
    norfolk, cambridgeshire = agency("CJIT-NFK"), agency("CJIT-CAM")
    record = await post(norfolk, "/v1/consents", consent(["cjit"], ["case_transfer"]))
    transfer = fresh(PROACTIVE_DIR)
    await norfolk.send(transfer)
    assert await wait_for_inbox(cambridgeshire, transfer["message_id"])

    withdrawn = await post(agency("CJIT-NFK", Role.SPOC),
                           f"/v1/consents/{record['id']}/withdraw",
                           {"reason": "withdrew at her review"})

    inbox = await cambridgeshire.inbox(500)
    assert [m for m in inbox if m["message_id"] == transfer["message_id"]] == []
    assert withdrawn["stopped"] == []
    assert withdrawn["shares"][0]["outcome"] == "withdrawn"
    notice = [m for m in inbox if m["type"] == "delivery_report"]
    assert len(notice) == 1
    body = notice[0]["envelope"]["body"]
    assert body["outcome"] == "consent_withdrawn"
    assert body["original_message_id"] == transfer["message_id"]
    # The notice says which message, never whose: no name, no PNC.
    assert SUBJECT["family_name"] not in str(notice[0]) and SUBJECT["pnc_id"] not in str(
        notice[0])
    status = await cambridgeshire.status(transfer["message_id"])
    assert status["status"] == "withdrawn"
    assert [e["status"] for e in status["history"]] == ["accepted", "delivered", "withdrawn"]
    assert "disclosed at" in status["history"][-1]["detail"]
    assert (await norfolk.status(transfer["message_id"]))["status"] == "withdrawn"
    with pytest.raises(GatewayProblem) as gone:
        await cambridgeshire.acknowledge(transfer["message_id"])
    assert gone.value.status == 404
    logged = [e for e in await audit_entries(client, settings)
              if e["action"] == "message.withdrawn"]
    assert logged[-1]["message_id"] == transfer["message_id"]
    assert logged[-1]["details"]["consent_id"] == record["id"]


async def test_an_acknowledged_share_stays_acknowledged_and_the_recipient_is_told(
    agency: AgencyFactory,
) -> None:
    norfolk, cambridgeshire = agency("CJIT-NFK"), agency("CJIT-CAM")
    record = await post(norfolk, "/v1/consents", consent(["cjit"], ["case_transfer"]))
    transfer = fresh(PROACTIVE_DIR)
    await norfolk.send(transfer)
    assert await wait_for_inbox(cambridgeshire, transfer["message_id"])
    await cambridgeshire.acknowledge(transfer["message_id"])

    withdrawn = await post(norfolk, f"/v1/consents/{record['id']}/withdraw",
                           {"reason": "withdrew at her review"})

    status = await cambridgeshire.status(transfer["message_id"])
    assert status["status"] == "acknowledged"
    assert status["history"][-1]["status"] == "consent_withdrawn"
    assert withdrawn["shares"][0]["outcome"] == "notified"
    notices = [m for m in await cambridgeshire.inbox(500) if m["type"] == "delivery_report"]
    assert notices[0]["envelope"]["body"]["original_message_id"] == transfer["message_id"]
