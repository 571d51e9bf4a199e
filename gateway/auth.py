"""Bearer-token authentication: JWTs signed by an organisation's own key (RFC 7519, 8725).

Only asymmetric algorithms are accepted (EdDSA, ES256), and the algorithm is taken from
the organisation's registered key, never trusted from the token alone, so ``alg=none``
and HMAC key-confusion tokens cannot verify. Each token is single-use: its ``jti`` is
remembered until it expires and a second use is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from gateway import keys
from gateway.directory import Directory
from gateway.errors import AuthenticationFailed
from gateway.model import Principal, Role
from gateway.storage.base import TokenLedger

ACCEPTED_ALGORITHMS = frozenset({"EdDSA", "ES256"})
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "role")


@dataclass(frozen=True, slots=True)
class TokenRules:
    audience: str
    max_lifetime_s: int
    clock_skew_s: int


class TokenVerifier:
    def __init__(
        self,
        directory: Directory,
        ledger: TokenLedger,
        rules: TokenRules,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._directory = directory
        self._ledger = ledger
        self._rules = rules
        self._clock = clock
        self._key_cache: dict[tuple[str, str, str], jwt.PyJWK] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        token = _bearer(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthenticationFailed("The token is malformed.") from None
        alg = header.get("alg")
        if alg not in ACCEPTED_ALGORITHMS:
            raise AuthenticationFailed(
                f"Token algorithm {alg!r} is not accepted; sign with EdDSA or ES256."
            )
        org_code, key = self._key(header.get("kid"), alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self._rules.audience,
                # The key decides the organisation: a token cannot claim another's name.
                issuer=org_code,
                leeway=self._rules.clock_skew_s,
                options={"require": list(REQUIRED_CLAIMS), "verify_iat": True},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("The token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationFailed(
                "The token is not valid yet (iat or nbf in the future)."
            ) from None
        except jwt.InvalidAudienceError:
            raise AuthenticationFailed(
                f"The token is not meant for this gateway (aud must be {self._rules.audience!r})."
            ) from None
        except jwt.InvalidIssuerError:
            raise AuthenticationFailed(
                f"The token's issuer must be {org_code}, the owner of its signing key."
            ) from None
        except jwt.InvalidSignatureError:
            raise AuthenticationFailed("The token's signature does not verify.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationFailed(f"The token lacks the {exc.claim!r} claim.") from None
        except jwt.InvalidTokenError:
            raise AuthenticationFailed("The token is malformed.") from None
        principal = self._principal(org_code, claims)
        expires_at = datetime.fromtimestamp(claims["exp"], UTC)
        if not await self._ledger.claim(org_code, claims["jti"], expires_at, self._clock()):
            raise AuthenticationFailed("The token has already been used; sign a new one.")
        return principal

    def _key(self, kid: object, alg: str) -> tuple[str, jwt.PyJWK]:
        if not isinstance(kid, str):
            raise AuthenticationFailed("The token header has no key id (kid).")
        entry = self._directory.key(kid)
        # The registered key decides the algorithm; a token cannot choose another.
        if entry is None or keys.algorithm_for(dict(entry[1])) != alg:
            raise AuthenticationFailed(f"Key {kid!r} is not registered for {alg}.")
        org, jwk = entry
        cache_key = (org.code, kid, str(jwk.get("x")))
        cached = self._key_cache.get(cache_key)
        if cached is None:
            cached = self._key_cache[cache_key] = jwt.PyJWK(dict(jwk), algorithm=alg)
        return org.code, cached

    def _principal(self, org_code: str, claims: dict[str, Any]) -> Principal:
        lifetime = claims["exp"] - claims["iat"]
        if not isinstance(lifetime, int | float) or lifetime > self._rules.max_lifetime_s:
            raise AuthenticationFailed(
                f"The token lives longer than {self._rules.max_lifetime_s} seconds."
            )
        try:
            role = Role(claims["role"])
        except ValueError:
            raise AuthenticationFailed(f"Unknown role {claims['role']!r}.") from None
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise AuthenticationFailed("The token's jti must be a non-empty string.")
        org = self._directory.get(org_code)
        assert org is not None
        return Principal(org=org, role=role, subject=str(claims["sub"]), token_id=claims["jti"])


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationFailed("Send 'Authorization: Bearer <token>'.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("The Authorization header must be 'Bearer <token>'.")
    return token.strip()


def issue_token(
    private_jwk: dict[str, Any],
    *,
    org_code: str,
    role: Role,
    audience: str,
    subject: str,
    ttl_s: int,
    now: datetime,
    token_id: str,
) -> str:
    """Sign a token as an organisation; what ``dipgw token`` and the client do."""
    alg = keys.algorithm_for(private_jwk)
    signing_key = jwt.PyJWK(private_jwk, algorithm=alg)
    issued = int(now.timestamp())
    claims = {
        "iss": org_code,
        "sub": subject,
        "aud": audience,
        "iat": issued,
        "exp": issued + ttl_s,
        "jti": token_id,
        "role": role.value,
    }
    return jwt.encode(claims, signing_key.key, algorithm=alg, headers={"kid": private_jwk["kid"]})
