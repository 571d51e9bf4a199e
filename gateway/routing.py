"""Recipient resolution: turn the envelope's ``to`` into directory organisations. No I/O.

Whether ``to`` agrees with what the body names is ``gateway.consistency``'s question.
"""

from __future__ import annotations

from gateway.directory import Directory
from gateway.errors import InvalidMessage, Violation
from gateway.model import Envelope, Organisation


def resolve_recipients(envelope: Envelope, directory: Directory) -> list[Organisation]:
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
