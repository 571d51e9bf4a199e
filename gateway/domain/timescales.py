"""The handbook's timescales, checked on the messages that report them. No I/O.

A message often carries both ends of a timescale the handbook sets: when a person
disengaged and when assertive outreach began (24 hours, H 4.1.3, 4.11.3, 4.11.5c); when a
person was assessed and when the follow-up assessment or additional appointment is
(five working days, H 4.1.3, 4.7.2, 4.10.3); when the police referred a person and when
the CJIT will see them (24 hours or one working day locally, 48 hours or the next working
day out of area, H 4.1.1, 4.9.2); that the DIR reaches the CJIT of residence before the
follow-up (H 4.7.4). A message that reports a missed timescale is **still delivered**: the
late alert matters more than the lateness, and refusing it would only add delay. Each
breach is named instead, to the sender in the answer and to each recipient with the
message, so a SPOC sees it and an auditor can count them.

Working days are Monday to Friday that are not bank holidays in England and Wales (the
``holidays`` package's calendar for England; DIP runs in England and Wales, whose bank
holidays differ only by Wales's own, and that calendar agrees with England's). Days are
counted on the calendar in London, where the agencies work, whatever offset a time carries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from gateway.domain.model import Organisation

LONDON = ZoneInfo("Europe/London")


@dataclass(frozen=True, slots=True)
class Breach:
    """A timescale a message reports as missed: where (the later time), the limit, the
    handbook paragraph, and in words by how much."""

    pointer: str
    limit: str
    handbook: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "limit": self.limit, "handbook": self.handbook,
                "detail": self.detail}


@cache
def _bank_holidays() -> holidays.HolidayBase:
    return holidays.country_holidays("GB", subdiv="ENG")


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in _bank_holidays()


def working_days_after(day: date, count: int) -> date:
    """The ``count``-th working day after ``day`` (``day`` itself never counts)."""
    found = day
    while count:
        found += timedelta(days=1)
        if is_working_day(found):
            count -= 1
    return found


def breaches(
    document: Mapping[str, Any], organisations: Mapping[str, Organisation]
) -> list[Breach]:
    """Every handbook timescale the message reports as missed (none for a type that
    reports none, or when one end is absent or unreadable)."""
    check = _CHECKS.get(str(document.get("type")))
    body = document.get("body")
    if check is None or not isinstance(body, Mapping):
        return []
    return list(check(document, body, organisations))


def _moment(node: Any, *path: str) -> datetime | None:
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, str):
        return None
    try:
        moment = datetime.fromisoformat(node.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _day(node: Any, *path: str) -> date | None:
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, str):
        return None
    try:
        return date.fromisoformat(node[:10])
    except ValueError:
        return None


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} hours"


def _outreach(
    _: Mapping[str, Any], body: Mapping[str, Any], __: Mapping[str, Organisation]
) -> Iterator[Breach]:
    """Assertive outreach within 24 hours of the disengagement (H 4.1.3, 4.11.3, 4.11.5c)."""
    occurred = _moment(body, "occurred_at")
    started = _moment(body, "assertive_outreach_started_at")
    if occurred is not None and started is not None and started - occurred > timedelta(hours=24):
        yield Breach(
            "/body/assertive_outreach_started_at", "24 hours", "H 4.1.3, 4.11.3, 4.11.5c",
            f"Assertive outreach began {_hours(started - occurred)} after the disengagement; "
            "the handbook asks for it within 24 hours.",
        )


def _five_working_days(
    assessed: date | None, appointment: datetime | None, pointer: str, what: str,
    handbook: str,
) -> Iterator[Breach]:
    if assessed is None or appointment is None:
        return
    deadline = working_days_after(assessed, 5)
    held = appointment.astimezone(LONDON).date()
    if held > deadline:
        yield Breach(
            pointer, "5 working days", handbook,
            f"The {what} is on {held.isoformat()}, after {deadline.isoformat()}, the fifth "
            f"working day after the assessment on {assessed.isoformat()}.",
        )


def _assessment_follow_up(
    _: Mapping[str, Any], body: Mapping[str, Any], __: Mapping[str, Organisation]
) -> Iterator[Breach]:
    """The follow-up assessment within five working days of the initial one (H 4.7.2)."""
    assessed = _moment(body, "assessment", "assessed_at")
    yield from _five_working_days(
        assessed.astimezone(LONDON).date() if assessed is not None else None,
        _moment(body, "follow_up", "at"), "/body/follow_up/at", "follow-up assessment",
        "H 4.1.3, 4.7.2",
    )


def _dir_follow_up(
    document: Mapping[str, Any], body: Mapping[str, Any], __: Mapping[str, Organisation]
) -> Iterator[Breach]:
    """The follow-up assessment or additional appointment within five working days of the
    assessment (H 4.7.2, 4.10.3), and the DIR before it (H 4.7.4)."""
    appointment = _moment(body, "follow_up_appointment", "at")
    additional = body.get("appointment_kind") == "additional_appointment"
    yield from _five_working_days(
        _day(body, "assessment", "date"), appointment, "/body/follow_up_appointment/at",
        "additional appointment" if additional else "follow-up assessment",
        "H 4.10.3" if additional else "H 4.7.2",
    )
    sent = _moment(document, "sent_at")
    if appointment is not None and sent is not None and sent >= appointment:
        yield Breach(
            "/sent_at", "before the follow-up", "H 4.7.4",
            "The DIR was sent after the appointment it prepares; the handbook asks for it to "
            "reach the CJIT of residence before the follow-up assessment.",
        )


def _referral_appointment(
    document: Mapping[str, Any], body: Mapping[str, Any],
    organisations: Mapping[str, Organisation],
) -> Iterator[Breach]:
    """A police appointment with the local CJIT within 24 hours or one working day; with
    the CJIT of residence out of area within 48 hours, or the next working day if the 48
    hours end on a weekend or bank holiday (H 4.1.1, 4.9.2)."""
    referred = _moment(body, "referred_at")
    appointment = _moment(body, "appointment", "at")
    if referred is None or appointment is None:
        return
    police = organisations.get(str(document.get("from")))
    cjit = organisations.get(str(body.get("cjit")))
    if police is None or cjit is None:
        return
    local_day = referred.astimezone(LONDON).date()
    if police.area == cjit.area:
        deadline = max(referred + timedelta(hours=24), _end_of(working_days_after(local_day, 1)))
        limit, why = "24 hours or 1 working day", "the local CJIT"
    else:
        deadline = referred + timedelta(hours=48)
        last_day = deadline.astimezone(LONDON).date()
        if not is_working_day(last_day):
            deadline = _end_of(working_days_after(last_day, 1))
        limit, why = "48 hours or the next working day", "the CJIT of residence out of area"
    if appointment > deadline:
        yield Breach(
            "/body/appointment/at", limit, "H 4.1.1, 4.9.2",
            f"The appointment with {why} is {_hours(appointment - referred)} after the "
            f"referral, later than the handbook's {limit}.",
        )


def _end_of(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59), LONDON)


_CHECKS: Mapping[
    str, Callable[[Mapping[str, Any], Mapping[str, Any], Mapping[str, Organisation]],
                  Iterator[Breach]]
] = {
    "disengagement_alert": _outreach,
    "assessment_outcome": _assessment_follow_up,
    "dir_transfer": _dir_follow_up,
    "proactive_referral": _referral_appointment,
}
