"""C2SP tlog-cosignature v1 with Ed25519 (signature type ``0x04``): a witness's statement
that, at a given time, the checkpoint it cosigns is the largest consistent tree head it has
seen for that log.

* Key ID ("Format"): ``SHA-256(<name> || "\\n" || 0x04 || 32-byte public key)[:4]``.
* Verifier key (signed-note "Verifier keys", type 0x04):
  ``<name>+<hex8 key id>+<base64(0x04 || public key)>``.
* Signature ("Format", ``timestamped_signature``): ``u64 timestamp`` big-endian, then the
  64-byte Ed25519 signature; on the note's signature line it follows the key ID, so the
  line is ``— <name> base64(key ID || timestamp || signature)`` (76 bytes decoded).
  The timestamp is POSIX seconds, at most ``2**63 - 1``.
* Signed message ("Ed25519 signed message"): ``cosignature/v1\\n``, ``time <timestamp>\\n``
  (ASCII decimal, no leading zeroes), then the whole checkpoint note text including its
  final newline and any extension lines, without signature lines.

The message does not commit to the cosigner's name, so one key must never serve two
cosigner names (the spec's last rule for Ed25519). Parse failures raise
:class:`~gateway.tlog.errors.MalformedNote` ("malformed …"); a known cosigner's signature
that does not verify raises :class:`~gateway.tlog.errors.NoteVerificationError`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.tlog.errors import MalformedNote, NoteVerificationError
from gateway.tlog.note import (
    MAX_SIGNATURES,
    NoteSignature,
    SignedNote,
    Verifier,
    check_key_name,
    parse_key_string,
    parse_signature_line,
    typed_key_id,
    validated_note_text,
)

__all__ = [
    "COSIGNATURE_TYPE",
    "MAX_TIMESTAMP",
    "Cosignature",
    "Cosigner",
    "CosignerVerifier",
    "cosigned_message",
    "cosigner_key_id",
    "format_cosigner_key",
    "parse_cosignature_line",
    "parse_cosignature_lines",
    "parse_cosigner_key",
    "verified_cosignatures",
    "with_cosignatures",
]

COSIGNATURE_TYPE = 0x04
HEADER = "cosignature/v1"
MAX_TIMESTAMP = 2**63 - 1
_SIGNATURE_BYTES = 8 + 64


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """tlog-cosignature "Format": ``SHA-256(name || 0x0A || 0x04 || public_key)[:4]``."""
    return typed_key_id(name, COSIGNATURE_TYPE, public_key)


def format_cosigner_key(name: str, public_key: bytes) -> str:
    """The cosigner's verifier key ``<name>+<hex8 key id>+<base64(0x04 || public_key)>``."""
    check_key_name(name)
    if len(public_key) != 32:
        raise MalformedNote("malformed public key: Ed25519 keys are 32 bytes")
    encoded = base64.b64encode(bytes([COSIGNATURE_TYPE]) + public_key).decode("ascii")
    return f"{name}+{cosigner_key_id(name, public_key).hex()}+{encoded}"


def cosigned_message(note_text: str, timestamp: int) -> bytes:
    """tlog-cosignature "Ed25519 signed message": header line, time line, note text."""
    _check_timestamp(timestamp)
    return f"{HEADER}\ntime {timestamp}\n".encode("ascii") + validated_note_text(note_text)


def _check_timestamp(timestamp: int) -> None:
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedNote(f"malformed cosignature: timestamp {timestamp} outside 0..2^63-1")


@dataclass(frozen=True)
class Cosignature:
    """One cosignature line: cosigner name, 4-byte key ID, timestamp and Ed25519 signature."""

    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.key_id) != 4:
            raise MalformedNote("malformed cosignature: key ID must be 4 bytes")
        _check_timestamp(self.timestamp)
        if len(self.signature) != 64:
            raise MalformedNote("malformed cosignature: Ed25519 signatures are 64 bytes")

    def note_signature(self) -> NoteSignature:
        """As a signed-note signature, whose bytes are ``timestamp || signature``."""
        return NoteSignature(
            self.name, self.key_id, self.timestamp.to_bytes(8, "big") + self.signature
        )

    def line(self) -> str:
        """The signature line ``— <name> base64(key ID || timestamp || signature)\\n``."""
        return self.note_signature().line()

    @classmethod
    def from_note_signature(cls, signature: NoteSignature) -> Cosignature:
        """Read a note signature as a ``timestamped_signature`` (exactly 8 + 64 bytes)."""
        raw = signature.signature
        if len(raw) != _SIGNATURE_BYTES:
            raise MalformedNote(
                f"malformed cosignature: {len(raw)} signature bytes, expected 8 + 64"
            )
        timestamp = int.from_bytes(raw[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            raise MalformedNote("malformed cosignature: timestamp exceeds 2^63-1")
        return cls(signature.name, signature.key_id, timestamp, raw[8:])


def parse_cosignature_line(line: str) -> Cosignature:
    """Parse one line ``— <name> <base64>`` (with or without its final newline)."""
    if not isinstance(line, str):
        raise MalformedNote("malformed cosignature line: not text")
    body = line[:-1] if line.endswith("\n") else line
    if "\n" in body:
        raise MalformedNote("malformed cosignature line: more than one line")
    return Cosignature.from_note_signature(parse_signature_line(body))


def parse_cosignature_lines(text: str) -> tuple[Cosignature, ...]:
    """Parse one or more newline-terminated cosignature lines (tlog-witness
    §add-checkpoint's response body); anything else is malformed."""
    if not isinstance(text, str) or not text or not text.endswith("\n"):
        raise MalformedNote("malformed cosignatures: expected lines each ending in a newline")
    lines = text[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote(f"malformed cosignatures: more than {MAX_SIGNATURES} lines")
    return tuple(parse_cosignature_line(line) for line in lines)


@dataclass(frozen=True)
class CosignerVerifier:
    """A trusted Ed25519 cosigner (witness): name, 4-byte key ID and 32-byte public key."""

    name: str
    key_id: bytes
    public_key: bytes

    def key_string(self) -> str:
        """This cosigner as a verifier key string (type 0x04)."""
        return format_cosigner_key(self.name, self.public_key)

    def matches(self, cosignature: Cosignature) -> bool:
        """Whether the line names this cosigner (name and key ID), as signed-note matches."""
        return cosignature.name == self.name and cosignature.key_id == self.key_id

    def verify(self, note_text: str, cosignature: Cosignature) -> bool:
        """Whether ``cosignature`` is this cosigner's valid signature of ``note_text``."""
        if not self.matches(cosignature):
            return False
        # The same Ed25519 check as a log signature's, over the cosigned message.
        return Verifier(self.name, self.key_id, self.public_key).verify(
            cosigned_message(note_text, cosignature.timestamp), cosignature.signature)


def parse_cosigner_key(vkey: str) -> CosignerVerifier:
    """Parse ``<name>+<hex8 key id>+<base64(0x04 || key)>``; the key ID must match."""
    name, found_id, public_key = parse_key_string(vkey, COSIGNATURE_TYPE, "cosigner key")
    return CosignerVerifier(name=name, key_id=found_id, public_key=public_key)


@dataclass(frozen=True)
class Cosigner:
    """A witness's Ed25519 cosigning key under its name."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        check_key_name(self.name)

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte public key."""
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def verifier(self) -> CosignerVerifier:
        """The matching :class:`CosignerVerifier`."""
        return CosignerVerifier(self.name, cosigner_key_id(self.name, self.public_key),
                                self.public_key)

    def verifier_key(self) -> str:
        """The verifier key string a log operator or auditor configures."""
        return format_cosigner_key(self.name, self.public_key)

    def cosign(self, note_text: str, timestamp: int) -> Cosignature:
        """Cosign a checkpoint note text at ``timestamp`` (POSIX seconds)."""
        signature = self.private_key.sign(cosigned_message(note_text, timestamp))
        return Cosignature(self.name, cosigner_key_id(self.name, self.public_key),
                           timestamp, signature)


def verified_cosignatures(
    note: SignedNote, cosigners: Iterable[CosignerVerifier]
) -> list[CosignerVerifier]:
    """The distinct trusted ``cosigners`` with a valid cosignature on ``note``.

    As signed-note "Signatures" requires: lines whose (name, key ID) match no trusted
    cosigner are ignored (the log's own signature among them); a matching line that is not a
    well-formed timestamped signature, or does not verify, raises (fail closed: a forged
    line by a trusted name is evidence, never skipped). An empty list is a valid answer:
    the caller decides what quorum it needs.
    """
    known: dict[tuple[str, bytes], CosignerVerifier] = {}
    for trusted in cosigners:
        previous = known.setdefault((trusted.name, trusted.key_id), trusted)
        if previous.public_key != trusted.public_key:
            raise NoteVerificationError(
                f"ambiguous cosigner keys: two keys named {trusted.name!r} with ID "
                f"{trusted.key_id.hex()}"
            )
    valid: list[CosignerVerifier] = []
    for signature in note.signatures:
        cosigner = known.get((signature.name, signature.key_id))
        if cosigner is None:
            continue
        try:
            cosignature = Cosignature.from_note_signature(signature)
        except MalformedNote as exc:
            raise NoteVerificationError(
                f"invalid cosignature by trusted witness {signature.name!r}: {exc}") from exc
        if not cosigner.verify(note.text, cosignature):
            raise NoteVerificationError(
                f"invalid cosignature by trusted witness {signature.name!r} "
                f"(ID {signature.key_id.hex()})"
            )
        if cosigner not in valid:
            valid.append(cosigner)
    return valid


def with_cosignatures(signed_note: str, cosignatures: Iterable[Cosignature]) -> str:
    """``signed_note`` with the cosignature lines appended (skipping lines it already has):
    still a valid signed note, whose extra lines old verifiers ignore."""
    present = set(signed_note.split("\n"))
    extra: list[str] = []
    for cosignature in cosignatures:
        line = cosignature.line()
        if line[:-1] not in present:
            present.add(line[:-1])
            extra.append(line)
    return signed_note + "".join(extra)

