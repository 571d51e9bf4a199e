"""The exact answer to every bad bearer token, and the refusals of token headers built to
trick a verifier (RFC 7515 section 4, RFC 8725 sections 2.1 and 3.1): the detail a
caller reads says which rule the token broke, and no header, however odd, gets past
authentication or turns into a server error."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ec

from gateway import keys
from gateway.config import Settings
from gateway.domain.errors import AuthenticationFailed
from gateway.http.services import SERVICES
from tests.test_authentication import (
    CASES,
    SENDER,
    assert_unauthenticated,
    b64json,
    b64url,
    claims,
    org_key,
    sign,
)

# The order of P-256's base point (SEC 2 section 2.4.2): d and n - d have public points
# with the same x.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

MALFORMED = "The token is malformed."
NOT_ACCEPTED = "The token's algorithm is not accepted; sign with EdDSA or ES256."
NO_KID = "The token header has no usable key id (kid)."
NOT_REGISTERED = "The token's key is not registered for its algorithm."
BAD_SIGNATURE = "The token's signature does not verify."
NOT_YET = "The token is not valid yet (iat or nbf in the future)."
CRITICAL = "The token's header lists critical extensions (crit); this gateway supports none."


def _detail_for(settings: Settings) -> dict[str, str]:
    """What each bad token of ``tests.test_authentication.CASES`` is told."""
    lifetime = f"The token lives longer than {settings.max_token_lifetime_s} seconds."
    return {
        "missing-header": "Send 'Authorization: Bearer <token>'.",
        "basic-scheme": "The Authorization header must be 'Bearer <token>'.",
        "bearer-without-token": "The Authorization header must be 'Bearer <token>'.",
        "bearer-blank-token": "The Authorization header must be 'Bearer <token>'.",
        "bearer-garbage": "The bearer token is not a compact JWS (RFC 7515).",
        "bearer-three-garbage-parts": MALFORMED,
        # Signed with 64 bytes of x: the signature is checked before the payload is read.
        "payload-not-an-object": BAD_SIGNATURE,
        "huge-garbage-token": "The bearer token is not a compact JWS (RFC 7515).",
        "expired": "The token has expired.",
        "wrong-audience": "The token is not meant for this gateway "
                          f"(aud must be {settings.audience!r}).",
        "missing-audience": "The token lacks the 'aud' claim.",
        "wrongly-signed-with-real-kid": BAD_SIGNATURE,
        "tampered-payload": BAD_SIGNATURE,
        "alg-none-by-hand": "The bearer token is not a compact JWS (RFC 7515).",
        "alg-none-mixed-case": "The bearer token is not a compact JWS (RFC 7515).",
        "alg-none-with-signature": NOT_ACCEPTED,
        "no-alg": "The bearer token is not a compact JWS (RFC 7515).",
        "alg-none-pyjwt": "The bearer token is not a compact JWS (RFC 7515).",
        "hs256-public-key-raw-bytes": NOT_ACCEPTED,
        "hs256-public-jwk-text": NOT_ACCEPTED,
        "hs256-public-x-text": NOT_ACCEPTED,
        "hs256-pyjwt-raw-public-key": NOT_ACCEPTED,
        "unknown-issuer": f"The token's issuer must be {SENDER}, the owner of its signing key.",
        "issuer-not-a-string": f"The token's issuer must be {SENDER}, "
                               "the owner of its signing key.",
        "missing-issuer": "The token lacks the 'iss' claim.",
        "kid-of-org-a-iss-of-org-b": "The token's issuer must be CJIT-SFK, "
                                     "the owner of its signing key.",
        "kid-of-org-a-signed-by-org-b": BAD_SIGNATURE,
        "no-kid": NO_KID,
        "unknown-kid": NOT_REGISTERED,
        "lifetime-one-second-too-long": lifetime,
        "lifetime-a-day": lifetime,
        "iat-in-future": NOT_YET,
        "nbf-in-future": NOT_YET,
        "missing-jti": "The token lacks the 'jti' claim.",
        "empty-jti": "The token's jti must be a string of 1 to 200 characters.",
        "missing-exp": "The token lacks the 'exp' claim.",
        "missing-iat": "The token lacks the 'iat' claim.",
        "string-iat": MALFORMED,
        "missing-sub": "The token lacks the 'sub' claim.",
        "unknown-role": "The token's role claim names no role.",
        "es256-header-on-ed25519-kid": NOT_REGISTERED,
        "eddsa-header-es256-signature": BAD_SIGNATURE,
    }


async def refusal(client: TestClient[Any, Any], authorization: str | None) -> str:
    """The detail the app's own verifier refuses ``authorization`` with. Straight to the
    verifier: through HTTP, the per-address limit on failed authentications would answer
    429 long before the last case."""
    with pytest.raises(AuthenticationFailed) as refused:
        await client.server.app[SERVICES].verifier.authenticate(authorization)
    return refused.value.detail


async def test_every_bad_token_is_told_what_is_wrong(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    expected = _detail_for(settings)
    assert set(expected) == set(CASES)
    told = {case: await refusal(client, make(settings)) for case, make in CASES.items()}
    assert told == expected


# --- headers built to trick a verifier ---------------------------------------------------


def _signed_with_header(private: dict[str, Any], header: dict[str, Any],
                        payload: dict[str, Any]) -> str:
    """A token whose protected header is exactly ``header``, signed by ``private`` (over
    RFC 7515's signing input), so only the header is wrong."""
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    key = jwt.PyJWK(private, algorithm=keys.algorithm_for(private)).key
    signature = jwt.get_algorithm_by_name(keys.algorithm_for(private)).sign(
        signing_input.encode("ascii"), key)
    return f"{signing_input}.{b64url(signature)}"


def _hostile_headers(settings: Settings) -> dict[str, tuple[str, str]]:
    """Each: (token, the detail it is refused with). ``own`` tokens are signed with the
    organisation's registered key, so only their header is wrong; ``raw_header`` ones
    carry a header that must be refused before any signature is looked at."""
    private = org_key(settings)
    kid = private["kid"]
    impostor = keys.generate("EdDSA")
    body = claims(settings)

    def own(header: dict[str, Any]) -> str:
        return _signed_with_header(private, header, body)

    def raw_header(text: bytes) -> str:
        return f"{b64url(text)}.{b64json(body)}.{b64url(b'x' * 64)}"

    return {
        # RFC 7515 section 4.1.11: an extension the recipient does not understand makes
        # the JWS invalid; the gateway understands none, b64 (RFC 7797) included.
        "crit-unknown-extension": (
            own({"alg": "EdDSA", "kid": kid, "crit": ["exp"], "exp": 0}), CRITICAL),
        "crit-b64-true": (
            own({"alg": "EdDSA", "kid": kid, "crit": ["b64"], "b64": True}), CRITICAL),
        "crit-b64-false": (
            own({"alg": "EdDSA", "kid": kid, "crit": ["b64"], "b64": False}), CRITICAL),
        "crit-empty": (own({"alg": "EdDSA", "kid": kid, "crit": []}), CRITICAL),
        "crit-not-a-list": (own({"alg": "EdDSA", "kid": kid, "crit": "b64"}), CRITICAL),
        # An unencoded payload (RFC 7797) not declared critical is refused by PyJWT.
        "b64-false-without-crit": (own({"alg": "EdDSA", "kid": kid, "b64": False}),
                                   MALFORMED),
        # The key is the directory's, never one the token carries (RFC 7515 sections
        # 4.1.2 to 4.1.5): an attacker's embedded key or key URL is ignored.
        "embedded-jwk-of-the-signer": (
            _signed_with_header(impostor, {"alg": "EdDSA", "kid": kid,
                                           "jwk": keys.public_jwk(impostor)}, body),
            BAD_SIGNATURE),
        "jku-of-the-signer": (
            _signed_with_header(impostor, {"alg": "EdDSA", "kid": kid,
                                           "jku": "https://attacker.example/jwks"}, body),
            BAD_SIGNATURE),
        # Types a header member must not have: refused, never a server error.
        "alg-a-list": (own({"alg": ["EdDSA"], "kid": kid}), NOT_ACCEPTED),
        "alg-an-object": (own({"alg": {"EdDSA": 1}, "kid": kid}), NOT_ACCEPTED),
        "alg-null": (own({"alg": None, "kid": kid}), NOT_ACCEPTED),
        "alg-lower-case": (own({"alg": "eddsa", "kid": kid}), NOT_ACCEPTED),
        "alg-ed25519": (own({"alg": "Ed25519", "kid": kid}), NOT_ACCEPTED),
        "kid-a-number": (own({"alg": "EdDSA", "kid": 7}), NO_KID),
        "kid-a-list": (own({"alg": "EdDSA", "kid": [kid]}), NO_KID),
        "kid-null": (own({"alg": "EdDSA", "kid": None}), NO_KID),
        "kid-empty": (own({"alg": "EdDSA", "kid": ""}), NO_KID),
        "kid-too-long": (own({"alg": "EdDSA", "kid": "k" * 201}), NO_KID),
        # RFC 7515 section 4: with duplicate names the last one counts, for the key
        # chosen and for the algorithm PyJWT checks alike.
        "duplicate-alg-last-none": (
            raw_header(b'{"alg":"EdDSA","kid":"' + kid.encode() + b'","alg":"none"}'),
            NOT_ACCEPTED),
        "duplicate-kid-last-unknown": (
            raw_header(b'{"kid":"' + kid.encode() + b'","alg":"EdDSA","kid":"nobody"}'),
            NOT_REGISTERED),
        # The header itself not a JSON object in UTF-8 (RFC 7515 section 5.2 steps 3-4).
        "header-a-list": (raw_header(b'["EdDSA"]'), MALFORMED),
        "header-not-json": (raw_header(b"alg=EdDSA"), MALFORMED),
        "header-utf16": (raw_header(json.dumps({"alg": "EdDSA", "kid": kid})
                                    .encode("utf-16")), MALFORMED),
        "header-deeply-nested": (raw_header(b"[" * 2000 + b"]" * 2000), MALFORMED),
        "header-with-a-stray-character": (
            f"{b64json({'alg': 'EdDSA', 'kid': kid})}A.{b64json(body)}.{b64url(b'x' * 64)}",
            MALFORMED),
        # Padding is no part of the compact form (RFC 7515 section 2, base64url).
        "padded-signature": (own({"alg": "EdDSA", "kid": kid}) + "==",
                             "The bearer token is not a compact JWS (RFC 7515)."),
    }


async def test_hostile_headers_are_refused(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    hostile = _hostile_headers(settings)
    told = {case: await refusal(client, f"Bearer {token}") for case, (token, _) in hostile.items()}
    assert told == {case: detail for case, (_, detail) in hostile.items()}


async def test_the_same_header_built_by_hand_is_accepted(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    """The control for the cases above: the hand-built token verifies when its header is
    right, so each of them is refused for its header alone."""
    private = org_key(settings)
    for header in ({"alg": "EdDSA", "kid": private["kid"]},
                   {"alg": "EdDSA", "kid": private["kid"], "typ": "JWT"}):
        token = _signed_with_header(private, header, claims(settings))
        response = await client.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"})
        assert response.status == 200, await response.text()


# The cases that were once a server error or an accepted token, through the real app.
@pytest.mark.parametrize("case", ["alg-a-list", "alg-an-object", "kid-a-list", "crit-b64-true"])
async def test_hostile_header_is_a_401_through_the_app(
    case: str, client: TestClient[Any, Any], settings: Settings
) -> None:
    token, detail = _hostile_headers(settings)[case]
    response = await client.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"})
    assert (await assert_unauthenticated(response))["detail"] == detail


async def test_a_key_changed_under_the_same_kid_verifies_with_the_new_key_only(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    """The verifier keeps each registered key parsed, and parses it again when the
    registration under its kid changes (kids are RFC 7638 thumbprints when registered
    through the API, but the directory does not depend on it). The new P-256 key here
    even shares x with the old one (it is its negation), so only the whole registration
    tells them apart."""
    services = client.server.app[SERVICES]
    directory, repository = services.directory, services.directory.repository
    old = keys.generate("ES256")
    d = int.from_bytes(base64.urlsafe_b64decode(old["d"] + "=" * (-len(old["d"]) % 4)))
    new = keys.private_jwk(ec.derive_private_key(P256_ORDER - d, ec.SECP256R1()))
    assert new["x"] == old["x"] and new["y"] != old["y"]
    kid = old["kid"] = new["kid"] = "rotated-under-one-kid"
    now = services.clock()

    await directory.change(repository.add_system_key(
        SENDER, keys.public_jwk(old), "test", now, services.audit))
    principal = await services.verifier.authenticate(f"Bearer {sign(old, claims(settings))}")
    assert principal.org.code == SENDER

    await directory.change(repository.remove_key(SENDER, kid, "test", now, services.audit))
    await directory.change(repository.add_system_key(
        SENDER, keys.public_jwk(new), "test", now, services.audit))
    assert await refusal(client, f"Bearer {sign(old, claims(settings))}") == BAD_SIGNATURE
    principal = await services.verifier.authenticate(f"Bearer {sign(new, claims(settings))}")
    assert principal.org.code == SENDER
