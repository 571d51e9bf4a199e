"""Bearer-token authentication through the real app: every way a token can be wrong is a 401
problem with a ``WWW-Authenticate: Bearer`` challenge, and a refused submission stores nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient

from gateway import keys
from gateway.client import Credentials, GatewayClient, issue_token
from gateway.config import Settings
from gateway.domain.model import Role
from gateway.http.services import SERVICES
from tests.conftest import EXAMPLES, bearer, credentials, load, table_counts

SENDER = "POL-SFK-IPS"
RA1 = EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json"
PROBLEM_TYPE = "urn:dipgw:problem:unauthenticated"


# --- building tokens by hand ------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def org_key(settings: Settings, org: str = SENDER) -> dict[str, Any]:
    return dict(credentials(settings, org).private_jwk)


def claims(settings: Settings, org: str = SENDER, **changes: Any) -> dict[str, Any]:
    """Valid claims for ``org``; a change to ``None`` removes the claim."""
    now = int(datetime.now(UTC).timestamp())
    base: dict[str, Any] = {
        "iss": org,
        "sub": "system",
        "aud": settings.audience,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
        "role": Role.SYSTEM.value,
    }
    for name, value in changes.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def sign(
    private: dict[str, Any],
    payload: dict[str, Any],
    *,
    kid: str | None = None,
    alg: str | None = None,
) -> str:
    alg = alg or keys.algorithm_for(private)
    signing_key = jwt.PyJWK(private, algorithm=alg).key
    # JWS rather than JWT encoding, so that claims PyJWT would refuse to build can be signed.
    return jwt.api_jws.encode(
        json.dumps(payload).encode("utf-8"),
        signing_key,
        algorithm=alg,
        headers={"kid": kid or private["kid"], "typ": "JWT"},
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


# --- the bad Authorization headers --------------------------------------------------------

Case = Callable[[Settings], "str | None"]


def _missing(settings: Settings) -> str | None:
    return None


def _basic(settings: Settings) -> str | None:
    return "Basic xyz"


def _bearer_alone(settings: Settings) -> str | None:
    return "Bearer"


def _bearer_blank(settings: Settings) -> str | None:
    return "Bearer    "


def _bearer_garbage(settings: Settings) -> str | None:
    return "Bearer not-a-token-at-all"


def _bearer_three_garbage_parts(settings: Settings) -> str | None:
    return "Bearer aaaa.bbbb.cccc"


def _bearer_payload_not_object(settings: Settings) -> str | None:
    header = b64json({"alg": "EdDSA", "kid": org_key(settings)["kid"]})
    return f"Bearer {header}.{b64json(['iss', SENDER])}.{b64url(b'x' * 64)}"


def _bearer_huge(settings: Settings) -> str | None:
    return "Bearer " + "A" * 6000


def _expired(settings: Settings) -> str | None:
    token = issue_token(
        org_key(settings),
        org_code=SENDER,
        role=Role.SYSTEM,
        audience=settings.audience,
        subject="system",
        ttl_s=60,
        now=now_utc() - timedelta(hours=1),
        token_id=str(uuid.uuid4()),
    )
    return f"Bearer {token}"


def _wrong_audience(settings: Settings) -> str | None:
    return f"Bearer {sign(org_key(settings), claims(settings, aud='urn:some-other-gateway'))}"


def _missing_audience(settings: Settings) -> str | None:
    return f"Bearer {sign(org_key(settings), claims(settings, aud=None))}"


def _wrongly_signed(settings: Settings) -> str | None:
    impostor = keys.generate("EdDSA")
    token = sign(impostor, claims(settings), kid=org_key(settings)["kid"])
    return f"Bearer {token}"


def _tampered_payload(settings: Settings) -> str | None:
    token = sign(org_key(settings), claims(settings, role="auditor"))
    header, _, signature = token.split(".")
    return f"Bearer {header}.{b64json(claims(settings, role='system'))}.{signature}"


def _alg_none_by_hand(settings: Settings) -> str | None:
    header = b64json({"alg": "none", "typ": "JWT", "kid": org_key(settings)["kid"]})
    return f"Bearer {header}.{b64json(claims(settings))}."


def _alg_none_mixed_case(settings: Settings) -> str | None:
    header = b64json({"alg": "nOnE", "typ": "JWT", "kid": org_key(settings)["kid"]})
    return f"Bearer {header}.{b64json(claims(settings))}."


def _alg_none_with_signature(settings: Settings) -> str | None:
    header = b64json({"alg": "none", "kid": org_key(settings)["kid"]})
    return f"Bearer {header}.{b64json(claims(settings))}.{b64url(b'x' * 64)}"


def _no_alg(settings: Settings) -> str | None:
    header = b64json({"typ": "JWT", "kid": org_key(settings)["kid"]})
    return f"Bearer {header}.{b64json(claims(settings))}."


def _alg_none_pyjwt(settings: Settings) -> str | None:
    try:
        token = jwt.encode(claims(settings), None, algorithm="none",
                           headers={"kid": org_key(settings)["kid"]})
    except Exception as exc:  # a PyJWT that refuses to build one is fine too
        pytest.skip(f"PyJWT refuses alg=none: {exc}")
    return f"Bearer {token}"


def _public_key_secrets(settings: Settings) -> list[bytes]:
    public = keys.public_jwk(org_key(settings))
    x = public["x"]
    raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
    return [raw, json.dumps(public).encode(), x.encode()]


def hs256(secret: bytes, payload: dict[str, Any], kid: str) -> str:
    """An HMAC token built by hand, since PyJWT itself refuses JWK-looking HMAC secrets."""
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{b64json(payload)}"
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def _hs256_raw_public_key(settings: Settings) -> str | None:
    secret = _public_key_secrets(settings)[0]
    return f"Bearer {hs256(secret, claims(settings), org_key(settings)['kid'])}"


def _hs256_public_jwk_text(settings: Settings) -> str | None:
    secret = _public_key_secrets(settings)[1]
    return f"Bearer {hs256(secret, claims(settings), org_key(settings)['kid'])}"


def _hs256_public_x(settings: Settings) -> str | None:
    secret = _public_key_secrets(settings)[2]
    return f"Bearer {hs256(secret, claims(settings), org_key(settings)['kid'])}"


def _hs256_pyjwt_raw_public_key(settings: Settings) -> str | None:
    secret = _public_key_secrets(settings)[0]
    token = jwt.encode(claims(settings), secret, algorithm="HS256",
                       headers={"kid": org_key(settings)["kid"]})
    return f"Bearer {token}"


def _unknown_issuer(settings: Settings) -> str | None:
    return f"Bearer {sign(org_key(settings), claims(settings, iss='POL-NOWHERE'))}"


def _issuer_not_a_string(settings: Settings) -> str | None:
    return f"Bearer {sign(org_key(settings), claims(settings, iss=[SENDER]))}"


def _missing_issuer(settings: Settings) -> str | None:
    return f"Bearer {sign(org_key(settings), claims(settings, iss=None))}"


def _kid_of_one_org_iss_of_another(settings: Settings) -> str | None:
    # Signed with CJIT-SFK's real key and kid, but claiming to be the police.
    return f"Bearer {sign(org_key(settings, 'CJIT-SFK'), claims(settings, iss=SENDER))}"


def _kid_of_one_org_key_of_another(settings: Settings) -> str | None:
    # Signed by the police key, but naming CJIT-SFK's kid and issuer.
    token = sign(
        org_key(settings, SENDER),
        claims(settings, "CJIT-SFK"),
        kid=org_key(settings, "CJIT-SFK")["kid"],
    )
    return f"Bearer {token}"


def _no_kid(settings: Settings) -> str | None:
    private = org_key(settings)
    token = jwt.encode(claims(settings), jwt.PyJWK(private, algorithm="EdDSA").key,
                       algorithm="EdDSA")
    return f"Bearer {token}"


def _unknown_kid(settings: Settings) -> str | None:
    return f"Bearer {sign(org_key(settings), claims(settings), kid='not-a-registered-kid')}"


def _lifetime_too_long(settings: Settings) -> str | None:
    now = int(now_utc().timestamp())
    payload = claims(settings, iat=now, exp=now + settings.max_token_lifetime_s + 1)
    return f"Bearer {sign(org_key(settings), payload)}"


def _lifetime_a_day(settings: Settings) -> str | None:
    now = int(now_utc().timestamp())
    return f"Bearer {sign(org_key(settings), claims(settings, iat=now, exp=now + 86400))}"


def _iat_in_future(settings: Settings) -> str | None:
    now = int(now_utc().timestamp())
    payload = claims(settings, iat=now + settings.clock_skew_s + 90, exp=now + 600)
    return f"Bearer {sign(org_key(settings), payload)}"


def _nbf_in_future(settings: Settings) -> str | None:
    now = int(now_utc().timestamp())
    payload = claims(settings, nbf=now + settings.clock_skew_s + 90)
    return f"Bearer {sign(org_key(settings), payload)}"


def _missing_jti(settings: Settings) -> str | None:
    return f"Bearer {sign(org_key(settings), claims(settings, jti=None))}"


def _empty_jti(settings: Settings) -> str | None:
    return f"Bearer {sign(org_key(settings), claims(settings, jti=''))}"


def _missing_exp(settings: Settings) -> str | None:
    return f"Bearer {sign(org_key(settings), claims(settings, exp=None))}"


def _missing_iat(settings: Settings) -> str | None:
    return f"Bearer {sign(org_key(settings), claims(settings, iat=None))}"


def _string_iat(settings: Settings) -> str | None:
    return f"Bearer {sign(org_key(settings), claims(settings, iat='yesterday'))}"


def _missing_sub(settings: Settings) -> str | None:
    return f"Bearer {sign(org_key(settings), claims(settings, sub=None))}"


def _unknown_role(settings: Settings) -> str | None:
    return f"Bearer {sign(org_key(settings), claims(settings, role='superuser'))}"


def _es256_header_on_ed25519_kid(settings: Settings) -> str | None:
    # alg says ES256 and the kid is the org's real Ed25519 key: the key decides, not the token.
    impostor = keys.generate("ES256")
    return f"Bearer {sign(impostor, claims(settings), kid=org_key(settings)['kid'])}"


def _eddsa_header_signed_with_es256(settings: Settings) -> str | None:
    impostor = keys.generate("ES256")
    header = b64json({"alg": "EdDSA", "kid": org_key(settings)["kid"], "typ": "JWT"})
    body = sign(impostor, claims(settings), kid=org_key(settings)["kid"]).split(".")
    return f"Bearer {header}.{body[1]}.{body[2]}"


CASES: dict[str, Case] = {
    "missing-header": _missing,
    "basic-scheme": _basic,
    "bearer-without-token": _bearer_alone,
    "bearer-blank-token": _bearer_blank,
    "bearer-garbage": _bearer_garbage,
    "bearer-three-garbage-parts": _bearer_three_garbage_parts,
    "payload-not-an-object": _bearer_payload_not_object,
    "huge-garbage-token": _bearer_huge,
    "expired": _expired,
    "wrong-audience": _wrong_audience,
    "missing-audience": _missing_audience,
    "wrongly-signed-with-real-kid": _wrongly_signed,
    "tampered-payload": _tampered_payload,
    "alg-none-by-hand": _alg_none_by_hand,
    "alg-none-mixed-case": _alg_none_mixed_case,
    "alg-none-with-signature": _alg_none_with_signature,
    "no-alg": _no_alg,
    "alg-none-pyjwt": _alg_none_pyjwt,
    "hs256-public-key-raw-bytes": _hs256_raw_public_key,
    "hs256-public-jwk-text": _hs256_public_jwk_text,
    "hs256-public-x-text": _hs256_public_x,
    "hs256-pyjwt-raw-public-key": _hs256_pyjwt_raw_public_key,
    "unknown-issuer": _unknown_issuer,
    "issuer-not-a-string": _issuer_not_a_string,
    "missing-issuer": _missing_issuer,
    "kid-of-org-a-iss-of-org-b": _kid_of_one_org_iss_of_another,
    "kid-of-org-a-signed-by-org-b": _kid_of_one_org_key_of_another,
    "no-kid": _no_kid,
    "unknown-kid": _unknown_kid,
    "lifetime-one-second-too-long": _lifetime_too_long,
    "lifetime-a-day": _lifetime_a_day,
    "iat-in-future": _iat_in_future,
    "nbf-in-future": _nbf_in_future,
    "missing-jti": _missing_jti,
    "empty-jti": _empty_jti,
    "missing-exp": _missing_exp,
    "missing-iat": _missing_iat,
    "string-iat": _string_iat,
    "missing-sub": _missing_sub,
    "unknown-role": _unknown_role,
    "es256-header-on-ed25519-kid": _es256_header_on_ed25519_kid,
    "eddsa-header-es256-signature": _eddsa_header_signed_with_es256,
}


def fresh_ra1() -> dict[str, Any]:
    document = load(RA1)
    document["message_id"] = str(uuid.uuid4())
    return document


async def assert_unauthenticated(response: Any) -> dict[str, Any]:
    assert response.status == 401
    assert response.content_type == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    problem: dict[str, Any] = json.loads(await response.text())
    assert problem["type"] == PROBLEM_TYPE
    assert problem["title"] == "Authentication required"
    assert problem["status"] == 401
    assert isinstance(problem["detail"], str) and problem["detail"]
    return problem


def auth_headers(value: str | None) -> dict[str, str]:
    return {} if value is None else {"Authorization": value}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
async def test_bad_token_cannot_read_the_inbox(
    case: str, client: TestClient[Any, Any], settings: Settings
) -> None:
    response = await client.get("/v1/inbox", headers=auth_headers(CASES[case](settings)))
    await assert_unauthenticated(response)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
async def test_bad_token_cannot_submit_and_nothing_is_stored(
    case: str, client: TestClient[Any, Any], settings: Settings
) -> None:
    before = table_counts(settings)
    document = fresh_ra1()

    response = await client.post(
        "/v1/messages", json=document, headers=auth_headers(CASES[case](settings))
    )

    await assert_unauthenticated(response)
    assert table_counts(settings) == before
    # The same document with a good token is accepted, so only the token was wrong.
    good = await client.post("/v1/messages", json=document, headers=bearer(settings, SENDER))
    assert good.status == 202


@pytest.mark.parametrize("method,path", [("GET", "/v1/inbox"), ("POST", "/v1/messages")])
async def test_replayed_token_is_refused(
    method: str, path: str, client: TestClient[Any, Any], settings: Settings
) -> None:
    headers = bearer(settings, SENDER)
    first = await client.get("/v1/inbox", headers=headers)
    assert first.status == 200

    before = table_counts(settings)
    kwargs: dict[str, Any] = {"headers": headers}
    if method == "POST":
        kwargs["json"] = fresh_ra1()
    second = await client.request(method, path, **kwargs)

    problem = await assert_unauthenticated(second)
    assert "already been used" in problem["detail"]
    assert table_counts(settings) == before


async def test_replayed_token_is_refused_after_a_refused_first_use(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    """A token spent on a request that failed later (404) is still spent."""
    headers = bearer(settings, SENDER)
    first = await client.get(f"/v1/messages/{uuid.uuid4()}", headers=headers)
    assert first.status == 404
    await assert_unauthenticated(await client.get("/v1/inbox", headers=headers))


async def test_a_fresh_token_per_request_is_accepted(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    for _ in range(3):
        assert (await client.get("/v1/inbox", headers=bearer(settings, SENDER))).status == 200


async def test_token_at_exactly_the_maximum_lifetime_is_accepted(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    now = int(now_utc().timestamp())
    payload = claims(settings, iat=now, exp=now + settings.max_token_lifetime_s)
    response = await client.get(
        "/v1/inbox", headers={"Authorization": f"Bearer {sign(org_key(settings), payload)}"}
    )
    assert response.status == 200


async def test_bearer_scheme_is_case_insensitive(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    token = credentials(settings, SENDER).token()
    response = await client.get("/v1/inbox", headers={"Authorization": f"bearer {token}"})
    assert response.status == 200


async def register_es256_key(client: TestClient[Any, Any], org_code: str) -> dict[str, Any]:
    """Registered as an organisation's administrator would: POST /v1/directory/CODE/keys."""
    settings = client.server.app[SERVICES].settings
    es_key = keys.generate("ES256")
    response = await client.post(
        f"/v1/directory/{org_code}/keys", json=keys.public_jwk(es_key),
        headers=bearer(settings, org_code, Role.ORG_ADMIN),
    )
    assert response.status == 201, await response.text()
    return es_key


async def test_a_token_without_a_role_acts_in_the_roles_held(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    token = sign(org_key(settings), claims(settings, role=None))
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
    assert (await response.json())["roles"] == ["system"]


async def test_registered_es256_key_is_accepted(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    es_key = await register_es256_key(client, "CJIT-SFK")
    es_client = GatewayClient(
        str(client.make_url("")),
        Credentials(org_code="CJIT-SFK", private_jwk=es_key, audience=settings.audience),
        session=client.session,
    )
    assert jwt.get_unverified_header(
        Credentials(org_code="CJIT-SFK", private_jwk=es_key).token()
    )["alg"] == "ES256"

    assert await es_client.inbox() == []
    document = load(EXAMPLES / "dir_transfer" / "valid-enforcement-suffolk-to-norfolk.json")
    document["message_id"] = str(uuid.uuid4())
    answer = await es_client.send(document)
    assert answer.status == 202

    # The organisation's Ed25519 key still works alongside it.
    assert (await client.get("/v1/inbox", headers=bearer(settings, "CJIT-SFK"))).status == 200


async def test_registered_es256_key_cannot_be_used_as_eddsa_or_by_another_org(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    es_key = await register_es256_key(client, "CJIT-SFK")
    # The right key, but issued as another organisation.
    as_other = sign(es_key, claims(settings, "CJIT-NFK"))
    await assert_unauthenticated(
        await client.get("/v1/inbox", headers={"Authorization": f"Bearer {as_other}"})
    )
    # The ES256 kid with a token claiming EdDSA, signed by an Ed25519 key.
    impostor = keys.generate("EdDSA")
    as_eddsa = sign(impostor, claims(settings, "CJIT-SFK"), kid=es_key["kid"])
    await assert_unauthenticated(
        await client.get("/v1/inbox", headers={"Authorization": f"Bearer {as_eddsa}"})
    )
    # An unregistered ES256 key under the registered ES256 kid.
    other_es = keys.generate("ES256")
    forged = sign(other_es, claims(settings, "CJIT-SFK"), kid=es_key["kid"])
    await assert_unauthenticated(
        await client.get("/v1/inbox", headers={"Authorization": f"Bearer {forged}"})
    )


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
async def test_public_paths_need_no_token(path: str, client: TestClient[Any, Any]) -> None:
    response = await client.get(path)
    assert response.status == 200
    assert "WWW-Authenticate" not in response.headers


# A fixed message id: every pytest-xdist process must collect the same test ids.
@pytest.mark.parametrize("path", [
    "/v1/directory", "/v1/schemas", "/v1/messages/3f2b8c1e-5d4a-4e7b-9c6d-2a1f0e8b7c5d"])
async def test_other_paths_are_denied_by_default(path: str, client: TestClient[Any, Any]) -> None:
    await assert_unauthenticated(await client.get(path))


@pytest.mark.parametrize("path", ["/healthz/", "/HEALTHZ", "/healthz/../v1/inbox"])
async def test_near_public_paths_are_not_public(path: str, client: TestClient[Any, Any]) -> None:
    response = await client.get(path)
    assert response.status in (401, 404)
    if response.status == 401:
        await assert_unauthenticated(response)
