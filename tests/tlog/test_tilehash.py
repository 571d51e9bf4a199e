"""Proofs from stored tiles (gateway.tlog.tilehash) are, hash for hash, the proofs
gateway.tlog.merkle computes from every leaf hash, for sizes on both sides of the
one-tile (256) and two-level (65536) boundaries; each reads only the rows its plan names;
and the tiles a frontier fills are the C2SP tiles of gateway.tlog.tiles."""

from __future__ import annotations

from functools import cache
from hashlib import sha256

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.tlog import merkle, tiles
from gateway.tlog.tilehash import (
    HashReads,
    StoredHashes,
    Subtree,
    TileFrontier,
    TileKey,
    consistency_plan,
    frontier_reads,
    inclusion_plan,
    node_subtrees,
    reads_for,
    subtree_hash,
)

# One full level-1 tile (65536 leaves) and a ragged edge at both levels; proving from
# every leaf hash, as the reference does, keeps the log this small.
LEAVES = 65536 + 3 * 256 + 17


@cache
def leaves() -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(LEAVES)]


@cache
def stored_log() -> tuple[dict[TileKey, bytes], dict[TileKey, bytes]]:
    """Every tile the whole log fills: (hashes, roots) by tile."""
    filled = TileFrontier().extend(leaves())
    return {t.key: t.hashes for t in filled}, {t.key: t.root for t in filled}


def read(reads: HashReads) -> StoredHashes:
    """What the store would answer: only the rows named (a missing one is a KeyError)."""
    hashes, roots = stored_log()
    return StoredHashes(
        tiles={key: hashes[key] for key in reads.tiles},
        roots={key: roots[key] for key in reads.roots},
        leaves={index: leaves()[index] for index in reads.leaves},
    )


def near(*points: int) -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(1, LEAVES),
        *(st.integers(max(1, p - 3), min(LEAVES, p + 3)) for p in points),
    )


SIZES = near(256, 512, 65536, 65536 + 256, LEAVES)


@settings(max_examples=60, deadline=None)
@given(size=SIZES, data=st.data())
def test_inclusion_proofs_from_tiles_equal_proofs_from_leaves(
    size: int, data: st.DataObject
) -> None:
    index = data.draw(st.one_of(
        st.integers(0, size - 1), st.sampled_from([0, size - 1, (size - 1) & ~255])))
    plan = inclusion_plan(index, size)
    stored = read(plan.reads() | reads_for([Subtree(0, index)], size))
    proof = plan.proof(stored)
    assert proof == merkle.inclusion_proof(index, size, leaves())
    leaf = subtree_hash(stored, Subtree(0, index), size)
    assert leaf == leaves()[index]
    merkle.verify_inclusion(index, size, leaf, proof, merkle.root(leaves()[:size]))


@settings(max_examples=60, deadline=None)
@given(new=SIZES, data=st.data())
def test_consistency_proofs_from_tiles_equal_proofs_from_leaves(
    new: int, data: st.DataObject
) -> None:
    old = data.draw(st.one_of(st.integers(1, new), near(256, 65536).filter(lambda s: s <= new)))
    plan = consistency_plan(old, new)
    assert plan.proof(read(plan.reads())) == merkle.consistency_proof(old, new, leaves())


@pytest.mark.parametrize("size", [1, 255, 256, 257, 511, 512, 65535, 65536, 65537, LEAVES])
def test_a_proof_reads_o_log_n_rows(size: int) -> None:
    for index in (0, size // 2, size - 1):
        reads = inclusion_plan(index, size).reads()
        # At most one tile per level and the edge: 255 leaves, 255 roots per level.
        assert len(reads.tiles) <= 2 * (size.bit_length() // 8 + 1)
        assert len(reads.leaves) < 256 and len(reads.roots) < 256 * 2


@settings(max_examples=40, deadline=None)
@given(size=st.one_of(st.integers(0, 600), near(65536, LEAVES)))
def test_a_frontier_restored_from_stored_rows_continues_as_one_built_from_leaves(
    size: int,
) -> None:
    restored = TileFrontier.restore(size, read(frontier_reads(size)))
    assert restored.size == size
    assert restored.root() == merkle.root(leaves()[:size])
    assert len(frontier_reads(size).leaves) == size % 256
    more = leaves()[size : size + 300]
    straight = TileFrontier()
    straight_tiles = straight.extend(leaves()[: size + len(more)])
    restored_tiles = restored.extend(more)
    assert restored.root() == straight.root() == merkle.root(leaves()[: size + len(more)])
    # The tiles filled by a leaf past ``size``: each exactly once, as the leaves fill them.
    assert restored_tiles == [
        t for t in straight_tiles if (t.index + 1) << (8 * (t.level + 1)) > size]


def test_the_tiles_a_frontier_fills_are_the_c2sp_full_tiles() -> None:
    hashes, roots = stored_log()
    expected = {
        path: data for path, data in tiles.tiles_for(LEAVES, leaves()).items() if ".p/" not in path
    }
    assert {tiles.tile_path(key.level, key.n): data for key, data in hashes.items()} == expected
    assert roots[TileKey(1, 0)] == merkle.root(leaves()[:65536])
    assert roots[TileKey(0, 3)] == merkle.root(leaves()[768:1024])


def test_node_subtrees_split_a_tree_node_largest_first() -> None:
    assert node_subtrees(0, 13) == [Subtree(3, 0), Subtree(2, 2), Subtree(0, 12)]
    assert node_subtrees(8, 11) == [Subtree(1, 4), Subtree(0, 10)]
    with pytest.raises(ValueError, match="not a node"):
        node_subtrees(2, 8)


def test_a_missing_row_is_a_lookup_error_not_a_wrong_hash() -> None:
    plan = inclusion_plan(5, 300)
    reads = plan.reads()
    assert reads.tiles == {TileKey(0, 0)} and reads.leaves
    with pytest.raises(LookupError):
        plan.proof(read(HashReads(tiles=reads.tiles)))
    assert sha256(b"").digest() == merkle.EMPTY_ROOT == TileFrontier().root()
