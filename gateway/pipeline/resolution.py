"""Which organisations a message's body names as its recipients; working out the
recipients when a message omits ``to``, and saying how. No I/O.

Each rule (``namings``) reads what the message itself says (the handbook's named
organisation, the prison, the probation provider) or, where the handbook links messages,
who sent the message it answers; for a court outcome, ``resolve`` also uses which CJIT the
gateway's own records show managing the person. The caller looks those up first
(``Known``). When no rule finds a recipient, the sender must address the message: the
gateway never guesses. ``gateway.pipeline.consistency`` holds an addressed message to the same
namings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from gateway.domain.model import MessageType, Organisation, OrgKind
from gateway.pipeline.consent import SubjectKeys, same_person


@dataclass(frozen=True, slots=True)
class Involvement:
    """An earlier accepted message about a person: who sent it, who was permitted it."""

    message_type: str
    sender: str
    recipients: tuple[str, ...]
    received_at: datetime
    keys: SubjectKeys
    direction: str | None = None


@dataclass(frozen=True, slots=True)
class Resolved:
    code: str
    how: str


@dataclass(frozen=True, slots=True)
class Known:
    """What the gateway's records say that a rule may need."""

    # Sender organisation of each earlier message the body refers to, by message id.
    senders: Mapping[str, str]
    # The CJIT managing the person, from earlier messages about them (see managing_cjit).
    managing_cjit: str | None = None


# Which party of a message about a person is the CJIT taking them on (H 4.6, 4.7):
# the CJIT an RA or DIR transfer goes to, or the CJIT accepting, assessing or alerting.
_CJIT_TAKING_ON = {
    MessageType.RA1_NOTICE.value: "recipient",
    MessageType.RA2_VARIATION.value: "recipient",
    MessageType.DIR_TRANSFER.value: "recipient",
    MessageType.DIR_ACCEPTANCE.value: "sender",
    MessageType.ASSESSMENT_OUTCOME.value: "sender",
    MessageType.DISENGAGEMENT_ALERT.value: "sender",
    MessageType.PROACTIVE_REFERRAL.value: "recipient",
    MessageType.CONDITIONAL_CAUTION_NOTICE.value: "recipient",
    MessageType.DRR_PROGRESS.value: "recipient",
    MessageType.COMPLIANCE_REPORT.value: "sender",
    MessageType.PPO_NOMINATION.value: "sender",
    MessageType.TREATMENT_REFERRAL.value: "sender",
    MessageType.TREATMENT_PROGRESS.value: "recipient",
    MessageType.DRR_HANDOVER.value: "sender",
}


def managing_cjit(
    history: Sequence[Involvement], subject: SubjectKeys, organisations: Sequence[Organisation]
) -> str | None:
    """The CJIT managing a person: the one their latest CJIT-related message puts in charge.

    Only messages about the same person count (PNC ID, else name and date of birth); None
    when no message names a CJIT, or the latest names more than one.
    """
    cjits = {o.code for o in organisations if o.kind is OrgKind.CJIT}
    for item in sorted(history, key=lambda i: i.received_at, reverse=True):
        if not same_person(subject, item.keys):
            continue
        role = _CJIT_TAKING_ON.get(item.message_type)
        if item.message_type == MessageType.CARAT_REFERRAL.value and item.direction == "release":
            role = "recipient"
        if role is None:
            continue
        parties = (item.sender,) if role == "sender" else item.recipients
        named = [code for code in parties if code in cjits]
        if named:
            return named[0] if len(named) == 1 else None
    return None


def related_ids(message_type: str, body: Mapping[str, Any]) -> list[str]:
    """Ids of earlier messages whose senders a rule needs (looked up by the caller)."""
    field = _RELATED_FIELD.get(message_type)
    value = body.get(field) if field else None
    return [value.lower()] if isinstance(value, str) else []


_RELATED_FIELD = {
    MessageType.DIR_ACCEPTANCE.value: "dir_transfer_message_id",
    MessageType.DISENGAGEMENT_ALERT.value: "related_message_id",
    MessageType.GATE_PICKUP.value: "request_message_id",
    MessageType.DRR_SUITABILITY.value: "request_message_id",
}


def resolve(
    message_type: str,
    body: Mapping[str, Any],
    organisations: Sequence[Organisation],
    known: Known,
    sender: str | None = None,
) -> list[Resolved]:
    """The recipients of a message that omits ``to``: the CJIT managing the person (court
    outcomes only), then every organisation the body names that must receive it, as long
    as the directory holds it with the kind the body means. Anything else is not guessed."""
    orgs = {o.code: o for o in organisations}
    found: list[Resolved] = []
    if message_type == MessageType.COURT_OUTCOME.value:
        managing = orgs.get(known.managing_cjit or "")
        if managing is not None and managing.kind is OrgKind.CJIT:
            found.append(Resolved(managing.code, _MANAGING_CJIT))
    for naming in namings(message_type, body, orgs, known, sender):
        org = orgs.get(naming.code)
        if naming.required and org is not None and org.kind is naming.kind:
            found.append(Resolved(naming.code, naming.how))
    unique: dict[str, Resolved] = {}
    for item in found:
        unique.setdefault(item.code, item)
    return list(unique.values())


_MANAGING_CJIT = (
    "the CJIT managing the person, from the gateway's earlier messages about them (H 3.3, 4.1)"
)


@dataclass(frozen=True, slots=True)
class Naming:
    """An organisation a message's body names as one of its recipients.

    ``pointer`` is where the body names it (RFC 6901); ``how`` says why it receives the
    message, with the handbook paragraph. ``required``: it must be among the recipients.
    ``sole``: no organisation of the same kind that the body does not name may be. A
    literal code is returned as written, even if the directory lacks it or knows it as
    another kind (the caller judges that); an organisation found through the gateway's
    records (the sender of a message the body refers to) only when it is of ``kind``.
    """

    pointer: str
    code: str
    kind: OrgKind
    how: str
    required: bool = True
    sole: bool = True


def namings(
    message_type: str,
    body: Mapping[str, Any],
    organisations: Mapping[str, Organisation],
    known: Known,
    sender: str | None = None,
) -> list[Naming]:
    """Every organisation ``body`` names as a recipient of a ``message_type`` message.

    The one place that says which body field names whom: ``resolve`` addresses a message
    from it, and ``gateway.pipeline.consistency`` holds an addressed message to it. The sender
    never has to send to itself: a CJIT that rearranges its own appointment (RA2 by a CJIT,
    H 4.6.1) is named by the body but is not a required recipient.
    """
    rule = _NAMINGS.get(message_type)
    found = rule(body, organisations, known) if rule else []
    return [replace(n, required=False) if n.code == sender else n for n in found]


def _get(body: Mapping[str, Any], *path: str) -> Any:
    node: Any = body
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _literal(
    body: Mapping[str, Any], path: tuple[str, ...], kind: OrgKind, how: str,
    *, required: bool = True, sole: bool = True,
) -> list[Naming]:
    code = _get(body, *path)
    if not isinstance(code, str):
        return []
    return [Naming("/body/" + "/".join(path), code, kind, how, required, sole)]


def _carat_of(body: Mapping[str, Any], how: str) -> list[Naming]:
    prison = _get(body, "establishment", "prison_code")
    if not isinstance(prison, str):
        return []
    return [Naming("/body/establishment/prison_code", f"CARAT-{prison}", OrgKind.CARAT, how)]


def _sender_of(
    body: Mapping[str, Any], field: str, orgs: Mapping[str, Organisation], known: Known,
    kind: OrgKind, how: str,
) -> list[Naming]:
    sender = orgs.get(known.senders.get(str(body.get(field, "")).lower(), ""))
    if sender is None or sender.kind is not kind:
        return []
    return [Naming(f"/body/{field}", sender.code, kind, how)]


def _ra1(body: Mapping[str, Any], _: Mapping[str, Organisation], __: Known) -> list[Naming]:
    # Police may copy the CJIT of the arresting area too (sole=False): H 4.6.1 vii, 4.7.4.
    return _literal(body, ("initial_assessment", "organisation"), OrgKind.CJIT,
                    "the CJIT named for the initial assessment (H 4.6.1 vii)", sole=False)


def _ra2(body: Mapping[str, Any], _: Mapping[str, Organisation], __: Known) -> list[Naming]:
    return _literal(body, ("new_appointment", "organisation"), OrgKind.CJIT,
                    "the CJIT running the varied appointment (H 4.6.1)", sole=False)


def _dir(body: Mapping[str, Any], _: Mapping[str, Organisation], __: Known) -> list[Naming]:
    return _literal(body, ("receiving_cjit",), OrgKind.CJIT,
                    "the CJIT of the person's residence named on the DIR (IE4a, IPAE7a)")


def _acceptance(
    body: Mapping[str, Any], orgs: Mapping[str, Organisation], known: Known
) -> list[Naming]:
    return _sender_of(body, "dir_transfer_message_id", orgs, known, OrgKind.CJIT,
                      "the CJIT that transferred the DIR being accepted (IE4b, IPAE7b)")


def _carat(body: Mapping[str, Any], _: Mapping[str, Organisation], __: Known) -> list[Naming]:
    if body.get("direction") == "release":
        supervised = _literal(
            body, ("offender_manager", "organisation"), OrgKind.PROBATION,
            "the probation provider of the offender manager supervising the licence (H 4.1)",
            required=False,
        ) if body.get("statutory_supervision") is True else []
        return supervised + _literal(
            body, ("community_appointment", "organisation"), OrgKind.CJIT,
            "the CJIT running the community appointment after release (H 2.5)",
        ) + _literal(
            body, ("gate_pickup_by",), OrgKind.CJIT,
            "the CJIT meeting the person at the prison gate (H 4.1.3 note)", required=False,
        )
    return _carat_of(body, "the CARAT team of the receiving prison (H 2.5, 4.1.3)")


def _court(body: Mapping[str, Any], _: Mapping[str, Organisation], __: Known) -> list[Naming]:
    found: list[Naming] = []
    if body.get("outcome") in ("custodial_sentence", "remand_in_custody"):
        found += _carat_of(body, "the CARAT team of the prison the person goes to (H 2.5, 3.3)")
    found += _literal(body, ("probation_provider",), OrgKind.PROBATION,
                      "the probation provider supervising the order (H 2.6, Com 5a)")
    return found


def _alert(
    body: Mapping[str, Any], orgs: Mapping[str, Organisation], known: Known
) -> list[Naming]:
    return _sender_of(body, "related_message_id", orgs, known, OrgKind.POLICE,
                      "the police force that issued the required assessment or conditional "
                      "caution (H 4.1.2)")


def _outcome(body: Mapping[str, Any], _: Mapping[str, Organisation], __: Known) -> list[Naming]:
    return _literal(body, ("drr", "supervising_officer", "organisation"), OrgKind.PROBATION,
                    "the probation provider supervising the person's DRR (H 2.6, 4.7.1)")


def _proactive_referral(
    body: Mapping[str, Any], _: Mapping[str, Organisation], __: Known
) -> list[Naming]:
    return _literal(body, ("cjit",), OrgKind.CJIT,
                    "the CJIT the police refer the person to (IPAE2, H 4.9.2)")


def _caution(body: Mapping[str, Any], _: Mapping[str, Organisation], __: Known) -> list[Naming]:
    # As for an RA1, the police may copy the CJIT of the area of arrest too (H 4.1.1).
    return _literal(body, ("dip_condition", "appointment", "organisation"), OrgKind.CJIT,
                    "the CJIT running the conditional caution's DIP appointment (H 4.1.1)",
                    sole=False)


def _drr_progress(
    body: Mapping[str, Any], _: Mapping[str, Organisation], __: Known
) -> list[Naming]:
    return _literal(body, ("cjit",), OrgKind.CJIT,
                    "the CJIT that held the case before the DRR and takes it back "
                    "(H 4.11.5a, 4.11.5b)")


def _suitability(
    body: Mapping[str, Any], orgs: Mapping[str, Organisation], known: Known
) -> list[Naming]:
    if body.get("direction") == "request":
        return _literal(body, ("cjit",), OrgKind.CJIT,
                        "the CJIT probation asks about DRR suitability (H 2.6)")
    named = _literal(body, ("probation_provider",), OrgKind.PROBATION,
                     "the probation provider assessing DRR suitability (H 2.6, 4.1.3)")
    asked_by = _sender_of(body, "request_message_id", orgs, known, OrgKind.PROBATION,
                          "the probation provider whose request this answers (H 2.6)")
    return named + [n for n in asked_by if n.code not in {m.code for m in named}]


def _gate_pickup(
    body: Mapping[str, Any], orgs: Mapping[str, Organisation], known: Known
) -> list[Naming]:
    if body.get("stage") == "request":
        return _literal(body, ("asked_cjit",), OrgKind.CJIT,
                        "the CJIT asked to meet the person at the prison gate (H 4.1.3)")
    return _sender_of(body, "request_message_id", orgs, known, OrgKind.CJIT,
                      "the CJIT whose gate pick-up request this answers (H 4.1.3)")


def _compliance(
    body: Mapping[str, Any], _: Mapping[str, Organisation], __: Known
) -> list[Naming]:
    # Either may be told, or both (H 4.2 ¶2); no court or CPS office the body does not name.
    return _literal(body, ("hearing", "court"), OrgKind.COURT,
                    "the court hearing the case (H 4.2)", required=False) + _literal(
        body, ("cps_office",), OrgKind.CPS,
        "the CPS office prosecuting the case (H 4.2)", required=False)


def _ppo(body: Mapping[str, Any], _: Mapping[str, Organisation], __: Known) -> list[Naming]:
    return _literal(body, ("scheme",), OrgKind.PPO_IOM,
                    "the PPO or IOM scheme the person is nominated to (H 2.7, 4.11.5b)")


def _treatment(body: Mapping[str, Any], _: Mapping[str, Organisation], __: Known) -> list[Naming]:
    return _literal(body, ("provider",), OrgKind.TREATMENT_PROVIDER,
                    "the treatment provider the person is referred to (H 4.11.4, 4.11.5b)")


def _treatment_progress(
    body: Mapping[str, Any], _: Mapping[str, Organisation], __: Known
) -> list[Naming]:
    return _literal(body, ("cjit",), OrgKind.CJIT,
                    "the CJIT case-managing the person (H 4.1.3)")


def _handover(body: Mapping[str, Any], _: Mapping[str, Organisation], __: Known) -> list[Naming]:
    return _literal(body, ("probation_provider",), OrgKind.PROBATION,
                    "the probation provider taking over on a DRR (H 2.6, 4.1)")


_NAMINGS: Mapping[
    str, Callable[[Mapping[str, Any], Mapping[str, Organisation], Known], list[Naming]]
] = {
    MessageType.RA1_NOTICE.value: _ra1,
    MessageType.RA2_VARIATION.value: _ra2,
    MessageType.DIR_TRANSFER.value: _dir,
    MessageType.DIR_ACCEPTANCE.value: _acceptance,
    MessageType.CARAT_REFERRAL.value: _carat,
    MessageType.COURT_OUTCOME.value: _court,
    MessageType.DISENGAGEMENT_ALERT.value: _alert,
    MessageType.ASSESSMENT_OUTCOME.value: _outcome,
    MessageType.PROACTIVE_REFERRAL.value: _proactive_referral,
    MessageType.CONDITIONAL_CAUTION_NOTICE.value: _caution,
    MessageType.DRR_PROGRESS.value: _drr_progress,
    MessageType.DRR_SUITABILITY.value: _suitability,
    MessageType.GATE_PICKUP.value: _gate_pickup,
    MessageType.COMPLIANCE_REPORT.value: _compliance,
    MessageType.PPO_NOMINATION.value: _ppo,
    MessageType.TREATMENT_REFERRAL.value: _treatment,
    MessageType.TREATMENT_PROGRESS.value: _treatment_progress,
    MessageType.DRR_HANDOVER.value: _handover,
}
