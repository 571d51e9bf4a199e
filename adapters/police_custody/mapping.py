"""RA1 and RA2 records exported from a custody system as ``ra1_notice`` and
``ra2_variation`` messages (police to CJIT, H 4.6.1). Pure.

One record per row (CSV) or line (JSON lines: an object whose members are these columns;
numbers and true/false are accepted as cells). Both kinds share a file; ``record_type``
says which. RA1 and RA2 exist only on the enforcement route, so there is no ``route``
column. ``to`` is normally left empty: the gateway sends an RA1 to the CJIT of the initial
assessment and an RA2 to the CJIT running the new appointment. An RA2 names its RA1 by
``ra1_message_id``, or, when the RA1 is in the same file, by the same
``custody_record_ref``.

Columns (* required; ``RA1``/``RA2`` marks columns for one kind only):

- ``record_type`` * — RA1 or RA2
- ``custody_record_ref`` * — custody record number (H 4.6.1 vi)
- ``pnc_id``, ``given_name`` *, ``family_name`` *, ``date_of_birth`` * — the person
- ``custody_suite`` * RA1 — the suite's name
- ``arrested_at`` * RA1 — time of arrest, with UTC offset
- ``no_fixed_abode`` * RA1 — yes/no; otherwise ``address_lines`` (``;``-separated, sent
  as written, a repeated line too),
  ``town`` and ``postcode``; ``phone``, ``email``, ``alternative_contact``
- ``offence`` * RA1 — as recorded; ``trigger_category`` (e.g. theft, burglary)
- ``testing_basis`` * RA1 — trigger_offence or inspector_authority; then
  ``test_authority_officer``, ``_rank``, ``_at``, ``_reason``
- ``sample_taken_at`` * RA1, ``test_result`` * RA1 (opiates, cocaine, both), ``test_ref``
- ``requirement_made`` * RA1 — yes/no; when no, ``no_requirement_authority_officer``,
  ``_rank``, ``_at``, ``_reason``
- ``appointment_at`` *, ``appointment_place`` *, ``appointment_address`` *,
  ``appointment_postcode``, ``appointment_cjit`` * — RA1: the initial assessment;
  RA2: the new appointment
- ``written_notice_given`` *, ``warning_given`` * — yes/no
- ``restriction_on_bail``, ``out_of_area``, ``assessment_in_custody`` RA1 — yes/no;
  ``notes`` RA1
- ``ra1_message_id`` RA2 — the RA1's message id (or the RA1 row in the same file)
- ``varied_appointment`` * RA2 — initial_assessment or follow_up_assessment;
  ``previous_appointment_at``
- ``reason_category`` * RA2 — person_request, cjit_unavailable, person_in_custody,
  person_in_hospital, moved_area, court_appearance, other; ``reason_detail``
- ``varied_by`` * RA2 — police or cjit; ``copied_to_custody_record`` (yes/no, when police)
- ``officer_name``, ``officer_role``, ``officer_phone``, ``officer_email`` — police contact
- ``to`` — recipients' codes separated by ``;``; best left empty
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adapters import columns as shared
from adapters.columns import Column, present
from adapters.envelopes import ImportContext, envelope, map_rows
from adapters.fields import Fields
from adapters.records import Mapped, Row

REFERENCE = "custody_record_ref"
RECORD_TYPES = ("ra1", "ra2")
TRIGGER_CATEGORIES = (
    "theft", "robbery", "burglary", "aggravated_burglary", "taking_vehicle_without_consent",
    "aggravated_vehicle_taking", "fraud", "obtaining_by_deception", "handling_stolen_goods",
    "going_equipped", "possession_class_a", "possession_with_intent_to_supply_class_a",
    "supply_class_a", "production_class_a", "begging", "persistent_begging",
    "attempt_of_trigger_offence",
)
RANKS = ("inspector", "chief_inspector", "superintendent", "chief_superintendent")
REASONS = ("person_request", "cjit_unavailable", "person_in_custody", "person_in_hospital",
           "moved_area", "court_appearance", "other")


def _authority_columns(prefix: str, what: str, pointer: str) -> tuple[Column, ...]:
    return (
        Column(f"{prefix}_officer", f"{what}: officer's name", pointer=pointer),
        Column(f"{prefix}_rank", f"{what}: {', '.join(RANKS)}", pointer=f"{pointer}/rank"),
        Column(f"{prefix}_at", f"{what}: when given, with UTC offset",
               pointer=f"{pointer}/authorised_at"),
        Column(f"{prefix}_reason", f"{what}: grounds recorded", pointer=f"{pointer}/reason"),
    )


COLUMNS: tuple[Column, ...] = (
    Column("record_type", "RA1 or RA2", True),
    Column("custody_record_ref", "custody record number (H 4.6.1 vi)", True,
           "/body/custody_record_ref"),
    *shared.SUBJECT,
    Column("custody_suite", "RA1: the custody suite's name", pointer="/body/custody_suite"),
    Column("arrested_at", "RA1: time of arrest, with UTC offset", pointer="/body/arrested_at"),
    Column("no_fixed_abode", "RA1: yes or no", pointer="/body/person_contact"),
    Column("address_lines", "RA1: home address lines separated by ';'",
           pointer="/body/person_contact/address"),
    Column("town", "RA1: post town", pointer="/body/person_contact/address/town"),
    Column("postcode", "RA1: postcode", pointer="/body/person_contact/address/postcode"),
    Column("phone", "RA1: the person's telephone", pointer="/body/person_contact/phone"),
    Column("email", "RA1: the person's e-mail", pointer="/body/person_contact/email"),
    Column("alternative_contact", "RA1: another way to reach the person",
           pointer="/body/person_contact/alternative_contact"),
    Column("offence", "RA1: the offence as recorded", pointer="/body/offence"),
    Column("trigger_category", "RA1: trigger offence, e.g. theft, burglary",
           pointer="/body/offence/trigger_category"),
    Column("testing_basis", "RA1: trigger_offence or inspector_authority",
           pointer="/body/testing_basis"),
    *_authority_columns("test_authority", "RA1, Inspector's authority to test",
                        "/body/inspector_authority"),
    Column("sample_taken_at", "RA1: when the sample was taken, with UTC offset",
           pointer="/body/drug_test/sample_taken_at"),
    Column("test_result", "RA1: opiates, cocaine or both", pointer="/body/drug_test/result"),
    Column("test_ref", "RA1: DT1 form / device reference", pointer="/body/drug_test/test_ref"),
    Column("requirement_made", "RA1: yes or no", pointer="/body/requirement_made"),
    *_authority_columns("no_requirement_authority", "RA1, authority for not requiring",
                        "/body/requirement_not_made_authority"),
    *shared.appointment_columns(
        "appointment", "RA1 initial assessment / RA2 new appointment", "/body/initial_assessment"
    ),
    Column("written_notice_given", "yes or no", pointer="/body/written_notice_given"),
    Column("warning_given", "yes or no", pointer="/body/warning_given"),
    Column("restriction_on_bail", "RA1: yes or no", pointer="/body/restriction_on_bail"),
    Column("out_of_area", "RA1: yes or no", pointer="/body/out_of_area"),
    Column("assessment_in_custody", "RA1: yes or no", pointer="/body/assessment_in_custody"),
    Column("notes", "RA1: non-clinical notes", pointer="/body/notes"),
    Column("ra1_message_id", "RA2: the RA1's message id, unless the RA1 is in this file",
           pointer="/body/ra1_message_id"),
    Column("varied_appointment", "RA2: initial_assessment or follow_up_assessment",
           pointer="/body/varied_appointment"),
    Column("previous_appointment_at", "RA2: the original time",
           pointer="/body/previous_appointment_at"),
    Column("reason_category", "RA2: " + ", ".join(REASONS), pointer="/body/reason"),
    Column("reason_detail", "RA2: non-clinical detail", pointer="/body/reason/detail"),
    Column("varied_by", "RA2: police or cjit", pointer="/body/varied_by"),
    Column("copied_to_custody_record", "RA2: yes or no (when varied by police)",
           pointer="/body/copied_to_custody_record"),
    *shared.contact_columns("officer", "police contact", "/body/police_contact"),
    shared.TO,
)
# An RA2's appointment lands at /body/new_appointment; show those problems on the same cells.
POINTERS: Mapping[str, str] = {
    **shared.pointer_columns(COLUMNS),
    **{c.pointer.replace("/initial_assessment", "/new_appointment"): c.name
       for c in COLUMNS if c.pointer and c.pointer.startswith("/body/initial_assessment")},
}


def map_records(rows: Sequence[Row], ctx: ImportContext) -> list[Mapped]:
    """RA1 rows first learn their message ids, so an RA2 can name an RA1 in the same file."""
    ra1_ids = {
        row.cells.get(REFERENCE, "").upper(): ctx.message_id(row.number)
        for row in rows
        if row.cells.get("record_type", "").lower() == "ra1" and row.cells.get(REFERENCE)
    }

    def read(f: Fields, ctx: ImportContext) -> dict[str, Any]:
        kind = f.choice("record_type", RECORD_TYPES, required=True)
        body = _ra2(f, ra1_ids) if kind == "ra2" else _ra1(f)
        subject = shared.subject(f)
        if kind == "ra1" and body.get("custody_record_ref"):
            subject["custody_record_number"] = body["custody_record_ref"]
        return envelope(ctx, f.row, "ra2_variation" if kind == "ra2" else "ra1_notice",
                        route="enforcement", subject=subject, body=body, to=f.codes("to"))

    return map_rows(rows, ctx, read, REFERENCE)


def _ra1(f: Fields) -> dict[str, Any]:
    no_fixed_abode = f.boolean("no_fixed_abode", required=True)
    address = None
    if no_fixed_abode is False or f.has("address_lines", "town"):
        lines = f.items("address_lines")
        if lines is None:
            f.problem("address_lines", "is required when the person has a fixed abode")
        address = present({
            "lines": lines,
            "town": f.text("town", required=True),
            "postcode": _upper(f.text("postcode")),
        })
    testing_basis = f.choice("testing_basis", ("trigger_offence", "inspector_authority"),
                             required=True)
    requirement_made = f.boolean("requirement_made", required=True)
    return present({
        "custody_record_ref": f.text("custody_record_ref", required=True),
        "custody_suite": f.text("custody_suite", required=True),
        "arrested_at": f.date_time("arrested_at", required=True),
        "person_contact": present({
            "no_fixed_abode": no_fixed_abode,
            "address": address,
            "phone": f.text("phone"),
            "email": f.text("email"),
            "alternative_contact": f.text("alternative_contact"),
        }),
        "offence": present({
            "description": f.text("offence", required=True),
            "trigger_category": f.choice("trigger_category", TRIGGER_CATEGORIES,
                                         required=testing_basis == "trigger_offence"),
        }),
        "testing_basis": testing_basis,
        "inspector_authority": _authority(f, "test_authority",
                                          required=testing_basis == "inspector_authority"),
        "drug_test": present({
            "sample_taken_at": f.date_time("sample_taken_at", required=True),
            "result": f.choice("test_result", ("opiates", "cocaine", "both"), required=True),
            "test_ref": f.text("test_ref"),
        }),
        "requirement_made": requirement_made,
        "requirement_not_made_authority": _authority(
            f, "no_requirement_authority", required=requirement_made is False),
        "initial_assessment": shared.appointment(f, "appointment", required=True),
        "written_notice_given": f.boolean("written_notice_given", required=True),
        "warning_given": f.boolean("warning_given", required=True),
        "restriction_on_bail": f.boolean("restriction_on_bail"),
        "out_of_area": f.boolean("out_of_area"),
        "assessment_in_custody": f.boolean("assessment_in_custody"),
        "police_contact": shared.contact(f, "officer"),
        "notes": f.text("notes"),
    })


def _ra2(f: Fields, ra1_ids: Mapping[str, str]) -> dict[str, Any]:
    reference = f.text("custody_record_ref", required=True)
    ra1 = f.text("ra1_message_id") or ra1_ids.get((reference or "").upper())
    if ra1 is None:
        f.problem("ra1_message_id", "is required unless the RA1 with this custody_record_ref "
                                    "is in the same file")
    varied_by = f.choice("varied_by", ("police", "cjit"), required=True)
    return present({
        "ra1_message_id": ra1,
        "custody_record_ref": reference,
        "varied_appointment": f.choice(
            "varied_appointment", ("initial_assessment", "follow_up_assessment"), required=True),
        "previous_appointment_at": f.date_time("previous_appointment_at"),
        "new_appointment": shared.appointment(f, "appointment", required=True),
        "reason": present({
            "category": f.choice("reason_category", REASONS, required=True),
            "detail": f.text("reason_detail"),
        }),
        "varied_by": varied_by,
        "written_notice_given": f.boolean("written_notice_given", required=True),
        "warning_given": f.boolean("warning_given", required=True),
        "copied_to_custody_record": f.boolean("copied_to_custody_record",
                                              required=varied_by == "police"),
        "police_contact": shared.contact(f, "officer"),
    })


def _authority(f: Fields, prefix: str, *, required: bool) -> dict[str, Any] | None:
    parts = ("officer", "rank", "at", "reason")
    if not required and not f.has(*(f"{prefix}_{p}" for p in parts)):
        return None
    return {
        "officer_name": f.text(f"{prefix}_officer", required=True),
        "rank": f.choice(f"{prefix}_rank", RANKS, required=True),
        "authorised_at": f.date_time(f"{prefix}_at", required=True),
        "reason": f.text(f"{prefix}_reason", required=True),
    }


def _upper(value: str | None) -> str | None:
    return value.upper() if value is not None else None
