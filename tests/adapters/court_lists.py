"""Court result lists for tests and the benchmark: realistic rows, some invalid on purpose.

Invalid rows come in kinds the adapter finds itself (an impossible date, an outcome not in
the vocabulary, a missing name) and kinds only the gateway finds (a custodial sentence
without its length, a bail result nobody can be addressed for).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from adapters.court_results.mapping import COLUMNS

HEADER = [c.name for c in COLUMNS]

VALID_ROWS: tuple[dict[str, str], ...] = (
    {"outcome": "Custodial sentence", "prison_code": "NWI", "establishment_name": "HMP Norwich",
     "sentence_length": "18 months", "offences": "Burglary (dwelling); Theft"},
    {"outcome": "remand_in_custody", "prison_code": "HPI", "establishment_name": "HMP Highpoint",
     "next_hearing_date": "2026-06-16"},
    {"outcome": "community_order", "drr_attached": "yes", "drr_length": "6 months",
     "order_length": "12 months", "probation_provider": "PRB-EOE"},
    {"outcome": "Community order", "drr_attached": "no", "order_length": "12 months",
     "probation_provider": "prb-eoe", "court_contact_name": "Jo Fenwick",
     "court_contact_phone": "01632 960103"},
    {"outcome": "bail", "restriction_on_bail": "Y", "to": "CJIT-SFK",
     "bail_conditions": "Attend drug assessment"},
    {"outcome": "adjournment", "next_hearing_date": "09/06/2026", "to": "CJIT-SFK"},
)

INVALID_ROWS: dict[str, dict[str, str]] = {
    # Found by the adapter while mapping:
    "impossible date": {"outcome": "fine", "hearing_date": "31/02/2026", "to": "CJIT-SFK"},
    "unknown outcome": {"outcome": "suspended sentence", "to": "CJIT-SFK"},
    "missing name": {"outcome": "fine", "family_name": "", "to": "CJIT-SFK"},
    # Found by the gateway (422):
    "custody without length": {"outcome": "custodial_sentence", "prison_code": "NWI",
                               "establishment_name": "HMP Norwich"},
    "nobody to address": {"outcome": "bail", "restriction_on_bail": "no"},
}
FOUND_BY_GATEWAY = frozenset({"custody without length", "nobody to address"})


@dataclass(frozen=True, slots=True)
class CourtList:
    text: str
    valid_rows: frozenset[int]
    invalid_rows: dict[int, str]
    """Row number → the kind of fault planted in it."""


def court_list(rows: int, *, invalid_every: int = 50) -> CourtList:
    """``rows`` results; every ``invalid_every``-th is invalid, cycling through the kinds."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, HEADER, lineterminator="\n")
    writer.writeheader()
    valid: set[int] = set()
    invalid: dict[int, str] = {}
    kinds = list(INVALID_ROWS)
    for i in range(rows):
        number = i + 2  # the header is row 1
        base = {
            "case_ref": f"37SF{i:07d}",
            "hearing_date": "2026-05-19",
            "court_name": "Suffolk Magistrates' Court, Ipswich",
            "court_code": "B37IP",
            "pnc_id": f"{i % 90 + 10:02d}/{i % 9_999_999 + 1}{'ABCDEFGHJK'[i % 10]}",
            "given_name": f"Person{i}",
            "family_name": "Example",
            "date_of_birth": "1990-01-01",
            "route": "enforcement" if i % 3 else "proactive_engagement",
        }
        if invalid_every and i % invalid_every == invalid_every - 1:
            kind = kinds[(i // invalid_every) % len(kinds)]
            writer.writerow({**base, **INVALID_ROWS[kind]})
            invalid[number] = kind
        else:
            writer.writerow({**base, **VALID_ROWS[i % len(VALID_ROWS)]})
            valid.add(number)
    return CourtList(buffer.getvalue(), frozenset(valid), invalid)
