"""Recipient resolution: turn the envelope's ``to`` into directory organisations. No I/O."""

from __future__ import annotations

from gateway.directory import Directory
from gateway.errors import InvalidMessage, Violation
from gateway.model import Envelope, MessageType, Organisation

# Types whose body names the organisation that must receive them (pointer into the body).
_NAMED_RECIPIENT = {
    MessageType.RA1_NOTICE: ("initial_assessment", "organisation"),
}


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
    named = _named_recipient(envelope)
    if named is not None and named[1] not in envelope.recipients:
        unknown.append(
            Violation(
                named[0],
                f"{named[1]} runs the initial assessment, so it must be one of the "
                "recipients in 'to' (H 4.6.1 vii: police inform that CJIT in writing).",
            )
        )
    if unknown:
        raise InvalidMessage(unknown)
    return found


def _named_recipient(envelope: Envelope) -> tuple[str, str] | None:
    path = _NAMED_RECIPIENT.get(envelope.type)
    if path is None:
        return None
    node: object = envelope.document.get("body")
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return ("/body/" + "/".join(path), node) if isinstance(node, str) else None
