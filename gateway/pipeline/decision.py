"""Combining per-recipient decisions into the single ``decision`` of an answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.domain.model import Decision


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
