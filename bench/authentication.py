"""CPU per bearer token authenticated, beside the code it replaced and beside the floor,
all measured in the same run.

    .venv/bin/python bench/authentication.py --tokens 5000 --rounds 7

--tokens EdDSA tokens of one organisation's system (the gateway's own minting,
``gateway.client.issue_token``, each with its own jti) are signed before any timing; then
each round times, with time.process_time, every token through:

(a) ``TokenVerifier.authenticate`` as the gateway runs it, on the real ``Directory`` over a
    temporary SQLite store, up to but excluding the jti ledger: its ledger is a test
    double whose ``claim`` answers True in memory (a real one is a database write);
(b) the code (a) replaced (as of 583a278), inline below: ``jwt.get_unverified_header`` then
    ``jwt.decode`` (the whole token decoded twice, PyJWT's options merged per call, the
    registered key's algorithm worked out per token), then the same claim checks and
    principal;
(c) the floor: a bare ``cryptography`` Ed25519 verify (RFC 8032) of the same token's
    signing input, its signature base64url-decoded first; no JSON, no claims.

Rounds are interleaved (a, b, c, a, b, c, ...) so drift in the machine's speed falls on
all three alike; figures are min and median µs of CPU per token.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jwt  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402

from gateway import keys  # noqa: E402
from gateway.client import issue_token  # noqa: E402
from gateway.domain.errors import AuthenticationFailed, ConfigurationError  # noqa: E402
from gateway.domain.model import Contact, Organisation, OrgKind, Principal, Role  # noqa: E402
from gateway.services import auth  # noqa: E402
from gateway.services.directory import Directory, KeyHolder  # noqa: E402
from gateway.storage.base import TokenLedger  # noqa: E402
from gateway.storage.directory import DirectoryStore  # noqa: E402
from gateway.storage.engine import SqliteDatabase  # noqa: E402

ORG = "POL-SFK-IPS"
AUDIENCE = "urn:dipgw:bench"
RULES = auth.TokenRules(audience=AUDIENCE, max_lifetime_s=900, clock_skew_s=60)


class FreshLedger(TokenLedger):
    """Every jti is new: the ledger's database write is not what is measured here."""

    async def claim(self, issuer: str, token_id: str, expires_at: datetime, now: datetime) -> bool:
        return True


class BeforeVerifier(auth.TokenVerifier):
    """(b): ``authenticate`` and ``_key`` as they were before the change, verbatim but for
    the names of ``_key`` and its cache, on the same directory, ledger double, claim
    checks and principal as (a)."""

    def __init__(self, directory: Directory, ledger: TokenLedger) -> None:
        super().__init__(directory, ledger, RULES)
        self._before_cache: dict[tuple[str, str], jwt.PyJWK] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        token = auth._bearer(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthenticationFailed("The token is malformed.") from None
        alg = header.get("alg")
        if alg not in auth.ACCEPTED_ALGORITHMS:
            raise AuthenticationFailed(
                "The token's algorithm is not accepted; sign with EdDSA or ES256."
            )
        holder, key = self._before_key(header.get("kid"), alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self._rules.audience,
                issuer=holder.org.code,
                leeway=self._rules.clock_skew_s,
                options={"require": list(auth.REQUIRED_CLAIMS), "verify_iat": True},
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
        remember_until = datetime.fromtimestamp(expires, UTC) + timedelta(
            seconds=self._rules.clock_skew_s
        )
        if not await self._ledger.claim(
            holder.org.code, principal.token_id, remember_until, self._clock()
        ):
            raise AuthenticationFailed("The token has already been used; sign a new one.")
        return principal

    def _before_key(self, kid: object, alg: str) -> tuple[KeyHolder, jwt.PyJWK]:
        if not isinstance(kid, str) or not kid or len(kid) > auth.MAX_CLAIM_CHARS:
            raise AuthenticationFailed("The token header has no usable key id (kid).")
        holder = self._directory.key(kid)
        if holder is None or _before_algorithm(holder.jwk) != alg:
            raise AuthenticationFailed("The token's key is not registered for its algorithm.")
        cache_key = (kid, str(holder.jwk.get("x")))
        cached = self._before_cache.get(cache_key)
        if cached is None:
            cached = self._before_cache[cache_key] = jwt.PyJWK(dict(holder.jwk), algorithm=alg)
        return holder, cached


def _before_algorithm(jwk: Any) -> str | None:
    try:
        return keys.algorithm_for(dict(jwk))
    except ConfigurationError:
        return None


def floor(public: Ed25519PublicKey) -> Callable[[str], None]:
    """(c): what any verifier of these tokens must pay, and nothing else."""

    def verify(token: str) -> None:
        signing_input, _, signature = token.rpartition(".")
        public.verify(base64.urlsafe_b64decode(signature + "=="), signing_input.encode("ascii"))

    return verify


async def timed(check: Callable[[str], Awaitable[object]], headers: list[str]) -> float:
    start = time.process_time()
    for header in headers:
        await check(header)
    return time.process_time() - start


def summary(label: str, seconds: list[float], count: int, beside: dict[str, float]) -> float:
    per = sorted(s / count * 1e6 for s in seconds)
    median = statistics.median(per)
    ratios = "  ".join(f"{median / other:5.2f}x ({name})" for name, other in beside.items())
    print(f"  {label:<52} min {per[0]:7.1f}  median {median:7.1f} µs CPU/token  {ratios}")
    return median


async def run(tokens: int, rounds: int) -> None:
    private = keys.generate("EdDSA")
    org = Organisation(ORG, OrgKind.POLICE, "Bench police", "Suffolk", Contact("Bench SPOC"),
                       jwks=(keys.public_jwk(private),))
    now = datetime.now(UTC)
    minted = [
        issue_token(private, org_code=ORG, role=Role.SYSTEM, audience=AUDIENCE,
                    subject="system", ttl_s=900, now=now, token_id=str(uuid.uuid4()))
        for _ in range(tokens)
    ]
    headers = [f"Bearer {token}" for token in minted]
    x = private["x"]
    verify = floor(Ed25519PublicKey.from_public_bytes(
        base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))))

    async def bare(header: str) -> None:
        verify(header.removeprefix("Bearer "))

    with tempfile.TemporaryDirectory(prefix="dipgw-bench-") as scratch:
        db = SqliteDatabase(Path(scratch) / "dipgw.sqlite3")
        await db.open()
        try:
            directory = Directory(DirectoryStore(db))
            await directory.save([org], now)
            after = auth.TokenVerifier(directory, FreshLedger(), RULES)
            before = BeforeVerifier(directory, FreshLedger())
            principal = await after.authenticate(headers[0])
            assert await before.authenticate(headers[0]) == principal
            times: dict[str, list[float]] = {"a": [], "b": [], "c": []}
            for _ in range(rounds):
                times["a"].append(await timed(after.authenticate, headers))
                times["b"].append(await timed(before.authenticate, headers))
                times["c"].append(await timed(bare, headers))
        finally:
            await db.close()

    print(f"{tokens} EdDSA tokens x {rounds} rounds, CPU per token (time.process_time):")
    b = statistics.median(times["b"]) / tokens * 1e6
    c = statistics.median(times["c"]) / tokens * 1e6
    a = summary("(a) TokenVerifier.authenticate (ledger in memory)", times["a"], tokens,
                {"b": b, "c": c})
    summary("(b) before: get_unverified_header + jwt.decode", times["b"], tokens, {"c": c})
    summary("(c) floor: bare cryptography Ed25519 verify", times["c"], tokens, {})
    print(f"  (a) saves {b - a:.1f} µs per token: {(b - a) / (b - c):.0%} of what (b) spent "
          f"above the floor; {a - c:.1f} µs above it remain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(run(args.tokens, args.rounds))


if __name__ == "__main__":
    main()
