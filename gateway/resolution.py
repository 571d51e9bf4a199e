"""Working out the recipients when a message omits ``to``, and saying how. No I/O.

Each rule reads what the message itself says (the handbook's named organisation, the
prison, the probation provider) or, where the handbook links messages, who sent the
message it answers, or which CJIT the gateway's own records show managing the person;
the caller looks those up first (``Known``). When no rule finds a recipient, the sender
must address the message: the gateway never guesses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.consent import SubjectKeys, same_person
from gateway.model import MessageType, Organisation, OrgKind
from gateway.storage.base import Involvement


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
}


def resolve(
    message_type: str,
    body: Mapping[str, Any],
    organisations: Sequence[Organisation],
    known: Known,
) -> list[Resolved]:
    rule = _RULES.get(message_type)
    found = rule(body, {o.code: o for o in organisations}, known) if rule else []
    unique: dict[str, Resolved] = {}
    for item in found:
        unique.setdefault(item.code, item)
    return list(unique.values())


def _get(body: Mapping[str, Any], *path: str) -> Any:
    node: Any = body
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _named(orgs: Mapping[str, Organisation], code: Any, kind: OrgKind, how: str) -> list[Resolved]:
    org = orgs.get(code) if isinstance(code, str) else None
    return [Resolved(org.code, how)] if org is not None and org.kind is kind else []


def _carat_of(orgs: Mapping[str, Organisation], establishment: Any, how: str) -> list[Resolved]:
    prison = _get(establishment, "prison_code") if isinstance(establishment, Mapping) else None
    return _named(orgs, f"CARAT-{prison}" if prison else None, OrgKind.CARAT, how)


def _ra1(body: Mapping[str, Any], orgs: Mapping[str, Organisation], _: Known) -> list[Resolved]:
    return _named(orgs, _get(body, "initial_assessment", "organisation"), OrgKind.CJIT,
                  "the CJIT named for the initial assessment (H 4.6.1 vii)")


def _ra2(body: Mapping[str, Any], orgs: Mapping[str, Organisation], _: Known) -> list[Resolved]:
    return _named(orgs, _get(body, "new_appointment", "organisation"), OrgKind.CJIT,
                  "the CJIT running the varied appointment (H 4.6.1)")


def _dir(body: Mapping[str, Any], orgs: Mapping[str, Organisation], _: Known) -> list[Resolved]:
    return _named(orgs, body.get("receiving_cjit"), OrgKind.CJIT,
                  "the CJIT of the person's residence named on the DIR (IE4a, IPAE7a)")


def _acceptance(
    body: Mapping[str, Any], orgs: Mapping[str, Organisation], known: Known
) -> list[Resolved]:
    sender = known.senders.get(str(body.get("dir_transfer_message_id", "")).lower())
    return _named(orgs, sender, OrgKind.CJIT,
                  "the CJIT that transferred the DIR being accepted (IE4b, IPAE7b)")


def _carat(body: Mapping[str, Any], orgs: Mapping[str, Organisation], _: Known) -> list[Resolved]:
    if body.get("direction") == "release":
        return _named(orgs, _get(body, "community_appointment", "organisation"), OrgKind.CJIT,
                      "the CJIT running the community appointment after release (H 2.5)")
    return _carat_of(orgs, body.get("establishment"),
                     "the CARAT team of the receiving prison (H 2.5, 4.1.3)")


def _court(
    body: Mapping[str, Any], orgs: Mapping[str, Organisation], known: Known
) -> list[Resolved]:
    outcome = body.get("outcome")
    found = _named(orgs, known.managing_cjit, OrgKind.CJIT,
                   "the CJIT managing the person, from the gateway's earlier messages about "
                   "them (H 3.3, 4.1)")
    if outcome in ("custodial_sentence", "remand_in_custody"):
        found += _carat_of(orgs, body.get("establishment"),
                           "the CARAT team of the prison the person goes to (H 2.5, 3.3)")
    if outcome == "community_order" or body.get("probation_provider"):
        found += _named(orgs, body.get("probation_provider"), OrgKind.PROBATION,
                        "the probation provider supervising the order (H 2.6, Com 5a)")
    return found


def _alert(
    body: Mapping[str, Any], orgs: Mapping[str, Organisation], known: Known
) -> list[Resolved]:
    sender = known.senders.get(str(body.get("related_message_id", "")).lower())
    return _named(orgs, sender, OrgKind.POLICE,
                  "the police force that issued the required assessment (H 4.1.2)")


_RULES: Mapping[
    str, Callable[[Mapping[str, Any], Mapping[str, Organisation], Known], list[Resolved]]
] = {
    MessageType.RA1_NOTICE.value: _ra1,
    MessageType.RA2_VARIATION.value: _ra2,
    MessageType.DIR_TRANSFER.value: _dir,
    MessageType.DIR_ACCEPTANCE.value: _acceptance,
    MessageType.CARAT_REFERRAL.value: _carat,
    MessageType.COURT_OUTCOME.value: _court,
    MessageType.DISENGAGEMENT_ALERT.value: _alert,
}
