"""Facts a policy may test, read from a message body, and the purpose each message serves.
No I/O.

Each fact names where it comes from per message type. A fact the body does not state
(field absent, or the type does not carry it) is left out, so rules cannot guess it.

The purpose table (:data:`PURPOSES`) is the one place saying what each message type is
shared *for*. A person consents to sharing for purposes they were told about (H 4.2:
consent "to sharing information for continuity of care purposes"; H 4.7.1: written consent
to report an assessment outcome to probation), so a consent counts for a share only when
it lists the share's purpose (``gateway.pipeline.consent``), and a rule may test it (``when:
purpose``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from gateway.pipeline.policy.rules import FactValue

# fact name -> {message type -> path of the body member it is read from}
FACT_SOURCES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "on_drr": {
        "assessment_outcome": ("subject_on_drr",),
        "court_outcome": ("drr_attached",),
    },
    "disengagement_event": {"disengagement_alert": ("event",)},
    "statutory": {"disengagement_alert": ("statutory",)},
    "court_outcome": {"court_outcome": ("outcome",)},
    "carat_direction": {"carat_referral": ("direction",)},
    "statutory_supervision": {"carat_referral": ("statutory_supervision",)},
    "drr_event": {"drr_progress": ("event",)},
    "suitability_direction": {"drr_suitability": ("direction",)},
    "gate_pickup_stage": {"gate_pickup": ("stage",)},
    "assessment_outcome": {"assessment_outcome": ("outcome",)},
    "dir_acceptance_outcome": {"dir_acceptance": ("outcome",)},
    # Why a DIR moves: for the required follow-up (the person lives there) or a later move
    # of the caseload (H 4.7.4, 4.11.5b (5)); an IG lead may give them different bases.
    "dir_referral_reason": {"dir_transfer": ("referral_reason",)},
}

FACT_NAMES = frozenset(FACT_SOURCES)


def message_facts(message_type: str, body: Mapping[str, Any]) -> dict[str, FactValue]:
    found: dict[str, FactValue] = {}
    for name, sources in FACT_SOURCES.items():
        path = sources.get(message_type)
        if path is None:
            continue
        node: Any = body
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, str | bool):
            found[name] = node
    return found


class Purpose(StrEnum):
    """Why a message is shared: the small, fixed vocabulary consents and rules name."""

    # Steps of the criminal-justice process the agencies must tell each other about: the
    # required-assessment notices (H 4.6.1 vii, RA2), court results (H 3.3, 4.1) and a
    # conditional caution's DIP condition (H 4.1.1).
    STATUTORY_REPORTING = "statutory_reporting"
    # Moving a case between services so care continues: the police's referral on the
    # proactive route (IPAE2), DIR transfer and its answer, prison throughcare and gate
    # pick-up, a treatment provider's report to the case manager, the handover to
    # probation when a DRR is imposed (H 2.5, 2.6, 4.1.3, 4.2 "continuity of care", 4.7.4,
    # 4.9.2, 4.10.6).
    CARE_COORDINATION = "care_coordination"
    # Clinical content for treatment itself: an assessment's findings (H 4.7), a referral
    # to a treatment provider (H 4.11.4, 4.11.5b (7)).
    CLINICAL_CARE = "clinical_care"
    # Reporting on a person's court order between probation and the CJIT: DRR progress,
    # completion and breach, the outcome of an initial assessment for a person on a DRR
    # (H 4.7.1, 4.11.5a, 4.11.5b).
    COMPLIANCE_REPORTING = "compliance_reporting"
    # Telling probation, a court or the CPS how a person engages and complies, so they can
    # decide on bail, sentence or a DRR: pre-sentence DRR suitability, compliance reports
    # (H 2.6, 3.3, 4.1.3, 4.2 ¶2).
    COURT_LIAISON = "court_liaison"
    # Selecting and managing a person in a PPO or Integrated Offender Management scheme
    # (H 2.7, H 4.11.5b (8)).
    OFFENDER_MANAGEMENT = "offender_management"
    # Telling partners a person failed to engage or disengaged, so they can follow up
    # (H 4.1.2, 4.1.3, 4.10.2, 4.11.3).
    ENGAGEMENT_FOLLOWUP = "engagement_followup"


# message type -> the purpose it serves (handbook paragraphs beside each Purpose above).
PURPOSES: Mapping[str, Purpose] = {
    "ra1_notice": Purpose.STATUTORY_REPORTING,
    "ra2_variation": Purpose.STATUTORY_REPORTING,
    "court_outcome": Purpose.STATUTORY_REPORTING,
    "dir_transfer": Purpose.CARE_COORDINATION,
    "dir_acceptance": Purpose.CARE_COORDINATION,
    "carat_referral": Purpose.CARE_COORDINATION,
    "disengagement_alert": Purpose.ENGAGEMENT_FOLLOWUP,
    "assessment_outcome": Purpose.CLINICAL_CARE,
    "proactive_referral": Purpose.CARE_COORDINATION,
    "conditional_caution_notice": Purpose.STATUTORY_REPORTING,
    "drr_progress": Purpose.COMPLIANCE_REPORTING,
    "drr_suitability": Purpose.COURT_LIAISON,
    "gate_pickup": Purpose.CARE_COORDINATION,
    "compliance_report": Purpose.COURT_LIAISON,
    "ppo_nomination": Purpose.OFFENDER_MANAGEMENT,
    "treatment_referral": Purpose.CLINICAL_CARE,
    "treatment_progress": Purpose.CARE_COORDINATION,
    "drr_handover": Purpose.CARE_COORDINATION,
}

# Where a fact changes the purpose: (type, fact, value) -> purpose. An assessment outcome
# is a clinical record, except that for a person already on a DRR it is the report to
# probation the handbook asks for (H 4.7.1): consent to that report is consent to
# compliance reporting, and it is not consent to share clinical care.
PURPOSE_BY_FACT: Mapping[tuple[str, str, FactValue], Purpose] = {
    ("assessment_outcome", "on_drr", True): Purpose.COMPLIANCE_REPORTING,
}


# Field groups serving another purpose than their message (type -> purpose -> pointers).
# An alert is for engagement follow-up, but may carry clinical fields; an assessment
# outcome reported to probation on a DRR, a DRR handover or a provider's progress report
# carry clinical detail beside what they are for. Consent to the message's purpose is not
# consent to share clinical care (H 4.2, 4.7.1), so such a group goes only when the consent
# the share rests on lists the group's purpose too (gateway.services.policy).
FIELD_PURPOSES: Mapping[str, Mapping[Purpose, tuple[str, ...]]] = {
    "disengagement_alert": {Purpose.CLINICAL_CARE: (
        "/body/clinical_summary", "/body/prescribing", "/body/immediate_risks",
        "/body/risk_narrative")},
    "assessment_outcome": {Purpose.CLINICAL_CARE: (
        "/body/substances", "/body/prescribing", "/body/needs_summary",
        "/body/risk_narrative")},
    "drr_handover": {Purpose.CLINICAL_CARE: (
        "/body/care_plan_summary", "/body/substances", "/body/prescribing",
        "/body/immediate_risks")},
    "treatment_progress": {Purpose.CLINICAL_CARE: ("/body/clinical_summary",)},
}


def field_groups(message_type: str, purpose: str | None) -> list[tuple[str, tuple[str, ...]]]:
    """The message's field groups that serve another purpose than ``purpose``."""
    groups = FIELD_PURPOSES.get(message_type, {})
    return [(group.value, pointers) for group, pointers in groups.items()
            if group.value != purpose]


def purpose_of(message_type: str, facts: Mapping[str, FactValue]) -> str | None:
    """The purpose a message serves, or None for a type the table does not know (then no
    consent covers it and no permit testing a purpose applies: fail closed)."""
    for (type_, fact, value), purpose in PURPOSE_BY_FACT.items():
        if type_ == message_type and facts.get(fact) == value:
            return purpose.value
    known = PURPOSES.get(message_type)
    return known.value if known is not None else None
