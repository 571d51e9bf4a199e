"""Does ``to`` agree with the body? A message may go only to the agencies its own body names.

Many bodies name who they are for: the DIR names the CJIT of residence taking the person
on (IE4a, IPAE7a), a CARAT referral the prison whose CARAT team takes them into custody or
the CJIT running their community appointment after release (H 2.5), a court outcome the
probation provider supervising the order (H 2.6, Com 5a), an assessment outcome the
probation provider supervising the DRR (H 4.7.1), a police referral, DRR progress or a
DRR-suitability request the CJIT (IPAE2, Com 5a, H 2.6), a PPO nomination its scheme and a
treatment referral its provider (H 2.7, 4.11.4); a DIR acceptance, a gate pick-up answer and
a disengagement alert answer an earlier message, whose sender the gateway's records know
(IE4b, IPAE7b, H 4.1.3, 4.1.2). Which field names whom is written once, in
``gateway.pipeline.resolution.namings``, which also addresses a message that omits ``to``; this
module holds an addressed message to it.

The rule, for each organisation the body names (a ``Naming``):

* a *required* one must be in ``to``, and must be in the directory as the kind of
  organisation the field means (a DIR naming an unknown CJIT cannot be delivered as the
  handbook requires, so it is not delivered elsewhere instead);
* where a naming is *sole*, ``to`` may hold no other organisation of that kind than the
  ones the body names. Other kinds are untouched: a court outcome may still go to the CJIT
  and the CARAT team, but its only probation recipient is the provider it names. RA1 and
  RA2 are not sole: police may also copy the CJIT of the arresting area (H 4.6.1 vii,
  4.7.4). A release referral's gate pick-up CJIT (H 4.1.3 note) may receive it but need
  not.

A body names nothing when the field is absent or the message it refers to is not in the
gateway's records (or was not sent by the expected kind of organisation); then nothing
here constrains ``to``.

A contradiction is an invalid message (422), as a schema violation is, not a refusal
(403): the sender is allowed to send this type to these kinds of agency (``gateway.pipeline.access``
answers that), but the document contradicts itself, so the gateway cannot know which half
is right and must not deliver the clinical detail to an agency the body says is not the
one. The sender corrects the document; nothing is stored. Each violation points (RFC 6901)
at the body field that names the missing organisation, or at the ``to`` entry the body
does not name, and cites the handbook paragraph. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.domain.errors import Violation
from gateway.domain.model import Envelope, Organisation, OrgKind
from gateway.pipeline.resolution import Known, Naming, namings

_NOUN = {
    OrgKind.POLICE: "police force",
    OrgKind.CJIT: "CJIT",
    OrgKind.CARAT: "CARAT team",
    OrgKind.PROBATION: "probation provider",
    OrgKind.COURT: "court",
    OrgKind.CPS: "CPS office",
    OrgKind.PPO_IOM: "PPO/IOM scheme",
    OrgKind.TREATMENT_PROVIDER: "treatment provider",
    OrgKind.OVERSIGHT: "oversight body",
    OrgKind.OPERATOR: "operator",
}


def contradictions(
    envelope: Envelope, organisations: Sequence[Organisation], known: Known
) -> list[Violation]:
    """Every way the envelope's ``to`` contradicts the organisations its body names.

    Codes in ``to`` that the directory does not hold are left to ``gateway.pipeline.routing``.
    """
    orgs = {o.code: o for o in organisations}
    named = namings(envelope.type.value, envelope.document["body"], orgs, known,
                    envelope.sender)
    found = [
        violation
        for naming in named
        if naming.required
        and (violation := _missing(naming, orgs.get(naming.code), envelope)) is not None
    ]
    sole = {n.kind for n in named if n.sole}
    for index, code in enumerate(envelope.recipients):
        org = orgs.get(code)
        if org is None or org.kind not in sole:
            continue
        allowed = [n for n in named if n.kind is org.kind]
        if code not in {n.code for n in allowed}:
            found.append(_unnamed(index, org, allowed, envelope))
    return found


def _missing(naming: Naming, org: Organisation | None, envelope: Envelope) -> Violation | None:
    noun = _NOUN[naming.kind]
    if org is None:
        return Violation(naming.pointer, (
            f"This names {naming.code}, {naming.how}, but the directory has no organisation "
            f"{naming.code}, so the {envelope.type.value} cannot go where the body says. "
            "Correct the code, or ask the operator to add the organisation."
        ))
    if org.kind is not naming.kind:
        return Violation(naming.pointer, (
            f"This must name a {noun} ({naming.how}), but {naming.code} is a "
            f"{_NOUN[org.kind]}."
        ))
    if naming.code not in envelope.recipients:
        return Violation(naming.pointer, (
            f"{naming.code} is {naming.how}, so it must be one of the recipients in 'to'."
        ))
    return None


def _unnamed(
    index: int, org: Organisation, allowed: Sequence[Naming], envelope: Envelope
) -> Violation:
    noun = _NOUN[org.kind]
    only = "; ".join(f"{n.code}, {n.how}" for n in allowed)
    return Violation(f"/to/{index}", (
        f"{org.code} is a {noun} this {envelope.type.value} does not name: the only {noun} "
        f"it may go to {'is' if len(allowed) == 1 else 'are'} {only}."
    ))
