"""Reading and schema-checking submitted documents (JSON Schema 2020-12). No I/O.

Every violation is reported at once, each located by an RFC 6901 JSON pointer into the
document as submitted, with a message a person can act on. Schemas are compiled once,
when a :class:`SchemaSet` is built.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from jsonschema.validators import extend
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gateway.domain.errors import InvalidMessage, MalformedRequest, Violation
from gateway.domain.model import MessageType

ENVELOPE_SCHEMA = "envelope"

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _is_email(value: object) -> bool:
    return not isinstance(value, str) or bool(_EMAIL.match(value))


# Formats we enforce, strictly: RFC 3339 times need a zone, dates need all digits.
_FORMATS = {"date-time": _is_date_time, "date": _is_date, "uuid": _is_uuid, "email": _is_email}


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    for name, check in _FORMATS.items():
        checker.checks(name)(check)
    return checker


SCHEMA_FORMATS = _format_checker()


_FORMAT_HINTS = {
    "date-time": "a date and time with a time zone (RFC 3339), e.g. 2026-11-23T14:05:00Z",
    "date": "a calendar date as YYYY-MM-DD",
    "uuid": "a UUID in its canonical form, e.g. 0b5c1a7e-4f2d-4c8a-9a55-3f1f6f0e2d11",
    "email": "an e-mail address",
}


@lru_cache(maxsize=512)
def ecma_regex(pattern: str) -> re.Pattern[str]:
    r"""Compile a schema's ``pattern`` so that Python matches what ECMA-262 would.

    JSON Schema 2020-12 (Core, section 6.4) gives ``pattern`` ECMA-262 semantics, where
    ``$`` (no multiline flag) matches only at the very end of the input. Python's ``$``
    also matches before a final newline, so ``^[A-Z]{3}$`` would pass ``"ABC\n"``: each
    ``$`` that is neither escaped nor inside a character class becomes ``\Z``, the true
    end. jsonschema-rs already reads ``$`` this way; this makes the explaining validator,
    and the request schemas checked by it alone, agree.
    """
    translated: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            translated.append(pattern[index : index + 2])
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            char = r"\Z"
        translated.append(char)
        index += 1
    return re.compile("".join(translated))


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        regex = ecma_regex(pattern)
        for name, value in instance.items():
            if isinstance(name, str) and regex.search(name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _undeclared(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Names neither in ``properties`` nor matching a ``patternProperties`` pattern."""
    known = schema.get("properties", {})
    patterns = [ecma_regex(p) for p in schema.get("patternProperties", {})]
    return [
        name for name in instance
        if name not in known
        and not (isinstance(name, str) and any(p.search(name) for p in patterns))
    ]


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    extras = _undeclared(instance, schema)
    if validator.is_type(additional, "object"):
        for name in extras:
            yield from validator.descend(instance[name], additional, path=name)
    elif additional is False and extras:
        listed = ", ".join(sorted(repr(name) for name in extras))
        yield ValidationError(f"Additional properties are not allowed ({listed} unexpected)")


# JSON Schema 2020-12 with ECMA-262 patterns: every keyword that matches a regex.
EcmaValidator = extend(  # type: ignore[no-untyped-call]  # untyped in types-jsonschema
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    },
)


def schema_validator(schema: Mapping[str, Any], **options: Any) -> Draft202012Validator:
    """An explaining validator for ``schema``: Draft 2020-12, ECMA-262 ``pattern``, and our
    strict formats unless ``format_checker`` says otherwise."""
    Draft202012Validator.check_schema(schema)
    options.setdefault("format_checker", SCHEMA_FORMATS)
    validator: Draft202012Validator = EcmaValidator(schema, **options)
    return validator


def parse_document(raw: bytes, *, max_depth: int) -> Any:
    """Parse a request body as JSON, refusing documents nested deeper than ``max_depth``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedRequest(f"The body is not UTF-8 text (byte {exc.start}).") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise MalformedRequest(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from None
    except RecursionError:
        raise MalformedRequest(
            f"The document is nested more than {max_depth} levels deep."
        ) from None
    except ValueError as exc:
        # Python refuses integer literals of more than 4,300 digits.
        raise MalformedRequest(f"The body holds a value JSON cannot carry here: {exc}") from None
    # Decoded UTF-8 holds no surrogates, so only a \uD800-\uDFFF escape can bring one in.
    check_structure(document, max_depth, check_strings=_SURROGATE_ESCAPE.search(text) is not None)
    return document


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _reject_constant(name: str) -> Any:
    raise MalformedRequest(f"The body is not valid JSON: {name} is not a JSON value.")


def check_structure(document: Any, max_depth: int, *, check_strings: bool = True) -> None:
    """Refuse deep nesting and unpaired surrogates, without recursion so hostile input
    cannot exhaust the stack. A ``\\ud800`` escape is valid JSON but not Unicode text.

    ``check_strings=False`` skips the surrogate check, for a caller that knows none can
    be there: walking only the containers is what keeps bulk submissions cheap.
    """
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            if level > max_depth:
                raise MalformedRequest(
                    f"The document is nested more than {max_depth} levels deep."
                )
            children = node.values() if isinstance(node, dict) else node
            if check_strings:
                stack.extend((child, level + 1) for child in children)
                if isinstance(node, dict):
                    stack.extend((key, level) for key in node)
            else:
                stack.extend(
                    (child, level + 1) for child in children if isinstance(child, dict | list)
                )
        elif isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                raise MalformedRequest(
                    "The body holds an unpaired UTF-16 surrogate escape (such as \\ud800), "
                    "which is not text."
                ) from None


def pointer(path: Iterable[str | int]) -> str:
    """RFC 6901 JSON pointer for a sequence of object keys and array indices."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


@dataclass(frozen=True)
class SchemaSet:
    """The envelope schema and one compiled validator per message type.

    Each schema is compiled twice: by jsonschema-rs, which answers "valid or not" about
    sixty times faster and so takes the hot path and decides, and by jsonschema (with
    ECMA-262 patterns, as jsonschema-rs reads them), which explains each violation with the
    pointers and messages a person reads. Property tests hold them in agreement, and
    :meth:`check` refuses whatever jsonschema-rs refuses even if the explanation is empty.
    """

    documents: Mapping[str, Mapping[str, Any]]
    validators: Mapping[str, Draft202012Validator]
    fast: Mapping[str, Any]

    @classmethod
    def load(cls, directory: Path) -> SchemaSet:
        """Read ``*.schema.json`` files and compile them; fails at start-up, never later.

        Checking and compiling twenty schemas takes about 0.3 s of CPU, so the set compiled
        from the same file contents is reused by every app this process builds (the test
        suite builds thousands); a changed file is compiled afresh."""
        files = tuple(
            (path.name.removesuffix(".schema.json"), path.read_bytes())
            for path in sorted(directory.glob("*.schema.json"))
        )
        return _compiled(files)

    @classmethod
    def from_documents(cls, documents: Mapping[str, Mapping[str, Any]]) -> SchemaSet:
        missing = {ENVELOPE_SCHEMA, *MessageType} - documents.keys()
        if missing:
            raise FileNotFoundError(f"missing schemas: {', '.join(sorted(missing))}")
        registry: Registry[Any] = Registry().with_resources(
            (doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012))
            for doc in documents.values()
        )
        checker = _format_checker()
        fast_registry = jsonschema_rs.Registry(
            [(str(doc["$id"]), dict(doc)) for doc in documents.values()]
        )
        validators = {}
        fast = {}
        for name, doc in documents.items():
            validators[name] = schema_validator(doc, registry=registry, format_checker=checker)
            fast[name] = jsonschema_rs.Draft202012Validator(
                dict(doc), registry=fast_registry, formats=_FORMATS, validate_formats=True
            )
        return cls(documents=documents, validators=validators, fast=fast)

    def is_valid(self, document: Any) -> bool:
        """The quick answer; :meth:`violations` gives the reasons."""
        if not isinstance(document, dict) or not self.fast[ENVELOPE_SCHEMA].is_valid(document):
            return False
        body_validator = self.fast.get(str(document.get("type")))
        return body_validator is not None and bool(body_validator.is_valid(document["body"]))

    def violations(self, document: Any) -> list[Violation]:
        """Every way ``document`` breaks the envelope or its type's body schema."""
        found = list(explain(self.validators[ENVELOPE_SCHEMA].iter_errors(document), ()))
        if isinstance(document, dict):
            body_validator = self.validators.get(str(document.get("type")))
            body = document.get("body")
            if body_validator is not None and isinstance(body, dict):
                found += explain(body_validator.iter_errors(body), ("body",))
        return sorted(set(found), key=lambda v: (v.pointer, v.message))

    def check(self, document: Any) -> Mapping[str, Any]:
        """Return the document if it is valid; otherwise raise listing every violation.

        jsonschema-rs decides and jsonschema explains. Should the explanation find nothing
        wrong with a document jsonschema-rs refuses, the document is still refused, with
        jsonschema-rs's own findings: a disagreement between the two never lets through
        what a schema forbids.
        """
        if not isinstance(document, dict):
            raise InvalidMessage([Violation("", "The message must be a JSON object.")])
        if self.is_valid(document):
            return document
        raise InvalidMessage(self.violations(document) or self._fast_violations(document))

    def _fast_violations(self, document: Mapping[str, Any]) -> list[Violation]:
        """What jsonschema-rs finds, worded without echoing the value (it may be personal
        data), by the keyword and the schema location it breaks."""
        found = [
            (pointer(error.instance_path), error.schema_path)
            for error in self.fast[ENVELOPE_SCHEMA].iter_errors(document)
        ]
        body_validator = self.fast.get(str(document.get("type")))
        if body_validator is not None and isinstance(document.get("body"), dict):
            found += [
                (pointer(["body", *error.instance_path]), error.schema_path)
                for error in body_validator.iter_errors(document["body"])
            ]
        violations = {
            Violation(where, f"Breaks the schema's '{path[-1]}' rule at {pointer(path)}.")
            for where, path in found
            if path
        }
        return sorted(violations, key=lambda v: (v.pointer, v.message)) or [
            Violation("", "The message does not match its schema.")
        ]


def explain(errors: Iterable[ValidationError], prefix: Sequence[str]) -> Iterator[Violation]:
    """Turn jsonschema errors into violations with RFC 6901 pointers and plain messages."""
    for error in errors:
        where: list[Any] = [*prefix, *error.absolute_path]
        yield from _messages(error, where)


def _messages(error: ValidationError, where: list[Any]) -> Iterator[Violation]:
    kind = error.validator
    value: Any = error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "required":
        instance = error.instance if isinstance(error.instance, dict) else {}
        for name in value:
            if name not in instance:
                yield Violation(pointer([*where, name]), f"'{name}' is required here.")
        return
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        for name in _undeclared(error.instance, schema):
            yield Violation(
                pointer([*where, name]), f"'{name}' is not a field this message may carry."
            )
        return
    yield Violation(pointer(where), _describe(error, kind, value))


def _describe(error: ValidationError, kind: Any, value: Any) -> str:
    if kind == "enum":
        shown = ", ".join(repr(v) for v in value[:12])
        more = " …" if len(value) > 12 else ""
        return f"Must be one of {shown}{more}."
    if kind == "const":
        # Said as JSON (false, "x"), the language the document is written in.
        return f"Must be {json.dumps(value, ensure_ascii=False)}."
    if kind == "type":
        wanted = value if isinstance(value, str) else " or ".join(value)
        return f"Must be {_article(wanted)} {wanted}."
    if kind == "format":
        return f"Must be {_FORMAT_HINTS.get(value, value)}."
    if kind == "pattern":
        described = error.schema.get("description") if isinstance(error.schema, dict) else None
        hint = f" ({described})" if described else ""
        return f"Is not in the expected form{hint}; it must match {value}."
    if kind == "minLength":
        return "Must not be empty." if value == 1 else f"Must be at least {value} characters."
    if kind == "maxLength":
        return f"Must be at most {value} characters."
    if kind == "minItems":
        return f"Must list at least {value} item{'s' if value != 1 else ''}."
    if kind == "maxItems":
        return f"Must list at most {value} items."
    if kind == "oneOf":
        return "Must be a single value or a list of values, each of the accepted kind."
    if kind == "uniqueItems":
        return "Must not list the same item twice."
    if kind == "contains" and isinstance(value, dict) and "enum" in value:
        # An Annex E-style rule: the list needs one item of a named set (H 4.9.2).
        shown = ", ".join(repr(v) for v in value["enum"][:12])
        return f"Must list at least one of {shown}."
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        relation = {
            "minimum": "at least",
            "exclusiveMinimum": "more than",
            "maximum": "at most",
            "exclusiveMaximum": "less than",
        }[kind]
        return f"Must be {relation} {value}."
    return str(error.message)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


@lru_cache(maxsize=4)
def _compiled(files: tuple[tuple[str, bytes], ...]) -> SchemaSet:
    """The schema set of these (name, file bytes) pairs, compiled once per process."""
    return SchemaSet.from_documents({name: json.loads(raw) for name, raw in files})
