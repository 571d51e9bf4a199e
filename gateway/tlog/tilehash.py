"""Proofs and roots from stored hash tiles (C2SP tlog-tiles, height 8): which stored
hashes a computation needs, and the result built from them. Pure: the reading is the
caller's (``gateway.storage.audit_log`` reads the rows a :class:`HashReads` names).

This is the scheme of Go's ``golang.org/x/mod/sumdb/tlog`` (``TileHashReader``,
``ProveRecord``, ``ProveTree``): an RFC 9162 §2.1.3.1 inclusion proof or §2.1.4.1
consistency proof is a list of MTHs of tree nodes (``merkle.inclusion_ranges``,
``merkle.consistency_ranges``); each node splits into O(log n) perfect subtrees, and a
perfect subtree of height ``8*L + r`` is the MTH of ``2**r`` consecutive hashes of level
``L`` (the level tile ``L/N`` holds). So a proof reads O(log n) stored hashes, never every
leaf hash.

Where each hash of level ``L`` at position ``p`` (MTH of leaves ``[p * 256**L,
(p+1) * 256**L)``) is read, for a tree of ``size``:

* from tile ``L/(p // 256)`` when that tile is full in the tree of ``size``;
* otherwise ``p`` is on the tree's right edge, past its last full tile of level ``L``
  (at most 255 positions per level), and the hash is the leaf hash of entry ``p`` at level
  0, or at level ``L >= 1`` the MTH of the full tile ``(L-1)/p``, which each stored tile
  carries beside its hashes (:class:`Tile`).

Only full tiles are stored, and a full tile never changes. Storing the partial tiles of
every checkpoint instead (as C2SP's ``.p/W`` paths publish them) would add a row per level
at each checkpoint, every few seconds, each a longer copy of the one before; the right
edge costs at most 255 leaf-hash rows and 255 tile roots per level to read, O(log n)
(``gateway.tlog.tiles`` still writes the partial tiles into an export bundle).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from gateway.tlog.merkle import (
    HASH_SIZE,
    CompactRange,
    consistency_ranges,
    inclusion_ranges,
    node_hash,
    root,
)
from gateway.tlog.tiles import TILE_HEIGHT, TILE_WIDTH

__all__ = [
    "HashReads",
    "ProofPlan",
    "StoredHashes",
    "Subtree",
    "Tile",
    "TileFrontier",
    "TileKey",
    "consistency_plan",
    "frontier_reads",
    "inclusion_plan",
    "node_subtrees",
    "reads_for",
    "subtree_hash",
]


class TileKey(NamedTuple):
    """Tile ``level/n`` (C2SP's ``tile/<L>/<N>``): hashes of level ``level`` at positions
    ``n*256`` to ``n*256 + 255``."""

    level: int
    n: int


class Subtree(NamedTuple):
    """The perfect subtree over leaves ``[n * 2**height, (n+1) * 2**height)``."""

    height: int
    n: int


@dataclass(frozen=True)
class Tile:
    """A full tile: its 256 hashes of level ``8 * level``, concatenated, and their MTH,
    which is the hash of level ``level + 1`` at position ``index``."""

    level: int
    index: int
    hashes: bytes
    root: bytes

    @property
    def key(self) -> TileKey:
        """Where the tile is stored."""
        return TileKey(self.level, self.index)


@dataclass(frozen=True)
class HashReads:
    """The stored rows a computation needs: tiles by their hashes, tiles by their roots
    only, and leaf hashes by entry index."""

    tiles: frozenset[TileKey] = frozenset()
    roots: frozenset[TileKey] = frozenset()
    leaves: frozenset[int] = frozenset()

    def __or__(self, other: HashReads) -> HashReads:
        return HashReads(
            self.tiles | other.tiles, self.roots | other.roots, self.leaves | other.leaves
        )


@dataclass(frozen=True)
class StoredHashes:
    """The rows a :class:`HashReads` named, as read: a tile's concatenated hashes, a
    tile's root, an entry's leaf hash."""

    tiles: Mapping[TileKey, bytes] = field(default_factory=dict)
    roots: Mapping[TileKey, bytes] = field(default_factory=dict)
    leaves: Mapping[int, bytes] = field(default_factory=dict)

    def hash_at(self, level: int, position: int, size: int) -> bytes:
        """The hash of tile level ``level`` at ``position`` in the tree of ``size``;
        ``LookupError`` if the rows it is read from were not read (or are not stored)."""
        kind, key = _source(level, position, size)
        if kind == "tile":
            tile = TileKey(*key)
            offset = (position % TILE_WIDTH) * HASH_SIZE
            found = self.tiles[tile][offset : offset + HASH_SIZE]
            if len(found) != HASH_SIZE:
                raise LookupError(f"tile {tile.level}/{tile.n} is not a full tile")
            return found
        if kind == "leaf":
            return self.leaves[key[1]]
        return self.roots[TileKey(*key)]


def _source(level: int, position: int, size: int) -> tuple[str, tuple[int, int]]:
    """Where the hash of ``level`` at ``position`` is stored (see the module docstring)."""
    width = size >> (TILE_HEIGHT * level)
    if not 0 <= position < width:
        raise ValueError(f"no hash of level {level} at {position} in a tree of size {size}")
    tile = position >> TILE_HEIGHT
    if (tile + 1) * TILE_WIDTH <= width:
        return "tile", (level, tile)
    if level == 0:
        return "leaf", (0, position)
    return "root", (level - 1, position)


def _positions(subtree: Subtree) -> tuple[int, range]:
    """The tile level and positions whose MTH is ``subtree``."""
    level, rest = divmod(subtree.height, TILE_HEIGHT)
    return level, range(subtree.n << rest, (subtree.n + 1) << rest)


def node_subtrees(lo: int, hi: int) -> list[Subtree]:
    """Tree node ``[lo, hi)`` as perfect subtrees, largest first (RFC 9162 §2.1.1: its MTH
    splits at the largest power of two below its width, the left part being perfect).

    ``lo`` must be a multiple of a power of two at least ``hi - lo``: the ranges of
    ``merkle.inclusion_ranges`` and ``merkle.consistency_ranges``, and ``[0, size)``.
    """
    if not 0 <= lo < hi:
        raise ValueError(f"empty or negative range [{lo}, {hi})")
    subtrees: list[Subtree] = []
    while lo < hi:
        height = (hi - lo).bit_length() - 1
        if lo & ((1 << height) - 1):
            raise ValueError(f"[{lo}, {hi}) is not a node of a Merkle tree")
        subtrees.append(Subtree(height, lo >> height))
        lo += 1 << height
    return subtrees


def _reads(hashes: Iterable[tuple[int, int]], size: int) -> HashReads:
    """The rows the hashes ``(level, position)`` of the tree of ``size`` are read from."""
    found: dict[str, set[tuple[int, int]]] = {"tile": set(), "root": set(), "leaf": set()}
    for level, position in hashes:
        kind, key = _source(level, position, size)
        found[kind].add(key)
    return HashReads(
        tiles=frozenset(TileKey(*key) for key in found["tile"]),
        roots=frozenset(TileKey(*key) for key in found["root"]),
        leaves=frozenset(index for _, index in found["leaf"]),
    )


def reads_for(subtrees: Iterable[Subtree], size: int) -> HashReads:
    """The rows :func:`subtree_hash` reads for each of ``subtrees`` in a tree of ``size``."""
    return _reads(
        ((level, p) for level, positions in map(_positions, subtrees) for p in positions),
        size,
    )


def subtree_hash(stored: StoredHashes, subtree: Subtree, size: int) -> bytes:
    """MTH of ``subtree`` (RFC 9162 §2.1.1) in the tree of ``size``, from stored hashes."""
    level, positions = _positions(subtree)
    return root([stored.hash_at(level, position, size) for position in positions])


def _node_hash(stored: StoredHashes, lo: int, hi: int, size: int) -> bytes:
    """MTH of tree node ``[lo, hi)``: its perfect subtrees folded from the right."""
    hashes = [subtree_hash(stored, s, size) for s in node_subtrees(lo, hi)]
    result = hashes.pop()
    while hashes:
        result = node_hash(hashes.pop(), result)
    return result


@dataclass(frozen=True)
class ProofPlan:
    """A proof in a tree of ``size`` as its nodes (``[lo, hi)`` leaf ranges, in proof
    order): :meth:`reads` names the stored rows, :meth:`proof` hashes them."""

    size: int
    nodes: tuple[tuple[int, int], ...]

    def reads(self) -> HashReads:
        """Every row the proof's hashes are read from: O(log n) of them."""
        return reads_for(
            (s for lo, hi in self.nodes for s in node_subtrees(lo, hi)), self.size
        )

    def proof(self, stored: StoredHashes) -> list[bytes]:
        """The proof, hash for hash what ``merkle`` computes from every leaf hash."""
        return [_node_hash(stored, lo, hi, self.size) for lo, hi in self.nodes]


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]) as a :class:`ProofPlan`."""
    return ProofPlan(size, tuple(inclusion_ranges(index, size)))


def consistency_plan(old_size: int, new_size: int) -> ProofPlan:
    """RFC 9162 §2.1.4.1 PROOF(old_size, D[0:new_size]) as a :class:`ProofPlan`."""
    return ProofPlan(new_size, tuple(consistency_ranges(old_size, new_size)))


def _edge(size: int) -> list[tuple[int, range]]:
    """Per tile level, the positions past its last full tile in a tree of ``size``."""
    edges: list[tuple[int, range]] = []
    level = 0
    while True:
        width = size >> (TILE_HEIGHT * level)
        edges.append((level, range(width - width % TILE_WIDTH, width)))
        if width < TILE_WIDTH:
            return edges
        level += 1


def frontier_reads(size: int) -> HashReads:
    """The rows :meth:`TileFrontier.restore` reads for a tree of ``size``: at most 255
    leaf hashes and 255 tile roots per level."""
    return _reads(((level, p) for level, positions in _edge(size) for p in positions), size)


class TileFrontier:
    """The right edge of a tiled tree: at each tile level, the hashes past its last full
    tile (the base-256 digits of the size, as hashes). Appending leaves fills tiles, which
    :meth:`extend` returns for storing; :meth:`root` is the tree's MTH. O(log n) memory,
    like ``merkle.CompactRange``, which it builds its root with."""

    __slots__ = ("_edges", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._edges: list[list[bytes]] = [[]]

    @property
    def size(self) -> int:
        """Number of leaves appended."""
        return self._size

    @classmethod
    def restore(cls, size: int, stored: StoredHashes) -> TileFrontier:
        """The frontier of the tree of ``size``, from the rows :func:`frontier_reads`
        names; ``LookupError`` if one is missing."""
        frontier = cls()
        frontier._size = size
        frontier._edges = [
            [stored.hash_at(level, position, size) for position in positions]
            for level, positions in _edge(size)
        ]
        return frontier

    def extend(self, leaves: Iterable[bytes]) -> list[Tile]:
        """Append leaf hashes in order; return the tiles they fill, lowest level first
        within each leaf."""
        filled: list[Tile] = []
        edges = self._edges
        for leaf in leaves:
            edges[0].append(leaf)
            self._size += 1
            level = 0
            while len(edges[level]) == TILE_WIDTH:
                hashes = edges[level]
                tile = Tile(
                    level,
                    (self._size >> (TILE_HEIGHT * (level + 1))) - 1,
                    b"".join(hashes),
                    root(hashes),
                )
                filled.append(tile)
                edges[level] = []
                if level + 1 == len(edges):
                    edges.append([])
                edges[level + 1].append(tile.root)
                level += 1
        return filled

    def compact_range(self) -> CompactRange:
        """The perfect subtrees of the tree, from the highest level's edge down: the size
        read in base 256, each digit split into its binary powers."""
        compact = CompactRange()
        for level in reversed(range(len(self._edges))):
            hashes: Sequence[bytes] = self._edges[level]
            start = 0
            for rest in reversed(range(TILE_HEIGHT)):
                count = 1 << rest
                if len(hashes) & count:
                    compact.append_subtree(
                        root(hashes[start : start + count]), TILE_HEIGHT * level + rest
                    )
                    start += count
        return compact

    def root(self) -> bytes:
        """MTH of the leaves appended (RFC 9162 §2.1.1)."""
        return self.compact_range().root()
