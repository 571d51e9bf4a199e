"""A sharing policy in plain words for IG leads, who are not programmers: each rule as what
is shared, from whom, to whom, on which route, with which consent, on which legal basis and
handbook paragraphs; a changed decision as before and after. No I/O.

The words follow the handbook's: the two routes (Identification by Enforcement and by
Proactive Engagement, H 4.2, 4.3), consent verbal or written (H 4.2, 4.7.1), and the
handbook paragraphs the policy file cites ("H 4.6.1 vii")."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.console.consent_words import KIND_WORDS, purpose_label
from gateway.console.words import humanise
from gateway.domain.model import Consent, MessageType, Route
from gateway.pipeline.policy.rules import Effect, PolicySet, Rule

ROUTE_WORDS: Mapping[str, str] = {
    Route.ENFORCEMENT.value: "Identification by Enforcement",
    Route.PROACTIVE_ENGAGEMENT.value: "Identification by Proactive Engagement",
}
EFFECT_WORDS: Mapping[Effect, tuple[str, str]] = {
    Effect.PERMIT: ("Shared", "green"),
    Effect.FORBID: ("Never shared", "red"),
    Effect.REDACT: ("Parts removed", "orange"),
}
CONSENT_WORDS: Mapping[str, str] = {
    Consent.NOT_REQUIRED.value: "Not needed",
    Consent.REQUIRED.value: "Needed, verbal or written",
    Consent.WRITTEN_REQUIRED.value: "Written consent needed",
}
CONSENT_STATE_WORDS: Mapping[str, str] = {
    "none": "No consent recorded",
    "verbal": "Verbal consent",
    "written": "Written consent",
    "withdrawn": "Consent withdrawn",
    "expired": "Consent expired",
}
DECISION_WORDS: Mapping[str, str] = {"permit": "Shared", "deny": "Not shared"}
# A handbook reference as the policy file writes it: "H 4.6.1 vii", "H 4.1.2, 4.10.2".
_HANDBOOK = re.compile(r"\bH (\d+(?:\.\d+)+[a-z]?(?: [ivx]+\b)?(?:,\s*\d+(?:\.\d+)+[a-z]?"
                       r"(?: [ivx]+\b)?)*)")


def kind_words(kinds: Iterable[str] | None, anyone: str) -> list[str]:
    if kinds is None:
        return [anyone]
    return [KIND_WORDS.get(k, humanise(k)) for k in sorted(kinds)]


def handbook_paragraphs(*texts: str) -> list[str]:
    """Every handbook paragraph the texts cite, in the handbook's order."""
    found: set[str] = set()
    for text in texts:
        for match in _HANDBOOK.finditer(" ".join(text.split())):
            found.update(f"H {p.strip()}" for p in match.group(1).split(","))

    def order(ref: str) -> tuple[tuple[int, ...], str]:
        number, _, rest = ref.removeprefix("H ").partition(" ")
        digits = tuple(int(re.sub(r"\D", "", p) or 0) for p in number.split("."))
        return digits, rest

    return sorted(found, key=order)


@dataclass(frozen=True, slots=True)
class RuleRow:
    """One rule as a row of the readable policy."""

    id: str
    effect: str
    colour: str
    senders: list[str]
    recipients: list[str]
    routes: list[str]
    consent: str
    conditions: list[str]
    removes: list[str]
    reason: str
    legal_basis: str
    handbook: list[str]


def rule_row(rule: Rule) -> RuleRow:
    effect, colour = EFFECT_WORDS[rule.effect]
    if rule.effect is Effect.PERMIT:
        consent = CONSENT_WORDS[rule.consent.value]
    elif rule.effect is Effect.FORBID:
        consent = "Not asked: never shared, whatever the person agreed"
    else:
        consent = "Not asked: these parts are removed whatever the person agreed"
    conditions = []
    if rule.purposes is not None:
        conditions.append("The person's consent must cover " + ", ".join(
            purpose_label(p).lower() for p in sorted(rule.purposes)))
    if rule.consent_states is not None:
        conditions.append("Only when the consent register says: " + ", ".join(
            CONSENT_STATE_WORDS.get(s, humanise(s)).lower() for s in sorted(rule.consent_states)))
    for fact, values in sorted(rule.facts.items()):
        words = ", ".join(sorted(_value_words(v) for v in values))
        conditions.append(f"{humanise(fact)}: {words}")
    return RuleRow(
        id=rule.id, effect=effect, colour=colour,
        senders=kind_words(rule.senders, "Any organisation"),
        recipients=kind_words(rule.recipients, "Any organisation"),
        routes=[ROUTE_WORDS.get(r, humanise(r)) for r in sorted(rule.routes)]
        if rule.routes is not None else ["Either route"],
        consent=consent, conditions=conditions,
        removes=[humanise(p.rsplit("/", 1)[-1]) for p in rule.redact],
        reason=rule.reason, legal_basis=" ".join(rule.legal_basis.split()),
        handbook=handbook_paragraphs(rule.reason, rule.legal_basis),
    )


def _value_words(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return humanise(str(value)).lower()


@dataclass(frozen=True, slots=True)
class TypeRules:
    """The rules that can decide one message type, in the policy's order."""

    type: str
    title: str
    rows: list[RuleRow]


def readable(policy: PolicySet, titles: Mapping[str, str]) -> list[TypeRules]:
    """A table per message type with the rules written for it, then one of the rules that
    apply to every type (such as the minimum-necessary removals, seed 002 s2.3)."""
    tables = []
    for message_type in MessageType:
        rows = [rule_row(r) for r in policy.rules
                if r.types is not None and message_type.value in r.types]
        if rows:
            tables.append(TypeRules(message_type.value,
                                    titles.get(message_type.value, humanise(message_type.value)),
                                    rows))
    general = [rule_row(r) for r in policy.rules if r.types is None]
    if general:
        tables.append(TypeRules("every-type", "Every message type", general))
    return tables


def type_titles(schemas: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Each message type by its schema's title ('Court outcome')."""
    return {t.value: str(schemas.get(t.value, {}).get("title") or humanise(t.value))
            for t in MessageType}


def situation_words(situation: Mapping[str, Any], titles: Mapping[str, str]) -> list[str]:
    """A situation of ``gateway.pipeline.policy.diff`` in words, one line each."""
    lines = [
        titles.get(str(situation.get("type")), humanise(str(situation.get("type")))),
        f"From {KIND_WORDS.get(str(situation.get('sender')), str(situation.get('sender')))}"
        f" to {KIND_WORDS.get(str(situation.get('recipient')), str(situation.get('recipient')))}",
        ROUTE_WORDS.get(str(situation.get("route")), str(situation.get("route"))),
        CONSENT_STATE_WORDS.get(str(situation.get("consent")), str(situation.get("consent"))),
    ]
    for key, value in situation.items():
        if key.startswith("fact:"):
            lines.append(f"{humanise(key.removeprefix('fact:'))}: {_value_words(value)}")
    return lines


def decision_words(decision: Mapping[str, Any]) -> str:
    """'Shared, consent not needed (rule ra1-statutory)', 'Not shared: no rule allows it';
    removals listed after."""
    rule = decision.get("rule")
    consent = str(decision.get("consent"))
    if decision.get("decision") == "permit":
        words = f"Shared, consent {CONSENT_WORDS.get(consent, consent).lower()} (rule {rule})"
    elif rule == "default-deny":
        words = "Not shared: no rule allows it"
    elif consent in (Consent.REQUIRED.value, Consent.WRITTEN_REQUIRED.value):
        written = "written " if consent == Consent.WRITTEN_REQUIRED.value else ""
        words = (f"Not shared: the person's {written}consent is needed and not recorded "
                 f"(rule {rule})")
    else:
        words = f"Not shared: a rule forbids it (rule {rule})"
    removed: Sequence[str] = decision.get("redactions") or []
    if removed:
        words += "; removes " + ", ".join(humanise(p.rsplit("/", 1)[-1]).lower()
                                          for p in removed)
    return words


_EXPECTED_WORDS: Mapping[str, Mapping[str, str]] = {
    "decision": DECISION_WORDS,
    "consent": CONSENT_WORDS,
    "denied_because": {"no_permit": "no rule allows it", "forbidden": "a rule forbids it",
                       "consent_not_satisfied": "consent not given"},
}


def expectation_words(key: str, value: Any) -> str:
    """One expected or actual value of a test case, in words."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(humanise(str(p).rsplit("/", 1)[-1]).lower() for p in value) or "none"
    return _EXPECTED_WORDS.get(key, {}).get(str(value), str(value))


def change_summary(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """What kind of change a changed decision is, to count past shares by it."""
    return f"{decision_words(before)} → {decision_words(after)}"
