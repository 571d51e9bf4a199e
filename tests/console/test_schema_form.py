"""GOV.UK form fields from the message schemas (``gateway.console.schema_form``), pure:
every valid example of every type, and documents hypothesis draws from each schema, go
document -> form values -> document unchanged; every pointer a violation can name maps to a
field id that is on the form, so the error summary's links land on an input."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.console.compose import ENVELOPE_PARTS, form_schema
from gateway.console.schema_form import (
    LONDON,
    Choice,
    Field,
    Kind,
    Schemas,
    add_row,
    build,
    document_of,
    error_links,
    field_at,
    values_of,
)
from gateway.domain.model import MessageType
from gateway.pipeline.validation import SchemaSet
from tests.conftest import EXAMPLES, ROOT, load

SCHEMA_SET = SchemaSet.load(ROOT / "schemas")
DOCUMENTS = SCHEMA_SET.documents
SCHEMAS = Schemas(list(DOCUMENTS.values()))
TYPES = sorted(t.value for t in MessageType)
VALID = sorted(EXAMPLES.glob("*/valid-*.json"))
INVALID = sorted(EXAMPLES.glob("*/invalid-*.json"))
CODES = ("CJIT-NFK", "CJIT-SFK", "PRB-EOE")
# The recipients are ticked from the directory, as the compose pages offer them.
CHOICES = {"/to": tuple(Choice(code, code) for code in CODES)}


def answered(document: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an envelope a person answers on the form."""
    return {k: document[k] for k in (*ENVELOPE_PARTS, "body") if k in document}


def round_trip(message_type: str, document: Mapping[str, Any]) -> Any:
    schema = form_schema(DOCUMENTS, message_type)
    values = values_of(schema, SCHEMAS, document, choices=CHOICES)
    return document_of(build(schema, SCHEMAS, values, choices=CHOICES))


def instants(value: Any, schema: Mapping[str, Any], base: str = "") -> Any:
    """``value`` with each date-time as the instant it names: the form asks UK time in
    hours and minutes (the GOV.UK pattern), so '14:05:00Z' comes back as '14:05:00+00:00'."""
    resolved, base = SCHEMAS.resolve(schema, base)
    if isinstance(value, Mapping):
        properties = resolved.get("properties", {})
        return {k: instants(v, properties.get(k, {}), base) for k, v in value.items()}
    if isinstance(value, list):
        items = resolved.get("items", {})
        return [instants(v, items if isinstance(items, Mapping) else {}, base) for v in value]
    if resolved.get("format") == "date-time" and isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return value


def field_ids(root: Field) -> set[str]:
    """Every id an input on the rendered form has (compose_macros.html)."""
    found = set()
    for node in root.walk():
        found.add(node.id)
        found.update(f"{node.id}-{part.name}" for part in node.parts)
        found.update(f"{node.id}-{index}" for index in range(2, len(node.choices) + 1))
    return found


@pytest.mark.parametrize("path", VALID, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_valid_example_round_trips_through_the_form(path: Any) -> None:
    document = load(path)
    schema = form_schema(DOCUMENTS, document["type"])
    expected = instants(answered(document), schema)
    assert instants(round_trip(document["type"], answered(document)), schema) == expected


@pytest.mark.parametrize("path", INVALID, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_violation_of_an_invalid_example_links_to_a_field_on_the_form(path: Any) -> None:
    document = load(path)
    named = document.get("type")
    message_type = named if isinstance(named, str) and named in TYPES else "dir_transfer"
    schema = form_schema(DOCUMENTS, message_type)
    root = build(schema, SCHEMAS, values_of(schema, SCHEMAS, answered(document),
                                            choices=CHOICES), choices=CHOICES)
    violations = [(v.pointer, v.message) for v in SCHEMA_SET.violations(document)]
    assert violations
    links = error_links(root, violations)
    ids = field_ids(root)
    answerable = [p for p, _ in violations if p.split("/")[1:2] and p.split("/")[1] in (
        *ENVELOPE_PARTS, "body")]
    for pointer in answerable:
        node = field_at(root, pointer)
        assert node is not None and node is not root, pointer
        assert node.anchor in ids
    for link in links:
        if link.href is not None:
            assert link.href.removeprefix("#") in ids
            assert link.text and link.text[0].isupper()


def test_questions_follow_the_schema() -> None:
    schema = form_schema(DOCUMENTS, "dir_transfer")
    root = build(schema, SCHEMAS, {}, choices=CHOICES)
    by_pointer = {node.pointer: node for node in root.walk()}
    assert by_pointer["/to"].kind is Kind.CHECKBOXES
    assert by_pointer["/route"].kind is Kind.RADIOS
    assert by_pointer["/subject/date_of_birth"].kind is Kind.DATE
    assert by_pointer["/subject/date_of_birth"].anchor == "subject-date_of_birth-day"
    assert by_pointer["/body/follow_up_appointment/at"].kind is Kind.DATE_TIME
    assert by_pointer["/body/substances"].kind is Kind.CHECKBOXES  # a list of enum words
    assert by_pointer["/body/written_notice_given"].kind is Kind.BOOLEAN
    assert by_pointer["/body/assessment"].kind is Kind.GROUP
    assert by_pointer["/body/risk_narrative"].kind is Kind.TEXTAREA  # up to 4,000 characters
    # Labels from titles (through $ref, the referring title winning), hints from descriptions.
    assert by_pointer["/body/sending_worker"].label == "Sending worker"
    assert by_pointer["/body/sending_worker/phone"].label == "Telephone"
    assert by_pointer["/body/dir_ref"].hint == (
        "Reference of the Drug Interventions Record form at the sending CJIT.")
    assert by_pointer["/body/dir_ref"].required and not by_pointer["/body/consent"].required
    # A long vocabulary is a select, a short one radios.
    assert by_pointer["/body/needs/social_functioning/housing/status"].kind is Kind.SELECT
    assert by_pointer["/body/injecting_status"].kind is Kind.RADIOS


def test_answers_are_typed_and_empty_optionals_left_out() -> None:
    schema = form_schema(DOCUMENTS, "compliance_report")
    values = {
        "route": ["enforcement"],
        "body-appointments_offered": ["4"],
        "body-appointments_attended": [" 3 "],
        "subject-date_of_birth-day": ["3"], "subject-date_of_birth-month": ["2"],
        "subject-date_of_birth-year": ["1994"],
        "subject-pnc_id": ["  "],
        "body-consent-obtained": ["true"], "body-consent-written": ["false"],
    }
    document = document_of(build(schema, SCHEMAS, values))
    assert document["route"] == "enforcement"
    assert document["subject"] == {"date_of_birth": "1994-02-03"}
    body = document["body"]
    assert body["appointments_offered"] == 4 and body["appointments_attended"] == 3
    assert body["consent"] == {"obtained": True, "written": False}
    # What cannot be read is passed on as typed, for the validator to refuse and explain.
    values["body-appointments_offered"] = ["four"]
    values["subject-date_of_birth-day"] = ["31"]
    values["subject-date_of_birth-month"] = ["2"]
    document = document_of(build(schema, SCHEMAS, values))
    assert document["body"]["appointments_offered"] == "four"
    assert document["subject"]["date_of_birth"] == "1994-2-31"


def test_a_date_and_time_is_uk_time() -> None:
    schema = form_schema(DOCUMENTS, "dir_transfer")
    values = {f"body-follow_up_appointment-at-{k}": [v] for k, v in (
        ("day", "26"), ("month", "6"), ("year", "2026"), ("hour", "10"), ("minute", "05"))}
    document = document_of(build(schema, SCHEMAS, values))
    assert document["body"]["follow_up_appointment"]["at"] == "2026-06-26T10:05:00+01:00"


def test_add_another_grows_a_repeating_group_to_its_limit() -> None:
    schema = form_schema(DOCUMENTS, "conditional_caution_notice")
    root = build(schema, SCHEMAS, {})
    offences = next(n for n in root.walk() if n.pointer == "/body/offences")
    assert offences.kind is Kind.REPEAT and offences.rows == 1 and offences.max_rows == 20
    values: Mapping[str, Any] = {}
    for _ in range(25):
        values = add_row(values, build(schema, SCHEMAS, values), "body-offences")
    grown = next(n for n in build(schema, SCHEMAS, values).walk()
                 if n.pointer == "/body/offences")
    assert grown.rows == 20
    assert [c.id for c in grown.children][:2] == ["body-offences-0", "body-offences-1"]


# --- documents hypothesis draws from the schemas --------------------------------------

TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30,
).map(str.strip).filter(bool)


def _unambiguous(moment: datetime) -> bool:
    """A UK time the clocks going back does not make happen twice (the form asks the
    time on the wall, which cannot tell 01:30 BST from 01:30 GMT that night)."""
    local = moment.astimezone(LONDON).replace(tzinfo=None)
    return local.replace(tzinfo=LONDON, fold=0).utcoffset() == local.replace(
        tzinfo=LONDON, fold=1).utcoffset()


def from_schema(schema: Mapping[str, Any], base: str = "", depth: int = 0) -> Any:
    """A strategy for documents ``schema`` describes, in the shapes the form asks (patterns
    and cross-field rules aside: the round trip is about the form, not validity)."""
    resolved, base = SCHEMAS.resolve(schema, base)
    if "enum" in resolved or "const" in resolved:
        return st.sampled_from(resolved["enum"] if "enum" in resolved else [resolved["const"]])
    kind = resolved.get("type")
    if kind == "object" or "properties" in resolved:
        properties = resolved.get("properties", {})
        required = set(resolved.get("required", ()))
        strategy = st.fixed_dictionaries(
            {k: from_schema(v, base, depth + 1) for k, v in properties.items() if k in required},
            optional={k: from_schema(v, base, depth + 1) for k, v in properties.items()
                      if k not in required},
        )
        # An optional object with nothing in it is no answer: it is left out.
        return strategy if required else strategy.filter(bool)
    if kind == "array":
        items = resolved.get("items", {})
        item_schema, _ = SCHEMAS.resolve(items, base)
        least = int(resolved.get("minItems", 0))
        most = min(int(resolved.get("maxItems", 5)), 5)
        unique = "enum" in item_schema
        return st.lists(from_schema(items, base, depth + 1), min_size=max(least, 1),
                        max_size=max(most, max(least, 1)), unique=unique)
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(int(resolved.get("minimum", -1000)), int(resolved.get("maximum", 1000)))
    if kind == "number":
        return st.one_of(st.integers(0, 10_000), st.floats(0.001, 10_000, allow_nan=False))
    if resolved.get("format") == "date":
        return st.dates(date(1900, 1, 1), date(2100, 12, 31)).map(date.isoformat)
    if resolved.get("format") == "date-time":
        return st.datetimes(datetime(1990, 1, 1), datetime(2090, 1, 1), timezones=st.just(UTC)
                            ).map(lambda m: m.replace(second=0, microsecond=0)
                                  ).filter(_unambiguous).map(
            lambda m: m.isoformat().replace("+00:00", "Z"))
    return TEXT


@pytest.mark.parametrize("message_type", TYPES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.filter_too_much])
@given(data=st.data())
def test_documents_drawn_from_each_schema_round_trip(message_type: str, data: Any) -> None:
    schema = form_schema(DOCUMENTS, message_type)
    document = data.draw(st.fixed_dictionaries({
        "route": from_schema(DOCUMENTS["envelope"]["properties"]["route"]),
        "subject": from_schema(DOCUMENTS["envelope"]["properties"]["subject"]),
        "body": from_schema({"$ref": DOCUMENTS[message_type]["$id"]}),
    }, optional={"to": st.lists(st.sampled_from(CODES), min_size=1, unique=True)}))
    back = round_trip(message_type, document)
    assert instants(back, schema) == instants(document, schema)
    assert json.loads(json.dumps(back)) == back  # plain JSON values
    # Every answer's pointer is a field of the form, and links to an input on it.
    root = build(schema, SCHEMAS, values_of(schema, SCHEMAS, document, choices=CHOICES),
                 choices=CHOICES)
    ids = field_ids(root)
    for pointer in _pointers(document):
        node = field_at(root, pointer)
        assert node is not None and node is not root
        assert node.anchor in ids


def _pointers(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in _pointers(v, f"{prefix}/{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _pointers(v, f"{prefix}/{i}")]
    return [prefix]


ROWS_OF_OBJECTS = {
    "type": "object",
    "properties": {
        "visits": {
            "type": "array", "maxItems": 3, "title": "Visits",
            "items": {"type": "object", "required": ["on"], "properties": {
                "on": {"type": "string", "format": "date", "title": "Date"},
                "note": {"type": "string", "title": "Note"},
            }},
        },
    },
}


@settings(max_examples=50, deadline=None)
@given(visits=st.lists(st.fixed_dictionaries(
    {"on": st.dates(date(1950, 1, 1), date(2050, 1, 1)).map(date.isoformat)},
    optional={"note": TEXT}), min_size=1, max_size=3))
def test_a_list_of_objects_is_a_repeating_group(visits: list[dict[str, Any]]) -> None:
    document = {"visits": visits}
    values = values_of(ROWS_OF_OBJECTS, SCHEMAS, document)
    root = build(ROWS_OF_OBJECTS, SCHEMAS, values)
    assert document_of(root) == document
    group = root.children[0]
    assert group.kind is Kind.REPEAT and group.rows == len(visits)
    assert group.children[0].label == "Visit 1"
    links = error_links(root, [("/visits/0/on", "Must be a calendar date as YYYY-MM-DD.")])
    assert links[0].href == "#visits-0-on-day"

