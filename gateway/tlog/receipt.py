"""Receipts: what a sender or recipient keeps to prove, later and offline, that the audit
log holds the entry about its message.

A receipt (``"format": "dipgw-receipt/1"``) is one JSON object::

    {
      "format": "dipgw-receipt/1",
      "origin": "<the log's origin line>",
      "index": 41,                                   entry's position in the log
      "entry": "<base64 of the entry's canonical JSON (RFC 8785)>",
      "entry_hash": "<base64 RFC 6962 leaf hash SHA-256(0x00 || entry)>",
      "inclusion": {                                 once a signed checkpoint covers it
        "size": 57,                                  the checkpoint's tree size
        "proof": ["<base64 hash>", ...],             RFC 9162 §2.1.3.1 PATH(index, D[0:size])
        "checkpoint": "<C2SP signed note>"
      }
    }

Base64 is RFC 4648 §4 with padding, canonical. Members not listed are refused, so two
readers cannot disagree about what a receipt says. A receipt without ``inclusion`` is
*pending*: the entry is sequenced but no checkpoint covered it when it was issued
(``POST /v1/messages`` answers one such; ``GET /v1/messages/{id}/receipt`` the full one).

:func:`verify_receipt` checks, with no gateway: the entry hashes to ``entry_hash``
(RFC 6962 §2.1); the entry names the receipt's index; the checkpoint is a C2SP note
signed by a trusted verifier key and names the receipt's origin; the proof leads from
``entry_hash`` at ``index`` to the checkpoint's root (RFC 9162 §2.1.3.2).
:func:`verify_in_later_checkpoint` then carries the proof to a newer signed checkpoint
by an RFC 9162 §2.1.4.2 consistency proof: an entry in a tree is in every tree that
tree is a prefix of. Every failure raises :class:`ReceiptError` naming what failed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.tlog.checkpoint import Checkpoint, open_checkpoint
from gateway.tlog.errors import TlogError
from gateway.tlog.merkle import HASH_SIZE, leaf_hash, verify_consistency, verify_inclusion
from gateway.tlog.note import Verifier, parse_verifier_key

__all__ = [
    "RECEIPT_FORMAT",
    "AuditReceipt",
    "Inclusion",
    "MalformedReceipt",
    "ReceiptError",
    "VerifiedReceipt",
    "as_base64",
    "check_receipt_files",
    "parse_proof_lines",
    "parse_receipt",
    "parse_verifier_keys",
    "verify_in_later_checkpoint",
    "verify_receipt",
]

RECEIPT_FORMAT = "dipgw-receipt/1"
# Far above any real receipt (an entry is a few KiB, a proof 64 hashes at most), small
# enough that a hostile file cannot make the verifier build a huge object.
MAX_RECEIPT_BYTES = 1 << 20
MAX_PROOF_HASHES = 64
_MAX_INDEX = 2**63 - 1


class MalformedReceipt(TlogError):
    """A receipt is not a ``dipgw-receipt/1`` document; the message starts "malformed"."""


class ReceiptError(TlogError):
    """A receipt does not verify; the message names the member that failed and why."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedReceipt(f"malformed receipt: {what} is not a base64 string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise MalformedReceipt(f"malformed receipt: {what} is not base64") from exc
    if _b64(raw) != value:
        raise MalformedReceipt(f"malformed receipt: {what} is not canonical base64")
    return raw


def _hash(value: object, what: str) -> bytes:
    raw = _unb64(value, what)
    if len(raw) != HASH_SIZE:
        raise MalformedReceipt(f"malformed receipt: {what} is {len(raw)} bytes, not {HASH_SIZE}")
    return raw


def _count(value: object, what: str) -> int:
    # bool is an int in Python; a receipt saying "index": true is malformed, not index 1.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INDEX:
        raise MalformedReceipt(f"malformed receipt: {what} is not a whole number")
    return value


def _members(document: Mapping[str, Any], required: set[str], optional: set[str],
             what: str) -> None:
    missing = sorted(required - document.keys())
    if missing:
        raise MalformedReceipt(f"malformed receipt: {what} lacks {', '.join(missing)}")
    unknown = sorted(document.keys() - required - optional)
    if unknown:
        raise MalformedReceipt(f"malformed receipt: {what} has unknown member(s) "
                               f"{', '.join(unknown)}")


@dataclass(frozen=True)
class Inclusion:
    """An RFC 9162 §2.1.3 inclusion proof in the tree of a signed checkpoint."""

    size: int
    proof: tuple[bytes, ...]
    checkpoint: str

    def as_json(self) -> dict[str, Any]:
        return {"size": self.size, "proof": [_b64(h) for h in self.proof],
                "checkpoint": self.checkpoint}


@dataclass(frozen=True)
class AuditReceipt:
    """A parsed receipt; nothing in it is trusted until :func:`verify_receipt` says so.

    ``entry`` is None only in the pending receipt of a ``202`` answer, which carries the
    index and entry hash alone.
    """

    origin: str | None
    index: int
    entry_hash: bytes
    entry: bytes | None = None
    inclusion: Inclusion | None = None

    def as_json(self) -> dict[str, Any]:
        """The receipt as its JSON document (the inverse of :func:`parse_receipt`)."""
        document: dict[str, Any] = {"format": RECEIPT_FORMAT}
        if self.origin is not None:
            document["origin"] = self.origin
        document["index"] = self.index
        if self.entry is not None:
            document["entry"] = _b64(self.entry)
        document["entry_hash"] = _b64(self.entry_hash)
        if self.inclusion is not None:
            document["inclusion"] = self.inclusion.as_json()
        return document

    def to_text(self) -> str:
        """The receipt as a JSON file's text, keys in a stable order."""
        return json.dumps(self.as_json(), indent=2, ensure_ascii=False) + "\n"


def parse_receipt(data: str | bytes | Mapping[str, Any]) -> AuditReceipt:
    """Parse a receipt (JSON text or an already decoded object) strictly; raise
    :class:`MalformedReceipt` and nothing else, whatever the input."""
    document: Any
    if isinstance(data, Mapping):
        document = data
    else:
        if len(data) > MAX_RECEIPT_BYTES:
            raise MalformedReceipt("malformed receipt: larger than 1 MiB")
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise MalformedReceipt("malformed receipt: not JSON") from exc
    if not isinstance(document, Mapping):
        raise MalformedReceipt("malformed receipt: not a JSON object")
    if document.get("format") != RECEIPT_FORMAT:
        raise MalformedReceipt(f"malformed receipt: format is not {RECEIPT_FORMAT!r}")
    _members(document, {"format", "index", "entry_hash"}, {"origin", "entry", "inclusion"},
             "receipt")
    origin = document.get("origin")
    if origin is not None and (not isinstance(origin, str) or not origin):
        raise MalformedReceipt("malformed receipt: origin is not a non-empty string")
    entry = _unb64(document["entry"], "entry") if "entry" in document else None
    inclusion = None
    if "inclusion" in document:
        proved = document["inclusion"]
        if not isinstance(proved, Mapping):
            raise MalformedReceipt("malformed receipt: inclusion is not an object")
        _members(proved, {"size", "proof", "checkpoint"}, set(), "inclusion")
        hashes = proved["proof"]
        if not isinstance(hashes, list) or len(hashes) > MAX_PROOF_HASHES:
            raise MalformedReceipt(
                f"malformed receipt: inclusion proof is not a list of at most "
                f"{MAX_PROOF_HASHES} hashes")
        if not isinstance(proved["checkpoint"], str):
            raise MalformedReceipt("malformed receipt: inclusion checkpoint is not text")
        if origin is None or entry is None:
            raise MalformedReceipt(
                "malformed receipt: an inclusion proof needs the origin and the entry")
        inclusion = Inclusion(
            size=_count(proved["size"], "inclusion size"),
            proof=tuple(_hash(h, f"inclusion proof[{i}]") for i, h in enumerate(hashes)),
            checkpoint=proved["checkpoint"],
        )
    return AuditReceipt(
        origin=origin,
        index=_count(document["index"], "index"),
        entry_hash=_hash(document["entry_hash"], "entry_hash"),
        entry=entry,
        inclusion=inclusion,
    )


def parse_verifier_keys(text: str) -> list[Verifier]:
    """The verifier keys of a keys file, one a line as ``GET /v1/audit/keys`` answers;
    refuse (fail closed) a file with none, since no key would make nothing verifiable."""
    keys: list[Verifier] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            keys.append(parse_verifier_key(line.strip()))
        except TlogError as exc:
            raise ReceiptError(f"public key line {number}: {exc}") from exc
    if not keys:
        raise ReceiptError("the public key file holds no verifier keys (one a line)")
    return keys


@dataclass(frozen=True)
class VerifiedReceipt:
    """A receipt that verified: its entry, and the signed checkpoint that includes it."""

    index: int
    entry: bytes
    checkpoint: Checkpoint
    signers: tuple[str, ...]


def _open(note: str, verifiers: Iterable[Verifier], what: str) -> tuple[Checkpoint,
                                                                        tuple[str, ...]]:
    try:
        opened = open_checkpoint(note, verifiers)
    except TlogError as exc:
        raise ReceiptError(f"{what}: {exc}") from exc
    return opened.checkpoint, tuple(v.name for v in opened.signers)


def verify_receipt(receipt: AuditReceipt, verifiers: Sequence[Verifier]) -> VerifiedReceipt:
    """Verify a full receipt offline (see the module docstring); raise
    :class:`ReceiptError` naming the first member that fails.

    A pending receipt fails: without a signed checkpoint nothing binds the log to the
    entry, and a verifier that passed it would vouch for what no one signed.
    """
    if receipt.entry is None or receipt.origin is None:
        raise ReceiptError("entry: the receipt carries no entry (a pending receipt); "
                           "fetch the full one with GET /v1/messages/{id}/receipt")
    calculated = leaf_hash(receipt.entry)
    if calculated != receipt.entry_hash:
        raise ReceiptError(
            f"entry_hash: the entry hashes to {calculated.hex()}, "
            f"the receipt says {receipt.entry_hash.hex()}")
    try:
        logged_index = json.loads(receipt.entry).get("index")
    except (UnicodeDecodeError, ValueError, AttributeError) as exc:
        raise ReceiptError("entry: not a JSON object of the audit log") from exc
    if logged_index != receipt.index:
        raise ReceiptError(
            f"index: the receipt says {receipt.index}, its entry says {logged_index}")
    if receipt.inclusion is None:
        raise ReceiptError("inclusion: the receipt carries no inclusion proof yet (pending); "
                           "fetch the full one with GET /v1/messages/{id}/receipt")
    if not verifiers:
        # Fail closed: with no trusted key, any checkpoint would do.
        raise ReceiptError("checkpoint: no trusted verifier keys given")
    checkpoint, signers = _open(receipt.inclusion.checkpoint, verifiers, "checkpoint")
    if checkpoint.origin != receipt.origin:
        raise ReceiptError(f"origin: the receipt names {receipt.origin!r}, its signed "
                           f"checkpoint {checkpoint.origin!r}")
    if checkpoint.size != receipt.inclusion.size:
        raise ReceiptError(f"inclusion: size {receipt.inclusion.size} is not the signed "
                           f"checkpoint's size {checkpoint.size}")
    try:
        verify_inclusion(receipt.index, checkpoint.size, receipt.entry_hash,
                         receipt.inclusion.proof, checkpoint.root_hash)
    except TlogError as exc:
        raise ReceiptError(f"inclusion proof: {exc}") from exc
    return VerifiedReceipt(receipt.index, receipt.entry, checkpoint, signers)


def verify_in_later_checkpoint(
    receipt: AuditReceipt, verifiers: Sequence[Verifier], newer_note: str,
    consistency: Sequence[bytes],
) -> VerifiedReceipt:
    """Verify ``receipt``, then that its checkpoint's tree is a prefix of the newer signed
    checkpoint's (RFC 9162 §2.1.4.2), so the entry is in the newer tree too."""
    verified = verify_receipt(receipt, verifiers)
    newer, signers = _open(newer_note, verifiers, "newer checkpoint")
    older = verified.checkpoint
    if newer.origin != older.origin:
        raise ReceiptError(f"newer checkpoint: origin {newer.origin!r} is not the receipt's "
                           f"origin {older.origin!r}")
    if newer.size < older.size:
        raise ReceiptError(f"newer checkpoint: size {newer.size} is smaller than the "
                           f"receipt's checkpoint size {older.size} (a cut-back log)")
    try:
        verify_consistency(older.size, newer.size, older.root_hash, newer.root_hash,
                           consistency)
    except TlogError as exc:
        raise ReceiptError(f"consistency proof: {exc}") from exc
    return VerifiedReceipt(verified.index, verified.entry, newer, signers)


def parse_proof_lines(text: str) -> list[bytes]:
    """A consistency proof as a file: one base64 hash a line (as in an exported bundle's
    ``proofs/consistency``), or the JSON answer of ``GET /v1/audit/proof/consistency``."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            hashes = json.loads(stripped).get("proof")
        except (ValueError, AttributeError) as exc:
            raise ReceiptError("consistency proof: not the JSON of a proof answer") from exc
        if not isinstance(hashes, list):
            raise ReceiptError("consistency proof: the JSON has no 'proof' list")
    else:
        hashes = [line.strip() for line in stripped.splitlines() if line.strip()]
    try:
        return [_hash(h, f"consistency proof[{i}]") for i, h in enumerate(hashes)]
    except MalformedReceipt as exc:
        raise ReceiptError(str(exc).replace("malformed receipt: ", "")) from exc


def as_base64(data: bytes) -> str:
    """Standard base64 with padding, as every hash in a receipt is written."""
    return _b64(data)


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReceiptError(f"{what} {path}: cannot read ({exc})") from exc


def check_receipt_files(
    receipt_file: Path, keys_file: Path, newer_checkpoint_file: Path | None = None,
    consistency_file: Path | None = None,
) -> VerifiedReceipt:
    """What ``dipgw receipt verify`` does: read the files, then :func:`verify_receipt`, or
    :func:`verify_in_later_checkpoint` when a newer checkpoint (and its consistency proof
    from the receipt's checkpoint) is given. Raises :class:`ReceiptError` or
    :class:`MalformedReceipt`."""
    verifiers = parse_verifier_keys(_read_text(keys_file, "public key file"))
    receipt = parse_receipt(_read_text(receipt_file, "receipt"))
    if newer_checkpoint_file is None:
        if consistency_file is not None:
            raise ReceiptError("a consistency proof needs the newer checkpoint it leads to")
        return verify_receipt(receipt, verifiers)
    newer = _read_text(newer_checkpoint_file, "newer checkpoint")
    proof = parse_proof_lines(_read_text(consistency_file, "consistency proof")
                              if consistency_file is not None else "")
    return verify_in_later_checkpoint(receipt, verifiers, newer, proof)
