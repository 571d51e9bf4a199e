"""What flows through an import: rows in, mapped envelopes or problems, outcomes out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

WHOLE_ROW = "*"
"""The column named by a problem that concerns the whole row (e.g. an unreadable line)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One record of an export, its cells by (normalised) column name.

    ``number`` is where a person finds the record: the spreadsheet row (the header is row 1)
    for CSV, the line for JSON lines.
    """

    number: int
    cells: Mapping[str, str]
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one cell (or, with ``WHOLE_ROW``, one row) of the input."""

    row: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"{self.column}: {self.message}"


@dataclass(frozen=True, slots=True)
class Mapped:
    """A row turned into an envelope, or the reasons it could not be.

    ``warnings`` say what of the row is not sent as written (a repeat in a list that is a
    set, a cell in a column the adapter does not read); the report shows them either way.
    """

    row: int
    reference: str
    envelope: Mapping[str, Any] | None
    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    @classmethod
    def invalid(
        cls, row: Row, reference: str, problems: tuple[Problem, ...],
        warnings: tuple[Problem, ...] = (),
    ) -> Mapped:
        return cls(row.number, reference, None, problems, warnings)


class Result(StrEnum):
    SENT = "sent"
    REPLAYED = "replayed"
    REFUSED = "refused"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The final answer for one row: what the report shows and the journal keeps."""

    row: int
    reference: str
    result: Result
    message_id: str = ""
    reason: str = ""
