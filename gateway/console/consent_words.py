"""A consent in plain words: recipients, purposes, period, status, and what a withdrawal
did to each share it touched. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from gateway.console.words import when
from gateway.domain.model import OrgKind
from gateway.pipeline.consent import ConsentRecord
from gateway.pipeline.policy.facts import Purpose
from gateway.services.directory import Directory
from gateway.storage.base import SettledShare, ShareOutcome

# The kinds of organisation a consent may name (the request schema's actor_roles).
KIND_WORDS: Mapping[str, str] = {
    OrgKind.POLICE.value: "Police forces",
    OrgKind.CJIT.value: "Criminal Justice Integrated Teams (CJITs)",
    OrgKind.CARAT.value: "Prison CARAT teams",
    OrgKind.PROBATION.value: "Probation services",
    OrgKind.COURT.value: "Courts",
    OrgKind.CPS.value: "The Crown Prosecution Service (CPS)",
    OrgKind.PPO_IOM.value: "PPO and Integrated Offender Management schemes",
    OrgKind.TREATMENT_PROVIDER.value: "Community treatment providers",
}


@dataclass(frozen=True, slots=True)
class PurposeWords:
    label: str
    hint: str


# Label and hint for each purpose, in the words of the comments on ``Purpose``.
PURPOSE_WORDS: Mapping[Purpose, PurposeWords] = {
    Purpose.STATUTORY_REPORTING: PurposeWords(
        "Statutory reporting",
        "Steps of the criminal justice process the agencies must tell each other about: "
        "required assessment notices, court results, a conditional caution's DIP condition"),
    Purpose.CARE_COORDINATION: PurposeWords(
        "Care coordination",
        "Moving a case between services so care continues: the police's proactive "
        "referral, DIR transfers, prison throughcare and gate pick-up, the handover to "
        "probation when a DRR is imposed"),
    Purpose.CLINICAL_CARE: PurposeWords(
        "Clinical care",
        "Clinical content for treatment itself: an assessment's findings, a referral to a "
        "treatment provider"),
    Purpose.COMPLIANCE_REPORTING: PurposeWords(
        "Compliance reporting",
        "Reporting on the person's court order between probation and the CJIT: DRR "
        "progress, completion and breach, the outcome of an assessment for a person on a DRR"),
    Purpose.COURT_LIAISON: PurposeWords(
        "Court liaison",
        "Telling probation, a court or the CPS how the person engages and complies, so they "
        "can decide on bail, sentence or a DRR"),
    Purpose.OFFENDER_MANAGEMENT: PurposeWords(
        "Offender management",
        "Selecting and managing the person in a PPO or Integrated Offender Management scheme"),
    Purpose.ENGAGEMENT_FOLLOWUP: PurposeWords(
        "Engagement follow-up",
        "Telling partners the person failed to engage or disengaged, so they can follow up"),
}


def purpose_label(code: str) -> str:
    try:
        return PURPOSE_WORDS[Purpose(code)].label
    except ValueError:
        return code.replace("_", " ").capitalize()


def organisation_name(directory: Directory, code: str) -> str:
    org = directory.get(code)
    return f"{org.name} ({code})" if org else code


def recipients(record: ConsentRecord, directory: Directory) -> list[str]:
    return [
        *(KIND_WORDS.get(kind, kind) for kind in sorted(record.actor_roles)),
        *(organisation_name(directory, code) for code in sorted(record.actor_organisations)),
    ]


def period(record: ConsentRecord) -> str:
    start = f"From {when(record.period_start)}"
    if record.period_end is None:
        return f"{start}, with no end date"
    return f"{start} until {when(record.period_end)}"


@dataclass(frozen=True, slots=True)
class Status:
    words: str
    colour: str


def status(record: ConsentRecord, now: datetime) -> Status:
    """Withdrawn, expired, not started yet, or active (in force now)."""
    if record.withdrawn_at is not None and record.withdrawn_at <= now:
        return Status("Withdrawn", "red")
    if record.period_end is not None and now >= record.period_end:
        return Status("Expired", "grey")
    if now < record.period_start:
        return Status("Not started", "blue")
    return Status("Active", "green")


def recorded_by(record: ConsentRecord, directory: Directory) -> str:
    """'Jack Turner, Norfolk CJIT' for a person; the system's name and organisation else."""
    org_code, _, actor = record.performer.partition("/")
    person = directory.person(actor)
    who = person.name if person is not None else (actor or record.performer)
    org = directory.get(org_code)
    return f"{who}, {org.name}" if org else who


def outcome(share: SettledShare) -> str:
    """What a withdrawal did to one share, in words (README, "Consent", "Withdrawal")."""
    if share.outcome is ShareOutcome.KEPT:
        if share.decision.consent_record:
            text = ("Kept: another consent still in force covers it, and it now rests on "
                    f"consent {share.decision.consent_record}.")
        else:
            text = "Kept: it does not need the person's consent."
    elif share.outcome is ShareOutcome.STOPPED:
        text = ("Stopped: it had not been delivered and will not be. The sender has been "
                "sent an undelivered report.")
    elif share.outcome is ShareOutcome.WITHDRAWN:
        text = ("Withdrawn: it had been delivered but not read, so it has left the "
                "recipient's inbox. The recipient has been told.")
    else:
        text = ("Recipient told: it had already been acknowledged, so it stays with the "
                "recipient, who has been told the consent was withdrawn.")
    if share.decision.withheld_for:
        groups = ", ".join(purpose_label(p).lower() for p in share.decision.withheld_for)
        text += (f" Its fields for {groups} are withheld: the consent it rests on does "
                 "not cover them.")
    return text
