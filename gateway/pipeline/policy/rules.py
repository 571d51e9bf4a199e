"""Typed policy rules and the facts they test. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.domain.model import Consent

FactValue = str | bool


class Effect(StrEnum):
    PERMIT = "permit"
    FORBID = "forbid"
    # Never permits or denies: adds its redactions to any permit it applies to.
    REDACT = "redact"


class ConsentState(StrEnum):
    """The person's consent to share with one recipient, from the consent register."""

    NONE = "none"
    VERBAL = "verbal"
    WRITTEN = "written"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


def consent_satisfies(needed: Consent, state: ConsentState) -> bool:
    if needed is Consent.NOT_REQUIRED:
        return True
    if needed is Consent.REQUIRED:
        return state in (ConsentState.VERBAL, ConsentState.WRITTEN)
    return state is ConsentState.WRITTEN


@dataclass(frozen=True, slots=True)
class Facts:
    """What the gateway knows about one message for one recipient.

    ``message`` holds facts read from the body; a fact the body does not state is
    absent, never guessed (see ``gateway.pipeline.policy.facts``). ``purpose`` is what the message
    is shared for (``gateway.pipeline.policy.facts.PURPOSES``), None when not known; ``consent`` is
    the register's answer for this recipient *and this purpose*.
    """

    message_type: str
    route: str
    sender_kind: str
    recipient_kind: str
    consent: ConsentState
    message: Mapping[str, FactValue] = field(default_factory=dict)
    purpose: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    effect: Effect
    reason: str
    legal_basis: str
    consent: Consent = Consent.NOT_REQUIRED
    redact: tuple[str, ...] = ()
    types: frozenset[str] | None = None
    routes: frozenset[str] | None = None
    senders: frozenset[str] | None = None
    recipients: frozenset[str] | None = None
    consent_states: frozenset[str] | None = None
    purposes: frozenset[str] | None = None
    facts: Mapping[str, frozenset[FactValue]] = field(default_factory=dict)

    def applies(self, facts: Facts) -> bool:
        """Whether the rule's conditions hold for these facts.

        Fail closed: a condition on a fact the message lacks holds for a forbid rule
        (so it still forbids) and fails for a permit rule (so it cannot permit).
        """
        if not (
            _allows(self.types, facts.message_type)
            and _allows(self.routes, facts.route)
            and _allows(self.senders, facts.sender_kind)
            and _allows(self.recipients, facts.recipient_kind)
            and _allows(self.consent_states, facts.consent.value)
        ):
            return False
        if self.purposes is not None:
            if facts.purpose is None:
                # Unknown purpose: as for an unknown fact, only a permit is stopped.
                if self.effect is Effect.PERMIT:
                    return False
            elif facts.purpose not in self.purposes:
                return False
        for name, accepted in self.facts.items():
            value = facts.message.get(name)
            if value is None:
                # Unknown fact: only a permit is stopped; forbid and redact still apply.
                if self.effect is Effect.PERMIT:
                    return False
                continue
            if value not in accepted:
                return False
        return True


def _allows(accepted: frozenset[str] | None, value: str) -> bool:
    return accepted is None or value in accepted


@dataclass(frozen=True, slots=True)
class PolicySet:
    """An ordered list of rules with its version, the content hash of its document."""

    name: str
    version: str
    rules: tuple[Rule, ...]
    by_type: Mapping[str | None, tuple[Rule, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, name: str, version: str, rules: tuple[Rule, ...]) -> PolicySet:
        """Index rules by message type so a decision looks only at the ones that can apply."""
        types = {t for rule in rules if rule.types for t in rule.types}
        index: dict[str | None, tuple[Rule, ...]] = {
            t: tuple(r for r in rules if r.types is None or t in r.types) for t in types
        }
        index[None] = tuple(r for r in rules if r.types is None)
        return cls(name=name, version=version, rules=rules, by_type=index)

    def candidates(self, message_type: str) -> tuple[Rule, ...]:
        return self.by_type.get(message_type, self.by_type.get(None, ()))
