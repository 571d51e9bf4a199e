"""The decision seam: one call per message and recipient, stored with the message.

The sharing-policy layer replaces :func:`placeholder_decision` (and nothing else). Until
then every message is permitted without consent, which the decision says plainly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from gateway.model import Consent, Decision, Envelope, Organisation


class DecideFunction(Protocol):
    def __call__(
        self, envelope: Envelope, sender: Organisation, recipient: Organisation
    ) -> Decision: ...


PLACEHOLDER_DECISION = Decision(
    permitted=True,
    consent=Consent.NOT_REQUIRED,
    consent_satisfied=True,
    redactions=(),
    rule="placeholder",
    legal_basis="placeholder: no sharing policy is loaded yet, so every message is permitted",
    policy_version="placeholder",
)


def placeholder_decision(
    envelope: Envelope, sender: Organisation, recipient: Organisation
) -> Decision:
    return PLACEHOLDER_DECISION


def combined(decisions: Sequence[Decision]) -> dict[str, Any]:
    """The single ``decision`` member of an answer: shared when every recipient's agrees."""
    views = [d.as_dict() for d in decisions]
    if all(v == views[0] for v in views):
        return views[0]
    return {
        "decision": "permit" if any(d.permitted for d in decisions) else "deny",
        "varies_by_recipient": True,
        "policy_version": decisions[0].policy_version,
    }
