"""Prison reception and release lists (CSV) as ``carat_referral`` messages (H 2.5, 4.1.3).

A reception list becomes referrals ``into_custody`` to the prison's CARAT team, sent by
the CJIT that knew the person (the gateway takes referrals into custody only from a
CJIT); a release list becomes ``release`` notices to the community CJIT running the first
appointment, sent by the prison's CARAT team. ``to`` is normally left empty: the gateway
addresses the CARAT team of ``prison_code`` or the CJIT of ``appointment_cjit``. Both are
shared on consent (policy rules ``carat-referral-into-custody``, ``carat-referral-release``),
so rows without it come back refused. Pure.

Columns of both lists (* required):

- ``prison_code`` * (e.g. NWI), ``establishment_name`` * (e.g. HMP Norwich),
  ``prison_number`` (e.g. A1234BC)
- ``pnc_id``, ``given_name`` *, ``family_name`` *, ``date_of_birth`` * — the person
- ``route`` * — enforcement or proactive_engagement
- ``substances`` — ``;``-separated, e.g. heroin; crack_cocaine; a set, like
  ``immediate_risks``: a repeat is sent once and noted in the report (the schema's
  ``uniqueItems`` would refuse the message whole)
- ``medication``, ``dose_mg``, ``frequency``, ``supervised_consumption`` (yes/no),
  ``last_dose_at``, ``prescriber``, ``dispensing_pharmacy`` — substitute prescribing;
  medication, dose and last dose go together
- ``care_plan_summary``, ``immediate_risks`` (``;``-separated), ``risk_narrative``
- ``case_manager_name`` *, ``case_manager_role``, ``case_manager_phone`` *,
  ``case_manager_email`` — CJIT case manager (reception) or CARAT worker (release)
- ``consent_obtained`` *, ``consent_written`` * (yes/no), ``consent_obtained_at``,
  ``consent_id``
- ``to`` — recipients' codes separated by ``;``; best left empty

Reception list only: ``custody_status`` * (remand or sentenced), ``sentence_length``
(sentenced, e.g. 2 years), ``date_received`` *, ``expected_release_date``,
``court_outcome_message_id``.

Release list only: ``release_date`` *, ``release_type`` (end_of_sentence, licence,
home_detention_curfew, bail, remand_ended), ``statutory_supervision`` (yes/no),
``offender_manager_name``, ``_role``, ``_phone``, ``_email``, ``_organisation`` (the
probation provider's directory code, e.g. PRB-EOE; needed with statutory supervision, H 4.1);
``appointment_at`` *, ``appointment_place`` *, ``appointment_address`` *,
``appointment_postcode``, ``appointment_cjit`` * — the first appointment with the CJIT;
``gate_pickup_requested`` * (yes/no), ``gate_pickup_by``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters import columns as shared
from adapters.columns import Column, present
from adapters.envelopes import ImportContext, envelope, map_rows
from adapters.fields import Fields
from adapters.records import Mapped, Row

REFERENCE = "prison_number"
SUBSTANCES = (
    "heroin", "crack_cocaine", "cocaine_powder", "other_opiates", "illicit_methadone",
    "illicit_buprenorphine", "benzodiazepines", "pregabalin_gabapentinoids", "amphetamines",
    "cannabis", "synthetic_cannabinoids", "ketamine", "mdma", "novel_psychoactive_substances",
    "alcohol", "other",
)
RISKS = (
    "overdose", "injecting", "sharing_injecting_equipment", "blood_borne_virus", "withdrawal",
    "poly_drug_use", "alcohol_dependence", "self_harm", "suicide", "mental_health",
    "physical_health", "pregnancy", "homelessness", "exploitation", "domestic_abuse_victim",
    "domestic_abuse_perpetrator", "risk_to_children", "violence_to_others", "risk_to_staff",
)
MEDICATIONS = (
    "methadone", "buprenorphine", "buprenorphine_naloxone",
    "buprenorphine_prolonged_release_injection", "naltrexone", "lofexidine",
    "dihydrocodeine", "diazepam", "other",
)
FREQUENCIES = ("daily", "twice_daily", "alternate_days", "three_times_weekly", "weekly",
               "monthly")
RELEASE_TYPES = ("end_of_sentence", "licence", "home_detention_curfew", "bail", "remand_ended")

_COMMON: tuple[Column, ...] = (
    *shared.ESTABLISHMENT,
    Column("prison_number", "the person's prison (NOMIS) number, e.g. A1234BC",
           pointer="/body/prison_number"),
    *shared.SUBJECT,
    shared.ROUTE,
    Column("substances", "';'-separated, each once: " + ", ".join(SUBSTANCES),
           pointer="/body/substances"),
    Column("medication", "substitute prescribing: " + ", ".join(MEDICATIONS),
           pointer="/body/prescribing"),
    Column("dose_mg", "dose in mg, e.g. 60", pointer="/body/prescribing/dose_mg"),
    Column("frequency", ", ".join(FREQUENCIES), pointer="/body/prescribing/frequency"),
    Column("supervised_consumption", "yes or no",
           pointer="/body/prescribing/supervised_consumption"),
    Column("last_dose_at", "time of the last dose, with UTC offset",
           pointer="/body/prescribing/last_dose_at"),
    Column("prescriber", "prescribing service", pointer="/body/prescribing/prescriber"),
    Column("dispensing_pharmacy", "name and town", pointer="/body/prescribing/dispensing_pharmacy"),
    Column("care_plan_summary", "current care plan", pointer="/body/care_plan_summary"),
    Column("immediate_risks", "';'-separated, each once: " + ", ".join(RISKS),
           pointer="/body/immediate_risks"),
    Column("risk_narrative", "risks in words", pointer="/body/risk_narrative"),
    Column("case_manager_name", "CJIT case manager (reception) or CARAT worker (release)",
           True, "/body/case_manager"),
    Column("case_manager_role", "their role", pointer="/body/case_manager/role"),
    Column("case_manager_phone", "their telephone", True, "/body/case_manager/phone"),
    Column("case_manager_email", "their e-mail", pointer="/body/case_manager/email"),
    Column("consent_obtained", "yes or no: the person consented to this sharing", True,
           "/body/consent"),
    Column("consent_written", "yes or no: in writing", True, "/body/consent/written"),
    Column("consent_obtained_at", "when, with UTC offset", pointer="/body/consent/obtained_at"),
    Column("consent_id", "the consent record's id in the gateway",
           pointer="/body/consent/consent_id"),
    shared.TO,
)
RECEPTION_COLUMNS: tuple[Column, ...] = (
    *_COMMON,
    Column("custody_status", "remand or sentenced", True, "/body/custody_status"),
    Column("sentence_length", "e.g. 2 years (sentenced)", pointer="/body/sentence_length"),
    Column("date_received", "date received into the prison", True, "/body/date_received"),
    Column("expected_release_date", "where known", pointer="/body/expected_release_date"),
    Column("court_outcome_message_id", "the court_outcome message that led to custody",
           pointer="/body/court_outcome_message_id"),
)
RELEASE_COLUMNS: tuple[Column, ...] = (
    *_COMMON,
    Column("release_date", "date of release", True, "/body/release_date"),
    Column("release_type", ", ".join(RELEASE_TYPES), pointer="/body/release_type"),
    Column("statutory_supervision", "yes or no", pointer="/body/statutory_supervision"),
    *shared.contact_columns("offender_manager", "probation offender manager",
                            "/body/offender_manager"),
    Column("offender_manager_organisation",
           "directory code of the probation provider supervising the licence, e.g. PRB-EOE",
           pointer="/body/offender_manager/organisation"),
    *(Column(c.name, c.meaning, c.name in {"appointment_at", "appointment_place",
                                          "appointment_address", "appointment_cjit"}, c.pointer)
      for c in shared.appointment_columns("appointment", "first CJIT appointment after release",
                                          "/body/community_appointment")),
    Column("gate_pickup_requested", "yes or no", True, "/body/gate_pickup_requested"),
    Column("gate_pickup_by", "CJIT doing the pick-up, when not the CJIT of residence",
           pointer="/body/gate_pickup_by"),
)


def map_reception(rows: Sequence[Row], ctx: ImportContext) -> list[Mapped]:
    return map_rows(rows, ctx, _reception, REFERENCE)


def map_release(rows: Sequence[Row], ctx: ImportContext) -> list[Mapped]:
    return map_rows(rows, ctx, _release, REFERENCE)


def _reception(f: Fields, ctx: ImportContext) -> dict[str, Any]:
    return _referral(f, ctx, {
        "direction": "into_custody",
        "custody_status": f.choice("custody_status", ("remand", "sentenced"), required=True),
        "sentence_length": f.duration("sentence_length"),
        "date_received": f.date("date_received", required=True),
        "expected_release_date": f.date("expected_release_date"),
        "court_outcome_message_id": f.text("court_outcome_message_id"),
    })


def _release(f: Fields, ctx: ImportContext) -> dict[str, Any]:
    return _referral(f, ctx, {
        "direction": "release",
        "release_date": f.date("release_date", required=True),
        "release_type": f.choice("release_type", RELEASE_TYPES),
        "statutory_supervision": f.boolean("statutory_supervision"),
        "offender_manager": _offender_manager(f),
        "community_appointment": shared.appointment(f, "appointment", required=True),
        "gate_pickup_requested": f.boolean("gate_pickup_requested", required=True),
        "gate_pickup_by": _upper(f.text("gate_pickup_by")),
    })


def _offender_manager(f: Fields) -> dict[str, Any] | None:
    """The offender manager and, on release under licence, their probation provider, who
    then receives the referral too (H 4.1)."""
    manager = shared.contact(f, "offender_manager")
    provider = _upper(f.text("offender_manager_organisation"))
    if manager is not None and provider is not None:
        manager["organisation"] = provider
    return manager


def _referral(f: Fields, ctx: ImportContext, specific: dict[str, Any]) -> dict[str, Any]:
    body = {
        **specific,
        "establishment": shared.establishment(f, required=True),
        "prison_number": _upper(f.text("prison_number")),
        "substances": f.item_set("substances", SUBSTANCES),
        "prescribing": _prescribing(f),
        "care_plan_summary": f.text("care_plan_summary"),
        "immediate_risks": f.item_set("immediate_risks", RISKS),
        "risk_narrative": f.text("risk_narrative"),
        "case_manager": shared.contact(f, "case_manager", required=True),
        "consent": present({
            "obtained": f.boolean("consent_obtained", required=True),
            "written": f.boolean("consent_written", required=True),
            "obtained_at": f.date_time("consent_obtained_at"),
            "consent_id": f.text("consent_id"),
        }),
    }
    return envelope(ctx, f.row, "carat_referral", route=shared.route(f),
                    subject=shared.subject(f), body=present(body), to=f.codes("to"))


def _prescribing(f: Fields) -> dict[str, Any] | None:
    columns = ("medication", "dose_mg", "frequency", "supervised_consumption", "last_dose_at",
               "prescriber", "dispensing_pharmacy")
    if not f.has(*columns):
        return None
    return present({
        "medication": f.choice("medication", MEDICATIONS, required=True),
        "dose_mg": f.number("dose_mg", required=True),
        "frequency": f.choice("frequency", FREQUENCIES),
        "supervised_consumption": f.boolean("supervised_consumption"),
        "last_dose_at": f.date_time("last_dose_at", required=True),
        "prescriber": f.text("prescriber"),
        "dispensing_pharmacy": f.text("dispensing_pharmacy"),
    })


def _upper(value: str | None) -> str | None:
    return value.upper() if value is not None else None
