"""Bearer-token authentication: JWTs signed by a key registered in the directory (RFC 7519,
RFC 8725).

Only asymmetric algorithms are accepted (EdDSA, ES256), and the algorithm is taken from
the registered key, never trusted from the token alone, so ``alg=none`` and HMAC
key-confusion tokens cannot verify. The key decides who is calling: one of an
organisation's systems, or one of its people. What they may do is what the gateway has
granted them (``Directory.roles_of``); a token's ``role`` claim can only narrow that.
Each token is single-use: its ``jti`` is remembered until the token could no longer be
accepted (``exp`` plus the clock-skew leeway) and a second use is refused.

Every request pays for this, so the work per token is done once: the gateway decodes the
header alone, to choose the key; PyJWT then decodes the whole token once (the header
again among it, a few µs: it takes a key, not a way to find one), verifies the signature
and checks the registered claims, with its options merged at import; and each registered
key is parsed into a ``PyJWK`` once, not per token. (Before, PyJWT decoded the whole
token twice, header, payload and signature alike; ``bench/authentication.py`` measures
the two ways beside a bare Ed25519 verify.)
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from gateway import keys
from gateway.domain.errors import (
    AccessDenied,
    AuthenticationFailed,
    ConfigurationError,
    TokenReplayed,
)
from gateway.domain.model import Person, Principal, Role, TokenUse
from gateway.services.directory import Directory, KeyHolder
from gateway.storage.base import TokenLedger

ACCEPTED_ALGORITHMS = frozenset({"EdDSA", "ES256"})
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti")
# RFC 7515 compact serialisation: three base64url parts. Anything else (spaces, bytes that
# are not ASCII) is refused before any parser sees it.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
MAX_TOKEN_CHARS = 8192
MAX_CLAIM_CHARS = 200

# One PyJWT for every token, its options merged once here (``jwt.decode`` merges a fresh
# copy per call). Each of its verify_ checks is on, spelt out rather than left to defaults;
# RFC 7519 section 4.1 makes the registered claims optional, so the ones the gateway
# relies on are required.
_JWT = jwt.PyJWT(options={
    "verify_signature": True,
    "verify_exp": True,
    "verify_nbf": True,
    "verify_iat": True,
    "verify_aud": True,
    "verify_iss": True,
    "verify_sub": True,
    "verify_jti": True,
    "require": list(REQUIRED_CLAIMS),
})


@dataclass(frozen=True, slots=True)
class TokenRules:
    audience: str
    max_lifetime_s: int
    clock_skew_s: int


@dataclass(frozen=True, slots=True)
class _RegisteredKey:
    """A registered public key as PyJWT verifies with it, parsed once: ``jwk`` is the
    registration it was parsed from, ``algorithms`` the one algorithm it allows (its
    own, RFC 8725 section 3.1), as the sequence PyJWT takes."""

    jwk: dict[str, Any]
    algorithm: str
    algorithms: tuple[str]
    key: jwt.PyJWK


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
        self._remember_after_exp = timedelta(seconds=rules.clock_skew_s)
        self._keys: dict[str, _RegisteredKey] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        """Who is calling, the token's single use recorded (refused if it was used)."""
        principal, use = self.verify(authorization)
        await self.record(use)
        return principal

    async def record(self, use: TokenUse) -> None:
        """Record the token's use now, in a transaction of its own; ``TokenReplayed`` if it
        was used before."""
        if not await self._ledger.claim(
            use.issuer, use.token_id, use.remember_until, self._clock()
        ):
            raise TokenReplayed()
        use.recorded = True

    def verify(self, authorization: str | None) -> tuple[Principal, TokenUse]:
        """Who is calling, by a token that checks out in every way but its single use:
        that is still to be recorded, with ``record`` or in the request's own transaction
        (``gateway.http.context``)."""
        token = _bearer(authorization)
        header = _header(token)
        # RFC 7515 section 4.1.11: a JWS whose crit names an extension the recipient does
        # not understand is invalid. The gateway understands none (not even RFC 7797's
        # b64, which PyJWT knows), so any crit is refused here rather than left to what a
        # version of PyJWT supports.
        if "crit" in header:
            raise AuthenticationFailed(
                "The token's header lists critical extensions (crit); this gateway "
                "supports none."
            )
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ACCEPTED_ALGORITHMS:
            raise AuthenticationFailed(
                "The token's algorithm is not accepted; sign with EdDSA or ES256."
            )
        holder, registered = self._key(header.get("kid"), alg)
        try:
            # PyJWT reads the header again (it takes a key, not a way to find one), then
            # verifies the signature with the registered key's own algorithm only (the
            # only one ``algorithms`` names, and the one the PyJWK is bound to) and checks
            # the claims.
            claims: dict[str, Any] = _JWT.decode_complete(
                token,
                key=registered.key,
                algorithms=registered.algorithms,
                audience=self._rules.audience,
                # The key decides the organisation: a token cannot claim another's name.
                issuer=holder.org.code,
                leeway=self._rules.clock_skew_s,
            )["payload"]
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
                f"The token's issuer must be {holder.org.code}, the owner of its signing key."
            ) from None
        except jwt.InvalidSignatureError:
            raise AuthenticationFailed("The token's signature does not verify.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationFailed(f"The token lacks the {exc.claim!r} claim.") from None
        except jwt.InvalidTokenError:
            raise AuthenticationFailed("The token is malformed.") from None
        expires = self._lifetime(claims)
        principal = self._principal(holder, claims)
        # Remember the jti for as long as the leeway would still accept the token.
        remember_until = datetime.fromtimestamp(expires, UTC) + self._remember_after_exp
        return principal, TokenUse(holder.org.code, principal.token_id, remember_until)

    def _key(self, kid: object, alg: str) -> tuple[KeyHolder, _RegisteredKey]:
        """Who holds the key ``kid`` names, and that key parsed for PyJWT: parsed when
        first seen and again only if the directory's registration under ``kid`` changes
        (compared whole, so a stale key never verifies however the kid was assigned)."""
        if not isinstance(kid, str) or not kid or len(kid) > MAX_CLAIM_CHARS:
            raise AuthenticationFailed("The token header has no usable key id (kid).")
        holder = self._directory.key(kid)
        registered = self._keys.get(kid)
        if holder is not None and (registered is None or registered.jwk != holder.jwk):
            registered = self._parse(kid, holder.jwk)
        # The registered key decides the algorithm; a token cannot choose another.
        if holder is None or registered is None or registered.algorithm != alg:
            raise AuthenticationFailed("The token's key is not registered for its algorithm.")
        return holder, registered

    def _parse(self, kid: str, jwk: Mapping[str, Any]) -> _RegisteredKey | None:
        """The key registered under ``kid``, parsed and kept; None for a key of a type
        the gateway does not verify with."""
        algorithm = _algorithm(jwk)
        if algorithm is None:
            return None
        registered = self._keys[kid] = _RegisteredKey(
            dict(jwk), algorithm, (algorithm,), jwt.PyJWK(dict(jwk), algorithm=algorithm)
        )
        return registered

    def _lifetime(self, claims: dict[str, Any]) -> int:
        """``iat`` and ``exp`` as NumericDate (RFC 7519 section 2): numbers, not strings."""
        issued, expires = claims["iat"], claims["exp"]
        for name, value in (("iat", issued), ("exp", expires)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise AuthenticationFailed(f"The token's {name!r} must be a number of seconds.")
        if expires - issued > self._rules.max_lifetime_s:
            raise AuthenticationFailed(
                f"The token lives longer than {self._rules.max_lifetime_s} seconds."
            )
        return int(expires)

    def _principal(self, holder: KeyHolder, claims: dict[str, Any]) -> Principal:
        token_id, subject = claims["jti"], claims["sub"]
        if not isinstance(token_id, str) or not token_id or len(token_id) > MAX_CLAIM_CHARS:
            raise AuthenticationFailed(
                f"The token's jti must be a string of 1 to {MAX_CLAIM_CHARS} characters."
            )
        if not isinstance(subject, str) or not subject or len(subject) > MAX_CLAIM_CHARS:
            raise AuthenticationFailed(
                f"The token's sub must be a string of 1 to {MAX_CLAIM_CHARS} characters."
            )
        if holder.person is not None:
            if subject != holder.person.id:
                raise AuthenticationFailed(
                    "The token's sub must be the id of the person whose key signed it."
                )
            return person_principal(
                self._directory, holder.person, token_id, claims.get("role")
            )
        # A system's sub is only a label in the audit log; it may not pass for a person's.
        if self._directory.person(subject) is not None:
            raise AuthenticationFailed(
                "A system's token cannot name a person as its sub; people sign with "
                "their own keys."
            )
        return Principal(
            org=holder.org,
            roles=_narrowed(frozenset({Role.SYSTEM}), claims.get("role"),
                            f"a system of {holder.org.code}"),
            subject=subject,
            token_id=token_id,
        )


def person_principal(
    directory: Directory, person: Person, token_id: str, claimed_role: object = None
) -> Principal:
    """A person as the gateway takes them, however they proved who they are (a token signed
    with one of their keys, or a web console session): their organisation, and the roles
    their active grants give them now, narrowed by a claimed role, never widened. One
    builder, so the API and the console cannot disagree about what a person may do."""
    org = directory.get(person.org_code)
    if org is None:  # the directory never holds a person without their organisation
        raise AuthenticationFailed("The person's organisation is not in the directory.")
    return Principal(
        org=org,
        roles=_narrowed(directory.roles_of(person.id), claimed_role, f"person {person.id}"),
        subject=person.id,
        token_id=token_id,
        person=person,
    )


def _narrowed(held: frozenset[Role], claimed: object, who: str) -> frozenset[Role]:
    """The roles to act in: all held, or the one the token names if it is held."""
    if claimed is None:
        return held
    try:
        role = Role(claimed) if isinstance(claimed, str) else None
    except ValueError:
        role = None
    if role is None:
        raise AuthenticationFailed("The token's role claim names no role.")
    if role not in held:
        raise AccessDenied(
            f"The token asks to act as {role.value}, which {who} has not been granted; "
            "a role claim can only narrow what the gateway grants."
        )
    return frozenset({role})


def _algorithm(jwk: Any) -> str | None:
    try:
        return keys.algorithm_for(dict(jwk))
    except ConfigurationError:  # a key of another type identifies no one (fail closed)
        return None


def _header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS (RFC 7515 section 5.2 steps 2 to 4: base64url, then
    UTF-8, then a JSON object), read to find the key that is to verify it. ``_bearer`` has
    checked the alphabet. Duplicate names keep the last, as PyJWT's reading does (RFC 7515
    section 4), so both choose by the same ``alg``."""
    encoded = token.partition(".")[0]
    try:
        header = json.loads(
            base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
        )
    except (ValueError, RecursionError):  # base64, UTF-8 and JSON errors are ValueErrors
        raise AuthenticationFailed("The token is malformed.") from None
    if not isinstance(header, dict):
        raise AuthenticationFailed("The token is malformed.")
    return header


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationFailed("Send 'Authorization: Bearer <token>'.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("The Authorization header must be 'Bearer <token>'.")
    if len(token) > MAX_TOKEN_CHARS or not _COMPACT_JWS.fullmatch(token):
        raise AuthenticationFailed("The bearer token is not a compact JWS (RFC 7515).")
    return token
