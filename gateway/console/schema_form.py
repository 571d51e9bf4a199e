"""GOV.UK form fields generated from a JSON Schema, and back. Pure: no I/O.

A message type's JSON Schema (2020-12, with ``$ref`` into the common and envelope schemas)
becomes a tree of :class:`Field` following the GOV.UK Design System's question patterns:
text inputs (textarea for long text), the three-part date input for ``format: date`` (with
hour and minute inputs beside it for ``date-time``, the GOV.UK "What time?" pattern),
radios for short vocabularies and yes/no, a select for long ones, checkboxes for a list of
vocabulary words, a fieldset per object and a repeating group (a bounded number of rows,
with an "Add another" submit button that works without JavaScript) for other lists.
Labels come from ``title``, hints from ``description`` (GOV.UK: "Hint text").

Back again, :func:`document_of` turns posted values into the JSON document with the types
the schema asks for, leaving out optional answers left empty; what cannot be read (a
word in a number field, 31 February) is kept as typed so that the gateway's own validator
refuses it and says why. :func:`error_links` maps each RFC 6901 pointer a violation names
to the id of the field to focus, which the GOV.UK error summary links to ("Error summary":
each error links to the answer it is about; a date links to its first input).

The values the form posts are the single source of a draft: the tree is built from them
(how many rows a repeating group shows), so the same values always give the same form.

Known limits, each a choice: times are asked in hours and minutes (no seconds), in UK time,
so the hour the clocks go back is read as its first occurrence (BST); ticked words come back
in the order the form lists them, which is the schema's, not an order the person chose.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from gateway.console.words import day, humanise, when

LONDON = ZoneInfo("Europe/London")
FormValues = Mapping[str, Sequence[str]]
"""Posted form values by name; a name may carry several values (checkboxes)."""

MAX_ROWS = 20
"""Rows a repeating group may grow to when its schema sets no ``maxItems``."""
LONG_TEXT = 300
"""Strings allowed to be longer than this are asked in a textarea (GOV.UK "Textarea")."""
RADIOS_UP_TO = 8
"""Vocabularies this long or shorter are radios; longer ones a select (GOV.UK "Select":
use radios where there are few options, a select only where radios would be too many)."""


class Kind(StrEnum):
    TEXT = "text"
    TEXTAREA = "textarea"
    NUMBER = "number"
    DATE = "date"
    DATE_TIME = "date_time"
    RADIOS = "radios"
    SELECT = "select"
    BOOLEAN = "boolean"
    CHECKBOXES = "checkboxes"
    GROUP = "group"
    REPEAT = "repeat"


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: str
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class Part:
    """One input of a date input: ``day``, ``month``, ``year``, ``hour`` or ``minute``."""

    name: str
    label: str
    width: int
    value: str


@dataclass(frozen=True, slots=True)
class Field:
    """One question, or a fieldset of them. ``id`` is both the HTML id and the form name."""

    kind: Kind
    pointer: str
    id: str
    label: str
    hint: str | None
    required: bool
    schema: Mapping[str, Any] = field(repr=False)
    choices: tuple[Choice, ...] = ()
    children: tuple[Field, ...] = ()
    value: str = ""
    chosen: tuple[str, ...] = ()
    parts: tuple[Part, ...] = ()
    integer: bool = False
    rows: int = 0
    max_rows: int = 0
    depth: int = 0
    row: bool = False  # one row of a repeating group: never "(optional)" on its own

    @property
    def anchor(self) -> str:
        """The id the error summary links to: the first input the person can answer."""
        if self.kind in (Kind.DATE, Kind.DATE_TIME):
            return f"{self.id}-day"
        if self.kind in (Kind.GROUP, Kind.REPEAT):
            return self.children[0].anchor if self.children else self.id
        return self.id

    def walk(self) -> Iterator[Field]:
        yield self
        for child in self.children:
            yield from child.walk()


# --- $ref resolution --------------------------------------------------------------------


class Schemas:
    """The schemas by ``$id``, to follow ``$ref`` (JSON Schema 2020-12 Core, section 8.2.3)."""

    def __init__(self, documents: Sequence[Mapping[str, Any]]) -> None:
        self._by_id = {str(doc["$id"]): doc for doc in documents if "$id" in doc}

    def resolve(self, schema: Mapping[str, Any], base: str) -> tuple[Mapping[str, Any], str]:
        """``schema`` with its ``$ref`` followed (the referring schema's own keywords, such
        as a ``title`` naming the field, win), and the base URI its own refs resolve
        against."""
        seen = 0
        while isinstance(schema.get("$ref"), str) and seen < 16:
            ref = str(schema["$ref"])
            uri, _, fragment = ref.partition("#")
            target_base = uri or base
            target: Any = self._by_id.get(target_base)
            for token in fragment.split("/")[1:] if fragment else ():
                token = token.replace("~1", "/").replace("~0", "~")
                target = target.get(token) if isinstance(target, Mapping) else None
            if not isinstance(target, Mapping):
                return {k: v for k, v in schema.items() if k != "$ref"}, base
            own = {k: v for k, v in schema.items() if k != "$ref"}
            schema, base = {**target, **own}, target_base
            seen += 1
        return schema, base


def field_id(pointer: str) -> str:
    """'/body/assessment/date' -> 'body-assessment-date' (property names have no '-')."""
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
    return "-".join(re.sub(r"[^A-Za-z0-9_]", "_", t) for t in tokens) or "form"


# --- building the form ------------------------------------------------------------------


def _first(values: FormValues, name: str) -> str:
    found = values.get(name)
    return found[0] if found else ""


def _enum_words(value: object) -> str:
    return humanise(str(value))


def build(
    schema: Mapping[str, Any],
    schemas: Schemas,
    values: FormValues,
    *,
    pointer: str = "",
    base: str = "",
    choices: Mapping[str, Sequence[Choice]] | None = None,
    ref_choices: Mapping[str, Sequence[Choice]] | None = None,
    name: str = "",
    required: bool = True,
    depth: int = 0,
) -> Field:
    """The field for ``schema`` at ``pointer``, filled from ``values``.

    ``choices`` offers a fixed list of answers for the field at a pointer (the recipients
    from the directory); ``ref_choices`` for every field whose ``$ref`` is a given URI (an
    organisation code chosen from the directory instead of typed)."""
    choices = choices or {}
    ref_choices = ref_choices or {}
    ref = schema.get("$ref") if isinstance(schema.get("$ref"), str) else None
    resolved, base = schemas.resolve(schema, base)
    ident = field_id(pointer)
    label = str(resolved.get("title") or humanise(name or "answer"))
    hint = resolved.get("description")
    common = Field(Kind.TEXT, pointer, ident, label, str(hint) if hint else None, required,
                   resolved, depth=depth)
    offered = choices[pointer] if pointer in choices else (
        ref_choices.get(str(ref)) if ref else None)
    kind = resolved.get("type")
    if kind == "array":
        raw_items = resolved.get("items")
        raw_items = raw_items if isinstance(raw_items, Mapping) else {}
        items, _ = schemas.resolve(raw_items, base)
        listed = _listed(pointer, raw_items, items, choices, ref_choices)
        if listed is not None:
            return replace(common, kind=Kind.CHECKBOXES, choices=tuple(listed),
                           chosen=tuple(values.get(ident, ())))
        return _repeat(resolved, base, schemas, values, choices, ref_choices, common)
    if kind == "object" or "properties" in resolved:
        needed = set(resolved.get("required", ()))
        children = tuple(
            build(sub, schemas, values, pointer=f"{pointer}/{key}", base=base,
                  choices=choices, ref_choices=ref_choices, name=key,
                  required=key in needed, depth=depth + 1)
            for key, sub in resolved.get("properties", {}).items()
            if isinstance(sub, Mapping)
        )
        return replace(common, kind=Kind.GROUP, children=children)
    value = _first(values, ident)
    if offered is not None or "enum" in resolved or "const" in resolved:
        listed = tuple(offered) if offered is not None else _vocabulary(resolved)
        many = len(listed) > RADIOS_UP_TO or (offered is not None and ref is not None)
        return replace(common, kind=Kind.SELECT if many else Kind.RADIOS, choices=listed,
                       value=value)
    if kind == "boolean":
        return replace(common, kind=Kind.BOOLEAN, value=value,
                       choices=(Choice("true", "Yes"), Choice("false", "No")))
    if kind in ("integer", "number"):
        return replace(common, kind=Kind.NUMBER, integer=kind == "integer", value=value)
    if resolved.get("format") == "date":
        return replace(common, kind=Kind.DATE, parts=_parts(ident, values, time=False))
    if resolved.get("format") == "date-time":
        return replace(common, kind=Kind.DATE_TIME, parts=_parts(ident, values, time=True))
    long = int(resolved.get("maxLength", LONG_TEXT)) > LONG_TEXT
    return replace(common, kind=Kind.TEXTAREA if long else Kind.TEXT, value=value)


def _listed(
    pointer: str, raw_items: Mapping[str, Any], items: Mapping[str, Any],
    choices: Mapping[str, Sequence[Choice]], ref_choices: Mapping[str, Sequence[Choice]],
) -> Sequence[Choice] | None:
    """The answers a list is ticked from (checkboxes), or None when it is asked row by
    row: offered for its pointer, for its items' ``$ref``, or the items' vocabulary."""
    ref = raw_items.get("$ref")
    listed = choices[pointer] if pointer in choices else (
        ref_choices.get(str(ref)) if ref else None)
    if listed is None and ("enum" in items or "const" in items):
        return _vocabulary(items)
    return listed


def _vocabulary(schema: Mapping[str, Any]) -> tuple[Choice, ...]:
    words = schema["enum"] if "enum" in schema else [schema["const"]]
    return tuple(Choice(str(word), _enum_words(word)) for word in words)


_PARTS = (("day", "Day", 2), ("month", "Month", 2), ("year", "Year", 4))
_TIME = (("hour", "Hour", 2), ("minute", "Minute", 2))


def _parts(ident: str, values: FormValues, *, time: bool) -> tuple[Part, ...]:
    return tuple(Part(name, label, width, _first(values, f"{ident}-{name}"))
                 for name, label, width in (*_PARTS, *(_TIME if time else ())))


def _repeat(
    schema: Mapping[str, Any], base: str, schemas: Schemas, values: FormValues,
    choices: Mapping[str, Sequence[Choice]], ref_choices: Mapping[str, Sequence[Choice]],
    common: Field,
) -> Field:
    ident = common.id
    items = schema.get("items")
    most = min(int(schema.get("maxItems", MAX_ROWS)), MAX_ROWS)
    least = max(int(schema.get("minItems", 0)), 1)
    asked = _first(values, f"{ident}-rows")
    rows = int(asked) if asked.isdigit() and len(asked) < 4 else least
    rows = max(least, min(rows, most))
    children = tuple(
        replace(
            build(items, schemas, values, pointer=f"{common.pointer}/{index}", base=base,
                  choices=choices, ref_choices=ref_choices, required=False,
                  depth=common.depth + 1),
            label=f"{_singular(common.label)} {index + 1}", row=True,
        )
        for index in range(rows)
    ) if isinstance(items, Mapping) else ()
    return replace(common, kind=Kind.REPEAT, children=children, rows=rows, max_rows=most)


def _singular(label: str) -> str:
    return label[:-1] if label.endswith("s") and not label.endswith("ss") else label


def add_row(values: FormValues, root: Field, ident: str) -> dict[str, list[str]]:
    """The values with one more row in the repeating group ``ident`` ("Add another")."""
    grown = {k: list(v) for k, v in values.items()}
    for found in root.walk():
        if found.kind is Kind.REPEAT and found.id == ident and found.rows < found.max_rows:
            grown[f"{ident}-rows"] = [str(found.rows + 1)]
    return grown


# --- form values -> document ------------------------------------------------------------

_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_ABSENT = object()


class _Unanswered(list[Any]):
    """The empty list a required list gets when nothing is ticked ("may be empty"): it is
    sent, but does not count as an answer that brings an optional fieldset into being."""


def document_of(root: Field) -> Any:
    """The JSON value the answers in ``root`` give (``{}`` for an empty group)."""
    value = _value(root)
    if value is _ABSENT:
        return {} if root.kind is Kind.GROUP else None
    return value


def _value(node: Field) -> Any:
    """The value of one field, or ``_ABSENT`` when the person gave no answer."""
    if node.kind is Kind.GROUP:
        found = {}
        for child in node.children:
            value = _value(child)
            if value is not _ABSENT:
                key = child.pointer.rsplit("/", 1)[1]
                found[key.replace("~1", "/").replace("~0", "~")] = value
        answered = any(not isinstance(v, _Unanswered) for v in found.values())
        return found if answered else _ABSENT
    if node.kind is Kind.REPEAT:
        items = [v for v in (_value(c) for c in node.children) if v is not _ABSENT]
        return items if items else _unanswered(node)
    if node.kind is Kind.CHECKBOXES:
        return _typed_list(node) if node.chosen else _unanswered(node)
    if node.kind in (Kind.DATE, Kind.DATE_TIME):
        return _when(node)
    text = node.value.replace("\r\n", "\n")
    if not text.strip():
        return _ABSENT
    if node.kind is Kind.TEXTAREA:
        return text.strip("\n ")
    text = text.strip()
    if node.kind is Kind.BOOLEAN:
        return {"true": True, "false": False}.get(text, text)
    if node.kind is Kind.NUMBER:
        if _INTEGER.fullmatch(text):
            return int(text)
        if not node.integer and _DECIMAL.fullmatch(text):
            return float(text)
        return text
    if node.kind in (Kind.RADIOS, Kind.SELECT):
        return _typed(node, text)
    return text


def _unanswered(node: Field) -> Any:
    """An empty list for a required list (the schema may allow it to be empty, as for
    immediate risks), otherwise no answer."""
    return _Unanswered() if node.required else _ABSENT


def _typed(node: Field, text: str) -> Any:
    """An answer from a list, as the JSON value the schema lists (a word, or a number)."""
    words = node.schema.get("enum", [node.schema["const"]] if "const" in node.schema else [])
    for word in words:
        if str(word) == text:
            return word
    return text


def _typed_list(node: Field) -> list[Any]:
    items = node.schema.get("items", {})
    words = items.get("enum", []) if isinstance(items, Mapping) else []
    by_text = {str(word): word for word in words}
    return [by_text.get(choice, choice) for choice in node.chosen]


def _when(node: Field) -> Any:
    """A date as YYYY-MM-DD; a date and time as RFC 3339 in UK time. An answer that is no
    date is passed on as typed, for the validator to refuse it ("Must be a calendar date")."""
    parts = {part.name: part.value.strip() for part in node.parts}
    if not any(parts.values()):
        return _ABSENT
    typed = "-".join(parts[n] for n in ("year", "month", "day"))
    if node.kind is Kind.DATE_TIME:
        typed += f"T{parts['hour']}:{parts['minute']}"
    numbers = {n: int(v) for n, v in parts.items() if v.isdigit() and len(v) <= 4}
    if len(numbers) != len(parts) or len(parts["year"]) != 4:
        return typed
    try:
        if node.kind is Kind.DATE:
            return date(numbers["year"], numbers["month"], numbers["day"]).isoformat()
        moment = datetime(numbers["year"], numbers["month"], numbers["day"], numbers["hour"],
                          numbers["minute"], tzinfo=LONDON)
    except ValueError:
        return typed
    return moment.isoformat()


# --- document -> form values ------------------------------------------------------------


def values_of(
    schema: Mapping[str, Any], schemas: Schemas, document: Any, *, pointer: str = "",
    base: str = "", choices: Mapping[str, Sequence[Choice]] | None = None,
    ref_choices: Mapping[str, Sequence[Choice]] | None = None,
) -> dict[str, list[str]]:
    """The form values that show ``document`` (to change a draft, and to test the form);
    ``choices`` and ``ref_choices`` as :func:`build` is given them."""
    values: dict[str, list[str]] = {}
    offers = (choices or {}, ref_choices or {})
    _fill(schema, schemas, document, pointer, base, values, offers)
    return values


_Offers = tuple[Mapping[str, Sequence[Choice]], Mapping[str, Sequence[Choice]]]


def _fill(schema: Mapping[str, Any], schemas: Schemas, value: Any, pointer: str, base: str,
          values: dict[str, list[str]], offers: _Offers) -> None:
    resolved, base = schemas.resolve(schema, base)
    ident = field_id(pointer)
    if isinstance(value, Mapping):
        properties = resolved.get("properties", {})
        for key, item in value.items():
            if isinstance(properties.get(key), Mapping):
                _fill(properties[key], schemas, item, f"{pointer}/{key}", base, values,
                      offers)
        return
    if isinstance(value, list):
        raw_items = resolved.get("items")
        raw_items = raw_items if isinstance(raw_items, Mapping) else {}
        items, _ = schemas.resolve(raw_items, base)
        if _listed(pointer, raw_items, items, *offers) is not None:
            values[ident] = [_text(item) for item in value]
            return
        values[f"{ident}-rows"] = [str(max(len(value), 1))]
        for index, item in enumerate(value):
            _fill(raw_items, schemas, item, f"{pointer}/{index}", base, values, offers)
        return
    if resolved.get("format") in ("date", "date-time") and isinstance(value, str):
        _fill_when(resolved, value, ident, values)
        return
    values[ident] = [_text(value)]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _fill_when(schema: Mapping[str, Any], value: str, ident: str,
               values: dict[str, list[str]]) -> None:
    try:
        if schema.get("format") == "date":
            moment = datetime.combine(date.fromisoformat(value), datetime.min.time())
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(LONDON)
    except ValueError:
        values[f"{ident}-day"] = [value]
        return
    values[f"{ident}-day"] = [str(moment.day)]
    values[f"{ident}-month"] = [str(moment.month)]
    values[f"{ident}-year"] = [f"{moment.year:04d}"]
    if schema.get("format") == "date-time":
        values[f"{ident}-hour"] = [f"{moment.hour:02d}"]
        values[f"{ident}-minute"] = [f"{moment.minute:02d}"]


# --- errors -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorLink:
    """One line of the GOV.UK error summary, and the field that shows it."""

    text: str
    href: str | None
    field_id: str | None


def field_at(root: Field, pointer: str) -> Field | None:
    """The field for ``pointer``, or its nearest ancestor that has one (an error about
    the third item of a ticked list belongs to the list)."""
    by_pointer = {node.pointer: node for node in root.walk()}
    while True:
        if pointer in by_pointer:
            return by_pointer[pointer]
        if not pointer:
            return None
        pointer = pointer.rsplit("/", 1)[0]


_REQUIRED = re.compile(r"'(.+)' is required here\.")
_MATCH = re.compile(r"; it must match .*$")


def error_links(root: Field, violations: Sequence[tuple[str, str]]) -> list[ErrorLink]:
    """Each (pointer, message) as an error summary line linking to its field, worded as
    GOV.UK error messages are ("Enter …", "Select …"), one line per field, in the order
    the fields are on the page (GOV.UK "Error summary"). A required fieldset left empty
    is reported as each of its required questions, so each can be linked to."""
    order = {node.id: index for index, node in enumerate(root.walk())}
    parents = {child.id: node for node in root.walk() for child in node.children}
    found: list[tuple[int, ErrorLink]] = []
    shown: set[str] = set()
    for where, message in _spread(root, violations):
        node = field_at(root, where)
        if node is None or (node is root and where):
            found.append((-1, ErrorLink(message, None, None)))
            continue
        if node.anchor in shown:
            continue
        shown.add(node.anchor)
        text = _worded(node, where, message)
        parent = parents.get(node.id)
        if node.depth > 2 and parent is not None and parent.label.lower() not in text.lower():
            # "Select need level" alone would not say which of several it is.
            text += f" ({parent.label})"
        found.append((order[node.id], ErrorLink(text, f"#{node.anchor}", node.id)))
    return [link for _, link in sorted(found, key=lambda pair: pair[0])]


def _spread(root: Field, violations: Sequence[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    for where, message in violations:
        node = field_at(root, where)
        if (node is not None and node.pointer == where and node.kind is Kind.GROUP
                and _REQUIRED.fullmatch(message)):
            for leaf in _required_leaves(node):
                yield leaf.pointer, f"'{leaf.pointer.rsplit('/', 1)[1]}' is required here."
        else:
            yield where, message


def _required_leaves(node: Field) -> Iterator[Field]:
    for child in node.children:
        if not child.required:
            continue
        if child.kind is Kind.GROUP:
            yield from _required_leaves(child)
        else:
            yield child


def _worded(node: Field, where: str, message: str) -> str:
    label = node.label
    if node.pointer == where and _REQUIRED.fullmatch(message):
        if node.kind in (Kind.RADIOS, Kind.SELECT, Kind.BOOLEAN, Kind.CHECKBOXES):
            return f"Select {_lower(label)}"
        return f"Enter {_lower(label)}"
    if node.kind in (Kind.DATE, Kind.DATE_TIME) and message.startswith("Must be"):
        return (f"{label} must be a real date" if node.kind is Kind.DATE
                else f"{label} must be a real date and a time from 0:00 to 23:59")
    if node.kind is Kind.NUMBER and message.startswith("Must be a"):
        return f"{label} must be a {'whole ' if node.integer else ''}number"
    if node.kind is Kind.CHECKBOXES and message.startswith("Must list at least 1 "):
        return f"Select {_lower(label)}"
    if node.kind is Kind.CHECKBOXES and message.startswith("Must list at least"):
        return f"Select at least {message.removeprefix('Must list at least ').rstrip('.')}"
    message = _MATCH.sub(".", message)
    if message.startswith("Must "):
        return f"{label} must {message.removeprefix('Must ').rstrip('.')}"
    return f"{label}: {message}"


def _lower(label: str) -> str:
    """'Assessment date' -> 'assessment date', but 'PNC ID' stays as it is."""
    first = label.split(" ", 1)[0]
    return label if first.isupper() and len(first) > 1 else label[:1].lower() + label[1:]


# --- answers in words -------------------------------------------------------------------


def answer_words(node: Field) -> str | None:
    """A field's answer as the GOV.UK summary list shows it; None when unanswered."""
    value = _value(node)
    if value is _ABSENT:
        return None
    if node.kind in (Kind.RADIOS, Kind.SELECT, Kind.BOOLEAN):
        for choice in node.choices:
            if choice.value == node.value.strip():
                return choice.label
        return str(value)
    if node.kind is Kind.CHECKBOXES:
        labels = {c.value: c.label for c in node.choices}
        return ", ".join(labels.get(v, v) for v in node.chosen)
    if node.kind is Kind.DATE and isinstance(value, str):
        try:
            return day(date.fromisoformat(value))
        except ValueError:
            return value
    if node.kind is Kind.DATE_TIME and isinstance(value, str):
        try:
            return when(datetime.fromisoformat(value))
        except ValueError:
            return value
    return str(value)


def answer_rows(node: Field, trail: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(question, answer) for every answered question under ``node``, each question named
    with the fieldsets it sits in ("Assessment: Assessment date")."""
    if node.kind in (Kind.GROUP, Kind.REPEAT):
        rows: list[tuple[str, str]] = []
        for child in node.children:
            rows += answer_rows(child, (*trail, child.label))
        return rows
    words = answer_words(node)
    return [(": ".join(trail) or node.label, words)] if words is not None else []
