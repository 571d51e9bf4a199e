"""Organisation signing keys as JWKs (RFC 7517), with RFC 7638 thumbprints as key ids.

Used for the demo directory's development keys and by clients that sign their tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from gateway.domain.errors import ConfigurationError

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey

# The members RFC 7638 hashes, per key type.
_THUMBPRINT_MEMBERS = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y")}


def thumbprint(jwk: dict[str, Any]) -> str:
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def algorithm_for(jwk: dict[str, Any]) -> str:
    if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
        return "EdDSA"
    if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
        return "ES256"
    raise ConfigurationError("only Ed25519 (EdDSA) and P-256 (ES256) keys are supported")


def private_jwk(key: PrivateKey) -> dict[str, Any]:
    """The key as a private JWK carrying ``kid``, ``alg`` and ``use``."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        jwk: dict[str, Any] = OKPAlgorithm.to_jwk(key, as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key, as_dict=True)
    jwk["kid"] = thumbprint(jwk)
    jwk["alg"] = algorithm_for(jwk)
    jwk["use"] = "sig"
    return jwk


def public_jwk(private: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in private.items() if k != "d"}


def generate(algorithm: str = "EdDSA") -> dict[str, Any]:
    if algorithm == "EdDSA":
        return private_jwk(ed25519.Ed25519PrivateKey.generate())
    if algorithm == "ES256":
        return private_jwk(ec.generate_private_key(ec.SECP256R1()))
    raise ConfigurationError(f"unsupported algorithm {algorithm!r}; use EdDSA or ES256")


def write_private(path: Path, jwk: dict[str, Any]) -> None:
    """Write a private key readable by its owner only (created 0600, never widened)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(jwk, handle)


def read_private(path: Path) -> dict[str, Any]:
    try:
        return parse_private(path, path.read_bytes())
    except FileNotFoundError:
        raise ConfigurationError(f"no private key at {path}") from None


def parse_private(path: Path, data: bytes) -> dict[str, Any]:
    """A private JWK from bytes already read (``path`` names it in errors), for callers
    that check the file before reading it (``gateway.keyfiles``)."""
    try:
        jwk: dict[str, Any] = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigurationError(f"{path} does not hold a JSON Web Key") from None
    if not isinstance(jwk, dict):
        raise ConfigurationError(f"{path} does not hold a JSON Web Key")
    if "d" not in jwk or "kid" not in jwk:
        raise ConfigurationError(f"{path} is not a private JWK with a kid")
    algorithm_for(jwk)
    return jwk
