"""SD-JWT (RFC 9901): issuing, presenting and verifying selectively disclosable JSON.

The issuer replaces each member of an object by the digest of a *disclosure*
``base64url(JSON [salt, name, value])`` listed in the object's ``_sd`` array (§4.2.1,
§4.2.4.1), and each array element by ``{"...": digest}`` of ``[salt, value]`` (§4.2.2,
§4.2.4.2); digests are ``base64url(SHA-256(ASCII disclosure))`` (§4.2.3); the payload is
signed as a JWS whose ``_sd_alg`` names the hash (§4.1.1). Here *every* member and element
is disclosable, recursively (§4.2.6), so a holder can withhold any part: the gateway keeps
the sender's full issuance and gives each recipient only the disclosures of what the
sharing policy lets it see (``present``). The compact form is
``<JWS>~<disclosure>~…~<disclosure>~`` (§4); this profile has no key binding (§4.3), so
the last component is empty.

Verification follows §7.1 and §7.3 strictly: the signature with the one key given, the
``typ`` the profile names, ``_sd_alg`` ``sha-256``; a digest found twice, a disclosure
no digest references, a disclosure of the wrong shape for its place, a claim name ``_sd``
or ``...``, or one that already exists, each rejects the whole SD-JWT. JSON with a
repeated member name is rejected too: two parsers must never see two messages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from gateway import keys

__all__ = [
    "SD_ALG",
    "SdJwt",
    "SdJwtError",
    "Verified",
    "issue",
    "present",
    "verify",
]

SD_ALG = "sha-256"
_SD = "_sd"
_SD_ALG = "_sd_alg"
_ELEMENT = "..."
_SALT_BYTES = 16  # 128 bits, RFC 9901 §9.3
_ALGORITHMS = ("EdDSA", "ES256")


class SdJwtError(ValueError):
    """The SD-JWT is malformed or does not verify; the message says what failed."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str, what: str) -> bytes:
    """base64url without padding (RFC 7515 §2), canonical: re-encodes to the same text."""
    if not text or "=" in text:
        raise SdJwtError(f"{what} is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SdJwtError(f"{what} is not unpadded base64url") from exc
    if _b64url(raw) != text:
        raise SdJwtError(f"{what} is not canonical base64url")
    return raw


def digest_of(disclosure: str) -> str:
    """The digest of a disclosure as it appears in the payload (RFC 9901 §4.2.3)."""
    return _b64url(hashlib.sha256(disclosure.encode("ascii")).digest())


def _strict_json(raw: bytes, what: str) -> Any:
    def no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, value in pairs:
            if name in found:
                raise SdJwtError(f"{what} repeats the member name {name!r}")
            found[name] = value
        return found

    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=no_repeats)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SdJwtError(f"{what} is not JSON") from exc


def _encode(parts: list[Any]) -> str:
    return _b64url(json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


@dataclass(frozen=True, slots=True)
class SdJwt:
    """An SD-JWT in its parts: the issuer-signed JWS and the disclosures that go with it."""

    jws: str
    disclosures: tuple[str, ...]

    def serialise(self) -> str:
        """The compact form ``<JWS>~<D1>~…~<Dn>~`` (RFC 9901 §4, no key binding)."""
        return "".join(f"{part}~" for part in (self.jws, *self.disclosures))

    def header(self) -> dict[str, Any]:
        """The JWS header, unverified: which key to check the signature with."""
        header = _strict_json(_b64url_decode(self.jws.split(".")[0], "the JWS header"),
                              "the JWS header")
        if not isinstance(header, dict):
            raise SdJwtError("the JWS header is a JSON object")
        return header

    @classmethod
    def parse(cls, text: str) -> SdJwt:
        """Split the compact form; refuse a key binding JWT (this profile has none)."""
        if not isinstance(text, str) or not text.isascii():
            raise SdJwtError("an SD-JWT is ASCII text")
        parts = text.split("~")
        if len(parts) < 2 or parts[-1] != "":
            raise SdJwtError(
                "an SD-JWT ends with '~' (this profile has no key binding JWT)"
            )
        jws, disclosures = parts[0], tuple(parts[1:-1])
        if jws.count(".") != 2:
            raise SdJwtError("an SD-JWT starts with a compact JWS (three parts)")
        if any(not d for d in disclosures):
            raise SdJwtError("an SD-JWT has an empty disclosure ('~~')")
        return cls(jws, disclosures)


@dataclass(frozen=True, slots=True)
class _Disclosed:
    encoded: str
    name: str | None  # None: an array element's disclosure
    value: Any


def _decode_disclosure(encoded: str) -> _Disclosed:
    parts = _strict_json(_b64url_decode(encoded, "a disclosure"), "a disclosure")
    if not isinstance(parts, list) or len(parts) not in (2, 3):
        raise SdJwtError("a disclosure is a JSON array of two or three members")
    if not isinstance(parts[0], str):
        raise SdJwtError("a disclosure's salt is a string")
    if len(parts) == 2:
        return _Disclosed(encoded, None, parts[1])
    if not isinstance(parts[1], str):
        raise SdJwtError("a disclosure's claim name is a string")
    if parts[1] in (_SD, _ELEMENT):
        raise SdJwtError(f"a disclosure may not name the claim {parts[1]!r}")
    return _Disclosed(encoded, parts[1], parts[2])


def _disclosures_by_digest(encoded: Iterable[str]) -> dict[str, _Disclosed]:
    found: dict[str, _Disclosed] = {}
    for disclosure in encoded:
        digest = digest_of(disclosure)
        if digest in found:
            raise SdJwtError("the same disclosure is given twice")
        found[digest] = _decode_disclosure(disclosure)
    return found


def _new_salt() -> str:
    return _b64url(secrets.token_bytes(_SALT_BYTES))


def _conceal(value: Any, out: list[str], salt: Callable[[], str]) -> Any:
    """``value`` with every member and element below it replaced by a digest, appending
    each disclosure to ``out`` (RFC 9901 §4.2.6: disclosures nest)."""
    if isinstance(value, Mapping):
        digests = []
        for name, member in value.items():
            if name in (_SD, _SD_ALG, _ELEMENT):
                raise SdJwtError(f"a document may not use the member name {name!r}")
            disclosure = _encode([salt(), name, _conceal(member, out, salt)])
            out.append(disclosure)
            digests.append(digest_of(disclosure))
        # §4.2.4.1: the digests are sorted so their order says nothing of the members'.
        return {_SD: sorted(digests)} if digests else {}
    if isinstance(value, list):
        elements = []
        for element in value:
            disclosure = _encode([salt(), _conceal(element, out, salt)])
            out.append(disclosure)
            elements.append({_ELEMENT: digest_of(disclosure)})
        return elements
    return value


def _signing_key(private_jwk: Mapping[str, Any]) -> tuple[Any, str]:
    algorithm = keys.algorithm_for(dict(private_jwk))
    return jwt.PyJWK(dict(private_jwk), algorithm=algorithm).key, algorithm


def issue(
    claims: Mapping[str, Any],
    private_jwk: Mapping[str, Any],
    *,
    typ: str,
    salt: Callable[[], str] = _new_salt,
) -> SdJwt:
    """Sign ``claims`` with every member and element disclosable, all disclosed.

    The JWS header carries ``typ`` (explicit typing, RFC 9901 §9.11) and the key's
    ``kid``; ``salt`` is for test vectors only (the default draws 128 random bits)."""
    disclosures: list[str] = []
    payload = _conceal(claims, disclosures, salt)
    payload[_SD_ALG] = SD_ALG
    key, algorithm = _signing_key(private_jwk)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    token = jwt.PyJWS().encode(
        body, key, algorithm=algorithm,
        headers={"typ": typ, "kid": str(private_jwk["kid"])},
    )
    return SdJwt(token, tuple(disclosures))


def _payload_unverified(sd_jwt: SdJwt) -> dict[str, Any]:
    payload = _strict_json(
        _b64url_decode(sd_jwt.jws.split(".")[1], "the JWS payload"), "the JWS payload")
    if not isinstance(payload, dict):
        raise SdJwtError("the JWS payload is a JSON object")
    return payload


@dataclass(slots=True)
class _Node:
    """One disclosable part of a document as ``present`` sees it: the disclosure that
    reveals it and what is below it (members by name, or elements in order)."""

    disclosure: str | None
    members: dict[str, _Node] | None = None
    elements: list[_Node] | None = None

    def child(self, token: str) -> _Node | None:
        if self.members is not None:
            return self.members.get(token)
        if self.elements is not None and token.isdigit() and int(token) < len(self.elements):
            return self.elements[int(token)]
        return None

    def remove(self, token: str) -> None:
        if self.members is not None:
            self.members.pop(token, None)
        elif self.elements is not None and token.isdigit() and int(token) < len(self.elements):
            del self.elements[int(token)]

    def disclosures(self) -> Iterable[str]:
        if self.disclosure is not None:
            yield self.disclosure
        for below in (*(self.members or {}).values(), *(self.elements or ())):
            yield from below.disclosures()


def _tree(value: Any, disclosure: str | None, by_digest: Mapping[str, _Disclosed]) -> _Node:
    """The ``_Node`` tree of a fully disclosed SD-JWT's payload or disclosure value."""
    if isinstance(value, dict):
        members = {}
        for digest in value.get(_SD, ()):
            found = by_digest.get(digest)
            if found is None or found.name is None:
                raise SdJwtError("present() needs the issuance with every disclosure")
            members[found.name] = _tree(found.value, found.encoded, by_digest)
        for name, member in value.items():
            if name not in (_SD, _SD_ALG):
                members[name] = _tree(member, None, by_digest)
        return _Node(disclosure, members=members)
    if isinstance(value, list):
        elements = []
        for element in value:
            if isinstance(element, dict) and set(element) == {_ELEMENT}:
                found = by_digest.get(element[_ELEMENT])
                if found is None or found.name is not None:
                    raise SdJwtError("present() needs the issuance with every disclosure")
                elements.append(_tree(found.value, found.encoded, by_digest))
            else:
                elements.append(_tree(element, None, by_digest))
        return _Node(disclosure, elements=elements)
    return _Node(disclosure)


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def present(issued: SdJwt, pointers: Iterable[str]) -> SdJwt:
    """The presentation that reveals the document without the parts ``pointers`` name.

    The pointers (RFC 6901) are applied in order, each to what the ones before it left,
    exactly as ``gateway.pipeline.redaction.redact`` applies them, so the verified
    presentation *is* the redacted document (a property test holds them together). The
    JWS is unchanged: the recipient checks the sender's own signature."""
    root = _tree(_payload_unverified(issued), None, _disclosures_by_digest(issued.disclosures))
    for pointer in pointers:
        tokens = [_unescape(t) for t in pointer.split("/")[1:]]
        if not tokens:
            continue
        parent: _Node | None = root
        for token in tokens[:-1]:
            parent = parent.child(token) if parent is not None else None
        if parent is not None:
            parent.remove(tokens[-1])
    kept = set(root.disclosures())
    return SdJwt(issued.jws, tuple(d for d in issued.disclosures if d in kept))


@dataclass(frozen=True, slots=True)
class Verified:
    """What a verified SD-JWT says: its JWS header, the disclosed claims, and how many
    digests it carries that no disclosure revealed (withheld parts, or decoys)."""

    header: Mapping[str, Any]
    claims: dict[str, Any]
    withheld: int


class _Unpacker:
    """RFC 9901 §7.1 step 3: replace digests by what their disclosures say, once each."""

    def __init__(self, by_digest: Mapping[str, _Disclosed]) -> None:
        self._by_digest = by_digest
        self._seen: set[str] = set()
        self.withheld = 0

    def _claim(self, digest: Any) -> _Disclosed | None:
        if not isinstance(digest, str):
            raise SdJwtError("a digest is a string")
        if digest in self._seen:
            raise SdJwtError("a digest appears twice")
        self._seen.add(digest)
        found = self._by_digest.get(digest)
        if found is None:
            self.withheld += 1
        return found

    def unpack(self, value: Any) -> Any:
        if isinstance(value, dict):
            out = {name: self.unpack(member) for name, member in value.items()
                   if name != _SD}
            digests = value.get(_SD, [])
            if not isinstance(digests, list):
                raise SdJwtError("'_sd' is an array of digests")
            for digest in digests:
                found = self._claim(digest)
                if found is None:
                    continue
                if found.name is None:
                    raise SdJwtError("an array element's disclosure is referenced as a member")
                if found.name in out:
                    raise SdJwtError(f"the claim {found.name!r} is disclosed twice")
                out[found.name] = self.unpack(found.value)
            return out
        if isinstance(value, list):
            elements = []
            for element in value:
                if isinstance(element, dict) and set(element) == {_ELEMENT}:
                    found = self._claim(element[_ELEMENT])
                    if found is None:
                        continue
                    if found.name is not None:
                        raise SdJwtError("a member's disclosure is referenced as an element")
                    elements.append(self.unpack(found.value))
                else:
                    elements.append(self.unpack(element))
            return elements
        return value

    def unreferenced(self) -> bool:
        return not set(self._by_digest) <= self._seen


def verify(sd_jwt: SdJwt, public_jwk: Mapping[str, Any], *, typ: str) -> Verified:
    """Check the SD-JWT against the one key given and return what it discloses.

    Raises :class:`SdJwtError` naming the first failure (RFC 9901 §7.1, §7.3)."""
    algorithm = keys.algorithm_for(dict(public_jwk))
    if algorithm not in _ALGORITHMS:
        raise SdJwtError(f"keys of algorithm {algorithm} are not accepted")
    try:
        verifying_key = jwt.PyJWK(dict(public_jwk), algorithm=algorithm).key
        decoded = jwt.PyJWS().decode_complete(sd_jwt.jws, verifying_key, algorithms=[algorithm])
    except jwt.InvalidSignatureError as exc:
        raise SdJwtError("the sender's signature does not verify") from exc
    except jwt.PyJWTError as exc:
        raise SdJwtError(f"the JWS is malformed: {exc}") from exc
    header = decoded["header"]
    if header.get("typ") != typ:
        raise SdJwtError(f"the JWS header's typ is {header.get('typ')!r}, not {typ!r}")
    if header.get("kid") != public_jwk.get("kid"):
        raise SdJwtError("the JWS header's kid is not the key's")
    payload = _strict_json(decoded["payload"], "the JWS payload")
    if not isinstance(payload, dict):
        raise SdJwtError("the JWS payload is a JSON object")
    if payload.pop(_SD_ALG, None) != SD_ALG:
        raise SdJwtError(f"the payload's _sd_alg must be {SD_ALG!r}")
    unpacker = _Unpacker(_disclosures_by_digest(sd_jwt.disclosures))
    claims = unpacker.unpack(payload)
    if unpacker.unreferenced():
        raise SdJwtError("a disclosure is referenced by no digest")
    return Verified(header, claims, unpacker.withheld)
