"""Reading typed values out of one row's cells, collecting every problem. Pure.

Each reader returns the value in the form the message schemas want, or ``None`` after
noting a problem that names the row and the column. The readers accept what exports
commonly hold (``Yes``/``N``, ``19/05/2026``, ``Remand in custody``, ``18 months``) and
refuse what is ambiguous: a time without a UTC offset, which is an hour out half the year.
The gateway still validates the whole message; these checks exist so a person gets every
problem of a row at once, named by its column.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection
from datetime import date, datetime
from typing import Any

from adapters.records import Problem, Row

_TRUE = frozenset({"yes", "y", "true", "t", "1"})
_FALSE = frozenset({"no", "n", "false", "f", "0"})
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_UK_DATE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})",
    re.IGNORECASE,
)
_DURATION = re.compile(r"([0-9]{1,4}) *(day|week|month|year)s?", re.IGNORECASE)
_NUMBER = re.compile(r"[0-9]{1,4}(\.[0-9]{1,3})?")
_LIST_SEPARATOR = re.compile(r"\s*;\s*")
_CODE_SEPARATOR = re.compile(r"[\s;,]+")
_WORD_SEPARATOR = re.compile(r"[\s\-]+")


def vocabulary_word(raw: str) -> str:
    """``Remand in custody`` → ``remand_in_custody``."""
    return _WORD_SEPARATOR.sub("_", raw.strip()).lower()


class Fields:
    """The cells of one row, read column by column.

    ``problems`` lists what was wrong (the row is not sent); ``warnings`` what was sent
    other than as written (a repeat in a list that is a set), for the per-row report.
    """

    def __init__(self, row: Row) -> None:
        self.row = row
        self.problems: list[Problem] = list(row.problems)
        self.warnings: list[Problem] = []

    def problem(self, column: str, message: str) -> None:
        self.problems.append(Problem(self.row.number, column, message))

    def has(self, *columns: str) -> bool:
        """Whether any of these columns holds a value."""
        return any(self.row.cells.get(column, "") for column in columns)

    def text(self, column: str, *, required: bool = False) -> str | None:
        value = self.row.cells.get(column, "")
        if value:
            return value
        if required:
            self.problem(column, "is required")
        return None

    def choice(
        self, column: str, options: Collection[str], *, required: bool = False
    ) -> str | None:
        raw = self.text(column, required=required)
        if raw is None:
            return None
        value = vocabulary_word(raw)
        if value in options:
            return value
        self.problem(column, f"{_shown(raw)} is not one of: {', '.join(options)}")
        return None

    def boolean(self, column: str, *, required: bool = False) -> bool | None:
        raw = self.text(column, required=required)
        if raw is None:
            return None
        word = raw.lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        self.problem(column, f"{_shown(raw)} is not yes or no")
        return None

    def date(self, column: str, *, required: bool = False) -> str | None:
        """A date as ``YYYY-MM-DD``, read from that form or the UK ``DD/MM/YYYY``."""
        raw = self.text(column, required=required)
        if raw is None:
            return None
        if match := _ISO_DATE.fullmatch(raw):
            year, month, day = match.groups()
        elif match := _UK_DATE.fullmatch(raw):
            day, month, year = match.groups()
        else:
            self.problem(column, f"{_shown(raw)} is not a date (YYYY-MM-DD or DD/MM/YYYY)")
            return None
        try:
            return date(int(year), int(month), int(day)).isoformat()
        except ValueError:
            self.problem(column, f"{_shown(raw)} is not a real date")
            return None

    def date_time(self, column: str, *, required: bool = False) -> str | None:
        """An RFC 3339 time; the offset is required so no one guesses summer time."""
        raw = self.text(column, required=required)
        if raw is None:
            return None
        if not _DATE_TIME.fullmatch(raw):
            self.problem(
                column,
                f"{_shown(raw)} is not a date and time with a UTC offset, "
                "e.g. 2026-03-14T16:42:00Z or 2026-06-14 17:42+01:00",
            )
            return None
        try:
            return datetime.fromisoformat(raw.upper().replace(" ", "T")).isoformat()
        except ValueError:
            self.problem(column, f"{_shown(raw)} is not a real date and time")
            return None

    def duration(self, column: str, *, required: bool = False) -> dict[str, Any] | None:
        """``18 months`` → ``{"value": 18, "unit": "months"}``."""
        raw = self.text(column, required=required)
        if raw is None:
            return None
        match = _DURATION.fullmatch(raw)
        if match is None or int(match.group(1)) < 1:
            self.problem(column, f"{_shown(raw)} is not a length such as '18 months' "
                                 "(days, weeks, months or years)")
            return None
        return {"value": int(match.group(1)), "unit": match.group(2).lower() + "s"}

    def number(self, column: str, *, required: bool = False) -> int | float | None:
        raw = self.text(column, required=required)
        if raw is None:
            return None
        if not _NUMBER.fullmatch(raw):
            self.problem(column, f"{_shown(raw)} is not a number such as 60 or 7.5")
            return None
        value = float(raw)
        return int(value) if value.is_integer() else value

    def items(
        self, column: str, options: Collection[str] | None = None
    ) -> list[str] | None:
        """A ``;``-separated list, every item kept in order, repeats included.

        A repeat is data: ``Theft from a shop; Theft from a shop`` is two counts of one
        offence, and the message must say two. Items are checked against ``options`` if
        given. Only empty items (``a;;b``) are left out: they hold nothing.
        """
        raw = self.text(column)
        if raw is None:
            return None
        items: list[str] = []
        for part in _LIST_SEPARATOR.split(raw):
            item = vocabulary_word(part) if options is not None else part
            if not item:
                continue
            if options is not None and item not in options:
                self.problem(column, f"{_shown(part)} is not one of: {', '.join(options)}")
            else:
                items.append(item)
        return items or None

    def item_set(self, column: str, options: Collection[str]) -> list[str] | None:
        """A ``;``-separated list that is by its nature a set, in the order given.

        For lists where naming a thing twice says nothing more (the substances a person
        uses, their immediate risks: the schemas say ``uniqueItems``, so a message holding
        a repeat would be refused whole). The repeat is sent once and noted in
        ``warnings``, which the per-row report shows, so it is never dropped unsaid.
        """
        return self._once(column, self.items(column, options))

    def codes(self, column: str) -> list[str] | None:
        """Directory codes separated by ``;``, ``,`` or spaces, e.g. ``CJIT-SFK; PRB-EOE``.

        A set: a message goes to each recipient once (the envelope's ``to`` is
        ``uniqueItems``), so a repeated code is sent once and noted in ``warnings``.
        """
        raw = self.text(column)
        if raw is None:
            return None
        return self._once(column, [c for c in _CODE_SEPARATOR.split(raw.upper()) if c])

    def _once(self, column: str, items: list[str] | None) -> list[str] | None:
        if items is None:
            return None
        counts = Counter(items)
        for item, times in counts.items():
            if times > 1:
                self.warnings.append(Problem(
                    self.row.number, column,
                    f"{_shown(item)} is named {times} times; sent once, as this list is a set",
                ))
        return list(counts) or None


def _shown(raw: str) -> str:
    """A cell quoted in a message, cut short: a report line stays readable."""
    return repr(raw if len(raw) <= 40 else raw[:37] + "...")
