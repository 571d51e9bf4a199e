"""Webhook push: each message POSTed to the organisation's HTTPS endpoint as a signed JWS.

The body is a compact JWS (RFC 7515, ``application/jose``) signed with the gateway's
delivery key (EdDSA); receivers verify it with the key from ``GET /v1/delivery/keys`` and
check ``aud`` is their own code. ``jti`` is the message id: a receiver that answered 2xx
once and sees the same ``jti`` again (its answer was lost) must answer 2xx without acting
twice. Only a 2xx counts as delivered; anything else, a redirect included, is retried.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import jwt

from gateway.channels.outcome import SendFailed, Sent
from gateway.keys import algorithm_for
from gateway.sdjwt.envelope import for_recipient
from gateway.storage.base import Dispatch

MEDIA_TYPE = "application/jose"
JWS_TYPE = "dipgw-delivery+jwt"
ISSUER = "urn:dipgw:gateway"


def sign_delivery(
    signing_key: jwt.PyJWK, dispatch: Dispatch, now: datetime, ttl: timedelta
) -> str:
    """The signed body of one push: the recipient's (redacted) envelope and its identity,
    and for a message its sender signed, the sender's SD-JWT presenting that envelope."""
    if dispatch.payload is None:
        raise ValueError("a delivery push needs the message")
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": dispatch.recipient,
        "jti": dispatch.message_id,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "message_type": dispatch.message_type,
        "envelope": json.loads(dispatch.payload),
    }
    if dispatch.sender_signature is not None:
        claims["sender_signature"] = for_recipient(dispatch.sender_signature, dispatch.redactions)
    return jwt.encode(
        claims,
        signing_key.key,
        algorithm=signing_key.algorithm_name,
        headers={"kid": signing_key.key_id, "typ": JWS_TYPE},
    )


class WebhookSender:
    channel = "webhook"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        private_jwk: Mapping[str, Any],
        *,
        timeout_s: float = 15.0,
        token_ttl: timedelta = timedelta(minutes=10),
    ) -> None:
        self._session = session
        # Parsed once: every push is signed with it.
        self._key = jwt.PyJWK(dict(private_jwk), algorithm=algorithm_for(dict(private_jwk)))
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._ttl = token_ttl

    async def send(self, dispatch: Dispatch, now: datetime) -> Sent:
        attempt = dispatch.attempts + 1
        body = sign_delivery(self._key, dispatch, now, self._ttl)
        try:
            async with self._session.post(
                dispatch.target,
                data=body.encode("ascii"),
                headers={
                    "Content-Type": MEDIA_TYPE,
                    "Idempotency-Key": dispatch.message_id,
                    "Dipgw-Attempt": str(attempt),
                },
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SendFailed(
                f"webhook attempt {attempt}: no answer ({type(exc).__name__})"
            ) from None
        if 200 <= status < 300:
            return Sent(f"webhook answered {status} on attempt {attempt}")
        raise SendFailed(f"webhook attempt {attempt}: answered {status}")
