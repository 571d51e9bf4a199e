"""Reading a policy file: YAML → checked against its JSON Schema and vocabulary → PolicySet.

Every problem is reported at once with a pointer into the document, in words an IG lead
can act on. The version is a content hash of the parsed document, so reformatting a file
does not change it but any change of meaning does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from gateway.errors import InvalidPolicy, MalformedRequest, Violation
from gateway.model import Consent, MessageType, OrgKind, Route, canonical_json
from gateway.policy.facts import FACT_NAMES
from gateway.policy.rules import ConsentState, Effect, FactValue, PolicySet, Rule
from gateway.validation import check_structure, explain, schema_validator

POLICY_SCHEMA_PATH = Path(__file__).resolve().parents[2] / "policies" / "policy.schema.json"
_VOCABULARY: Mapping[str, frozenset[str]] = {
    "type": frozenset(MessageType),
    "route": frozenset(Route),
    "sender": frozenset(OrgKind),
    "recipient": frozenset(OrgKind),
    "consent": frozenset(ConsentState),
}


def _schema_validator() -> Draft202012Validator:
    return schema_validator(json.loads(POLICY_SCHEMA_PATH.read_text(encoding="utf-8")))


_VALIDATOR = _schema_validator()
_MAX_DEPTH = 32


def parse_text(text: str) -> Any:
    try:
        document = yaml.safe_load(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise InvalidPolicy([Violation("", (
            f"The file is not valid YAML at line {line}, column {column}: character "
            f"{exc.character!r} is not allowed."
        ))]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidPolicy([Violation("", f"The file is not valid YAML{where}.")]) from None
    except RecursionError:
        raise InvalidPolicy([Violation("", "The file nests too deeply.")]) from None
    try:
        check_structure(document, max_depth=_MAX_DEPTH)
    except (MalformedRequest, RecursionError) as exc:
        detail = exc.detail if isinstance(exc, MalformedRequest) else "It refers to itself."
        raise InvalidPolicy([Violation("", detail)]) from None
    return document


def version_of(document: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(document)).hexdigest()[:32]


def load_text(text: str) -> PolicySet:
    return load_document(parse_text(text))


def load_document(document: Any) -> PolicySet:
    """Every schema and vocabulary problem at once, or the policy."""
    try:
        check_structure(document, max_depth=_MAX_DEPTH)
        found = set(explain(_VALIDATOR.iter_errors(document), ()))
    except (MalformedRequest, RecursionError) as exc:
        detail = exc.detail if isinstance(exc, MalformedRequest) else "It refers to itself."
        raise InvalidPolicy([Violation("", detail)]) from None
    found.update(_vocabulary_violations(document))
    if found:
        raise InvalidPolicy(sorted(found, key=_order))
    rules = tuple(_rule(raw) for raw in document["rules"])
    return PolicySet.build(document["policy"], version_of(document), rules)


def _order(violation: Violation) -> tuple[str, str]:
    return violation.pointer, violation.message


def _vocabulary_violations(document: Any) -> list[Violation]:
    """Names the schema cannot know; tolerant of a malformed document (reported apart)."""
    found: list[Violation] = []
    seen: dict[str, int] = {}
    rules = document.get("rules") if isinstance(document, Mapping) else None
    for index, raw in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(raw, Mapping):
            continue
        at = f"/rules/{index}"
        rule_id = raw.get("id")
        if isinstance(rule_id, str) and rule_id in seen:
            first = seen[rule_id]
            found.append(Violation(f"{at}/id", f"Rule id {rule_id!r} is used by rule {first}."))
        if isinstance(rule_id, str):
            seen.setdefault(rule_id, index)
        when = raw.get("when", {})
        if not isinstance(when, Mapping):
            continue
        for key, allowed in _VOCABULARY.items():
            for value in _as_list(when.get(key)):
                if isinstance(value, str) and value not in allowed:
                    found.append(
                        Violation(
                            f"{at}/when/{key}",
                            f"{value!r} is not a known {key}; use one of "
                            f"{', '.join(sorted(allowed))}.",
                        )
                    )
        facts = when.get("facts", {})
        for fact in facts if isinstance(facts, Mapping) else []:
            if fact not in FACT_NAMES:
                found.append(
                    Violation(
                        f"{at}/when/facts/{fact}",
                        f"{fact!r} is not a fact the gateway reads from messages; use one of "
                        f"{', '.join(sorted(FACT_NAMES))}.",
                    )
                )
    return found


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _set(value: Any) -> frozenset[str] | None:
    return None if value is None else frozenset(_as_list(value))


def _rule(raw: Mapping[str, Any]) -> Rule:
    when = raw.get("when", {})
    facts: dict[str, frozenset[FactValue]] = {
        name: frozenset(_as_list(values)) for name, values in when.get("facts", {}).items()
    }
    return Rule(
        id=raw["id"],
        effect=Effect(raw["effect"]),
        reason=" ".join(str(raw["reason"]).split()),
        legal_basis=raw["legal_basis"],
        consent=Consent(raw.get("consent", Consent.NOT_REQUIRED.value)),
        redact=tuple(raw.get("redact", ())),
        types=_set(when.get("type")),
        routes=_set(when.get("route")),
        senders=_set(when.get("sender")),
        recipients=_set(when.get("recipient")),
        consent_states=_set(when.get("consent")),
        facts=facts,
    )
