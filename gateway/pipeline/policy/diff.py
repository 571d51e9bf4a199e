"""Comparing decisions: two policy versions over every case, or a draft over recorded
traffic. No I/O: storage hands in the recorded shares."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.domain.model import AGENCY_KINDS, Decision, MessageType, OrgKind, Route
from gateway.pipeline.policy.evaluate import evaluate
from gateway.pipeline.policy.facts import FACT_SOURCES, purpose_of
from gateway.pipeline.policy.rules import ConsentState, Facts, PolicySet

ABSENT = None


@dataclass(frozen=True, slots=True)
class Change:
    """One situation decided differently, with both decisions."""

    situation: Mapping[str, Any]
    before: Mapping[str, Any]
    after: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"situation": dict(self.situation), "before": dict(self.before),
                "after": dict(self.after)}

    def describe(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.situation.items() if v is not None)
        return (
            f"{where}\n    before: {_short(self.before)}\n    after:  {_short(self.after)}"
        )


def _short(decision: Mapping[str, Any]) -> str:
    text = f"{decision['decision']} by {decision['rule']} (consent {decision['consent']})"
    if decision.get("redactions"):
        text += f", redacting {', '.join(decision['redactions'])}"
    return text


_COMPARED = ("decision", "rule", "consent", "consent_satisfied", "redactions")


def _view(decision: Decision) -> dict[str, Any]:
    full = decision.as_dict()
    return {key: full[key] for key in _COMPARED}


def fact_domains(schemas: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, list[Any]]]:
    """For each message type, every value each of its facts can take, absent included.

    Read from the message schemas, so new enum values are covered without code changes.
    """
    domains: dict[str, dict[str, list[Any]]] = {}
    for fact, sources in FACT_SOURCES.items():
        for message_type, path in sources.items():
            node: Any = schemas.get(message_type, {})
            for key in path:
                node = node.get("properties", {}).get(key, {})
            if "enum" in node:
                values: list[Any] = list(node["enum"])
            elif node.get("type") == "boolean":
                values = [True, False]
            else:
                continue
            domains.setdefault(message_type, {})[fact] = [*values, ABSENT]
    return domains


def situations(domains: Mapping[str, Mapping[str, Sequence[Any]]]) -> Iterator[Facts]:
    """Every combination of message type, route, sender kind, recipient kind, consent
    state and the type's fact values, each with the purpose the gateway finds for it."""
    kinds = [k.value for k in OrgKind if k in AGENCY_KINDS]
    for message_type in MessageType:
        facts_of_type = domains.get(message_type.value, {})
        names = sorted(facts_of_type)
        for values in itertools.product(*(facts_of_type[n] for n in names)):
            message = {n: v for n, v in zip(names, values, strict=True) if v is not ABSENT}
            for route, sender, recipient, consent in itertools.product(
                [r.value for r in Route], kinds, kinds, list(ConsentState)
            ):
                yield Facts(message_type.value, route, sender, recipient, consent, message,
                            purpose_of(message_type.value, message))


def _situation(facts: Facts) -> dict[str, Any]:
    return {
        "type": facts.message_type,
        "route": facts.route,
        "sender": facts.sender_kind,
        "recipient": facts.recipient_kind,
        "consent": facts.consent.value,
        **{f"fact:{k}": v for k, v in sorted(facts.message.items())},
    }


def diff(before: PolicySet, after: PolicySet, cases: Iterable[Facts]) -> list[Change]:
    changes = []
    for facts in cases:
        old, new = _view(evaluate(before, facts)), _view(evaluate(after, facts))
        if old != new:
            changes.append(Change(_situation(facts), old, new))
    return changes


@dataclass(frozen=True, slots=True)
class Replay:
    """A recorded share, ready to decide again: its facts and the decision it got."""

    message_id: str
    recipient: str
    facts: Facts
    decision: Decision


def simulate(draft: PolicySet, recorded: Iterable[Replay]) -> list[Change]:
    changes = []
    for share in recorded:
        old, new = _view(share.decision), _view(evaluate(draft, share.facts))
        if old != new:
            situation = {"message_id": share.message_id, "recipient": share.recipient,
                         **_situation(share.facts)}
            changes.append(Change(situation, old, new))
    return changes
