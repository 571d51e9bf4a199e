"""Exporter of an offline-verifiable audit bundle laid out as C2SP tlog-tiles.

The layout is documented in :mod:`gateway.tlog.verify`. This module only computes
file contents from the entries and signed checkpoints and writes them; it never signs
anything that does not match the entries.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

from gateway.tlog.checkpoint import Checkpoint
from gateway.tlog.merkle import CompactRange, consistency_proof, leaf_hash
from gateway.tlog.note import Signer, parse_signed_note, sign_note
from gateway.tlog.tiles import (
    TILE_WIDTH,
    entry_bundles_for_sizes,
    parse_tile_path,
    tiles_for_sizes,
)

__all__ = [
    "bundle_files",
    "export_bundle",
    "roots_at",
    "sign_checkpoint",
    "write_bundle",
]


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[Signer]) -> str:
    """The signed note of ``checkpoint`` with one signature per signer (key rotation)."""
    return sign_note(checkpoint.to_text(), signers)


def roots_at(sizes: Sequence[int], leaf_hashes: Sequence[bytes]) -> dict[int, bytes]:
    """RFC 6962 root of the first ``s`` leaves for every ``s`` in ``sizes`` in one pass."""
    wanted = sorted(set(sizes))
    roots: dict[int, bytes] = {}
    cr = CompactRange()
    for size in wanted:
        cr.extend(leaf_hashes[cr.size : size])
        roots[size] = cr.root()
    return roots


def _encode_proof(proof: Sequence[bytes]) -> bytes:
    return b"".join(base64.b64encode(h) + b"\n" for h in proof)


def bundle_files(
    entries: Sequence[bytes],
    signed_checkpoints: Sequence[str],
    *,
    entry_range: tuple[int, int] | None = None,
    consistency_proofs: bool = False,
) -> dict[str, bytes]:
    """All files of a bundle, keyed by relative POSIX path.

    ``signed_checkpoints`` are signed notes whose roots must match ``entries`` (else
    ``ValueError``). ``entry_range=(a, b)`` exports entry bundles only for the tiles
    overlapping ``[a, b)``; hash tiles are always complete.
    """
    if not signed_checkpoints:
        raise ValueError("a bundle needs at least one signed checkpoint")
    by_size: dict[int, tuple[Checkpoint, str]] = {}
    for signed in signed_checkpoints:
        cp = Checkpoint.from_text(parse_signed_note(signed).text)
        if cp.size in by_size and by_size[cp.size][1] != signed:
            raise ValueError(f"two different signed checkpoints for size {cp.size}")
        by_size[cp.size] = (cp, signed)
    sizes = sorted(by_size)
    newest = sizes[-1]
    if newest > len(entries):
        raise ValueError(f"checkpoint size {newest} exceeds the {len(entries)} entries")
    if len({cp.origin for cp, _ in by_size.values()}) != 1:
        raise ValueError("signed checkpoints carry different origins")
    leaves = [leaf_hash(e) for e in entries[:newest]]
    for size, root_hash in roots_at(sizes, leaves).items():
        if by_size[size][0].root_hash != root_hash:
            raise ValueError(f"checkpoint size {size} does not match the entries")

    files: dict[str, bytes] = {"checkpoint": by_size[newest][1].encode("utf-8")}
    for size in sizes[:-1]:
        files[f"checkpoints/{size}"] = by_size[size][1].encode("utf-8")
    files.update(tiles_for_sizes(sizes, leaves))
    first, last = (0, newest) if entry_range is None else entry_range
    if not 0 <= first <= last <= newest:
        raise ValueError(f"entry range [{first}, {last}) is not within [0, {newest})")
    for path, data in entry_bundles_for_sizes(sizes, entries).items():
        index = parse_tile_path(path).index
        if index * TILE_WIDTH < last and (index + 1) * TILE_WIDTH > first:
            files[path] = data
    if consistency_proofs:
        for old, new in itertools.pairwise(sizes):
            proof = consistency_proof(old, new, leaves)
            files[f"proofs/consistency/{old}-{new}"] = _encode_proof(proof)
    return files


def export_bundle(
    path: Path,
    entries: Sequence[bytes],
    signed_checkpoints: Sequence[str],
    *,
    entry_range: tuple[int, int] | None = None,
    consistency_proofs: bool = False,
) -> None:
    """Write :func:`bundle_files` under ``path`` (created; must be absent or empty)."""
    files = bundle_files(
        entries,
        signed_checkpoints,
        entry_range=entry_range,
        consistency_proofs=consistency_proofs,
    )
    path.mkdir(parents=True, exist_ok=True)
    if any(path.iterdir()):
        raise FileExistsError(f"bundle directory {path} is not empty")
    for rel, data in sorted(files.items()):
        target = path.joinpath(*rel.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def write_bundle(
    path: Path,
    entries: Sequence[bytes],
    checkpoint_sizes: Sequence[int],
    signers: Sequence[Signer] | Mapping[int, Sequence[Signer]],
    *,
    origin: str | None = None,
    entry_range: tuple[int, int] | None = None,
    consistency_proofs: bool = False,
) -> list[str]:
    """Sign a checkpoint at every size and export the bundle; return the signed notes.

    ``signers`` is either the signers of every checkpoint or a mapping from checkpoint
    size to its signers (key rotation). ``origin`` defaults to the first signer's name.
    """
    sizes = sorted(set(checkpoint_sizes))
    if not sizes:
        raise ValueError("at least one checkpoint size is required")

    def signers_for(size: int) -> Sequence[Signer]:
        return signers[size] if isinstance(signers, Mapping) else signers

    log_origin = origin if origin is not None else signers_for(sizes[0])[0].name
    leaves = [leaf_hash(e) for e in entries[: sizes[-1]]]
    roots = roots_at(sizes, leaves)
    notes = [
        sign_checkpoint(Checkpoint(log_origin, size, roots[size]), signers_for(size))
        for size in sizes
    ]
    export_bundle(
        path,
        entries,
        notes,
        entry_range=entry_range,
        consistency_proofs=consistency_proofs,
    )
    return notes
