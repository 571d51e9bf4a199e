"""Values in plain words for the console's pages: times as GOV.UK writes them, the alert
clock, and message fields by their JSON Schema titles."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.domain.model import MessageType
from gateway.pipeline.policy.facts import FIELD_PURPOSES

LONDON = ZoneInfo("Europe/London")
_COMMON_REF = "urn:dipgw:schema:common:1#/$defs/"


def when(moment: datetime) -> str:
    """'2 December 2025 at 1:32pm', UK time (the GOV.UK style for dates and times)."""
    local = moment.astimezone(LONDON)
    hour = local.hour % 12 or 12
    minutes = "" if local.minute == 0 else f":{local.minute:02d}"
    return f"{local.day} {local:%B %Y} at {hour}{minutes}{'am' if local.hour < 12 else 'pm'}"


def day(value: date) -> str:
    return f"{value.day} {value:%B %Y}"


def duration(span: timedelta) -> str:
    """'3 hours 5 minutes', 'less than a minute'."""
    minutes = int(abs(span).total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    parts = []
    if hours:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    if minutes:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    return " ".join(parts) or "less than a minute"


@dataclass(frozen=True, slots=True)
class Clock:
    """The acknowledgement clock of one message: words and a GOV.UK tag colour."""

    words: str
    tag: str
    colour: str


def alert_clock(
    message_type: str, delivered_at: datetime, now: datetime, limit: timedelta, escalated: bool
) -> Clock | None:
    """How long is left to act on a disengagement alert (H 4.1.3, 4.11.3: within 24 hours;
    ``gateway.services.alerts`` escalates one left longer). Other types have no clock."""
    if message_type != MessageType.DISENGAGEMENT_ALERT.value:
        return None
    left = delivered_at + limit - now
    if escalated or left <= timedelta(0):
        overdue = f"Overdue by {duration(left)}" if left <= timedelta(0) else "Overdue"
        return Clock(f"{overdue}: act now", "Escalated" if escalated else "Overdue", "red")
    if left < timedelta(hours=4):
        return Clock(f"{duration(left)} left to act", "Due soon", "orange")
    if left < timedelta(hours=12):
        return Clock(f"{duration(left)} left to act", "Due today", "yellow")
    return Clock(f"{duration(left)} left to act", "New", "green")


def humanise(name: str) -> str:
    """'assertive_outreach_started_at' -> 'Assertive outreach started at'."""
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _resolved(schema: Mapping[str, Any], common: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_COMMON_REF):
        found = common.get("$defs", {}).get(ref.removeprefix(_COMMON_REF))
        if isinstance(found, Mapping):
            return {**found, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def plain(
    value: Any, schema: Mapping[str, Any], common: Mapping[str, Any],
    names: Mapping[str, str], *, nested: bool = False,
) -> str:
    """One value in words: yes/no, dates and times in the GOV.UK style, vocabulary words
    without underscores, an organisation by its directory name, objects as 'Title: value'
    lines (an object inside one, such as an address, on one line)."""
    if schema.get("$ref") == _COMMON_REF + "org_code" and isinstance(value, str):
        return f"{names[value]} ({value})" if value in names else value
    schema = _resolved(schema, common)
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, str):
        if schema.get("format") == "date-time":
            try:
                return when(datetime.fromisoformat(value))
            except ValueError:
                return value
        if schema.get("format") == "date" or _DATE.fullmatch(value):
            try:
                return day(date.fromisoformat(value))
            except ValueError:
                return value
        if "enum" in schema or "const" in schema:
            return humanise(value)
        return value
    if isinstance(value, list):
        items = schema.get("items", {})
        return "; ".join(plain(v, items if isinstance(items, Mapping) else {}, common, names)
                         for v in value)
    if isinstance(value, Mapping):
        properties = schema.get("properties", {})
        if nested:
            return ", ".join(plain(item, properties.get(key, {}), common, names, nested=True)
                             for key, item in value.items())
        lines = []
        for key, item in value.items():
            sub = properties.get(key, {})
            title = _resolved(sub, common).get("title") or humanise(key)
            lines.append(f"{title}: {plain(item, sub, common, names, nested=True)}")
        return "\n".join(lines)
    return str(value)


def subject_lines(
    subject: Mapping[str, Any], envelope_schema: Mapping[str, Any],
    common: Mapping[str, Any], names: Mapping[str, str],
) -> list[tuple[str, str]]:
    """The person a message is about, each member by the envelope schema's title."""
    properties = envelope_schema.get("properties", {}).get("subject", {}).get("properties", {})
    return [
        (str(_resolved(properties.get(key, {}), common).get("title") or humanise(key)),
         plain(value, properties.get(key, {}), common, names))
        for key, value in subject.items()
    ]


@dataclass(frozen=True, slots=True)
class Field:
    title: str
    value: str | None  # None: withheld
    withheld_because: str | None = None


def body_fields(
    message_type: str,
    body: Mapping[str, Any],
    schema: Mapping[str, Any],
    common: Mapping[str, Any],
    redactions: tuple[str, ...],
    withheld_for: tuple[str, ...],
    rule: str,
    names: Mapping[str, str],
) -> list[Field]:
    """The body's fields in the schema's order, each by its title; a field this recipient
    did not receive is named with why (the decision's ``withheld_for`` and ``redactions``)."""
    by_purpose = FIELD_PURPOSES.get(message_type, {})
    withheld = {
        pointer: purpose.value.replace("_", " ")
        for purpose, pointers in by_purpose.items() if purpose.value in withheld_for
        for pointer in pointers
    }
    fields = []
    for name, sub in schema.get("properties", {}).items():
        title = str(_resolved(sub, common).get("title") or humanise(name))
        pointer = f"/body/{name}"
        if name in body:
            fields.append(Field(title, plain(body[name], sub, common, names)))
        elif pointer in withheld:
            fields.append(Field(title, None, (
                f"Not shared with you: the person's consent does not cover {withheld[pointer]}."
            )))
        elif pointer in redactions:
            fields.append(Field(title, None, (
                f"Not shared with you: the sharing policy withholds it from your "
                f"organisation (rule {rule})."
            )))
    return fields
