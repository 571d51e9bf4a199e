"""Recipient resolution: turn the envelope's ``to`` into directory organisations. No I/O.

Whether ``to`` agrees with what the body names is ``gateway.pipeline.consistency``'s question.
"""

from __future__ import annotations

from typing import Protocol

from gateway.domain.errors import InvalidMessage, Violation
from gateway.domain.model import Envelope, Organisation


class OrganisationLookup(Protocol):
    """Finds an organisation by code: the directory's snapshot, as the caller holds it."""

    def get(self, code: str) -> Organisation | None: ...


def resolve_recipients(
    envelope: Envelope, directory: OrganisationLookup
) -> list[Organisation]:
    """Every addressed organisation, in order; unknown codes are reported together."""
    found: list[Organisation] = []
    unknown: list[Violation] = []
    for index, code in enumerate(envelope.recipients):
        org = directory.get(code)
        if org is None:
            unknown.append(
                Violation(
                    f"/to/{index}", f"No organisation with code {code!r} is in the directory."
                )
            )
        else:
            found.append(org)
    if unknown:
        raise InvalidMessage(unknown)
    return found
