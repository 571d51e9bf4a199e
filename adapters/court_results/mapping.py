"""A court result list (CSV), one row per result, as ``court_outcome`` messages. Pure.

Court to CJIT, probation and CARAT (H 3.3, 4.1, Com 5). ``to`` is normally left empty: the
gateway sends custody and remand results to the prison's CARAT team and community orders
to the named probation provider. Rows it cannot address (e.g. bail with no ``to``) come
back invalid at ``to``.

Columns (* required; the schema's conditional rules are checked by the gateway):

- ``case_ref`` * — court case number / URN
- ``hearing_date`` * — YYYY-MM-DD or DD/MM/YYYY
- ``court_name`` * — e.g. Suffolk Magistrates' Court, Ipswich; ``court_code`` — OU code
- ``pnc_id``, ``given_name`` *, ``family_name`` *, ``date_of_birth`` * — the person
- ``route`` * — enforcement or proactive_engagement
- ``outcome`` * — remand_in_custody, bail, custodial_sentence, community_order,
  conditional_caution, discharge, fine, acquittal, adjournment (spaces allowed:
  "Remand in custody")
- ``offences`` — offences dealt with, separated by ``;``, one item per count: two counts
  of one offence are named twice and sent twice
- ``prison_code``, ``establishment_name`` — the prison (remand and custodial sentence)
- ``sentence_length`` — e.g. 18 months (custodial sentence)
- ``restriction_on_bail`` — yes/no (bail); ``bail_conditions``
- ``drr_attached`` — yes/no (community order); ``drr_length``; ``order_length``
- ``dip_condition_attached`` — yes/no (conditional caution)
- ``discharge_type`` — absolute or conditional
- ``next_hearing_date`` (adjournment), ``next_hearing_court``
- ``probation_provider`` — directory code, e.g. PRB-EOE (community order, licence)
- ``court_contact_name``, ``court_contact_role``, ``court_contact_phone``,
  ``court_contact_email`` — the court or CJIT court worker
- ``to`` — recipients' codes separated by ``;``; best left empty
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters import columns as shared
from adapters.columns import Column
from adapters.envelopes import ImportContext, envelope, map_rows
from adapters.fields import Fields
from adapters.records import Mapped, Row

OUTCOMES = (
    "remand_in_custody", "bail", "custodial_sentence", "community_order",
    "conditional_caution", "discharge", "fine", "acquittal", "adjournment",
)
REFERENCE = "case_ref"

COLUMNS: tuple[Column, ...] = (
    Column("case_ref", "court case number / URN", True, "/body/case_ref"),
    Column("hearing_date", "date of the hearing, YYYY-MM-DD or DD/MM/YYYY", True,
           "/body/hearing_date"),
    Column("court_name", "the court, e.g. Suffolk Magistrates' Court, Ipswich", True,
           "/body/court"),
    Column("court_code", "the court's OU code, e.g. B37IP", pointer="/body/court/code"),
    *shared.SUBJECT,
    shared.ROUTE,
    Column("outcome", "the result: " + ", ".join(OUTCOMES), True, "/body/outcome"),
    Column("offences", "offences dealt with, separated by ';'; name an offence once per "
                       "count", pointer="/body/offences"),
    *shared.ESTABLISHMENT,
    Column("sentence_length", "e.g. 18 months (custodial sentence)",
           pointer="/body/sentence_length"),
    Column("restriction_on_bail", "yes or no (bail)", pointer="/body/restriction_on_bail"),
    Column("bail_conditions", "conditions of bail", pointer="/body/bail_conditions"),
    Column("drr_attached", "yes or no (community order)", pointer="/body/drr_attached"),
    Column("drr_length", "e.g. 6 months (when a DRR is attached)", pointer="/body/drr_length"),
    Column("order_length", "length of the community order", pointer="/body/order_length"),
    Column("dip_condition_attached", "yes or no (conditional caution)",
           pointer="/body/dip_condition_attached"),
    Column("discharge_type", "absolute or conditional", pointer="/body/discharge_type"),
    Column("next_hearing_date", "YYYY-MM-DD or DD/MM/YYYY (adjournment)",
           pointer="/body/next_hearing_date"),
    Column("next_hearing_court", "court of the next hearing", pointer="/body/next_hearing_court"),
    Column("probation_provider", "directory code of the probation service, e.g. PRB-EOE",
           pointer="/body/probation_provider"),
    *shared.contact_columns("court_contact", "court or CJIT court worker", "/body/court_contact"),
    shared.TO,
)


def map_results(rows: Sequence[Row], ctx: ImportContext) -> list[Mapped]:
    return map_rows(rows, ctx, read_result, REFERENCE)


def read_result(f: Fields, ctx: ImportContext) -> dict[str, Any]:
    court = {"name": f.text("court_name", required=True), "code": f.text("court_code")}
    body = {
        "court": {k: v for k, v in court.items() if v is not None},
        "hearing_date": f.date("hearing_date", required=True),
        "case_ref": f.text("case_ref", required=True),
        "offences": f.items("offences"),
        "outcome": f.choice("outcome", OUTCOMES, required=True),
        "establishment": shared.establishment(f, required=False),
        "sentence_length": f.duration("sentence_length"),
        "restriction_on_bail": f.boolean("restriction_on_bail"),
        "bail_conditions": f.text("bail_conditions"),
        "drr_attached": f.boolean("drr_attached"),
        "drr_length": f.duration("drr_length"),
        "order_length": f.duration("order_length"),
        "dip_condition_attached": f.boolean("dip_condition_attached"),
        "discharge_type": f.choice("discharge_type", ("absolute", "conditional")),
        "next_hearing_date": f.date("next_hearing_date"),
        "next_hearing_court": f.text("next_hearing_court"),
        "probation_provider": _code(f.text("probation_provider")),
        "court_contact": shared.contact(f, "court_contact"),
    }
    return envelope(
        ctx, f.row, "court_outcome",
        route=shared.route(f),
        subject=shared.subject(f),
        body={k: v for k, v in body.items() if v is not None},
        to=f.codes("to"),
    )


def _code(value: str | None) -> str | None:
    return value.upper() if value is not None else None
