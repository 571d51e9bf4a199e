"""The inbox's filter form read from a GET query: type, state and the days received between.

No I/O: a query's values in, an ``InboxFilter`` (``gateway.storage.base``) and the GOV.UK
error messages for what could not be read out. Dates follow the GOV.UK date input pattern
(day, month and year boxes; "must be a real date", "must include a month") and are days in
UK time, since that is the day a SPOC sees on the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from gateway.console.words import LONDON
from gateway.storage.base import InboxFilter, InboxState

# The state filter's choices in the order a SPOC reads them; ANY lifts the state filter.
ANY = "any"
STATES: tuple[tuple[str, str, str | None], ...] = (
    (InboxState.WAITING.value, "Waiting", "Not yet acknowledged"),
    (InboxState.ESCALATED.value, "Escalated",
     "Alerts not acknowledged within 24 hours, whatever happened after"),
    (InboxState.ACKNOWLEDGED.value, "Acknowledged", None),
    (InboxState.WITHDRAWN.value, "Withdrawn",
     "Left the inbox unread because the person withdrew consent"),
    (ANY, "Any status", None),
)
DATES = (("received-from", "Received from"), ("received-to", "Received to"))
_PARTS = ("day", "month", "year")


@dataclass(frozen=True, slots=True)
class Problem:
    """One error, as the GOV.UK error summary and the field's error message show it."""

    text: str
    href: str


@dataclass(frozen=True, slots=True)
class InboxQuery:
    """What the filter form asked for: the storage filter, the values to show back in the
    form, and the problems that kept part of it from being applied."""

    where: InboxFilter
    message_type: str = ""
    state: str = InboxState.WAITING.value
    values: Mapping[str, str] = field(default_factory=dict)
    problems: Mapping[str, Problem] = field(default_factory=dict)

    @property
    def default(self) -> bool:
        """The plain inbox, what arrives live: waiting messages of every type, any day."""
        return (self.state == InboxState.WAITING.value and not self.message_type
                and not any(self.values.values()) and not self.problems)

    @property
    def newest_first(self) -> bool:
        # Waiting messages are acted on oldest first (H 4.1.3); a history reads back.
        return self.state != InboxState.WAITING.value


def read_query(query: Mapping[str, str], types: Mapping[str, str]) -> InboxQuery:
    """The filter asked for by ``query``; ``types`` maps each type a SPOC may pick to its
    title. A value that is not a choice, or a date that is not a real day, becomes a
    problem and that part of the filter is left out."""
    problems: dict[str, Problem] = {}
    message_type = query.get("type", "").strip()
    if message_type and message_type not in types:
        problems["type"] = Problem("Select a message type from the list", "#type")
        message_type = ""
    state = query.get("status", "").strip() or InboxState.WAITING.value
    if state not in {value for value, _, _ in STATES}:
        problems["status"] = Problem("Select a status from the list", "#status")
        state = InboxState.WAITING.value
    values = {f"{name}-{part}": query.get(f"{name}-{part}", "").strip()[:10]
              for name, _ in DATES for part in _PARTS}
    days: dict[str, date] = {}
    for name, label in DATES:
        day, problem = _day(values, name, label)
        if problem is not None:
            problems[name] = problem
        elif day is not None:
            days[name] = day
    start, end = days.get("received-from"), days.get("received-to")
    if start is not None and end is not None and end < start:
        problems["received-to"] = Problem(
            "Received to must be the same as or after received from", "#received-to-day")
        end = None
    return InboxQuery(
        where=InboxFilter(
            states=(frozenset() if state == ANY else frozenset({InboxState(state)})),
            types=frozenset({message_type}) if message_type else frozenset(),
            delivered_from=_start_of(start) if start else None,
            delivered_before=_start_of(end + timedelta(days=1)) if end else None,
        ),
        message_type=message_type,
        state=state,
        values=values,
        problems=problems,
    )


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, LONDON)


def _day(values: Mapping[str, str], name: str, label: str) -> tuple[date | None, Problem | None]:
    """One GOV.UK date input's day; its error message as the pattern words it."""
    parts = {part: values[f"{name}-{part}"] for part in _PARTS}
    if not any(parts.values()):
        return None, None
    missing = [part for part in _PARTS if not parts[part]]
    if missing:
        return None, Problem(f"{label} must include a {' and a '.join(missing)}",
                             f"#{name}-{missing[0]}")
    if not all(p.isdigit() for p in parts.values()):
        return None, Problem(f"{label} must be a real date", f"#{name}-day")
    if len(parts["year"]) != 4:
        return None, Problem("Year must include 4 numbers", f"#{name}-year")
    try:
        return date(int(parts["year"]), int(parts["month"]), int(parts["day"])), None
    except ValueError:
        return None, Problem(f"{label} must be a real date", f"#{name}-day")
