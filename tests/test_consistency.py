"""A message goes only to the agencies its own body names (gateway.pipeline.consistency), and on the
proactive route nothing is statutory (the envelope schema)."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from gateway.client import GatewayProblem
from gateway.config import Settings
from gateway.domain.model import Contact, Envelope, MessageType, Organisation, OrgKind
from gateway.pipeline.consistency import contradictions
from gateway.pipeline.resolution import Known, resolve
from gateway.pipeline.validation import SchemaSet
from gateway.services.directory import DEMO_ORGANISATIONS
from tests.conftest import (
    EXAMPLES,
    ROOT,
    AgencyFactory,
    bearer,
    example_files,
    load,
    table_counts,
)
from tests.test_messages_end_to_end import wait_for_inbox

# The demo directory and a second probation provider, so that "the wrong one" exists.
PRB_LDN = Organisation("PRB-LDN", OrgKind.PROBATION, "Probation Service — London", "London",
                       Contact("DRR duty officer", "020 7000 0402"))
ORGANISATIONS = (*DEMO_ORGANISATIONS, PRB_LDN)
AGENCY_CODES = sorted(o.code for o in ORGANISATIONS if o.kind.value in
                      ("police", "cjit", "carat", "probation", "court"))

RA1_AWAY = "ra1_notice/valid-out-of-area-cambridgeshire-weekend.json"
RA2_MOVED = "ra2_variation/valid-rearrested-moved-into-custody-suite.json"
DIR = "dir_transfer/valid-enforcement-suffolk-to-norfolk.json"
ACCEPTED = "dir_acceptance/valid-accepted-norfolk.json"
DECLINED = "dir_acceptance/valid-declined-not-resident.json"
INTO = "carat_referral/valid-remand-hmp-norwich-methadone.json"
RELEASE = "carat_referral/valid-release-end-of-sentence-no-pickup.json"
GATE = "carat_referral/valid-release-on-licence-gate-pickup.json"
CUSTODIAL = "court_outcome/valid-custodial-sentence-crown-court.json"
COMMUNITY = "court_outcome/valid-community-order-with-drr.json"
ADJOURNED = "court_outcome/valid-adjournment-for-reports.json"
ALERT = "disengagement_alert/valid-statutory-failed-to-attend-initial.json"
DRR = "assessment_outcome/valid-drr-written-consent-suffolk.json"
NOT_ON_DRR = ("assessment_outcome/"
              "refused-not-on-drr-enforcement-failed-to-engage-cambridgeshire.json")
RA2_BY_CJIT = "ra2_variation/valid-cjit-rearranged-copied-to-police.json"
REFERRAL = "proactive_referral/valid-negative-test-worker-told-in-custody-suffolk.json"
CAUTION = "conditional_caution_notice/valid-enforcement-suffolk-attend-initial-assessment.json"
PROGRESS = "drr_progress/valid-completed-referred-back-to-suffolk-cjit.json"
SUITABILITY_ASKED = "drr_suitability/valid-request-probation-to-suffolk.json"
SUITABILITY = "drr_suitability/valid-assessment-suffolk-suitable-prescribing-started.json"
PICKUP = "gate_pickup/valid-request-suffolk-asks-norfolk-hmp-norwich.json"
PICKUP_ANSWER = "gate_pickup/valid-accepted-norfolk-worker-meets-at-gate.json"
COMPLIANCE = "compliance_report/valid-conditional-caution-cps-and-court-cambridgeshire.json"
NOMINATION = "ppo_nomination/valid-iom-cohort-review-suffolk-resident.json"
TREATMENT = "treatment_referral/valid-tier3-structured-treatment-with-prescribing.json"
LICENCE = "carat_referral/valid-release-on-licence-to-probation.json"
PROGRESS_REPORT = "treatment_progress/valid-engaging-tier3-suffolk.json"
HANDOVER = "drr_handover/valid-suffolk-full-handover-with-prescribing.json"


def document(example: str, to: list[str] | None = None, **body: Any) -> dict[str, Any]:
    """An example, addressed to ``to``, with body fields replaced (None deletes one)."""
    found = copy.deepcopy(load(EXAMPLES / example))
    if to is not None:
        found["to"] = to
    for name, value in body.items():
        if value is None:
            found["body"].pop(name, None)
        else:
            found["body"][name] = value
    return found


def related(example: str, sender: str) -> dict[str, str]:
    """The gateway's records: the message the example's body refers to came from sender."""
    body = load(EXAMPLES / example)["body"]
    ref = (body.get("dir_transfer_message_id") or body.get("request_message_id")
           or body["related_message_id"])
    return {ref.lower(): sender}


def judged(doc: Mapping[str, Any], senders: Mapping[str, str] | None = None) -> list[str]:
    found = contradictions(Envelope.from_document(doc), ORGANISATIONS, Known(senders or {}))
    return sorted(v.pointer for v in found)


# One row per type and per contradiction, and per consistent case:
# (document, what the gateway's records know, the pointers refused).
TABLE: list[tuple[str, dict[str, Any], dict[str, str], list[str]]] = [
    # RA1 / RA2: the named CJIT must be told; the arresting area's CJIT may be copied.
    ("ra1 named and local CJIT", document(RA1_AWAY), {}, []),
    ("ra1 without the named CJIT", document(RA1_AWAY, ["CJIT-NFK"]), {},
     ["/body/initial_assessment/organisation"]),
    ("ra2 named and another CJIT", document(RA2_MOVED), {}, []),
    ("ra2 without the named CJIT", document(RA2_MOVED, ["CJIT-CAM"]), {},
     ["/body/new_appointment/organisation"]),
    # DIR transfer: the CJIT of residence, and no other CJIT (IE4a, IPAE7a).
    ("dir to its CJIT of residence", document(DIR), {}, []),
    ("dir to another CJIT", document(DIR, ["CJIT-CAM"]), {}, ["/body/receiving_cjit", "/to/0"]),
    ("dir to its CJIT and another", document(DIR, ["CJIT-NFK", "CJIT-CAM"]), {}, ["/to/1"]),
    ("dir naming a CJIT not in the directory",
     document(DIR, ["CJIT-NFK"], receiving_cjit="CJIT-ZZZ"), {},
     ["/body/receiving_cjit", "/to/0"]),
    ("dir naming a probation provider as its CJIT",
     document(DIR, ["CJIT-NFK"], receiving_cjit="PRB-EOE"), {},
     ["/body/receiving_cjit", "/to/0"]),
    # DIR acceptance: back to the CJIT that sent the transfer (IE4b, IPAE7b).
    ("acceptance to the transferring CJIT", document(ACCEPTED), related(ACCEPTED, "CJIT-SFK"),
     []),
    ("acceptance to another CJIT", document(ACCEPTED), related(ACCEPTED, "CJIT-CAM"),
     ["/body/dir_transfer_message_id", "/to/0"]),
    ("acceptance of a transfer the gateway never carried", document(ACCEPTED), {}, []),
    ("decline also sent to the suggested CJIT", document(DECLINED, ["CJIT-NFK", "CJIT-CAM"]),
     related(DECLINED, "CJIT-NFK"), ["/to/1"]),
    # CARAT referral into custody: the prison's own CARAT team only (H 2.5).
    ("into custody to the prison's team", document(INTO), {}, []),
    ("into custody to another prison's team", document(INTO, ["CARAT-HPI"]), {},
     ["/body/establishment/prison_code", "/to/0"]),
    ("into custody to both teams", document(INTO, ["CARAT-NWI", "CARAT-HPI"]), {}, ["/to/1"]),
    ("into custody at a prison with no team in the directory",
     document(INTO, ["CARAT-NWI"], establishment={"name": "HMP Nowhere", "prison_code": "ZZZ"}),
     {}, ["/body/establishment/prison_code", "/to/0"]),
    # CARAT referral on release: the community appointment's CJIT; the gate pick-up CJIT
    # may be told too (H 2.5, 4.1.3 note).
    ("release to the appointment's CJIT", document(RELEASE), {}, []),
    ("release to another CJIT", document(RELEASE, ["CJIT-SFK"]), {},
     ["/body/community_appointment/organisation", "/to/0"]),
    ("release to the appointment's and the pick-up CJIT",
     document(GATE, ["CJIT-SFK", "CJIT-CAM"], gate_pickup_by="CJIT-CAM"), {}, []),
    ("release without the pick-up CJIT", document(GATE, ["CJIT-SFK"], gate_pickup_by="CJIT-CAM"),
     {}, []),
    ("release to the pick-up CJIT only",
     document(GATE, ["CJIT-CAM"], gate_pickup_by="CJIT-CAM"), {},
     ["/body/community_appointment/organisation"]),
    ("release to a CJIT named nowhere",
     document(GATE, ["CJIT-SFK", "CJIT-NFK"], gate_pickup_by="CJIT-CAM"), {}, ["/to/1"]),
    # Court outcome: any CJIT; the prison's CARAT team; the named probation provider only.
    ("custodial to CJIT, CARAT team and named probation", document(CUSTODIAL), {}, []),
    ("custodial to another probation provider",
     document(CUSTODIAL, ["CJIT-NFK", "CARAT-NWI", "PRB-LDN"]), {},
     ["/body/probation_provider", "/to/2"]),
    ("custodial to both probation providers",
     document(CUSTODIAL, ["CJIT-NFK", "CARAT-NWI", "PRB-EOE", "PRB-LDN"]), {}, ["/to/3"]),
    ("custodial without the prison's CARAT team", document(CUSTODIAL, ["CJIT-NFK", "PRB-EOE"]),
     {}, ["/body/establishment/prison_code"]),
    ("custodial to another prison's CARAT team",
     document(CUSTODIAL, ["CJIT-NFK", "CARAT-HPI", "PRB-EOE"]), {},
     ["/body/establishment/prison_code", "/to/1"]),
    ("community order to CJIT and named probation", document(COMMUNITY), {}, []),
    ("community order without its probation provider", document(COMMUNITY, ["CJIT-SFK"]), {},
     ["/body/probation_provider"]),
    ("adjournment names no one", document(ADJOURNED, ["CJIT-NFK", "CJIT-CAM", "PRB-LDN"]), {},
     []),
    # Disengagement alert: the police force that issued the RA it follows (H 4.1.2).
    ("alert to the force of the RA", document(ALERT), related(ALERT, "POL-SFK-IPS"), []),
    ("alert to another force", document(ALERT, ["POL-NFK-NOR"]), related(ALERT, "POL-SFK-IPS"),
     ["/body/related_message_id", "/to/0"]),
    ("alert to the force and probation", document(ALERT, ["POL-SFK-IPS", "PRB-EOE"]),
     related(ALERT, "POL-SFK-IPS"), []),
    ("alert about an RA the gateway never carried", document(ALERT, ["POL-NFK-NOR"]), {}, []),
    ("alert following a DIR transfer", document(ALERT, ["POL-NFK-NOR"]),
     related(ALERT, "CJIT-SFK"), []),
    # Assessment outcome: the probation provider supervising the DRR (H 4.7.1).
    ("drr outcome to the supervising provider", document(DRR), {}, []),
    ("drr outcome to another provider", document(DRR, ["PRB-LDN"]), {},
     ["/body/drr/supervising_officer/organisation", "/to/0"]),
    ("outcome for a person on no DRR", document(NOT_ON_DRR, ["PRB-LDN"]), {}, []),
    # RA2 by a CJIT for its own appointment: it need not send to itself (H 4.6.1).
    ("cjit ra2 of its own appointment to police", document(RA2_BY_CJIT), {}, []),
    # Release on licence: the offender manager's provider may be told, no other (H 4.1).
    ("licence release to the offender manager", document(LICENCE), {}, []),
    ("licence release to another provider", document(LICENCE, ["CJIT-NFK", "PRB-LDN"]), {},
     ["/to/1"]),
    # Police referral into proactive engagement: its CJIT and no other (IPAE2).
    ("referral to its CJIT", document(REFERRAL), {}, []),
    ("referral to another CJIT", document(REFERRAL, ["CJIT-NFK"]), {},
     ["/body/cjit", "/to/0"]),
    # Conditional caution: the CJIT running the DIP appointment; the local CJIT may be copied.
    ("caution to its CJIT and another", document(CAUTION, ["CJIT-SFK", "CJIT-NFK"]), {}, []),
    ("caution without its CJIT", document(CAUTION, ["CJIT-NFK"]), {},
     ["/body/dip_condition/appointment/organisation"]),
    # DRR progress: the CJIT that takes the case back (Com 5b (4)).
    ("drr progress to its CJIT", document(PROGRESS), {}, []),
    ("drr progress to another CJIT", document(PROGRESS, ["CJIT-CAM"]), {},
     ["/body/cjit", "/to/0"]),
    # DRR suitability: the CJIT asked; the provider assessing, and the one that asked (H 2.6).
    ("suitability request to its CJIT", document(SUITABILITY_ASKED), {}, []),
    ("suitability request to another CJIT", document(SUITABILITY_ASKED, ["CJIT-NFK"]), {},
     ["/body/cjit", "/to/0"]),
    ("suitability assessment to its provider", document(SUITABILITY),
     related(SUITABILITY, "PRB-EOE"), []),
    ("suitability assessment to another provider", document(SUITABILITY, ["PRB-LDN"]), {},
     ["/body/probation_provider", "/to/0"]),
    ("suitability assessment asked by another provider", document(SUITABILITY),
     related(SUITABILITY, "PRB-LDN"), ["/body/request_message_id"]),
    # Gate pick-up: the CJIT asked, and the answer to the CJIT that asked (H 4.1.3 note).
    ("pickup request to the CJIT asked", document(PICKUP), {}, []),
    ("pickup request to another CJIT", document(PICKUP, ["CJIT-CAM"]), {},
     ["/body/asked_cjit", "/to/0"]),
    ("pickup answer to the CJIT that asked", document(PICKUP_ANSWER),
     related(PICKUP_ANSWER, "CJIT-SFK"), []),
    ("pickup answer to another CJIT", document(PICKUP_ANSWER, ["CJIT-CAM"]),
     related(PICKUP_ANSWER, "CJIT-SFK"), ["/body/request_message_id", "/to/0"]),
    # Compliance report: its hearing's court and its CPS office, either or both (H 4.2).
    ("compliance to its CPS office only", document(COMPLIANCE, ["CPS-EOE"]), {}, []),
    ("compliance to another court", document(COMPLIANCE, ["CRT-NOR-CC"]), {}, ["/to/0"]),
    # PPO nomination and treatment referral: the scheme, the provider (H 2.7, 4.11.4).
    ("nomination to its scheme", document(NOMINATION), {}, []),
    ("nomination naming an unknown scheme", document(NOMINATION, scheme="IOM-ZZZ"), {},
     ["/body/scheme", "/to/0"]),
    ("treatment referral to its provider", document(TREATMENT), {}, []),
    ("treatment referral naming a CJIT as provider",
     document(TREATMENT, ["TRT-SFK"], provider="CJIT-NFK"), {},
     ["/body/provider", "/to/0"]),
    # A provider's progress report: the case-managing CJIT (H 4.1.3); the DRR handover:
    # the probation provider taking over (H 2.6).
    ("progress report to its CJIT", document(PROGRESS_REPORT), {}, []),
    ("progress report to another CJIT", document(PROGRESS_REPORT, ["CJIT-NFK"]), {},
     ["/body/cjit", "/to/0"]),
    ("handover to its provider", document(HANDOVER), {}, []),
    ("handover to another provider", document(HANDOVER, ["PRB-LDN"]), {},
     ["/body/probation_provider", "/to/0"]),
]


@pytest.mark.parametrize(("doc", "senders", "expected"), [row[1:] for row in TABLE],
                         ids=[row[0] for row in TABLE])
def test_to_must_agree_with_the_body(
    doc: dict[str, Any], senders: dict[str, str], expected: list[str]
) -> None:
    found = contradictions(Envelope.from_document(doc), ORGANISATIONS, Known(senders))
    assert sorted(v.pointer for v in found) == expected
    for violation in found:
        # A message a person can act on: the organisation at fault, and the handbook.
        assert re.search(r"\b[A-Z]+-[A-Z0-9]+\b", violation.message), violation.message
        assert re.search(r"\((H \d|IE\d|IPAE\d)", violation.message), violation.message


def test_the_table_covers_every_type() -> None:
    covered = {row[1]["type"] for row in TABLE}
    assert covered == set(MessageType)


# For the property: what each body names, written out here rather than read from the
# code under test. required: must be in 'to'; sole: for these kinds, only these codes.
SPECS: list[tuple[str, dict[str, str], set[str], dict[OrgKind, set[str]]]] = [
    (RA1_AWAY, {}, {"CJIT-CAM"}, {}),
    (DIR, {}, {"CJIT-NFK"}, {OrgKind.CJIT: {"CJIT-NFK"}}),
    (ACCEPTED, related(ACCEPTED, "CJIT-CAM"), {"CJIT-CAM"}, {OrgKind.CJIT: {"CJIT-CAM"}}),
    (INTO, {}, {"CARAT-NWI"}, {OrgKind.CARAT: {"CARAT-NWI"}}),
    # Released on licence: the offender manager's provider may be told, no other (H 4.1).
    (GATE, {}, {"CJIT-SFK"}, {OrgKind.CJIT: {"CJIT-SFK"}, OrgKind.PROBATION: {"PRB-EOE"}}),
    (CUSTODIAL, {}, {"CARAT-NWI", "PRB-EOE"},
     {OrgKind.CARAT: {"CARAT-NWI"}, OrgKind.PROBATION: {"PRB-EOE"}}),
    (ALERT, related(ALERT, "POL-NFK-NOR"), {"POL-NFK-NOR"}, {OrgKind.POLICE: {"POL-NFK-NOR"}}),
    (DRR, {}, {"PRB-EOE"}, {OrgKind.PROBATION: {"PRB-EOE"}}),
]
KIND = {o.code: o.kind for o in ORGANISATIONS}


@given(st.sampled_from(SPECS),
       st.lists(st.sampled_from(AGENCY_CODES), min_size=1, max_size=6, unique=True))
def test_refused_exactly_when_to_lacks_the_named_or_holds_another_of_its_kind(
    spec: tuple[str, dict[str, str], set[str], dict[OrgKind, set[str]]], to: list[str]
) -> None:
    example, senders, required, sole = spec
    pointers = judged(document(example, to), senders)
    unnamed = {f"/to/{i}" for i, code in enumerate(to)
               if KIND[code] in sole and code not in sole[KIND[code]]}
    assert bool(pointers) == bool(required - set(to) or unnamed)
    assert {p for p in pointers if p.startswith("/to/")} == unnamed


@pytest.mark.parametrize("path", example_files("valid*.json"), ids=lambda p: p.name)
def test_every_valid_example_agrees_with_itself(path: Path) -> None:
    assert judged(load(path)) == []


@pytest.mark.parametrize("path", example_files("valid*.json"), ids=lambda p: p.name)
def test_resolution_never_contradicts_the_body(path: Path) -> None:
    """Addressed by the gateway, a message is addressed as its body says."""
    doc = load(path)
    senders = {ref.lower(): "POL-SFK-IPS" if doc["type"] == "disengagement_alert" else "CJIT-SFK"
               for ref in (doc["body"].get("related_message_id"),
                           doc["body"].get("dir_transfer_message_id")) if ref}
    known = Known(senders, managing_cjit="CJIT-CAM")
    found = resolve(doc["type"], doc["body"], ORGANISATIONS, known)
    if found:
        envelope = Envelope.from_document(doc).with_recipients(tuple(r.code for r in found))
        assert contradictions(envelope, ORGANISATIONS, known) == []


# --- over HTTP: the two reported attacks, refused before anything is stored or delivered.


async def assert_refused_untouched(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
    doc: dict[str, Any], expected: list[str],
) -> None:
    before = table_counts(settings)
    for path in ("/v1/messages", "/v1/policy/decide"):
        response = await client.post(path, json=doc, headers=bearer(settings, doc["from"]))
        assert response.status == 422, await response.text()
        problem = await response.json()
        assert sorted(e["pointer"] for e in problem["errors"]) == expected
    batch = await client.post("/v1/messages/batch", json={"messages": [doc]},
                              headers=bearer(settings, doc["from"]))
    assert [r["status"] for r in (await batch.json())["results"]] == [422]
    assert table_counts(settings) == before
    for code in ("CJIT-SFK", "CJIT-NFK", "CJIT-CAM", "CARAT-NWI", "CARAT-HPI"):
        assert await agency(code).inbox(500) == []


async def test_dir_transfer_to_the_wrong_cjit_is_refused_and_never_delivered(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory
) -> None:
    doc = document(DIR, ["CJIT-CAM"])
    assert doc["body"]["receiving_cjit"] == "CJIT-NFK"
    await assert_refused_untouched(client, settings, agency, doc,
                                   ["/body/receiving_cjit", "/to/0"])


async def test_carat_referral_to_another_prisons_team_is_refused_and_never_delivered(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory
) -> None:
    doc = document(INTO, ["CARAT-HPI"])
    assert doc["body"]["establishment"]["prison_code"] == "NWI"
    await assert_refused_untouched(client, settings, agency, doc,
                                   ["/body/establishment/prison_code", "/to/0"])


async def test_alert_to_a_force_other_than_the_one_whose_ra_it_follows_is_refused(
    agency: AgencyFactory,
) -> None:
    ra1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
    await agency(ra1["from"]).send(ra1)
    alert = document(ALERT, ["POL-NFK-NOR"], related_message_id=ra1["message_id"])
    alert.update({"message_id": str(uuid.uuid4()), "from": "CJIT-NFK"})

    with pytest.raises(GatewayProblem) as refused:
        await agency("CJIT-NFK").send(alert)

    assert refused.value.status == 422
    assert sorted(v["pointer"] for v in refused.value.violations) == [
        "/body/related_message_id", "/to/0"]
    alert["to"] = [ra1["from"]]
    assert (await agency("CJIT-NFK").send(alert)).status == 202
    assert await wait_for_inbox(agency(ra1["from"]), alert["message_id"])


# --- on the proactive route nothing is statutory (H 4.8, 4.10.2).

SCHEMAS = SchemaSet.load(ROOT / "schemas")


PROACTIVE_ONLY_EVENTS = frozenset({"refused_assessment", "failed_to_attend_additional_appointment",
                                   "refused_additional_appointment",
                                   "refused_further_intervention"})


@given(st.sampled_from(example_files("valid*.json")),
       st.sampled_from(["enforcement", "proactive_engagement"]), st.booleans())
def test_a_proactive_alert_may_not_be_statutory(path: Path, route: str, statutory: bool) -> None:
    """Any valid example on either route stays valid, except what the route rules out: a
    proactive alert, or an alert for a proactive-only event, that says it is statutory
    (/body/statutory); a proactive-only event on the enforcement route (/body/event); a
    police referral into proactive engagement on the enforcement route (/route)."""
    doc = load(path)
    doc["route"] = route
    expected = []
    if doc["type"] == "proactive_referral" and route == "enforcement":
        expected.append("/route")
    if doc["type"] == "disengagement_alert":
        doc["body"]["statutory"] = statutory
        proactive_only = doc["body"]["event"] in PROACTIVE_ONLY_EVENTS
        if proactive_only and route == "enforcement":
            expected.append("/body/event")
        if statutory and (route == "proactive_engagement" or proactive_only):
            expected.append("/body/statutory")
    assert [v.pointer for v in SCHEMAS.violations(doc)] == sorted(expected)


async def test_proactive_statutory_alert_is_refused_over_http(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    doc = load(EXAMPLES / "disengagement_alert" /
               "valid-proactive-disengaged-no-clinical-detail.json")
    doc["body"]["statutory"] = True
    before = table_counts(settings)
    response = await client.post("/v1/messages", json=doc, headers=bearer(settings, doc["from"]))
    assert response.status == 422
    errors = (await response.json())["errors"]
    assert errors == [{"pointer": "/body/statutory", "message": "Must be false."}]
    assert table_counts(settings) == before
