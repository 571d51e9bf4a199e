"""C2SP signed-note v1.0.0 with Ed25519 signatures (signature type ``0x01``).

* Key ID: ``SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4]`` ("Ed25519 signatures").
* Verifier key: ``<name>+<hex8 key id>+<base64(0x01 || public key)>``.
* Signed note ("Format"): note text (non-empty, ending in a newline), a blank line, then
  one or more lines ``— <name> <base64(key id || signature)>\\n`` (U+2014, space).
  The text is separated from the signatures by the *last* blank line; the signed
  message is the note text including its final newline.
* Verification ("Signatures"): signatures whose (name, key ID) match no trusted key are
  ignored; a matching signature that fails to verify rejects the whole note; a note
  with no valid trusted signature is rejected.

Every parse failure raises :class:`MalformedNote` with a message starting "malformed".
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from hashlib import sha256

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.tlog.errors import MalformedNote, NoteVerificationError

__all__ = [
    "ED25519_TYPE",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "MalformedNote",
    "NoteSignature",
    "NoteVerificationError",
    "SignedNote",
    "Signer",
    "Verifier",
    "b64decode_strict",
    "check_key_name",
    "format_verifier_key",
    "key_id",
    "parse_key_string",
    "parse_signature_line",
    "parse_signed_note",
    "parse_verifier_key",
    "sign_note",
    "typed_key_id",
    "validated_note_text",
    "verified_keys",
    "verify_note",
]

ED25519_TYPE = 0x01
EM_DASH_PREFIX = "\u2014 "
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 1 << 20


def b64decode_strict(text: str, what: str) -> bytes:
    """Standard RFC 4648 §4 base64 with padding, canonical (re-encodes to the same text)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise MalformedNote(f"malformed {what}: invalid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise MalformedNote(f"malformed {what}: non-canonical base64")
    return raw


def check_key_name(name: str) -> None:
    """Key names are non-empty, with no Unicode space, no ``+`` and no control character."""
    if not name:
        raise MalformedNote("malformed key name: empty")
    for c in name:
        if c == "+" or c.isspace() or ord(c) < 0x20:
            raise MalformedNote(f"malformed key name {name!r}: contains {c!r}")


def _check_text(text: str, what: str) -> bytes:
    """UTF-8, no ASCII control character other than newline; returns the UTF-8 bytes."""
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedNote(f"malformed {what}: not valid UTF-8") from exc
    for c in text:
        if ord(c) < 0x20 and c != "\n":
            raise MalformedNote(f"malformed {what}: control character U+{ord(c):04X}")
    return raw


def typed_key_id(name: str, key_type: int, public_key: bytes) -> bytes:
    """A signed-note key ID: ``SHA-256(name || 0x0A || type || public_key)[:4]``."""
    return sha256(name.encode("utf-8") + b"\n" + bytes([key_type]) + public_key).digest()[:4]


def key_id(name: str, public_key: bytes) -> bytes:
    """Ed25519 key ID ``SHA-256(name || 0x0A || 0x01 || public_key)[:4]``."""
    return typed_key_id(name, ED25519_TYPE, public_key)


def parse_key_string(vkey: object, key_type: int, what: str) -> tuple[str, bytes, bytes]:
    """(name, key ID, 32-byte public key) of ``<name>+<hex8 key id>+<base64(type || key)>``,
    the key ID checked against the key: the form of signed-note verifier keys (type 0x01)
    and of tlog-cosignature witness keys (type 0x04). ``what`` names it in errors."""
    if not isinstance(vkey, str):
        raise MalformedNote(f"malformed {what}: not a string")
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise MalformedNote(f"malformed {what}: expected name+keyid+key")
    name, hex_id, encoded = parts
    check_key_name(name)
    if len(hex_id) != 8 or any(c not in "0123456789abcdef" for c in hex_id):
        raise MalformedNote(f"malformed {what}: key ID must be 8 lowercase hex digits")
    raw = b64decode_strict(encoded, what)
    if len(raw) != 33 or raw[0] != key_type:
        raise MalformedNote(
            f"malformed {what}: expected type 0x{key_type:02x} followed by 32 key bytes")
    public_key = raw[1:]
    if typed_key_id(name, key_type, public_key).hex() != hex_id:
        raise MalformedNote(f"malformed {what}: key ID {hex_id} does not match the key")
    return name, bytes.fromhex(hex_id), public_key


def format_verifier_key(name: str, public_key: bytes) -> str:
    """Verifier key string ``<name>+<hex8 key id>+<base64(0x01 || public_key)>``."""
    check_key_name(name)
    if len(public_key) != 32:
        raise MalformedNote("malformed public key: Ed25519 keys are 32 bytes")
    encoded = base64.b64encode(bytes([ED25519_TYPE]) + public_key).decode("ascii")
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


@dataclass(frozen=True)
class Verifier:
    """A trusted Ed25519 note verifier: key name, 4-byte key ID and 32-byte public key."""

    name: str
    key_id: bytes
    public_key: bytes

    def key_string(self) -> str:
        """This verifier as a verifier key string."""
        return format_verifier_key(self.name, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is a valid Ed25519 (RFC 8032) signature of ``message``."""
        if len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def parse_verifier_key(vkey: str) -> Verifier:
    """Parse ``<name>+<hex8 key id>+<base64(0x01 || key)>``; the key ID must match the key."""
    name, found_id, public_key = parse_key_string(vkey, ED25519_TYPE, "verifier key")
    return Verifier(name=name, key_id=found_id, public_key=public_key)


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID and the signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """The signature line ``— <name> <base64(key id || signature)>\\n``."""
        encoded = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{EM_DASH_PREFIX}{self.name} {encoded}\n"


@dataclass(frozen=True)
class SignedNote:
    """A parsed signed note: the signed text (with final newline) and its signatures."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def to_text(self) -> str:
        """Serialise as text, blank line, signature lines."""
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


@dataclass(frozen=True)
class Signer:
    """An Ed25519 note signer: a key name and its private key."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        check_key_name(self.name)

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte public key."""
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID."""
        return key_id(self.name, self.public_key)

    def verifier_key(self) -> str:
        """The verifier key string auditors configure (``GET /v1/audit/keys`` lines)."""
        return format_verifier_key(self.name, self.public_key)

    def signature(self, text: str) -> NoteSignature:
        """Sign ``text`` (validated as a note text) and return the signature."""
        message = validated_note_text(text)
        return NoteSignature(self.name, self.key_id, self.private_key.sign(message))

    def sign(self, text: str) -> str:
        """The signed note of ``text`` carrying this signer's signature."""
        return sign_note(text, [self])


def validated_note_text(text: str) -> bytes:
    """The UTF-8 bytes of a note text ("Format": non-empty, ending in a newline, no
    control character but newline), the message a signature covers."""
    if not text or not text.endswith("\n"):
        raise MalformedNote("malformed note text: must be non-empty and end in a newline")
    return _check_text(text, "note text")


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    """The signed note of ``text`` with one signature line per signer, in order."""
    if not signers:
        raise MalformedNote("malformed note: at least one signer is required")
    validated_note_text(text)
    return SignedNote(text, tuple(s.signature(text) for s in signers)).to_text()


def parse_signature_line(line: str) -> NoteSignature:
    """One signature line without its newline: ``— <name> <base64(key ID || signature)>``."""
    if not line.startswith(EM_DASH_PREFIX):
        raise MalformedNote("malformed signature line: must start with an em dash and a space")
    rest = line[len(EM_DASH_PREFIX) :]
    name, sep, encoded = rest.partition(" ")
    if not sep:
        raise MalformedNote("malformed signature line: expected '— <name> <signature>'")
    check_key_name(name)
    raw = b64decode_strict(encoded, "signature")
    if len(raw) < 5:
        raise MalformedNote("malformed signature: shorter than key ID plus signature")
    return NoteSignature(name=name, key_id=raw[:4], signature=raw[4:])


def parse_signed_note(note: str | bytes) -> SignedNote:
    """Parse a signed note (C2SP signed-note "Format"); raise :class:`MalformedNote`."""
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise MalformedNote("malformed note: too large")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedNote("malformed note: not valid UTF-8") from exc
    if not isinstance(note, str):
        raise MalformedNote("malformed note: not text")
    if len(note) > MAX_NOTE_BYTES:
        raise MalformedNote("malformed note: too large")
    _check_text(note, "note")
    if not note.endswith("\n"):
        raise MalformedNote("malformed note: does not end in a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise MalformedNote("malformed note: no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise MalformedNote("malformed note: no signature lines after the last blank line")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote(f"malformed note: more than {MAX_SIGNATURES} signatures")
    return SignedNote(text=text, signatures=tuple(parse_signature_line(x) for x in lines))


def verified_keys(note: SignedNote, verifiers: Iterable[Verifier]) -> list[Verifier]:
    """The trusted ``verifiers`` with a valid signature on ``note``, in signature order.

    Signatures by unknown (name, key ID) pairs are ignored; a known key's invalid
    signature, or no valid known signature at all, raises :class:`NoteVerificationError`.
    """
    known: dict[tuple[str, bytes], Verifier] = {}
    for v in verifiers:
        previous = known.setdefault((v.name, v.key_id), v)
        if previous.public_key != v.public_key:
            raise NoteVerificationError(
                f"ambiguous verifier keys: two keys named {v.name!r} with ID {v.key_id.hex()}"
            )
    message = note.text.encode("utf-8")
    valid: list[Verifier] = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.verify(message, sig.signature):
            raise NoteVerificationError(
                f"invalid signature by trusted key {sig.name!r} (ID {sig.key_id.hex()})"
            )
        if verifier not in valid:
            valid.append(verifier)
    if not valid:
        seen = ", ".join(f"{s.name!r} (ID {s.key_id.hex()})" for s in note.signatures)
        raise NoteVerificationError(f"no signature by a trusted key; signed by: {seen}")
    return valid


def verify_note(note: SignedNote, verifiers: Iterable[Verifier]) -> list[str]:
    """Names of the trusted ``verifiers`` that validly signed ``note`` (:func:`verified_keys`)."""
    names: list[str] = []
    for v in verified_keys(note, verifiers):
        if v.name not in names:
            names.append(v.name)
    return names
