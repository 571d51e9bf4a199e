"""Who may send which message type to whom, and which roles may call what. No I/O.

The table follows the handbook's flows (DOMAIN.md, "The five message types"): police send
RA1/RA2 to a CJIT (H 4.6.1); CJITs exchange the DIR and its acceptance (IE4a/IE4b,
IPAE7a/7b), refer to prison CARAT teams and alert police or probation on disengagement
(H 2.5, 4.1.2, 4.11.3) and report an initial assessment's outcome to probation for a
person on a DRR (H 4.7.1); CARAT teams notify the CJIT on release; courts send outcomes
to the CJIT, probation and CARAT teams (H 3.3). Anything not listed is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.errors import AccessDenied
from gateway.model import MessageType, Organisation, OrgKind, Principal, Role

SENDING_RULES: Mapping[MessageType, Mapping[OrgKind, frozenset[OrgKind]]] = {
    MessageType.RA1_NOTICE: {OrgKind.POLICE: frozenset({OrgKind.CJIT})},
    MessageType.RA2_VARIATION: {OrgKind.POLICE: frozenset({OrgKind.CJIT})},
    MessageType.DIR_TRANSFER: {OrgKind.CJIT: frozenset({OrgKind.CJIT})},
    MessageType.DIR_ACCEPTANCE: {OrgKind.CJIT: frozenset({OrgKind.CJIT})},
    MessageType.CARAT_REFERRAL: {
        OrgKind.CJIT: frozenset({OrgKind.CARAT}),
        OrgKind.CARAT: frozenset({OrgKind.CJIT}),
    },
    MessageType.COURT_OUTCOME: {
        OrgKind.COURT: frozenset({OrgKind.CJIT, OrgKind.PROBATION, OrgKind.CARAT}),
    },
    MessageType.DISENGAGEMENT_ALERT: {
        OrgKind.CJIT: frozenset({OrgKind.POLICE, OrgKind.PROBATION}),
    },
    # H 4.7.1: a person already on a DRR is reported to probation, not followed up.
    MessageType.ASSESSMENT_OUTCOME: {OrgKind.CJIT: frozenset({OrgKind.PROBATION})},
}

# A CJIT refers a person into custody; the prison's CARAT team notifies release (H 2.5).
CARAT_REFERRAL_DIRECTION: Mapping[OrgKind, str] = {
    OrgKind.CJIT: "into_custody",
    OrgKind.CARAT: "release",
}

SENDER_ROLES = frozenset({Role.SYSTEM, Role.SPOC})
RECIPIENT_ROLES = frozenset({Role.SYSTEM, Role.SPOC})


def require_role(principal: Principal, allowed: frozenset[Role]) -> None:
    if principal.role not in allowed:
        names = ", ".join(sorted(r.value for r in allowed))
        raise AccessDenied(f"The {principal.role.value} role may not do this; it needs {names}.")


def check_sender(principal: Principal, sender_code: object, message_type: object) -> None:
    """Refuse sending as another organisation or a type the caller's kind never sends.

    Runs before schema validation so that an unauthorised caller learns nothing about
    the document's validity.
    """
    require_role(principal, SENDER_ROLES)
    if isinstance(sender_code, str) and sender_code != principal.org.code:
        raise AccessDenied(
            f"'from' is {sender_code!r} but the token belongs to {principal.org.code!r}; "
            "an organisation may only send as itself."
        )
    if isinstance(message_type, str) and message_type in MessageType.__members__.values():
        kinds = SENDING_RULES[MessageType(message_type)]
        if principal.org.kind not in kinds:
            raise AccessDenied(
                f"A {principal.org.kind.value} organisation may not send {message_type} messages."
            )


def check_recipients(
    sender: Organisation, message_type: MessageType, recipients: Sequence[Organisation]
) -> None:
    allowed = SENDING_RULES[message_type].get(sender.kind, frozenset())
    for recipient in recipients:
        if recipient.kind not in allowed:
            raise AccessDenied(
                f"{recipient.code} is a {recipient.kind.value} organisation, which may not "
                f"receive {message_type.value} messages from a {sender.kind.value}."
            )


def check_body_rules(sender: Organisation, message_type: MessageType, body: object) -> None:
    if message_type is MessageType.CARAT_REFERRAL and isinstance(body, dict):
        expected = CARAT_REFERRAL_DIRECTION.get(sender.kind)
        if body.get("direction") != expected:
            raise AccessDenied(
                f"A {sender.kind.value} organisation sends carat_referral messages only with "
                f"direction {expected!r}."
            )
