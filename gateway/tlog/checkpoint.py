"""C2SP tlog-checkpoint v1.0.0 note text, and opening a signed checkpoint.

The body ("Note text") is ``<origin>\\n<size>\\n<base64 root hash>\\n`` followed by optional
non-empty extension lines. Parsing is strict: origin non-empty, size in ASCII decimal with
no leading zero except ``0``, root hash the canonical standard base64 of exactly 32 bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.tlog.errors import MalformedCheckpoint
from gateway.tlog.note import Verifier, parse_signed_note, verified_keys

__all__ = ["Checkpoint", "MalformedCheckpoint", "OpenedCheckpoint", "open_checkpoint"]

_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
MAX_SIZE = 2**64 - 1


def _root_from_base64(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise MalformedCheckpoint("malformed checkpoint: root hash is not base64") from exc
    if len(raw) != 32:
        raise MalformedCheckpoint(f"malformed checkpoint: root hash is {len(raw)} bytes, not 32")
    if base64.b64encode(raw).decode("ascii") != text:
        raise MalformedCheckpoint("malformed checkpoint: root hash is not canonical base64")
    return raw


def _check_line(line: str, what: str) -> None:
    if not line:
        raise MalformedCheckpoint(f"malformed checkpoint: empty {what}")
    if any(ord(c) < 0x20 for c in line):
        raise MalformedCheckpoint(f"malformed checkpoint: control character in {what}")


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size, RFC 6962 root hash and extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if "\n" in self.origin:
            raise MalformedCheckpoint("malformed checkpoint: newline in origin")
        if not 0 <= self.size <= MAX_SIZE:
            raise MalformedCheckpoint(f"malformed checkpoint: size {self.size} out of range")
        if len(self.root_hash) != 32:
            raise MalformedCheckpoint("malformed checkpoint: root hash must be 32 bytes")
        for ext in self.extensions:
            _check_line(ext, "extension line")

    def to_text(self) -> str:
        """The note text: origin, size, base64 root hash, extension lines, each + newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii")]
        return "".join(line + "\n" for line in [*lines, *self.extensions])

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a note text strictly; raise :class:`MalformedCheckpoint`."""
        if not isinstance(text, str):
            raise MalformedCheckpoint("malformed checkpoint: not text")
        if not text.endswith("\n"):
            raise MalformedCheckpoint("malformed checkpoint: does not end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedCheckpoint("malformed checkpoint: fewer than three lines")
        origin, size_text, root_text, *extensions = lines
        _check_line(origin, "origin")
        _check_line(size_text, "size")
        if not _SIZE.fullmatch(size_text) or int(size_text) > MAX_SIZE:
            raise MalformedCheckpoint(f"malformed checkpoint: bad tree size {size_text!r}")
        _check_line(root_text, "root hash")
        root_hash = _root_from_base64(root_text)
        for ext in extensions:
            _check_line(ext, "extension line")
        return cls(origin, int(size_text), root_hash, tuple(extensions))


@dataclass(frozen=True)
class OpenedCheckpoint:
    """A checkpoint whose note carried a valid signature by at least one trusted key."""

    checkpoint: Checkpoint
    signers: tuple[Verifier, ...]


def open_checkpoint(signed: str | bytes, verifiers: Iterable[Verifier]) -> OpenedCheckpoint:
    """Parse and verify a signed checkpoint note against the given trusted verifiers only.

    Raises :class:`~gateway.tlog.errors.MalformedNote`, :class:`MalformedCheckpoint` or
    :class:`~gateway.tlog.errors.NoteVerificationError`.
    """
    note = parse_signed_note(signed)
    signers = tuple(verified_keys(note, verifiers))
    return OpenedCheckpoint(Checkpoint.from_text(note.text), signers)
