"""Rows as agencies' systems export them, mirroring the schema examples."""

from __future__ import annotations

from adapters.court_results.mapping import map_results
from adapters.police_custody.mapping import map_records
from adapters.prison.mapping import map_reception, map_release

PERSON = {"pnc_id": "09/482731K", "given_name": "Daniel", "family_name": "Hartley",
          "date_of_birth": "14/06/1989"}

COURT_DRR = {
    **PERSON, "case_ref": "37SF0451226", "hearing_date": "24/04/2026",
    "court_name": "Suffolk Magistrates' Court, Ipswich", "court_code": "B37IP",
    "route": "enforcement", "outcome": "Community order", "order_length": "12 months",
    "drr_attached": "yes", "drr_length": "6 months", "probation_provider": "PRB-EOE",
    "offences": "Burglary (dwelling), Bixley Road", "court_contact_name": "Jo Fenwick",
    "court_contact_role": "CJIT court worker", "court_contact_phone": "01632 960103",
}
COURT_CUSTODY = {
    **PERSON, "case_ref": "T20267041", "hearing_date": "2026-05-08",
    "court_name": "Norwich Crown Court", "route": "proactive_engagement",
    "outcome": "custodial_sentence", "sentence_length": "2 years", "prison_code": "nwi",
    "establishment_name": "HMP Norwich",
}

RA1 = {
    **PERSON, "record_type": "RA1", "custody_record_ref": "IPS-26-004512",
    "custody_suite": "Ipswich Police Investigation Centre",
    "arrested_at": "2026-03-14T16:42:00Z", "no_fixed_abode": "no",
    "address_lines": "Flat 3; 41 Rope Walk", "town": "Ipswich", "postcode": "ip4 1lp",
    "phone": "07700 900456", "offence": "Theft from a shop", "trigger_category": "theft",
    "testing_basis": "trigger_offence", "sample_taken_at": "2026-03-14 18:05Z",
    "test_result": "opiates", "test_ref": "DT1-IPS-0311", "requirement_made": "yes",
    "appointment_at": "2026-03-15T10:00:00Z", "appointment_place": "Suffolk CJIT, Ipswich",
    "appointment_address": "14 Orwell Quay Road, Ipswich", "appointment_postcode": "IP3 0QA",
    "appointment_cjit": "CJIT-SFK", "written_notice_given": "yes", "warning_given": "yes",
    "restriction_on_bail": "no", "out_of_area": "no", "officer_name": "PS 1472 Ellie Morgan",
    "officer_role": "Custody sergeant", "officer_phone": "01632 960601",
}
RA1_INSPECTOR = {
    **RA1, "custody_record_ref": "NOR-26-1180", "testing_basis": "Inspector authority",
    "trigger_category": "", "no_fixed_abode": "yes", "address_lines": "", "town": "",
    "postcode": "", "test_authority_officer": "Insp Kaur", "test_authority_rank": "inspector",
    "test_authority_at": "2026-03-14T17:00:00Z",
    "test_authority_reason": "Suspected Class A use linked to the offence",
}
RA2_SAME_FILE = {
    **PERSON, "record_type": "RA2", "custody_record_ref": "ips-26-004512",
    "varied_appointment": "follow up assessment", "reason_category": "court_appearance",
    "reason_detail": "Clashes with first appearance", "varied_by": "police",
    "copied_to_custody_record": "yes", "written_notice_given": "yes", "warning_given": "yes",
    "appointment_at": "2026-03-26T10:00:00Z", "appointment_place": "Norfolk CJIT, Norwich",
    "appointment_address": "22 Castle Meadow Walk, Norwich", "appointment_cjit": "cjit-nfk",
}
RA2 = {**RA2_SAME_FILE, "ra1_message_id": "ad5df779-e01a-4fd9-ac81-e139cf4e94fd",
       "varied_by": "cjit", "copied_to_custody_record": ""}

CONSENT = {"consent_obtained": "yes", "consent_written": "yes",
           "consent_obtained_at": "2026-03-09T14:00:00Z"}
RECEPTION = {
    **PERSON, **CONSENT, "prison_code": "NWI", "establishment_name": "HMP Norwich",
    "prison_number": "a4821dk", "route": "enforcement", "custody_status": "remand",
    "date_received": "03/04/2026", "substances": "heroin; crack cocaine",
    "medication": "methadone", "dose_mg": "60", "frequency": "daily",
    "supervised_consumption": "yes", "last_dose_at": "2026-04-03T08:40:00+01:00",
    "immediate_risks": "overdose; withdrawal", "case_manager_name": "Grace Okonjo",
    "case_manager_role": "CJIT case manager", "case_manager_phone": "01632 960201",
}
RELEASE = {
    **PERSON, **CONSENT, "prison_code": "NWI", "establishment_name": "HMP Norwich",
    "route": "enforcement", "release_date": "2026-11-12", "release_type": "licence",
    "statutory_supervision": "yes", "offender_manager_name": "Michael Reyes",
    "offender_manager_organisation": "PRB-EOE",
    "offender_manager_phone": "07700 900123", "appointment_at": "2026-11-12T14:00:00Z",
    "appointment_place": "Norfolk CJIT, Norwich hub",
    "appointment_address": "22 Castle Meadow Walk, Norwich", "appointment_cjit": "CJIT-NFK",
    "gate_pickup_requested": "no", "case_manager_name": "Amira Haddad",
    "case_manager_role": "CARAT worker", "case_manager_phone": "01632 960501",
}

VALID = [
    ("court community order", map_results, COURT_DRR),
    ("court custody", map_results, COURT_CUSTODY),
    ("court with to", map_results, {**COURT_DRR, "outcome": "bail", "drr_attached": "",
                                    "restriction_on_bail": "yes", "to": "CJIT-SFK"}),
    ("ra1", map_records, RA1),
    ("ra1 inspector, no fixed abode", map_records, RA1_INSPECTOR),
    ("ra2", map_records, RA2),
    ("reception", map_reception, RECEPTION),
    ("release", map_release, RELEASE),
]
