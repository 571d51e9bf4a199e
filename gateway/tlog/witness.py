"""C2SP tlog-witness §add-checkpoint: the request format and the witness's decision, no I/O.

A witness keeps, per log origin, only the latest checkpoint it cosigned. Given a request
(``old <size>``, up to 63 base64 consistency-proof lines, a blank line, a signed
checkpoint) it cosigns only a checkpoint that is validly signed by a key it trusts for that
origin and provably consistent with what it cosigned before, so a log cannot show two
histories to parties who check a witness's cosignature. Each refusal is an exception whose
class names the spec's outcome; the HTTP edge maps them to the status codes:

* :class:`MalformedAddCheckpoint` — 400 (bad body, or old size above the checkpoint size);
* :class:`UntrustedCheckpoint` — 403 (no valid signature by a trusted key, or a trusted
  key's signature fails);
* :class:`UnknownLog` — 404 (origin not witnessed);
* :class:`SizeConflict` — 409 with ``text/x.tlog.size`` body ``<latest size>\\n``;
* :class:`InconsistentCheckpoint` — 422 (consistency proof fails, same size with another
  root, a non-empty proof from size 0, a size-0 checkpoint without the empty root).

The caller must store the new latest checkpoint with a compare-and-swap against the one
the decision was made from (the spec's race between two requests), and only then cosign.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.tlog.checkpoint import Checkpoint
from gateway.tlog.errors import (
    MalformedCheckpoint,
    MalformedNote,
    NoteVerificationError,
    ProofError,
    TlogError,
)
from gateway.tlog.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from gateway.tlog.note import (
    MAX_NOTE_BYTES,
    Verifier,
    parse_signed_note,
    parse_verifier_key,
    verified_keys,
)

__all__ = [
    "MAX_PROOF_LINES",
    "SIZE_CONTENT_TYPE",
    "AddCheckpoint",
    "Cosignable",
    "InconsistentCheckpoint",
    "LatestCheckpoint",
    "MalformedAddCheckpoint",
    "SizeConflict",
    "UnknownLog",
    "UntrustedCheckpoint",
    "WitnessRefusal",
    "WitnessedLogs",
    "decide",
    "open_request",
    "parse_add_checkpoint",
    "parse_size_body",
]

MAX_PROOF_LINES = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_MAX_SIZE = 2**64 - 1


class WitnessRefusal(TlogError):
    """The witness will not cosign (C2SP tlog-witness §add-checkpoint); see subclasses."""


class MalformedAddCheckpoint(WitnessRefusal):
    """The request body is not an add-checkpoint request (400)."""


class UntrustedCheckpoint(WitnessRefusal):
    """No valid signature by a key trusted for the origin, or a trusted key's forged (403)."""


class UnknownLog(WitnessRefusal):
    """The checkpoint's origin is not a log this witness witnesses (404)."""


class SizeConflict(WitnessRefusal):
    """The old size is not the size the witness last cosigned (409); says which it is."""

    def __init__(self, latest_size: int, old_size: int) -> None:
        super().__init__(
            f"old size {old_size} does not match the latest cosigned size {latest_size}")
        self.latest_size = latest_size


class InconsistentCheckpoint(WitnessRefusal):
    """The checkpoint is not provably consistent with what the witness cosigned (422)."""


def _size(text: str, what: str) -> int:
    if not _SIZE.fullmatch(text) or int(text) > _MAX_SIZE:
        raise MalformedAddCheckpoint(f"malformed add-checkpoint: bad {what} {text!r}")
    return int(text)


def _proof_hash(line: str) -> bytes:
    try:
        raw = base64.b64decode(line.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise MalformedAddCheckpoint(
            "malformed add-checkpoint: a proof line is not base64") from exc
    if len(raw) != HASH_SIZE or base64.b64encode(raw).decode("ascii") != line:
        raise MalformedAddCheckpoint(
            "malformed add-checkpoint: a proof line is not the canonical base64 of 32 bytes")
    return raw


@dataclass(frozen=True)
class AddCheckpoint:
    """An add-checkpoint request: old size, consistency proof, signed checkpoint note."""

    old_size: int
    proof: tuple[bytes, ...]
    signed_checkpoint: str

    def to_body(self) -> bytes:
        """The request body as tlog-witness §add-checkpoint lays it out."""
        lines = [f"old {self.old_size}", *(base64.b64encode(h).decode("ascii")
                                            for h in self.proof)]
        return ("".join(line + "\n" for line in lines) + "\n"
                + self.signed_checkpoint).encode("utf-8")


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse a request body strictly; raise :class:`MalformedAddCheckpoint`."""
    if len(body) > MAX_NOTE_BYTES:
        raise MalformedAddCheckpoint("malformed add-checkpoint: body too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedAddCheckpoint("malformed add-checkpoint: not UTF-8") from exc
    split = text.find("\n\n")
    if split < 0:
        raise MalformedAddCheckpoint(
            "malformed add-checkpoint: no blank line before the checkpoint")
    head, signed = text[:split].split("\n"), text[split + 2:]
    old_line, proof_lines = head[0], head[1:]
    if not old_line.startswith("old "):
        raise MalformedAddCheckpoint("malformed add-checkpoint: first line must be 'old <size>'")
    old_size = _size(old_line[4:], "old size")
    if len(proof_lines) > MAX_PROOF_LINES:
        raise MalformedAddCheckpoint(
            f"malformed add-checkpoint: more than {MAX_PROOF_LINES} proof lines")
    return AddCheckpoint(old_size, tuple(_proof_hash(x) for x in proof_lines), signed)


def parse_size_body(body: bytes) -> int:
    """The latest cosigned size from a 409 body (``<size>\\n``, ``text/x.tlog.size``)."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MalformedAddCheckpoint("malformed size body: not ASCII") from exc
    if not text.endswith("\n"):
        raise MalformedAddCheckpoint("malformed size body: no final newline")
    return _size(text[:-1], "size")


@dataclass(frozen=True)
class WitnessedLogs:
    """The logs a witness witnesses: origin → the verifier keys trusted for it."""

    logs: Mapping[str, tuple[Verifier, ...]]

    @classmethod
    def from_keys(cls, vkeys: Iterable[str]) -> WitnessedLogs:
        """One log per key name (the origin), several keys per origin allowed (rotation)."""
        logs: dict[str, tuple[Verifier, ...]] = {}
        for vkey in vkeys:
            verifier = parse_verifier_key(vkey)
            logs[verifier.name] = (*logs.get(verifier.name, ()), verifier)
        return cls(logs)

    @classmethod
    def from_text(cls, text: str) -> WitnessedLogs:
        """A file of verifier keys, one a line (``GET /v1/audit/keys``); ``#`` comments."""
        return cls.from_keys(
            line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#"))


@dataclass(frozen=True)
class LatestCheckpoint:
    """The latest checkpoint a witness cosigned for one origin (its only state per log)."""

    origin: str
    size: int
    root_hash: bytes
    signed_checkpoint: str


@dataclass(frozen=True)
class Cosignable:
    """A request the witness may cosign, once ``latest`` is stored in place of the old."""

    checkpoint: Checkpoint
    note_text: str
    latest: LatestCheckpoint


def open_request(request: AddCheckpoint, logs: WitnessedLogs) -> tuple[Checkpoint, str]:
    """(checkpoint, note text) of a request whose signature a trusted log key made;
    refusals in the spec's order: malformed (400), unknown origin (404), untrusted (403)."""
    try:
        note = parse_signed_note(request.signed_checkpoint)
        checkpoint = Checkpoint.from_text(note.text)
    except (MalformedNote, MalformedCheckpoint) as exc:
        raise MalformedAddCheckpoint(f"malformed add-checkpoint: {exc}") from exc
    trusted = logs.logs.get(checkpoint.origin)
    if not trusted:
        raise UnknownLog(f"unknown log origin {checkpoint.origin!r}")
    try:
        verified_keys(note, trusted)
    except NoteVerificationError as exc:
        raise UntrustedCheckpoint(str(exc)) from exc
    return checkpoint, note.text


def decide(
    request: AddCheckpoint, logs: WitnessedLogs, latest: LatestCheckpoint | None
) -> Cosignable:
    """Apply every check of tlog-witness §add-checkpoint to ``request`` against ``latest``
    (the stored checkpoint of the request's origin, None if never cosigned); return what to
    store, or raise the :class:`WitnessRefusal` the spec names."""
    checkpoint, note_text = open_request(request, logs)
    if latest is not None and latest.origin != checkpoint.origin:
        raise ValueError("latest checkpoint of another origin")
    if request.old_size > checkpoint.size:
        raise MalformedAddCheckpoint(
            f"old size {request.old_size} exceeds the checkpoint size {checkpoint.size}")
    latest_size = 0 if latest is None else latest.size
    if request.old_size != latest_size:
        raise SizeConflict(latest_size, request.old_size)
    if checkpoint.size == 0 and checkpoint.root_hash != EMPTY_ROOT:
        raise InconsistentCheckpoint("a checkpoint of size 0 must have the empty tree's root")
    old_root = EMPTY_ROOT if latest is None else latest.root_hash
    try:
        verify_consistency(
            request.old_size, checkpoint.size, old_root, checkpoint.root_hash, request.proof)
    except ProofError as exc:
        raise InconsistentCheckpoint(
            f"checkpoint {checkpoint.size} is not consistent with the cosigned checkpoint "
            f"{latest_size}: {exc}") from exc
    return Cosignable(
        checkpoint, note_text,
        LatestCheckpoint(checkpoint.origin, checkpoint.size, checkpoint.root_hash,
                         request.signed_checkpoint),
    )
