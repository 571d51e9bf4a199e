"""A policy's own test cases: message facts and consent state → expected decision. No I/O.

Cases live beside the policy (``<name>.cases.yaml``) so an IG lead changing a rule sees
at once which agreed outcomes it breaks. One case may list expectations for several
consent states::

    - name: RA1 to the assessing CJIT
      rule_of_handbook: 1
      message: {type: ra1_notice, route: enforcement, sender: police, recipient: cjit}
      expect:
        none: {decision: permit, rule: ra1-statutory}
        withdrawn: permit
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.domain.errors import InvalidPolicy, Violation
from gateway.domain.model import Decision
from gateway.pipeline.policy.evaluate import evaluate
from gateway.pipeline.policy.facts import purpose_of
from gateway.pipeline.policy.rules import ConsentState, Facts, PolicySet

_CHECKED = ("decision", "rule", "consent", "consent_satisfied", "redactions", "denied_because")


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    consent: ConsentState
    passed: bool
    expected: Mapping[str, Any]
    actual: Mapping[str, Any]

    def describe(self) -> str:
        if self.passed:
            return f"ok   {self.name} [consent {self.consent.value}]"
        differences = ", ".join(
            f"{key}: expected {self.expected[key]!r}, got {self.actual.get(key)!r}"
            for key in self.expected
            if self.expected[key] != self.actual.get(key)
        )
        return f"FAIL {self.name} [consent {self.consent.value}]: {differences}"


def facts_of(message: Mapping[str, Any], consent: ConsentState) -> Facts:
    """A case's situation. Its purpose is the one the gateway would find for that message
    (``gateway.pipeline.policy.facts``) unless the case names one, to show what a rule does with
    a share made for another purpose. The consent state is the register's answer for that
    purpose."""
    facts = dict(message.get("facts", {}))
    return Facts(
        message_type=message["type"],
        route=message["route"],
        sender_kind=message["sender"],
        recipient_kind=message["recipient"],
        consent=consent,
        message=facts,
        purpose=message.get("purpose", purpose_of(message["type"], facts)),
    )


def run_cases(policy: PolicySet, document: Any) -> list[CaseResult]:
    cases = document.get("cases") if isinstance(document, Mapping) else None
    if not isinstance(cases, list) or not cases:
        raise InvalidPolicy([Violation("/cases", "The cases file must hold a list 'cases'.")])
    results = []
    for index, case in enumerate(cases):
        try:
            name = str(case["name"])
            message = case["message"]
            expectations = case["expect"]
            for state, expected in expectations.items():
                consent = ConsentState(state)
                wanted = {"decision": expected} if isinstance(expected, str) else dict(expected)
                decision = evaluate(policy, facts_of(message, consent))
                actual = _comparable(decision)
                passed = all(actual.get(k) == v for k, v in wanted.items() if k in _CHECKED)
                results.append(CaseResult(name, consent, passed, wanted, actual))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problem = f"This case is malformed ({type(exc).__name__}: {exc})."
            raise InvalidPolicy([Violation(f"/cases/{index}", problem)]) from None
    return results


def _comparable(decision: Decision) -> dict[str, Any]:
    view = decision.as_dict()
    return {key: view.get(key) for key in _CHECKED}
