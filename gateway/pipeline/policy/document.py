"""Reading a policy file: YAML → checked against its JSON Schema and vocabulary → PolicySet.

Every problem is reported at once with a pointer into the document, in words an IG lead
can act on. The version is a content hash of the parsed document, so reformatting a file
does not change it but any change of meaning does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from gateway.domain.errors import InvalidPolicy, MalformedRequest, Violation
from gateway.domain.model import AGENCY_KINDS, Consent, MessageType, Route, canonical_json
from gateway.pipeline.policy.facts import FACT_NAMES, Purpose
from gateway.pipeline.policy.rules import ConsentState, Effect, FactValue, PolicySet, Rule
from gateway.pipeline.validation import check_structure, explain, pointer, schema_validator

POLICY_SCHEMA_PATH = Path(__file__).resolve().parents[3] / "policies" / "policy.schema.json"
_VOCABULARY: Mapping[str, frozenset[str]] = {
    "type": frozenset(MessageType),
    "route": frozenset(Route),
    "sender": AGENCY_KINDS,
    "recipient": AGENCY_KINDS,
    "consent": frozenset(ConsentState),
    "purpose": frozenset(Purpose),
}


def _schema_validator() -> Draft202012Validator:
    return schema_validator(json.loads(POLICY_SCHEMA_PATH.read_text(encoding="utf-8")))


_VALIDATOR = _schema_validator()
_MAX_DEPTH = 32


# A policy file is a few tens of KiB (policies/dip-default.yaml and its cases are under
# 32 KiB); eight times the largest shipped file still reads in milliseconds.
MAX_POLICY_BYTES = 256 * 1024
# YAML aliases repeat a node without copying it, so a few hundred bytes can stand for
# a billion values ("billion laughs"). A document is refused when, read with every
# alias expanded, it would hold more than this many values (keys count): the shipped
# cases file, which repeats its expectations by alias, holds about 3,900.
MAX_EXPANDED_NODES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


def parse_text(text: str) -> Any:
    """Read policy or cases YAML into plain data, or raise :class:`InvalidPolicy`.

    Besides YAML 1.1 syntax, three things are refused, each with its line: a file over
    :data:`MAX_POLICY_BYTES`; a key given twice in one mapping (YAML 1.1 and 1.2, section
    3.2.1.1, require keys to be unique; PyYAML would silently keep the last); and aliases that
    expand past :data:`MAX_EXPANDED_NODES`, self-reference or nesting past
    :data:`_MAX_DEPTH`. The last two are found on the composed node graph, where each
    anchored node exists once, before any Python value is built, so an alias bomb costs
    time in proportion to its size in bytes.
    """
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_POLICY_BYTES:
        at_line = encoded.count(b"\n", 0, MAX_POLICY_BYTES) + 1
        raise InvalidPolicy([Violation("", (
            f"The file is {len(encoded)} bytes; a policy or cases file may be at most "
            f"{MAX_POLICY_BYTES} bytes (256 KiB), a limit it passes at line {at_line}."
        ))])
    try:
        document = _load(text)
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


def _load(text: str) -> Any:
    """``yaml.safe_load``, with the node graph checked before any value is built."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(loader, node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_nodes(loader: yaml.SafeLoader, root: yaml.Node) -> None:
    """Refuse duplicate keys, and aliases that expand too far or into themselves.

    Walks the node graph once per distinct node (aliased nodes are shared, and their
    expanded size and height are remembered), never the expansion itself.
    """
    measured: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()
    duplicates: list[Violation] = []

    def line(node: yaml.Node) -> int:
        return int(node.start_mark.line) + 1

    def measure(node: yaml.Node, path: tuple[str, ...], depth: int) -> tuple[int, int]:
        """(values in the expansion, levels of nesting) under ``node``."""
        if depth >= _MAX_DEPTH and isinstance(node, yaml.CollectionNode):
            raise InvalidPolicy([Violation(pointer(path), (
                f"The file nests more than {_MAX_DEPTH} levels deep (line {line(node)})."
            ))])
        if id(node) in open_nodes:
            raise InvalidPolicy([Violation(pointer(path), (
                f"An alias refers to the node anchored at line {line(node)}, inside that "
                "node itself."
            ))])
        known = measured.get(id(node))
        if known is None:
            open_nodes.add(id(node))
            known = children(node, path, depth)
            open_nodes.discard(id(node))
            measured[id(node)] = known
        if depth + known[1] > _MAX_DEPTH:
            raise InvalidPolicy([Violation(pointer(path), (
                f"The file nests more than {_MAX_DEPTH} levels deep (line {line(node)})."
            ))])
        return known

    def children(node: yaml.Node, path: tuple[str, ...], depth: int) -> tuple[int, int]:
        items: list[tuple[yaml.Node, tuple[str, ...]]] = []
        if isinstance(node, yaml.SequenceNode):
            items = [(child, (*path, str(i))) for i, child in enumerate(node.value)]
        elif isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                name = None if key_node.tag == _MERGE_TAG else _key(loader, key_node)
                if name is not None:
                    if name in seen:
                        duplicates.append(Violation(pointer((*path, str(name))), (
                            f"The key {name!r} at line {line(key_node)} is already given at "
                            f"line {seen[name]}: each key may appear once in a mapping."
                        )))
                    seen.setdefault(name, line(key_node))
                items += [
                    (key_node, path),
                    (value_node, path if name is None else (*path, str(name))),
                ]
        total, height = 1, 1 if isinstance(node, yaml.CollectionNode) else 0
        for child, child_path in items:
            size, levels = measure(child, child_path, depth + 1)
            total += size
            height = max(height, levels + 1)
            if total > MAX_EXPANDED_NODES:
                raise InvalidPolicy([Violation(pointer(child_path), (
                    f"With its aliases expanded the file holds more than "
                    f"{MAX_EXPANDED_NODES} values, passing the limit in the value at line "
                    f"{line(node)}."
                ))])
        return total, height

    measure(root, (), 0)
    if duplicates:
        raise InvalidPolicy(sorted(duplicates, key=_order))


def _key(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    """A mapping key's value when it is a scalar (so '1' and '0x1' are the same key)."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    value = loader.construct_object(node)
    try:
        hash(value)
    except TypeError:
        return None
    return value


def version_of(document: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(document)).hexdigest()[:32]


@lru_cache(maxsize=16)
def load_text(text: str) -> PolicySet:
    """The policy a YAML text states, or :class:`InvalidPolicy`. Reading and checking the
    default policy takes about 0.15 s of CPU, and every app start reads its baseline and
    active versions, so the answer for a text is kept (a policy set is immutable; a refusal
    is never kept)."""
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
        purposes=_set(when.get("purpose")),
        facts=facts,
    )
