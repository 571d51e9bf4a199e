"""Offline verification of an exported audit bundle (C2SP tlog-tiles layout, RFC 6962 roots).

Bundle layout (a directory; every path is relative to it)::

    checkpoint                      newest signed checkpoint (C2SP signed-note + tlog-checkpoint)
    checkpoints/<size>              every earlier signed checkpoint, file name = its tree size
    tile/<L>/<N>[.p/<W>]            hash tiles (tlog-tiles): every full tile of the newest tree
                                    and the partial tiles of every checkpoint size, all levels
    tile/entries/<N>[.p/<W>]        entry bundles (uint16-BE length-prefixed entries): the
                                    full bundles and the partial bundle of every checkpoint size
    proofs/consistency/<old>-<new>  optional RFC 9162 consistency proof between two checkpoint
                                    sizes: one base64 SHA-256 hash per line

A *range export* holds entry bundles only for the tiles overlapping ``[from, to)`` (rounded
out to whole 256-entry tiles); the hash tiles are complete, so for entries outside the range
the level-0 tile hashes stand in for the leaf hashes. Verify it with
``entry_range=(from, to)``; the default requires every entry of the newest tree.

:func:`verify_bundle` checks, without network access:

1. every checkpoint carries a valid signature by at least one of the *given* verifier keys
   (keys found in the bundle are never trusted; several keys allow rotation);
2. all checkpoints share one origin, sizes are distinct and ``checkpoint`` is the newest;
3. every entry bundle decodes, has exactly its width in entries, and its leaf hashes equal
   the level-0 tile hashes (and every partial file is a prefix of the wider one);
4. no entry in the required range is missing, and no file lies beyond the newest size;
5. the RFC 6962 root recomputed at every checkpoint size equals the signed root — which
   proves every checkpoint consistent with every earlier one;
6. every tile at level ≥ 1 equals the hashes recomputed from level 0, and every tile of
   the newest tree is present;
7. every ``proofs/consistency`` file verifies (RFC 9162 §2.1.4.2) between signed roots.

:func:`verify_witness_quorum` then checks that enough trusted witnesses cosigned the newest
checkpoint (C2SP tlog-cosignature lines on ``checkpoint``), so the log cannot have shown
this history to the auditor and another to someone else without a witness refusing.

Any failure raises :class:`VerificationError` naming the file, checkpoint size or entry index.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from gateway.tlog.checkpoint import OpenedCheckpoint, open_checkpoint
from gateway.tlog.cosignature import CosignerVerifier, parse_cosigner_key, verified_cosignatures
from gateway.tlog.errors import TlogError, VerificationError
from gateway.tlog.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    inclusion_proof,
    root,
    verify_consistency,
    verify_inclusion,
)
from gateway.tlog.note import Verifier, parse_signed_note, parse_verifier_key
from gateway.tlog.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    entries_path,
    parse_tile_path,
    read_entry_bundle,
    read_tile,
    tile_path,
)

__all__ = [
    "CheckpointSummary",
    "InclusionSummary",
    "Report",
    "VerificationError",
    "verify_bundle",
    "verify_inclusion_of",
    "verify_witness_quorum",
]

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_PROOF_NAME = re.compile(r"(0|[1-9][0-9]{0,19})-(0|[1-9][0-9]{0,19})")


@dataclass(frozen=True)
class CheckpointSummary:
    """One verified checkpoint: file, size, root and the trusted keys that signed it."""

    file: str
    size: int
    root_hash: bytes
    signers: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    """Outcome of a successful :func:`verify_bundle`."""

    origin: str
    size: int
    root_hash: bytes
    checkpoints: tuple[CheckpointSummary, ...]
    entry_range: tuple[int, int]
    entries_checked: int
    tiles_checked: int
    consistency_proofs_checked: int


@dataclass(frozen=True)
class InclusionSummary:
    """An RFC 9162 inclusion proof of one entry in the newest signed checkpoint."""

    index: int
    tree_size: int
    entry: bytes | None
    leaf_hash: bytes
    proof: tuple[bytes, ...]
    root_hash: bytes
    signers: tuple[str, ...]


def _key_label(v: Verifier) -> str:
    return f"{v.name}+{v.key_id.hex()}"


def _verifiers(keys: Sequence[str]) -> list[Verifier]:
    if not keys:
        raise VerificationError("no verifier keys given")
    out: list[Verifier] = []
    for i, key in enumerate(keys):
        try:
            out.append(parse_verifier_key(key))
        except TlogError as exc:
            raise VerificationError(f"verifier key #{i}: {exc}") from exc
    return out


def _read(path: Path, rel: str) -> bytes:
    try:
        return path.joinpath(*rel.split("/")).read_bytes()
    except OSError as exc:
        raise VerificationError(f"{rel}: cannot read ({exc.strerror})") from exc


def _open(path: Path, rel: str, verifiers: Sequence[Verifier]) -> OpenedCheckpoint:
    try:
        return open_checkpoint(_read(path, rel), verifiers)
    except TlogError as exc:
        raise VerificationError(f"{rel}: {exc}") from exc


def _load_checkpoints(
    path: Path, verifiers: Sequence[Verifier]
) -> tuple[str, list[CheckpointSummary]]:
    """Verify ``checkpoint`` and ``checkpoints/*``; return them sorted by size, newest last."""
    head = _open(path, "checkpoint", verifiers)
    origin = head.checkpoint.origin
    found: dict[int, CheckpointSummary] = {}
    older = path / "checkpoints"
    names = sorted(p.name for p in older.iterdir()) if older.is_dir() else []
    for name in names:
        rel = f"checkpoints/{name}"
        if not _DECIMAL.fullmatch(name) or not (older / name).is_file():
            raise VerificationError(f"{rel}: unexpected file (names must be tree sizes)")
        opened = _open(path, rel, verifiers)
        cp = opened.checkpoint
        if cp.size != int(name):
            raise VerificationError(
                f"{rel}: file name says size {name} but the note says {cp.size}"
            )
        if cp.origin != origin:
            raise VerificationError(
                f"{rel}: origin {cp.origin!r} differs from the head checkpoint's {origin!r}"
            )
        if cp.size > head.checkpoint.size:
            raise VerificationError(
                f"{rel}: size {cp.size} is newer than checkpoint (size {head.checkpoint.size})"
            )
        if cp.size == head.checkpoint.size and cp.root_hash != head.checkpoint.root_hash:
            raise VerificationError(
                f"{rel}: two signed checkpoints for size {cp.size} with different roots (fork)"
            )
        found[cp.size] = CheckpointSummary(
            rel, cp.size, cp.root_hash, tuple(_key_label(v) for v in opened.signers)
        )
    hc = head.checkpoint
    found[hc.size] = CheckpointSummary(
        "checkpoint", hc.size, hc.root_hash, tuple(_key_label(v) for v in head.signers)
    )
    return origin, [found[s] for s in sorted(found)]


@dataclass
class _Files:
    """Tile and entry-bundle files of a bundle, by (level, index) → width → path."""

    hashes: dict[tuple[int, int], dict[int, str]]
    bundles: dict[int, dict[int, str]]


def _scan_tiles(path: Path, size: int) -> _Files:
    files = _Files({}, {})
    tile_dir = path / "tile"
    if not tile_dir.is_dir():
        return files
    for file in sorted(tile_dir.rglob("*")):
        if file.is_dir():
            continue
        rel = file.relative_to(path).as_posix()
        try:
            tp = parse_tile_path(rel)
        except TlogError as exc:
            raise VerificationError(f"unexpected file {rel}: {exc}") from exc
        level = 0 if tp.level is None else tp.level
        if (tp.start + tp.width) << (TILE_HEIGHT * level) > size:
            raise VerificationError(
                f"{rel}: covers entries beyond the newest checkpoint size {size}"
            )
        if tp.level is None:
            files.bundles.setdefault(tp.index, {})[tp.width] = rel
        else:
            files.hashes.setdefault((tp.level, tp.index), {})[tp.width] = rel
    return files


def _read_bundle(path: Path, rel: str, width: int) -> list[bytes]:
    try:
        entries = read_entry_bundle(_read(path, rel))
    except TlogError as exc:
        raise VerificationError(f"{rel}: {exc}") from exc
    if len(entries) != width:
        start = parse_tile_path(rel).start
        raise VerificationError(
            f"{rel}: holds {len(entries)} entries, expected {width} "
            f"(entries {start}..{start + width - 1})"
        )
    return entries


def _read_hashes(path: Path, rel: str, width: int) -> list[bytes]:
    try:
        hashes = read_tile(_read(path, rel))
    except TlogError as exc:
        raise VerificationError(f"{rel}: {exc}") from exc
    if len(hashes) != width:
        raise VerificationError(f"{rel}: holds {len(hashes)} hashes, expected {width}")
    return hashes


@dataclass
class _TileLeaves:
    leaves: list[bytes]
    entries: list[bytes] | None
    checked_entries: int


def _tile_leaves(path: Path, files: _Files, index: int, width: int) -> _TileLeaves:
    """Leaf hashes of level-0 tile ``index`` (``width`` wide), cross-checked across files."""
    start = index * TILE_WIDTH
    bundles = files.bundles.get(index, {})
    tiles = files.hashes.get((0, index), {})
    entries: list[bytes] | None = None
    if width in bundles:
        source = bundles[width]
        entries = _read_bundle(path, source, width)
        leaves = [sha256(b"\x00" + e).digest() for e in entries]
    elif width in tiles:
        source = tiles[width]
        leaves = _read_hashes(path, source, width)
    else:
        raise VerificationError(
            f"entries {start}..{start + width - 1} missing: neither "
            f"{entries_path(index, width)} nor {tile_path(0, index, width)} is in the bundle"
        )
    for w, rel in sorted(bundles.items()):
        if rel == source:
            continue
        other = [sha256(b"\x00" + e).digest() for e in _read_bundle(path, rel, w)]
        _compare_leaves(other, leaves, start, rel, source)
    for w, rel in sorted(tiles.items()):
        _compare_leaves(_read_hashes(path, rel, w), leaves, start, rel, source)
    return _TileLeaves(leaves, entries, width if entries is not None else 0)


def _compare_leaves(got: list[bytes], want: list[bytes], start: int, rel: str, source: str) -> None:
    if got == want[: len(got)]:
        return
    i = next(i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b)
    raise VerificationError(
        f"entry {start + i}: leaf hash {want[i].hex()} from {source} does not match "
        f"{got[i].hex()} in {rel}"
    )


def _check_upper_tiles(path: Path, files: _Files, level1: list[bytes], size: int) -> int:
    """Check every tile at level ≥ 1 against hashes recomputed from level 0; count tiles."""
    levels = [level1]
    while len(levels[-1]) >= TILE_WIDTH:
        below = levels[-1]
        levels.append(
            [root(below[k : k + TILE_WIDTH]) for k in range(0, len(below) - 255, TILE_WIDTH)]
        )
    checked = 0
    for (level, index), widths in sorted(files.hashes.items()):
        if level == 0:
            checked += len(widths)
            continue
        for width, rel in sorted(widths.items()):
            got = _read_hashes(path, rel, width)
            want = levels[level - 1][index * TILE_WIDTH : index * TILE_WIDTH + width]
            for i, (a, b) in enumerate(zip(got, want, strict=True)):
                if a != b:
                    raise VerificationError(
                        f"{rel}: hash {i} is {a.hex()} but the lower level recomputes {b.hex()}"
                    )
            checked += 1
    for level in range(64):
        count = size >> (TILE_HEIGHT * level)
        if not count:
            break
        for index in range(-(-count // TILE_WIDTH)):
            width = min(TILE_WIDTH, count - index * TILE_WIDTH)
            if width not in files.hashes.get((level, index), {}):
                raise VerificationError(f"missing tile {tile_path(level, index, width)}")
    return checked


def _decode_proof(path: Path, rel: str) -> list[bytes]:
    data = _read(path, rel)
    try:
        lines = data.decode("ascii").split("\n")
    except UnicodeDecodeError as exc:
        raise VerificationError(f"{rel}: not ASCII base64 lines") from exc
    if lines[-1] != "":
        raise VerificationError(f"{rel}: does not end in a newline")
    proof: list[bytes] = []
    for n, line in enumerate(lines[:-1], 1):
        try:
            h = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise VerificationError(f"{rel}: line {n} is not base64") from exc
        if len(h) != HASH_SIZE or base64.b64encode(h).decode("ascii") != line:
            raise VerificationError(f"{rel}: line {n} is not a canonical base64 SHA-256 hash")
        proof.append(h)
    return proof


def _check_proofs(path: Path, checkpoints: Sequence[CheckpointSummary]) -> int:
    proof_dir = path / "proofs" / "consistency"
    if not proof_dir.is_dir():
        return 0
    roots = {c.size: c.root_hash for c in checkpoints}
    checked = 0
    for file in sorted(proof_dir.iterdir()):
        rel = f"proofs/consistency/{file.name}"
        m = _PROOF_NAME.fullmatch(file.name)
        if m is None or not file.is_file():
            raise VerificationError(f"unexpected file {rel} (expected <old>-<new>)")
        old, new = int(m.group(1)), int(m.group(2))
        if old not in roots or new not in roots:
            raise VerificationError(f"{rel}: no signed checkpoint for size {old} or {new}")
        try:
            verify_consistency(old, new, roots[old], roots[new], _decode_proof(path, rel))
        except TlogError as exc:
            raise VerificationError(f"{rel}: {exc}") from exc
        checked += 1
    return checked


def verify_bundle(
    path: Path,
    verifier_keys: list[str],
    *,
    entry_range: tuple[int, int] | None = None,
    origin: str | None = None,
    min_size: int = 0,
) -> Report:
    """Verify the bundle at ``path`` offline against the given verifier keys only.

    ``verifier_keys`` are C2SP verifier key strings (current and retired keys).
    ``entry_range`` (default: every entry) is the range whose entries must be present.
    ``origin`` and ``min_size``, when given, pin the log identity and a size the auditor
    already knows the log reached. Raises :class:`VerificationError`.
    """
    verifiers = _verifiers(verifier_keys)
    head_origin, checkpoints = _load_checkpoints(path, verifiers)
    head = checkpoints[-1]
    size = head.size
    if origin is not None and head_origin != origin:
        raise VerificationError(f"checkpoint: origin {head_origin!r}, expected {origin!r}")
    if size < min_size:
        raise VerificationError(f"checkpoint: size {size} is below the known size {min_size}")
    first, last = (0, size) if entry_range is None else entry_range
    if not 0 <= first <= last <= size:
        raise VerificationError(f"entry range [{first}, {last}) is not within [0, {size})")

    files = _scan_tiles(path, size)
    for index in range(first // TILE_WIDTH, -(-last // TILE_WIDTH)):
        width = min(TILE_WIDTH, size - index * TILE_WIDTH)
        if width not in files.bundles.get(index, {}):
            lo, hi = index * TILE_WIDTH, index * TILE_WIDTH + width - 1
            raise VerificationError(
                f"entries {lo}..{hi} missing: no entry bundle {entries_path(index, width)}"
            )

    pending = [c for c in checkpoints if c.size > 0]
    if checkpoints[0].size == 0 and checkpoints[0].root_hash != EMPTY_ROOT:
        raise VerificationError(f"{checkpoints[0].file}: size 0 but root is not SHA-256('')")
    cr = CompactRange()
    level1: list[bytes] = []
    entries_checked = 0
    verified_upto = 0
    for index in range(-(-size // TILE_WIDTH)):
        start = index * TILE_WIDTH
        width = min(TILE_WIDTH, size - start)
        tile = _tile_leaves(path, files, index, width)
        entries_checked += tile.checked_entries
        leaves = tile.leaves
        if width == TILE_WIDTH:
            level1.append(root(leaves))
        if width == TILE_WIDTH and not (pending and pending[0].size < start + width):
            cr.append_subtree(level1[-1], TILE_HEIGHT)
        else:
            for leaf in leaves:
                cr.append(leaf)
                if pending and pending[0].size == cr.size:
                    verified_upto = _check_root(cr, pending.pop(0), verified_upto)
        if pending and pending[0].size == cr.size:
            verified_upto = _check_root(cr, pending.pop(0), verified_upto)

    tiles_checked = _check_upper_tiles(path, files, level1, size)
    proofs_checked = _check_proofs(path, checkpoints)
    return Report(
        origin=head_origin,
        size=size,
        root_hash=head.root_hash,
        checkpoints=tuple(checkpoints),
        entry_range=(first, last),
        entries_checked=entries_checked,
        tiles_checked=tiles_checked + sum(len(w) for w in files.bundles.values()),
        consistency_proofs_checked=proofs_checked,
    )


def _check_root(cr: CompactRange, cp: CheckpointSummary, verified_upto: int) -> int:
    calculated = cr.root()
    if calculated != cp.root_hash:
        raise VerificationError(
            f"checkpoint size {cp.size} ({cp.file}): root recomputed from the bundle is "
            f"{calculated.hex()} but the signed root is {cp.root_hash.hex()}; the "
            f"difference lies in entries {verified_upto}..{cp.size - 1}"
        )
    return cp.size


def verify_inclusion_of(path: Path, verifier_keys: list[str], index: int) -> InclusionSummary:
    """Prove entry ``index`` is in the newest signed checkpoint of the bundle at ``path``.

    Checks the head checkpoint's signature with the given keys, recomputes its root from
    the level-0 hashes (entry bundles or tiles) and verifies an RFC 9162 inclusion proof.
    """
    verifiers = _verifiers(verifier_keys)
    head = _open(path, "checkpoint", verifiers)
    size, root_hash = head.checkpoint.size, head.checkpoint.root_hash
    if not 0 <= index < size:
        raise VerificationError(f"entry {index} is not in the checkpoint of size {size}")
    files = _scan_tiles(path, size)
    leaves: list[bytes] = []
    entry: bytes | None = None
    for tile_index in range(-(-size // TILE_WIDTH)):
        width = min(TILE_WIDTH, size - tile_index * TILE_WIDTH)
        tile = _tile_leaves(path, files, tile_index, width)
        if tile_index == index // TILE_WIDTH and tile.entries is not None:
            entry = tile.entries[index % TILE_WIDTH]
        leaves.extend(tile.leaves)
    calculated = root(leaves)
    if calculated != root_hash:
        raise VerificationError(
            f"checkpoint: root recomputed from the bundle is {calculated.hex()} "
            f"but the signed root is {root_hash.hex()}"
        )
    proof = inclusion_proof(index, size, leaves)
    try:
        verify_inclusion(index, size, leaves[index], proof, root_hash)
    except TlogError as exc:
        raise VerificationError(f"entry {index}: {exc}") from exc
    return InclusionSummary(
        index=index,
        tree_size=size,
        entry=entry,
        leaf_hash=leaves[index],
        proof=tuple(proof),
        root_hash=root_hash,
        signers=tuple(_key_label(v) for v in head.signers),
    )


def verify_witness_quorum(path: Path, witness_keys: Sequence[str], quorum: int) -> tuple[str, ...]:
    """Names of the trusted witnesses whose C2SP tlog-cosignature of the newest checkpoint
    (the bundle's ``checkpoint``) verifies; :class:`VerificationError` unless at least
    ``quorum`` distinct witnesses did (:func:`witness_quorum`).

    Run it after :func:`verify_bundle`, which checks the log's own signature and the
    entries."""
    return witness_quorum(_read(path, "checkpoint"), witness_keys, quorum)


def witness_quorum(
    checkpoint: str | bytes, witness_keys: Sequence[str], quorum: int
) -> tuple[str, ...]:
    """Names of the trusted witnesses whose C2SP tlog-cosignature of the signed
    ``checkpoint`` note verifies; :class:`VerificationError` unless at least ``quorum``
    distinct witnesses did.

    Distinct means distinct names: a witness named twice in ``witness_keys`` (two keys)
    counts once, so a quorum cannot be met by one witness's several keys. A cosignature
    line by a trusted witness that does not verify fails the whole check (signed-note
    "Signatures"), as a forged line is evidence of tampering.
    """
    if quorum < 1:
        raise VerificationError(f"a witness quorum must be at least 1, not {quorum}")
    witnesses: list[CosignerVerifier] = []
    for i, key in enumerate(witness_keys):
        try:
            witnesses.append(parse_cosigner_key(key))
        except TlogError as exc:
            raise VerificationError(f"witness key #{i}: {exc}") from exc
    names = {w.name for w in witnesses}
    if len(names) < quorum:
        raise VerificationError(
            f"a quorum of {quorum} witnesses was asked for, but only {len(names)} distinct "
            "witness keys were given")
    try:
        note = parse_signed_note(checkpoint)
        cosigned = verified_cosignatures(note, witnesses)
    except TlogError as exc:
        raise VerificationError(f"checkpoint: {exc}") from exc
    signed_by = tuple(dict.fromkeys(w.name for w in cosigned))
    if len(signed_by) < quorum:
        raise VerificationError(
            f"checkpoint: cosigned by {len(signed_by)} of the trusted witnesses "
            f"({', '.join(signed_by) or 'none'}), fewer than the quorum of {quorum}")
    return signed_by
