"""Facts a policy may test, read from a message body. No I/O.

Each fact names where it comes from per message type. A fact the body does not state
(field absent, or the type does not carry it) is left out, so rules cannot guess it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.policy.rules import FactValue

# fact name -> {message type -> path of the body member it is read from}
FACT_SOURCES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "on_drr": {
        "assessment_outcome": ("subject_on_drr",),
        "court_outcome": ("drr_attached",),
    },
    "disengagement_event": {"disengagement_alert": ("event",)},
    "statutory": {"disengagement_alert": ("statutory",)},
    "court_outcome": {"court_outcome": ("outcome",)},
    "carat_direction": {"carat_referral": ("direction",)},
    "assessment_outcome": {"assessment_outcome": ("outcome",)},
    "dir_acceptance_outcome": {"dir_acceptance": ("outcome",)},
}

FACT_NAMES = frozenset(FACT_SOURCES)


def message_facts(message_type: str, body: Mapping[str, Any]) -> dict[str, FactValue]:
    found: dict[str, FactValue] = {}
    for name, sources in FACT_SOURCES.items():
        path = sources.get(message_type)
        if path is None:
            continue
        node: Any = body
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, str | bool):
            found[name] = node
    return found
