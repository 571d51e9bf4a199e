"""Who may do what: one table for every action on a resource, and the handbook's table of
who sends which message type to whom. Pure: no I/O, nothing read from a request.

Authority comes from the roles the gateway has granted (``Principal.roles``), never from
what a caller claims. Each action in ``AUTHORITY`` lists the allowances that permit it —
a set of roles, and whether the resource must belong to the caller's own organisation —
modelled on GOV.UK Notify's per-service permissions beside a separate platform-admin role,
and X-Road's security-server roles. Anything not listed is refused (deny by default).

The message table follows the handbook's flows (DOMAIN.md, "The five message types"): police send
RA1/RA2 to a CJIT (H 4.6.1); CJITs exchange the DIR and its acceptance (IE4a/IE4b,
IPAE7a/7b), refer to prison CARAT teams and alert police or probation on disengagement
(H 2.5, 4.1.2, 4.11.3) and report an initial assessment's outcome to probation for a
person on a DRR (H 4.7.1); CARAT teams notify the CJIT on release; courts send outcomes
to the CJIT, probation and CARAT teams (H 3.3). Anything not listed is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum

from gateway.domain.errors import AccessDenied
from gateway.domain.model import (
    AGENCY_KINDS,
    MessageType,
    Organisation,
    OrgKind,
    Person,
    Principal,
    Role,
)


class Action(StrEnum):
    """Everything a caller may ask to do, in the words a refusal uses."""

    SEND = "send messages"
    RECEIVE = "read and acknowledge the organisation's inbox"
    READ_STATUS = "read a message's status"
    DECIDE = "ask for a sharing decision"
    HANDLE_CONSENT = "record, read or withdraw consent"
    VIEW_DELIVERY = "see the organisation's delivery channel"
    CHOOSE_DELIVERY = "choose the organisation's delivery channel"
    EDIT_CONTACT = "change the organisation's SPOC contact"
    REGISTER_SYSTEM_KEY = "register or remove a key of the organisation's systems"
    VIEW_PEOPLE = "see the organisation's people and their roles"
    MANAGE_PEOPLE = "add people to the organisation and register or remove their keys"
    GRANT_TEAM_ROLE = "grant or revoke spoc and ig_lead"
    GRANT_ORG_ADMIN = "grant or revoke organisation administrator"
    GRANT_OVERSIGHT_ROLE = "grant or revoke auditor and directory_admin"
    IMPORT_DIRECTORY = "preview, propose or approve a directory import"
    WORK_ON_POLICY = "validate, test, compare, simulate, propose or approve sharing policies"
    READ_AUDIT = "read the audit log"
    FOLLOW_AUDIT = "follow the audit log's signed checkpoints and proofs"


class Scope(Enum):
    OWN_ORGANISATION = "own organisation"
    ANY_ORGANISATION = "any organisation"


@dataclass(frozen=True, slots=True)
class Allowance:
    roles: frozenset[Role]
    scope: Scope


def _own(*roles: Role) -> Allowance:
    return Allowance(frozenset(roles), Scope.OWN_ORGANISATION)


def _any(*roles: Role) -> Allowance:
    return Allowance(frozenset(roles), Scope.ANY_ORGANISATION)


# The one table of authority. Read a row as: "<action> is allowed to <roles> on <scope>".
AUTHORITY: Mapping[Action, tuple[Allowance, ...]] = {
    Action.SEND: (_own(Role.SYSTEM, Role.SPOC),),
    Action.RECEIVE: (_own(Role.SYSTEM, Role.SPOC),),
    Action.READ_STATUS: (_own(Role.SYSTEM, Role.SPOC),),
    Action.DECIDE: (_own(Role.SYSTEM, Role.SPOC),),
    Action.HANDLE_CONSENT: (_own(Role.SYSTEM, Role.SPOC),),
    Action.VIEW_DELIVERY: (
        _own(Role.SYSTEM, Role.SPOC, Role.IG_LEAD, Role.ORG_ADMIN), _any(Role.DIRECTORY_ADMIN),
    ),
    Action.CHOOSE_DELIVERY: (_own(Role.IG_LEAD, Role.ORG_ADMIN), _any(Role.DIRECTORY_ADMIN)),
    # The SPOC's secure address receives alert notices: as guarded as the channel itself.
    Action.EDIT_CONTACT: (_own(Role.IG_LEAD, Role.ORG_ADMIN), _any(Role.DIRECTORY_ADMIN)),
    Action.REGISTER_SYSTEM_KEY: (
        _own(Role.IG_LEAD, Role.ORG_ADMIN), _any(Role.DIRECTORY_ADMIN),
    ),
    Action.VIEW_PEOPLE: (_own(Role.IG_LEAD, Role.ORG_ADMIN), _any(Role.DIRECTORY_ADMIN)),
    Action.MANAGE_PEOPLE: (_own(Role.ORG_ADMIN), _any(Role.DIRECTORY_ADMIN)),
    # spoc and ig_lead are the organisation's own business: its administrators grant them.
    Action.GRANT_TEAM_ROLE: (_own(Role.ORG_ADMIN),),
    # The first administrator comes from the operator; later ones from any administrator.
    Action.GRANT_ORG_ADMIN: (_own(Role.ORG_ADMIN), _any(Role.DIRECTORY_ADMIN)),
    Action.GRANT_OVERSIGHT_ROLE: (_any(Role.DIRECTORY_ADMIN),),
    Action.IMPORT_DIRECTORY: (_any(Role.DIRECTORY_ADMIN),),
    Action.WORK_ON_POLICY: (_any(Role.IG_LEAD),),
    Action.READ_AUDIT: (_any(Role.AUDITOR),),
    # Checkpoints and proofs are hashes and signatures, no personal data: an agency
    # checking that its receipts stay in the log and that the log never forks needs them
    # (gateway.http.routes.audit).
    Action.FOLLOW_AUDIT: (
        _own(Role.SYSTEM, Role.SPOC, Role.IG_LEAD, Role.ORG_ADMIN), _any(Role.AUDITOR),
    ),
}

# Which action grants each role, and which kinds of organisation its holder may belong to.
GRANTED_THROUGH: Mapping[Role, Action] = {
    Role.SPOC: Action.GRANT_TEAM_ROLE,
    Role.IG_LEAD: Action.GRANT_TEAM_ROLE,
    Role.ORG_ADMIN: Action.GRANT_ORG_ADMIN,
    Role.AUDITOR: Action.GRANT_OVERSIGHT_ROLE,
    Role.DIRECTORY_ADMIN: Action.GRANT_OVERSIGHT_ROLE,
}
HELD_IN: Mapping[Role, frozenset[OrgKind]] = {
    Role.SPOC: AGENCY_KINDS,
    Role.IG_LEAD: AGENCY_KINDS,
    Role.ORG_ADMIN: AGENCY_KINDS | {OrgKind.OVERSIGHT},
    Role.AUDITOR: frozenset({OrgKind.OVERSIGHT}),
    Role.DIRECTORY_ADMIN: frozenset({OrgKind.OPERATOR}),
}


def allowed(principal: Principal, action: Action, org_code: str | None = None) -> bool:
    """Whether the caller may take ``action`` on a resource of ``org_code`` (None: a
    resource of no one organisation, which only an any-organisation allowance covers)."""
    for allowance in AUTHORITY.get(action, ()):
        if not principal.roles & allowance.roles:
            continue
        if allowance.scope is Scope.ANY_ORGANISATION or org_code == principal.org.code:
            return True
    return False


def authorise(principal: Principal, action: Action, org_code: str | None = None) -> None:
    """Refuse, naming what is needed, unless ``allowed``."""
    if allowed(principal, action, org_code):
        return
    needs = " or ".join(
        f"{'/'.join(sorted(r.value for r in a.roles))} "
        f"{'of that organisation' if a.scope is Scope.OWN_ORGANISATION else '(any organisation)'}"
        for a in AUTHORITY.get(action, ())
    )
    raise AccessDenied(f"You may not {action.value}: that needs {needs or 'a grant'}.")


def check_grant(principal: Principal, person: Person, person_org: Organisation, role: Role) -> None:
    """May this caller grant (or revoke) ``role`` to ``person``? Never their own roles."""
    if role is Role.SYSTEM:
        raise AccessDenied("The system role belongs to machine keys and is never granted.")
    authorise(principal, GRANTED_THROUGH[role], person.org_code)
    if principal.person is not None and principal.person.id == person.id:
        raise AccessDenied("No one grants or revokes their own roles; ask another administrator.")
    if person_org.kind not in HELD_IN[role]:
        kinds = ", ".join(sorted(k.value for k in HELD_IN[role]))
        raise AccessDenied(
            f"{role.value} is held only by people of a {kinds} organisation; "
            f"{person.org_code} is {person_org.kind.value}."
        )


def check_second_person(principal: Principal, first: str, what: str) -> None:
    """Two-person rule: the approver must be a verified person other than ``first``,
    compared by directory person id, never by a caller-chosen string."""
    if principal.person is None:
        raise AccessDenied(f"Only a person may approve {what}; a system cannot.")
    if principal.person.id == first:
        raise AccessDenied(f"{what.capitalize()} needs a second person: its author cannot "
                           "approve it.")


# Consent is recorded and read by the services that hold the care relationship (CONTRACT.md).
CONSENT_KINDS = frozenset({OrgKind.CJIT, OrgKind.CARAT, OrgKind.PROBATION})


def check_consent_handler(principal: Principal) -> None:
    """Record, list or withdraw consent: a CJIT, CARAT or probation system or SPOC."""
    authorise(principal, Action.HANDLE_CONSENT, principal.org.code)
    if principal.org.kind not in CONSENT_KINDS:
        raise AccessDenied("Only CJIT, CARAT and probation organisations record or read consent.")


def check_consent_withdrawal(
    principal: Principal, recorded_by: str, managing_cjit: str | None
) -> None:
    """A consent is withdrawn by the organisation that recorded it, or by the CJIT managing
    the person (H 4.2: the CJIT holds the care relationship)."""
    if principal.org.code in (recorded_by, managing_cjit):
        return
    raise AccessDenied(
        f"This consent was recorded by {recorded_by}; only it, or the CJIT managing the "
        "person, may withdraw it."
    )

SENDING_RULES: Mapping[MessageType, Mapping[OrgKind, frozenset[OrgKind]]] = {
    MessageType.RA1_NOTICE: {OrgKind.POLICE: frozenset({OrgKind.CJIT})},
    # H 4.6.1: the police copy a variation to the CJIT; a CJIT that rearranges tells the
    # CJIT running the appointment, and the police only where local arrangements say so.
    MessageType.RA2_VARIATION: {
        OrgKind.POLICE: frozenset({OrgKind.CJIT}),
        OrgKind.CJIT: frozenset({OrgKind.CJIT, OrgKind.POLICE}),
    },
    MessageType.DIR_TRANSFER: {OrgKind.CJIT: frozenset({OrgKind.CJIT})},
    MessageType.DIR_ACCEPTANCE: {OrgKind.CJIT: frozenset({OrgKind.CJIT})},
    # H 2.5 both ways; H 4.1: on release under licence probation takes over, so the CARAT
    # team tells the offender manager too.
    MessageType.CARAT_REFERRAL: {
        OrgKind.CJIT: frozenset({OrgKind.CARAT}),
        OrgKind.CARAT: frozenset({OrgKind.CJIT, OrgKind.PROBATION}),
    },
    MessageType.COURT_OUTCOME: {
        OrgKind.COURT: frozenset({OrgKind.CJIT, OrgKind.PROBATION, OrgKind.CARAT}),
    },
    # H 4.1.2 "police/partnership": PPO/IOM schemes are the partnership's (H 2.7).
    MessageType.DISENGAGEMENT_ALERT: {
        OrgKind.CJIT: frozenset({OrgKind.POLICE, OrgKind.PROBATION, OrgKind.PPO_IOM}),
    },
    # H 4.7.1: a person already on a DRR is reported to probation, not followed up.
    MessageType.ASSESSMENT_OUTCOME: {OrgKind.CJIT: frozenset({OrgKind.PROBATION})},
    # IPAE2, H 4.9.2: police refer a person who wants help to the CJIT.
    MessageType.PROACTIVE_REFERRAL: {OrgKind.POLICE: frozenset({OrgKind.CJIT})},
    # H 4.1.1: a conditional caution with a DIP condition is the police's disposal.
    MessageType.CONDITIONAL_CAUTION_NOTICE: {OrgKind.POLICE: frozenset({OrgKind.CJIT})},
    # Com 5a, Com 5b (4): probation tells the CJIT how the DRR goes and when it ends.
    MessageType.DRR_PROGRESS: {OrgKind.PROBATION: frozenset({OrgKind.CJIT})},
    # H 2.6, 4.1.3: probation asks, the CJIT answers, before sentence.
    MessageType.DRR_SUITABILITY: {
        OrgKind.PROBATION: frozenset({OrgKind.CJIT}),
        OrgKind.CJIT: frozenset({OrgKind.PROBATION}),
    },
    # H 4.1.3 note: the CJIT of residence asks the CJIT by the prison to meet the person.
    MessageType.GATE_PICKUP: {OrgKind.CJIT: frozenset({OrgKind.CJIT})},
    # H 4.2 ¶2: CJITs, the CPS and courts share what compliance needs.
    MessageType.COMPLIANCE_REPORT: {OrgKind.CJIT: frozenset({OrgKind.COURT, OrgKind.CPS})},
    # H 2.7, Com 5b (8): a case moves to a PPO or IOM scheme.
    MessageType.PPO_NOMINATION: {OrgKind.CJIT: frozenset({OrgKind.PPO_IOM})},
    # Com 4, Com 5b (7): a case moves to community treatment.
    MessageType.TREATMENT_REFERRAL: {OrgKind.CJIT: frozenset({OrgKind.TREATMENT_PROVIDER})},
    # H 4.1.3: treatment providers tell the case manager how the person attends.
    MessageType.TREATMENT_PROGRESS: {OrgKind.TREATMENT_PROVIDER: frozenset({OrgKind.CJIT})},
    # H 2.6, 4.1: once a DRR is imposed, treatment and support pass to probation.
    MessageType.DRR_HANDOVER: {OrgKind.CJIT: frozenset({OrgKind.PROBATION})},
}

# Where two kinds of organisation send one type in opposite directions, the body says
# which (type -> body field -> the values each sending kind may give): a CJIT refers a
# person into custody and the prison's CARAT team notifies release (H 2.5); probation asks
# about DRR suitability and the CJIT answers (H 2.6); a CJIT's own RA2 says the CJIT
# varied the arrangements, while the police may send one for arrangements either of them
# made (H 4.6.1).
SENDER_STATES: Mapping[MessageType, tuple[str, Mapping[OrgKind, frozenset[str]]]] = {
    MessageType.CARAT_REFERRAL: ("direction", {
        OrgKind.CJIT: frozenset({"into_custody"}), OrgKind.CARAT: frozenset({"release"})}),
    MessageType.RA2_VARIATION: ("varied_by", {
        OrgKind.POLICE: frozenset({"police", "cjit"}), OrgKind.CJIT: frozenset({"cjit"})}),
    MessageType.DRR_SUITABILITY: ("direction", {
        OrgKind.PROBATION: frozenset({"request"}), OrgKind.CJIT: frozenset({"assessment"})}),
}


def check_sender(principal: Principal, sender_code: object, message_type: object) -> None:
    """Refuse sending as another organisation or a type the caller's kind never sends.

    Runs before schema validation so that an unauthorised caller learns nothing about
    the document's validity.
    """
    authorise(principal, Action.SEND, principal.org.code)
    if isinstance(sender_code, str) and sender_code != principal.org.code:
        raise AccessDenied(
            f"'from' is {sender_code!r} but the token belongs to {principal.org.code!r}; "
            "an organisation may only send as itself."
        )
    known_type = isinstance(message_type, str) and message_type in MessageType.__members__.values()
    if known_type and principal.org.kind not in SENDING_RULES[MessageType(str(message_type))]:
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
    """The body must say what the sender's kind does with this type (``SENDER_STATES``)."""
    rule = SENDER_STATES.get(message_type)
    if rule is None or not isinstance(body, dict):
        return
    field, by_kind = rule
    allowed = by_kind.get(sender.kind, frozenset())
    if body.get(field) not in allowed:
        values = " or ".join(repr(v) for v in sorted(allowed))
        raise AccessDenied(
            f"A {sender.kind.value} organisation sends {message_type.value} messages only "
            f"with {field} {values}."
        )
