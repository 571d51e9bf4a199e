"""Importing the CJIT SPOC list (the Home Office's monthly circulation, H 4.6.1) as CSV.

Pure: parse the rows, then plan the changes against the current directory so a person can
preview them before they are applied. Keys are never taken from a CSV: an organisation's
signing keys are registered separately, so an import cannot let anyone sign as an agency.

Columns (a header row, in any order): ``code``, ``organisation``, ``kind``, ``area``,
``spoc_name``, ``phone``, ``email``, ``secure_email`` and, for CJITs, ``areas_served``
(local authorities or partnerships whose residents the CJIT serves, separated by ``;``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from gateway.domain.errors import InvalidMessage, Violation
from gateway.domain.model import AGENCY_KINDS, Contact, Organisation, OrgKind

REQUIRED = ("code", "organisation", "kind", "area", "spoc_name")
OPTIONAL = ("phone", "email", "secure_email", "areas_served")
# A directory code: upper-case words of letters and digits joined by "-", such as CJIT-SFK.
ORG_CODE = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_ROWS = 5000


class InvalidDirectoryFile(InvalidMessage):
    slug = "invalid-directory-file"
    title = "Invalid directory file"
    noun = "directory file"


def parse_spoc_csv(text: str) -> list[Organisation]:
    """Every row as an organisation (without keys); all problems reported with row numbers.

    Row numbers count the header as row 1, as a spreadsheet shows them.
    """
    try:
        return _parse(text)
    except csv.Error as exc:
        problem = Violation("", f"The file is not readable CSV: {exc}.")
        raise InvalidDirectoryFile([problem]) from None


def _parse(text: str) -> list[Organisation]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InvalidDirectoryFile(
            [Violation("/header", f"The header lacks column(s): {', '.join(missing)}.")]
        )
    unknown = [h for h in header if h not in REQUIRED + OPTIONAL]
    problems: list[Violation] = [
        Violation("/header", f"Unknown column {h!r}.") for h in unknown
    ]
    organisations: list[Organisation] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(reader, start=2):
        if number > MAX_ROWS + 1:
            problems.append(Violation("/rows", f"More than {MAX_ROWS} rows."))
            break
        row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
        where = f"/rows/{number}"
        row_problems = _row_problems(row, where)
        code = row.get("code", "")
        if code in seen:
            first = seen[code]
            row_problems.append(Violation(f"{where}/code", f"{code} is already on row {first}."))
        seen.setdefault(code, number)
        if row_problems:
            problems += row_problems
            continue
        organisations.append(_organisation(row))
    if problems:
        raise InvalidDirectoryFile(problems)
    return organisations


def _row_problems(row: dict[str, str], where: str) -> list[Violation]:
    found = [Violation(f"{where}/{c}", f"'{c}' is empty.") for c in REQUIRED if not row.get(c)]
    if row.get("code") and not ORG_CODE.match(row["code"]):
        found.append(Violation(f"{where}/code", f"{row['code']!r} is not an organisation code "
                                                 "such as CJIT-SFK."))
    # The oversight body and the operator are never created or changed by a SPOC list.
    if row.get("kind") and row["kind"].lower() not in AGENCY_KINDS:
        found.append(Violation(f"{where}/kind", f"{row['kind']!r} is not one of "
                                                 f"{', '.join(sorted(AGENCY_KINDS))}."))
    for column in ("email", "secure_email"):
        if row.get(column) and not _EMAIL.match(row[column]):
            found.append(Violation(f"{where}/{column}", f"{row[column]!r} is not an e-mail."))
    if row.get("areas_served") and row.get("kind", "").lower() != OrgKind.CJIT.value:
        found.append(Violation(f"{where}/areas_served",
                               "Only a CJIT serves areas of residence."))
    return found


def _organisation(row: dict[str, str]) -> Organisation:
    return Organisation(
        code=row["code"],
        kind=OrgKind(row["kind"].lower()),
        name=row["organisation"],
        area=row["area"],
        spoc=Contact(
            name=row["spoc_name"],
            phone=row.get("phone") or None,
            email=row.get("email") or None,
            secure_email=row.get("secure_email") or None,
        ),
        areas_served=tuple(a.strip() for a in row.get("areas_served", "").split(";")
                           if a.strip()),
    )


@dataclass(frozen=True, slots=True)
class DirectoryPlan:
    """What an import would change: added, changed (field by field), unchanged, and the
    organisations the file no longer lists (kept: removal is a decision for a person)."""

    added: tuple[Organisation, ...]
    changed: tuple[tuple[Organisation, dict[str, tuple[Any, Any]]], ...]
    unchanged: tuple[str, ...]
    not_in_file: tuple[str, ...]

    def to_apply(self) -> list[Organisation]:
        return [*self.added, *(org for org, _ in self.changed)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": [o.public_view() for o in self.added],
            "changed": [
                {"code": o.code,
                 "fields": {k: {"from": a, "to": b} for k, (a, b) in diff.items()}}
                for o, diff in self.changed
            ],
            "unchanged": list(self.unchanged),
            "not_in_file": list(self.not_in_file),
        }


def plan(current: Sequence[Organisation], imported: Sequence[Organisation]) -> DirectoryPlan:
    by_code = {o.code: o for o in current if o.kind in AGENCY_KINDS}
    others = {o.code for o in current if o.kind not in AGENCY_KINDS}
    clashes = [o.code for o in imported if o.code in others]
    if clashes:
        raise InvalidDirectoryFile([
            Violation("/rows", f"{code} is not an agency; a SPOC list cannot change it.")
            for code in clashes
        ])
    added, changed, unchanged = [], [], []
    for org in imported:
        existing = by_code.get(org.code)
        if existing is None:
            added.append(org)
            continue
        # Keys, the delivery channel and the identity provider are not on the SPOC list:
        # they stay as they are.
        merged = replace(org, jwks=existing.jwks, delivery=existing.delivery,
                         identity_provider=existing.identity_provider)
        before, after = existing.public_view(), merged.public_view()
        diff = {k: (before.get(k), after.get(k)) for k in sorted(set(before) | set(after))
                if before.get(k) != after.get(k)}
        if diff:
            changed.append((merged, diff))
        else:
            unchanged.append(org.code)
    listed = {o.code for o in imported}
    return DirectoryPlan(
        added=tuple(added),
        changed=tuple(changed),
        unchanged=tuple(unchanged),
        not_in_file=tuple(sorted(c for c in by_code if c not in listed)),
    )


def _normal_area(area: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", area.casefold()).strip()


def cjit_of_residence(
    organisations: Sequence[Organisation], area: str
) -> Organisation | None:
    """The CJIT serving a local authority or partnership (H 4.7.4 IE4a, IPAE7a).

    None when no CJIT, or more than one, claims the area: an ambiguous directory must not
    route a person's record by guess.
    """
    wanted = _normal_area(area)
    serving = [
        o for o in organisations
        if o.kind is OrgKind.CJIT and any(_normal_area(a) == wanted for a in o.areas_served)
    ]
    return serving[0] if len(serving) == 1 else None
