"""Deciding one share: Cedar's combination, deny by default, any forbid wins. No I/O.

1. A forbid rule that applies denies, whatever permits say.
2. Otherwise a permit rule that applies and whose consent need is met permits; the
   first such rule in file order decides, and the redactions of every such rule and of
   every applicable ``redact`` rule apply (minimum necessary: redactions only accumulate).
3. Permit rules that apply but whose consent need is unmet deny, saying what consent
   would be needed.
4. Nothing applies: deny. Silence is never permission.
"""

from __future__ import annotations

from dataclasses import replace

from gateway.domain.model import Consent, Decision
from gateway.pipeline.policy.rules import Effect, Facts, PolicySet, consent_satisfies

DEFAULT_DENY = "default-deny"
_STRENGTH = {Consent.NOT_REQUIRED: 0, Consent.REQUIRED: 1, Consent.WRITTEN_REQUIRED: 2}


def evaluate(policy: PolicySet, facts: Facts) -> Decision:
    return replace(
        _evaluate(policy, facts), consent_state=facts.consent.value, purpose=facts.purpose
    )


def _evaluate(policy: PolicySet, facts: Facts) -> Decision:
    applicable = [rule for rule in policy.candidates(facts.message_type) if rule.applies(facts)]
    forbids = [rule for rule in applicable if rule.effect is Effect.FORBID]
    permits = [rule for rule in applicable if rule.effect is Effect.PERMIT]
    weakest_need = min((r.consent for r in permits), key=_STRENGTH.__getitem__, default=None)
    if forbids:
        first = forbids[0]
        return Decision(
            permitted=False,
            consent=weakest_need or Consent.NOT_REQUIRED,
            consent_satisfied=False,
            redactions=(),
            rule=first.id,
            rules=tuple(r.id for r in forbids),
            reason=first.reason,
            legal_basis=first.legal_basis,
            policy_version=policy.version,
            denied_because="forbidden",
        )
    satisfied = [r for r in permits if consent_satisfies(r.consent, facts.consent)]
    if satisfied:
        deciding = satisfied[0]
        redactions: list[str] = []
        for rule in [*satisfied, *(r for r in applicable if r.effect is Effect.REDACT)]:
            redactions += [p for p in rule.redact if p not in redactions]
        return Decision(
            permitted=True,
            consent=deciding.consent,
            consent_satisfied=True,
            redactions=tuple(redactions),
            rule=deciding.id,
            rules=tuple(r.id for r in satisfied),
            reason=deciding.reason,
            legal_basis=deciding.legal_basis,
            policy_version=policy.version,
        )
    if permits:
        first = min(permits, key=lambda r: _STRENGTH[r.consent])
        return Decision(
            permitted=False,
            consent=first.consent,
            consent_satisfied=False,
            redactions=(),
            rule=first.id,
            rules=tuple(r.id for r in permits),
            reason=(
                f"{first.reason} This needs the person's "
                f"{'written ' if first.consent is Consent.WRITTEN_REQUIRED else ''}consent"
                f"{f' for {facts.purpose}' if facts.purpose else ''}, and the consent "
                f"register says: {facts.consent.value}."
            ),
            legal_basis=first.legal_basis,
            policy_version=policy.version,
            denied_because="consent_not_satisfied",
        )
    return Decision(
        permitted=False,
        consent=Consent.NOT_REQUIRED,
        consent_satisfied=False,
        redactions=(),
        rule=DEFAULT_DENY,
        reason="No rule of the sharing policy permits this share.",
        legal_basis="none: sharing is refused unless a rule permits it",
        policy_version=policy.version,
        denied_because="no_permit",
    )
