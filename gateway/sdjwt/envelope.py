"""The gateway's SD-JWT profile for envelopes: what a sender signs and a recipient checks.

The sending system signs its envelope with the key registered to it in the directory,
every member and array element selectively disclosable (``disclosure.issue``), the JWS
typed ``dipgw-envelope+sd-jwt``. The gateway keeps that issuance and hands each recipient
the presentation of exactly what its decision lets it see (``disclosure.present`` with the
decision's redactions). ``check_received`` is what ``dipgw verify-message`` does with it:
every field the recipient received must be what the sender signed, byte for byte once
parsed, with two stated exceptions, both of the gateway's own making:

* ``message_id`` is compared as a UUID, in lower case (RFC 9562 §4: UUIDs are
  case-insensitive; the gateway stores them lower-cased);
* ``to`` may be present in what was received and absent from what was signed: the sender
  left the recipients to the gateway, which addressed the message (README, "Recipient
  resolution"). It is reported as the gateway's, not the sender's.

Anything else that differs, or a signed field that arrived without its disclosure, fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.sdjwt.disclosure import SdJwt, SdJwtError, issue, present, verify

__all__ = [
    "ENVELOPE_TYP",
    "MEDIA_TYPE",
    "CheckedMessage",
    "SdJwt",
    "SdJwtError",
    "SignedEnvelope",
    "check_received",
    "disclosed_document",
    "for_recipient",
    "sender_jws_sha256",
    "sign_envelope",
]

ENVELOPE_TYP = "dipgw-envelope+sd-jwt"
# RFC 9901 §11.2's media type: how a signed envelope is submitted (POST /v1/messages).
MEDIA_TYPE = "application/sd-jwt"


def sign_envelope(envelope: Mapping[str, Any], private_jwk: Mapping[str, Any]) -> str:
    """The sender's SD-JWT of ``envelope`` in compact form, every part disclosed. The
    ``message_id`` is signed lower-cased, as the gateway keeps it."""
    document = dict(envelope)
    if isinstance(document.get("message_id"), str):
        document["message_id"] = document["message_id"].lower()
    return issue(document, private_jwk, typ=ENVELOPE_TYP).serialise()


def disclosed_document(signed: str, public_jwk: Mapping[str, Any]) -> dict[str, Any]:
    """The envelope a submitted SD-JWT signs, checked with the sender's key; refused
    unless every part is disclosed: the gateway decides on the whole message."""
    verified = verify(SdJwt.parse(signed), public_jwk, typ=ENVELOPE_TYP)
    if verified.withheld:
        raise SdJwtError(
            f"{verified.withheld} part(s) of the message are not disclosed: submit the "
            "SD-JWT with every disclosure"
        )
    return verified.claims


def sender_jws_sha256(signed: str) -> str:
    """The hex SHA-256 of the sender's JWS (the SD-JWT's first part), the same in the
    issuance and in every presentation of it: what the audit log records of a signed
    message, so any holder of a presentation can find it there."""
    return hashlib.sha256(SdJwt.parse(signed).jws.encode("ascii")).hexdigest()


def for_recipient(signed: str, redactions: tuple[str, ...]) -> str:
    """The presentation a recipient is given: the sender's JWS with the disclosures of
    what the decision's ``redactions`` leave it."""
    return present(SdJwt.parse(signed), redactions).serialise()


@dataclass(frozen=True, slots=True)
class SignedEnvelope:
    """A submission that is the sender's SD-JWT of its envelope (compact form), not yet
    checked: ``application/sd-jwt``, or a string item of a batch. Its own type, so a JSON
    body that happens to be a string is never taken for one."""

    compact: str


@dataclass(frozen=True, slots=True)
class CheckedMessage:
    """A received message whose every field is the sender's: what the sender signed,
    how many signed parts were withheld, and what the gateway added (``to``)."""

    signed: Mapping[str, Any]
    withheld: int
    addressed_by_gateway: bool


def _pointer(path: tuple[str | int, ...]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _first_difference(
    signed: Any, received: Any, path: tuple[str | int, ...] = ()
) -> str | None:
    """The RFC 6901 pointer of the first place the two differ, or None."""
    if isinstance(signed, dict) and isinstance(received, dict):
        for name in sorted(set(signed) | set(received)):
            if name not in received:
                return _pointer((*path, name)) + " was signed but not received"
            if name not in signed:
                return _pointer((*path, name)) + " was received but not signed"
            found = _first_difference(signed[name], received[name], (*path, name))
            if found:
                return found
        return None
    if isinstance(signed, list) and isinstance(received, list):
        if len(signed) != len(received):
            return (f"{_pointer(path)} has {len(received)} elements; the sender signed "
                    f"{len(signed)} that this recipient may see")
        for index, (a, b) in enumerate(zip(signed, received, strict=True)):
            found = _first_difference(a, b, (*path, index))
            if found:
                return found
        return None
    # JSON equality: 1 and 1.0 are one number, but true is not 1.
    if type(signed) is bool or type(received) is bool:
        same = type(signed) is type(received) and signed == received
    else:
        same = signed == received
    return None if same else f"{_pointer(path)} differs from what the sender signed"


def check_received(
    received: Mapping[str, Any], signed: str, public_jwk: Mapping[str, Any]
) -> CheckedMessage:
    """Check a received envelope against its presentation with the sender's key.

    Raises :class:`SdJwtError` naming the first field that is not the sender's."""
    verified = verify(SdJwt.parse(signed), public_jwk, typ=ENVELOPE_TYP)
    claims = verified.claims
    document = dict(received)
    if isinstance(document.get("message_id"), str):
        document["message_id"] = document["message_id"].lower()
    addressed = "to" in document and "to" not in claims
    if addressed:
        del document["to"]
    difference = _first_difference(claims, document)
    if difference is not None:
        raise SdJwtError(difference)
    return CheckedMessage(claims, verified.withheld, addressed)
