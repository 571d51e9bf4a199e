"""Columns an export may hold, and the groups of them every adapter shares. Pure.

A ``Column`` says what a cell means and where its value lands in the message (a JSON
pointer), so a problem the gateway reports at ``/body/hearing_date`` is shown against the
``hearing_date`` column. The groups (the person, a contact, an appointment, a prison) are
read the same way by every adapter.

Shared columns:

- the person: ``pnc_id`` (optional, e.g. 09/482731K), ``given_name``, ``family_name``,
  ``date_of_birth`` (required);
- ``route``: ``enforcement`` or ``proactive_engagement`` (the DIP route, H 4.2, 4.3);
- ``to``: recipients' directory codes separated by ``;``; optional, and best left empty so
  the gateway works out the recipients itself (README, "Recipient resolution");
- a contact, ``<prefix>_name``, ``_role``, ``_phone``, ``_email``: name and phone are
  needed once any of them is given;
- an appointment, ``<prefix>_at`` (time with UTC offset), ``_place``, ``_address``,
  ``_postcode``, ``_cjit`` (directory code of the CJIT running it);
- a prison, ``prison_code`` (three letters, e.g. NWI) and ``establishment_name``.

A column the adapter's table does not declare is never dropped unsaid: ``unknown_columns``
names it with the nearest declared name (a misspelt ``court_contact_emial`` would otherwise
lose every e-mail address in the file), and ``unread_cells`` notes each row whose cell in
it holds something, for the report.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.fields import Fields
from adapters.records import Problem, Row

ROUTES = ("enforcement", "proactive_engagement")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    meaning: str
    required: bool = False
    pointer: str | None = None


def pointer_columns(columns: Sequence[Column]) -> Mapping[str, str]:
    """Message pointer → column name, for showing the gateway's problems against cells."""
    return {c.pointer: c.name for c in columns if c.pointer}


def column_for(pointers: Mapping[str, str], pointer: str) -> str:
    """The column a problem at ``pointer`` belongs to; the pointer itself when none does.

    The longest match wins, so ``/body/establishment/prison_code`` finds ``prison_code``
    and ``/body/establishment`` still finds the establishment's column.
    """
    for candidate in _prefixes(pointer):
        if candidate in pointers:
            return pointers[candidate]
    return pointer or "*"


@dataclass(frozen=True, slots=True)
class UnknownColumn:
    """A column of the file that the adapter's table does not declare, so nothing reads it."""

    name: str
    suggestion: str | None
    """The nearest declared name, when one is near enough to be a likely misspelling."""

    @property
    def message(self) -> str:
        hint = f" (did you mean {self.suggestion}?)" if self.suggestion else " (see --help)"
        return f"is not a column this adapter reads{hint}"

    def __str__(self) -> str:
        return f"{self.name or repr(self.name)} {self.message}"


def unknown_columns(
    found: Iterable[str], columns: Sequence[Column]
) -> tuple[UnknownColumn, ...]:
    """The columns in ``found`` that ``columns`` does not declare, in the file's order.

    Declared means named in the table, optional columns included: the table is exactly
    what the mapping reads (a test holds every adapter to that), so any other column's
    cells would reach no message.
    """
    known = [c.name for c in columns]
    return tuple(
        UnknownColumn(name, next(iter(difflib.get_close_matches(name, known, n=1)), None))
        for name in found if name not in known
    )


def unread_cells(row: Row, unknown: Sequence[UnknownColumn]) -> tuple[Problem, ...]:
    """A warning for each cell of ``row`` that holds something in an unknown column."""
    return tuple(Problem(row.number, u.name, f"{u.message}; its value was not sent")
                 for u in unknown if row.cells.get(u.name))


def _prefixes(pointer: str) -> list[str]:
    parts = pointer.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 1, -1)]


SUBJECT = (
    Column("pnc_id", "Police National Computer id, e.g. 09/482731K, where known",
           pointer="/subject/pnc_id"),
    Column("given_name", "the person's given name(s)", True, "/subject/given_name"),
    Column("family_name", "the person's family name", True, "/subject/family_name"),
    Column("date_of_birth", "YYYY-MM-DD or DD/MM/YYYY", True, "/subject/date_of_birth"),
)
ROUTE = Column("route", "enforcement or proactive_engagement (H 4.2, 4.3)", True, "/route")
TO = Column("to", "recipients' directory codes separated by ';'; leave empty to let the "
                  "gateway work them out", pointer="/to")


def subject(f: Fields) -> dict[str, Any]:
    found = {
        "pnc_id": f.text("pnc_id"),
        "given_name": f.text("given_name", required=True),
        "family_name": f.text("family_name", required=True),
        "date_of_birth": f.date("date_of_birth", required=True),
    }
    return present(found)


def route(f: Fields) -> str | None:
    return f.choice("route", ROUTES, required=True)


def contact_columns(prefix: str, whose: str, pointer: str) -> tuple[Column, ...]:
    return (
        Column(f"{prefix}_name", f"{whose}: full name", pointer=f"{pointer}/name"),
        Column(f"{prefix}_role", f"{whose}: role", pointer=f"{pointer}/role"),
        Column(f"{prefix}_phone", f"{whose}: telephone", pointer=f"{pointer}/phone"),
        Column(f"{prefix}_email", f"{whose}: e-mail", pointer=f"{pointer}/email"),
    )


def contact(f: Fields, prefix: str, *, required: bool = False) -> dict[str, Any] | None:
    parts = ("name", "role", "phone", "email")
    if not required and not f.has(*(f"{prefix}_{p}" for p in parts)):
        return None
    return present({
        "name": f.text(f"{prefix}_name", required=True),
        "role": f.text(f"{prefix}_role"),
        "phone": f.text(f"{prefix}_phone", required=True),
        "email": f.text(f"{prefix}_email"),
    })


def appointment_columns(prefix: str, what: str, pointer: str) -> tuple[Column, ...]:
    return (
        Column(f"{prefix}_at", f"{what}: date and time with UTC offset",
               pointer=f"{pointer}/at"),
        Column(f"{prefix}_place", f"{what}: name of the venue", pointer=f"{pointer}/place"),
        Column(f"{prefix}_address", f"{what}: one-line address of the venue",
               pointer=f"{pointer}/place/address"),
        Column(f"{prefix}_postcode", f"{what}: postcode of the venue",
               pointer=f"{pointer}/place/postcode"),
        Column(f"{prefix}_cjit", f"{what}: directory code of the CJIT running it",
               pointer=f"{pointer}/organisation"),
    )


def appointment(f: Fields, prefix: str, *, required: bool) -> dict[str, Any] | None:
    parts = ("at", "place", "address", "postcode", "cjit")
    if not required and not f.has(*(f"{prefix}_{p}" for p in parts)):
        return None
    place = present({
        "name": f.text(f"{prefix}_place", required=True),
        "address": f.text(f"{prefix}_address", required=True),
        "postcode": f.text(f"{prefix}_postcode"),
    })
    return {
        "at": f.date_time(f"{prefix}_at", required=True),
        "place": place,
        "organisation": (f.text(f"{prefix}_cjit", required=True) or "").upper(),
    }


ESTABLISHMENT = (
    Column("prison_code", "three-letter establishment code, e.g. NWI (HMP Norwich)",
           pointer="/body/establishment"),
    Column("establishment_name", "the prison's name, e.g. HMP Norwich",
           pointer="/body/establishment/name"),
)


def establishment(f: Fields, *, required: bool) -> dict[str, Any] | None:
    if not required and not f.has("prison_code", "establishment_name"):
        return None
    return {
        "name": f.text("establishment_name", required=True),
        "prison_code": (f.text("prison_code", required=True) or "").upper(),
    }


def present(values: Mapping[str, Any]) -> dict[str, Any]:
    """Only the members that have a value: an empty cell is an absent member."""
    return {key: value for key, value in values.items() if value is not None}
