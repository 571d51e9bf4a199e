"""OpenID Connect sign-in to the console: the authorization code flow with PKCE against the
OpenID Provider an organisation registered in the directory (``Organisation.
identity_provider``), through Authlib.

What each step does, and the standard it follows:

* Discovery (OIDC Discovery 1.0 section 4): the provider's metadata from
  ``{issuer}/.well-known/openid-configuration``, whose ``issuer`` must be exactly the one
  the organisation registered (section 4.3), or nothing is trusted.
* Authentication request (OIDC Core 1.0 section 3.1.2.1): ``response_type=code``,
  ``scope=openid``, a fresh ``state`` and ``nonce``, and a PKCE S256 code challenge
  (RFC 7636 section 4.2). The verifier, state and nonce stay server-side
  (``SessionRepository.begin_sign_in``), keyed by the SHA-256 of a secret in an HttpOnly
  cookie of the browser that asked, and are taken once when it comes back.
* Token request (OIDC Core 1.0 section 3.1.3.1, RFC 7636 section 4.5): the code and the
  verifier, authenticated with the client secret from configuration
  (``client_secret_basic``) or, for a public client, by PKCE alone.
* ID token validation (OIDC Core 1.0 section 3.1.3.7): the JWS signature against the
  provider's JWKS (never ``none`` or a shared-secret algorithm), ``iss`` exactly the
  registered issuer, ``aud`` the client id (and ``azp`` when there are others), ``exp``
  not passed, ``iat`` present, and ``nonce`` the one sent (compared in constant time).
* Multi-factor (production): ``amr`` (RFC 8176) must name a second factor, or ``acr``
  must be the value configured for providers that say it that way.

Every failure refuses, with a reason that names no person (``SignInRefused.reason``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from authlib.common.urls import add_params_to_uri  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from gateway.domain.model import IdentityProvider, SignIn
from gateway.storage.base import SignInAttempt

# How long a person has at their provider before the attempt is dropped.
ATTEMPT_LIFETIME = timedelta(minutes=10)
# Clock skew allowed on the ID token's exp and iat, seconds.
LEEWAY_S = 60
# Asymmetric JWS algorithms only: "none" and HS* (keyed by the client secret) are refused.
ID_TOKEN_ALGORITHMS = ("RS256", "PS256", "ES256", "ES384", "EdDSA")
# RFC 8176 authentication method references that mean a second factor was used.
MULTI_FACTOR_AMR = frozenset({"mfa", "otp", "hwk", "swk", "sc"})
# Discovery documents and JWKS are kept this long; an unknown kid fetches the JWKS again.
METADATA_TTL_S = 300.0
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
MAX_DOCUMENT_BYTES = 256 * 1024


class SignInRefused(Exception):
    """The sign-in cannot go on. ``reason`` is a short code for the audit log and the page
    shown; it never carries what the provider said about who the person is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """What OIDC Discovery 1.0 says about a provider that this client uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True, slots=True)
class Verified:
    """The identity an ID token asserted, once every check passed."""

    sign_in: SignIn
    amr: tuple[str, ...]
    acr: str | None

    def multi_factor(self, mfa_acr: str | None) -> bool:
        """Whether the provider says a second factor was used (RFC 8176 ``amr``, or the
        configured ``acr``)."""
        if MULTI_FACTOR_AMR.intersection(self.amr):
            return True
        return mfa_acr is not None and self.acr is not None and hmac.compare_digest(
            self.acr.encode("utf-8"), mfa_acr.encode("utf-8"))


def binding_id(cookie_secret: str) -> str:
    """The stored attempt's id: the SHA-256 of the browser's cookie secret, so the store
    alone cannot complete anyone's sign-in."""
    return hashlib.sha256(cookie_secret.encode("utf-8")).hexdigest()


def new_attempt(org_code: str, now: datetime) -> tuple[str, SignInAttempt]:
    """A new attempt and the cookie secret that binds it to this browser. The PKCE
    verifier is 43 characters of the unreserved set (RFC 7636 section 4.1)."""
    cookie_secret = secrets.token_urlsafe(32)
    attempt = SignInAttempt(
        id=binding_id(cookie_secret), org_code=org_code, state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32), code_verifier=secrets.token_urlsafe(32),
        created_at=now,
    )
    return cookie_secret, attempt


def same(expected: str, given: object) -> bool:
    """A constant-time comparison of a secret with what came back (state, nonce)."""
    if not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def authorization_url(
    metadata: ProviderMetadata, provider: IdentityProvider, attempt: SignInAttempt,
    redirect_uri: str, acr: str | None = None,
) -> str:
    """The authentication request (OIDC Core 1.0 section 3.1.2.1) with PKCE S256."""
    params = [
        ("response_type", "code"),
        ("client_id", provider.client_id),
        ("redirect_uri", redirect_uri),
        ("scope", "openid"),
        ("state", attempt.state),
        ("nonce", attempt.nonce),
        ("code_challenge", create_s256_code_challenge(attempt.code_verifier)),
        ("code_challenge_method", "S256"),
    ]
    if acr is not None:
        params.append(("acr_values", acr))
    return str(add_params_to_uri(metadata.authorization_endpoint, params))


class OidcClient:
    """Talks to OpenID Providers: discovery, token requests, JWKS; metadata and keys are
    cached for a few minutes per issuer."""

    def __init__(self) -> None:
        self._metadata: dict[str, tuple[float, ProviderMetadata]] = {}
        self._keys: dict[str, tuple[float, KeySet]] = {}

    async def metadata(self, issuer: str) -> ProviderMetadata:
        cached = self._metadata.get(issuer)
        if cached is not None and time.monotonic() - cached[0] < METADATA_TTL_S:
            return cached[1]
        document = await _get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        # OIDC Discovery 1.0 section 4.3: the issuer must be exactly the registered one.
        if document.get("issuer") != issuer:
            raise SignInRefused("provider_mismatch")
        try:
            found = ProviderMetadata(
                issuer=issuer,
                authorization_endpoint=_endpoint(document, "authorization_endpoint", issuer),
                token_endpoint=_endpoint(document, "token_endpoint", issuer),
                jwks_uri=_endpoint(document, "jwks_uri", issuer),
            )
        except ValueError:
            raise SignInRefused("provider_mismatch") from None
        self._metadata[issuer] = (time.monotonic(), found)
        return found

    async def key_set(self, metadata: ProviderMetadata, *, fresh: bool = False) -> KeySet:
        cached = self._keys.get(metadata.issuer)
        if not fresh and cached is not None and time.monotonic() - cached[0] < METADATA_TTL_S:
            return cached[1]
        document = await _get_json(metadata.jwks_uri)
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise SignInRefused("provider_unreachable") from None
        self._keys[metadata.issuer] = (time.monotonic(), keys)
        return keys

    async def exchange(
        self, metadata: ProviderMetadata, provider: IdentityProvider, secret: str | None,
        code: str, redirect_uri: str, code_verifier: str,
    ) -> str:
        """The ID token the token endpoint returns for this code (OIDC Core 1.0 section
        3.1.3.1), the PKCE verifier proving this client asked for it (RFC 7636 4.5)."""
        form = {
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        headers = {"Accept": "application/json"}
        if secret:
            # client_secret_basic (RFC 6749 section 2.3.1): each part form-urlencoded.
            basic = f"{quote(provider.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(
                basic.encode("utf-8")).decode("ascii")
        else:
            form["client_id"] = provider.client_id
        try:
            async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:  # noqa: SIM117
                async with session.post(metadata.token_endpoint, data=form, headers=headers,
                                        allow_redirects=False) as response:
                    body = await response.content.read(MAX_DOCUMENT_BYTES)
                    status = response.status
        except (aiohttp.ClientError, TimeoutError):
            raise SignInRefused("provider_unreachable") from None
        if status != 200:
            raise SignInRefused("code_refused")
        try:
            answer = _json_object(body)
        except ValueError:
            raise SignInRefused("code_refused") from None
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise SignInRefused("code_refused")
        return id_token

    async def verify(
        self, metadata: ProviderMetadata, provider: IdentityProvider, id_token: str,
        nonce: str, now: datetime,
    ) -> Verified:
        """Every check of OIDC Core 1.0 section 3.1.3.7 that applies to this client."""
        keys = await self.key_set(metadata)
        try:
            try:
                token = jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS)
            except InvalidKeyIdError:
                # The provider may have rotated its keys since they were cached.
                keys = await self.key_set(metadata, fresh=True)
                token = jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS)
            claims = CodeIDToken(
                token.claims, token.header,
                options={"iss": {"essential": True, "value": provider.issuer},
                         "aud": {"essential": True, "value": provider.client_id}},
                params={"nonce": nonce, "client_id": provider.client_id},
            )
            claims.validate(now=int(now.timestamp()), leeway=LEEWAY_S)
        except (JoseError, ValueError, KeyError, TypeError):
            raise SignInRefused("token_invalid") from None
        # Authlib compares the nonce with !=; it is a secret: compared again, in constant
        # time, and required.
        if not same(nonce, claims.get("nonce")):
            raise SignInRefused("token_invalid")
        subject, issuer = claims.get("sub"), claims.get("iss")
        if not isinstance(subject, str) or not subject or issuer != provider.issuer:
            raise SignInRefused("token_invalid")
        amr = claims.get("amr") or []
        acr = claims.get("acr")
        return Verified(
            sign_in=SignIn(provider.issuer, subject),
            amr=tuple(str(a) for a in amr),
            acr=acr if isinstance(acr, str) else None,
        )


def _endpoint(document: Mapping[str, Any], name: str, issuer: str) -> str:
    """An endpoint of the discovery document, on the issuer's own scheme (an https
    issuer never sends a browser or a code over plain http)."""
    value = document.get(name)
    if not isinstance(value, str) or urlsplit(value).scheme != urlsplit(issuer).scheme:
        raise ValueError(name)
    return value


async def _get_json(url: str) -> dict[str, Any]:
    try:
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:  # noqa: SIM117
            async with session.get(url, allow_redirects=False) as response:
                body = await response.content.read(MAX_DOCUMENT_BYTES)
                status = response.status
    except (aiohttp.ClientError, TimeoutError):
        raise SignInRefused("provider_unreachable") from None
    if status != 200:
        raise SignInRefused("provider_unreachable")
    try:
        return _json_object(body)
    except ValueError:
        raise SignInRefused("provider_unreachable") from None


def _json_object(body: bytes) -> dict[str, Any]:
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def transport_allowed(issuer: str, *, production: bool) -> bool:
    """Whether the gateway may talk to this issuer: in production only over https (a
    provider on this machine's loopback excepted: nothing off the host sees that), so
    codes, tokens and keys are never fetched in the clear (OIDC Core 1.0 section 16.17)."""
    parts = urlsplit(issuer)
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and (not production or parts.hostname in LOOPBACK_HOSTS)


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL (for the sign-in page's CSP form-action)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# One client per process: the cache is what it shares.
CLIENT = OidcClient()
