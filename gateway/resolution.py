"""Working out the recipients when a message omits ``to``, and saying how. No I/O.

Each rule reads what the message itself says (the handbook's named organisation, the
prison, the probation provider) or, where the handbook links messages, who sent the
message it answers; the caller looks those senders up first. When no rule finds a
recipient, the sender must address the message: the gateway never guesses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.model import MessageType, Organisation, OrgKind


@dataclass(frozen=True, slots=True)
class Resolved:
    code: str
    how: str


Related = Mapping[str, str]
"""Sender organisation of each earlier message the body refers to, by message id."""


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
    related: Related,
) -> list[Resolved]:
    rule = _RULES.get(message_type)
    found = rule(body, {o.code: o for o in organisations}, related) if rule else []
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


def _ra1(body: Mapping[str, Any], orgs: Mapping[str, Organisation], _: Related) -> list[Resolved]:
    return _named(orgs, _get(body, "initial_assessment", "organisation"), OrgKind.CJIT,
                  "the CJIT named for the initial assessment (H 4.6.1 vii)")


def _ra2(body: Mapping[str, Any], orgs: Mapping[str, Organisation], _: Related) -> list[Resolved]:
    return _named(orgs, _get(body, "new_appointment", "organisation"), OrgKind.CJIT,
                  "the CJIT running the varied appointment (H 4.6.1)")


def _dir(body: Mapping[str, Any], orgs: Mapping[str, Organisation], _: Related) -> list[Resolved]:
    return _named(orgs, body.get("receiving_cjit"), OrgKind.CJIT,
                  "the CJIT of the person's residence named on the DIR (IE4a, IPAE7a)")


def _acceptance(
    body: Mapping[str, Any], orgs: Mapping[str, Organisation], related: Related
) -> list[Resolved]:
    sender = related.get(str(body.get("dir_transfer_message_id", "")).lower())
    return _named(orgs, sender, OrgKind.CJIT,
                  "the CJIT that transferred the DIR being accepted (IE4b, IPAE7b)")


def _carat(body: Mapping[str, Any], orgs: Mapping[str, Organisation], _: Related) -> list[Resolved]:
    if body.get("direction") == "release":
        return _named(orgs, _get(body, "community_appointment", "organisation"), OrgKind.CJIT,
                      "the CJIT running the community appointment after release (H 2.5)")
    return _carat_of(orgs, body.get("establishment"),
                     "the CARAT team of the receiving prison (H 2.5, 4.1.3)")


def _court(body: Mapping[str, Any], orgs: Mapping[str, Organisation], _: Related) -> list[Resolved]:
    outcome = body.get("outcome")
    found: list[Resolved] = []
    if outcome in ("custodial_sentence", "remand_in_custody"):
        found += _carat_of(orgs, body.get("establishment"),
                           "the CARAT team of the prison the person goes to (H 2.5, 3.3)")
    if outcome == "community_order" or body.get("probation_provider"):
        found += _named(orgs, body.get("probation_provider"), OrgKind.PROBATION,
                        "the probation provider supervising the order (H 2.6, Com 5a)")
    return found


def _alert(
    body: Mapping[str, Any], orgs: Mapping[str, Organisation], related: Related
) -> list[Resolved]:
    sender = related.get(str(body.get("related_message_id", "")).lower())
    return _named(orgs, sender, OrgKind.POLICE,
                  "the police force that issued the required assessment (H 4.1.2)")


_RULES: Mapping[
    str, Callable[[Mapping[str, Any], Mapping[str, Organisation], Related], list[Resolved]]
] = {
    MessageType.RA1_NOTICE.value: _ra1,
    MessageType.RA2_VARIATION.value: _ra2,
    MessageType.DIR_TRANSFER.value: _dir,
    MessageType.DIR_ACCEPTANCE.value: _acceptance,
    MessageType.CARAT_REFERRAL.value: _carat,
    MessageType.COURT_OUTCOME.value: _court,
    MessageType.DISENGAGEMENT_ALERT.value: _alert,
}
