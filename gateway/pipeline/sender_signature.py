"""Whose signature a submitted message carries, and whether it must carry one. No I/O.

A signed message arrives as the sender's SD-JWT of its envelope (``gateway.sdjwt``,
RFC 9901) instead of the envelope itself. Authority comes from the directory, never from
the message: the key that signed it must be registered to the caller — one of its
organisation's systems, or the person sending — and the JWS header only says which of
those keys to try. The gateway decides on the whole message, so every part must be
disclosed; what it keeps is the issuance, from which each recipient gets the presentation
of its share (``gateway.sdjwt.envelope.for_recipient``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.domain.errors import SignatureRefused, Violation
from gateway.domain.model import Envelope, Principal
from gateway.sdjwt.disclosure import SdJwt, SdJwtError
from gateway.sdjwt.envelope import disclosed_document


def _refused(detail: str) -> SignatureRefused:
    return SignatureRefused([Violation("", detail)])


def _registered_key(principal: Principal, kid: object) -> Mapping[str, Any]:
    keys = (*principal.org.jwks, *(principal.person.jwks if principal.person else ()))
    for jwk in keys:
        if isinstance(kid, str) and jwk.get("kid") == kid:
            return jwk
    raise _refused(
        f"The message is signed with a key that is not registered to "
        f"{principal.org.code}'s systems or to the person sending it; sign it with the "
        "key the directory holds for you."
    )


def signed_document(principal: Principal, signed: str) -> dict[str, Any]:
    """The envelope a signed submission carries, once its signature verifies with a
    key registered to ``principal``; :class:`SignatureRefused` otherwise."""
    try:
        header = SdJwt.parse(signed).header()
        return disclosed_document(signed, _registered_key(principal, header.get("kid")))
    except SdJwtError as error:
        raise _refused(f"The sender's signature is refused: {error}.") from None


def check_signed_if_required(principal: Principal, envelope: Envelope) -> None:
    """Refuse an unsigned message from an organisation that must sign its messages."""
    if envelope.sender_signature is None and principal.org.signed_messages_required:
        raise _refused(
            f"{principal.org.code} must sign its messages: submit the envelope as an "
            "SD-JWT (Content-Type: application/sd-jwt) signed with its system's key "
            "(README, 'Sender-signed messages')."
        )
