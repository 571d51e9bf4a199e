"""RFC 6962 / RFC 9162 Merkle tree: vectors, reference implementation and proof properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.tlog import merkle
from gateway.tlog.merkle import CompactRange, ProofError


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def naive_mth(data: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH written independently, straight from the definition."""
    n = len(data)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + data[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return _sha(b"\x01" + naive_mth(data[:k]) + naive_mth(data[k:]))


def naive_path(m: int, data: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n]) straight from the definition."""
    n = len(data)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*naive_path(m, data[:k]), naive_mth(data[k:])]
    return [*naive_path(m - k, data[k:]), naive_mth(data[:k])]


def naive_subproof(m: int, data: list[bytes], b: bool) -> list[bytes]:
    """RFC 6962 §2.1.2 SUBPROOF(m, D[n], b) straight from the definition."""
    n = len(data)
    if m == n:
        return [] if b else [naive_mth(data)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*naive_subproof(m, data[:k], b), naive_mth(data[k:])]
    return [*naive_subproof(m - k, data[k:], False), naive_mth(data[:k])]


# The Certificate Transparency reference test vectors (RFC 6962 leaves).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b" !",
    b"01",
    b"@ABC",
    b"PQRSTUVW",
    b"`abcdefghijklmno",
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def leaves_of(n: int) -> list[bytes]:
    return [f"entry-{i}".encode() for i in range(n)]


def test_hash_definitions() -> None:
    assert merkle.leaf_hash(b"abc") == _sha(b"\x00abc")
    assert merkle.node_hash(b"L" * 32, b"R" * 32) == _sha(b"\x01" + b"L" * 32 + b"R" * 32)
    assert merkle.root([]) == _sha(b"")
    assert merkle.root([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize("n", range(1, 9))
def test_ct_vectors(n: int) -> None:
    data = CT_LEAVES[:n]
    assert naive_mth(data).hex() == CT_ROOTS[n - 1]
    assert merkle.root([merkle.leaf_hash(d) for d in data]).hex() == CT_ROOTS[n - 1]


@pytest.mark.parametrize("n", [*range(0, 70), 255, 256, 257, 1000])
def test_root_and_compact_range_match_reference(n: int) -> None:
    data = leaves_of(n)
    hashes = [merkle.leaf_hash(d) for d in data]
    expected = naive_mth(data)
    assert merkle.root(hashes) == expected
    cr = CompactRange()
    cr.extend(hashes)
    assert cr.size == n
    assert cr.root() == expected


def test_compact_range_root_at_every_size() -> None:
    data = leaves_of(100)
    cr = CompactRange()
    assert cr.root() == naive_mth([])
    for i, d in enumerate(data):
        cr.append(merkle.leaf_hash(d))
        assert cr.root() == naive_mth(data[: i + 1])


def test_compact_range_append_subtree() -> None:
    data = leaves_of(1000)
    hashes = [merkle.leaf_hash(d) for d in data]
    cr = CompactRange()
    cr.append_subtree(merkle.root(hashes[:256]), 8)
    cr.append_subtree(merkle.root(hashes[256:512]), 8)
    cr.extend(hashes[512:520])
    cr.append_subtree(merkle.root(hashes[520:528]), 3)
    assert cr.root() == naive_mth(data[:528])
    with pytest.raises(ValueError):
        cr.append_subtree(hashes[0], 5)


def test_proofs_match_reference_exhaustively() -> None:
    for n in range(1, 33):
        data = leaves_of(n)
        hashes = [merkle.leaf_hash(d) for d in data]
        for m in range(n):
            assert merkle.inclusion_proof(m, n, hashes) == naive_path(m, data)
        for m in range(1, n):
            assert merkle.consistency_proof(m, n, hashes) == naive_subproof(m, data, True)


def test_every_inclusion_and_consistency_proof_verifies_up_to_64() -> None:
    data = leaves_of(64)
    hashes = [merkle.leaf_hash(d) for d in data]
    roots = [merkle.root(hashes[:n]) for n in range(65)]
    for n in range(1, 65):
        for m in range(n):
            proof = merkle.inclusion_proof(m, n, hashes)
            merkle.verify_inclusion(m, n, hashes[m], proof, roots[n])
    for n in range(0, 65):
        for m in range(0, n + 1):
            proof = merkle.consistency_proof(m, n, hashes)
            merkle.verify_consistency(m, n, roots[m], roots[n], proof)


def _flip(b: bytes, bit: int) -> bytes:
    arr = bytearray(b)
    arr[bit // 8] ^= 1 << (bit % 8)
    return bytes(arr)


@st.composite
def tree_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, 64))
    return size, draw(st.integers(0, size - 1))


@given(tree_index(), st.integers(0, 255), st.data())
def test_inclusion_flipped_bit_fails(ti: tuple[int, int], bit: int, data: st.DataObject) -> None:
    size, index = ti
    hashes = [merkle.leaf_hash(d) for d in leaves_of(size)]
    root = merkle.root(hashes)
    proof = merkle.inclusion_proof(index, size, hashes)
    merkle.verify_inclusion(index, size, hashes[index], proof, root)
    target = data.draw(st.integers(-2, len(proof) - 1))
    leaf, bad_root = hashes[index], root
    if target == -2:
        leaf = _flip(leaf, bit)
    elif target == -1:
        bad_root = _flip(root, bit)
    else:
        proof[target] = _flip(proof[target], bit)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(index, size, leaf, proof, bad_root)


@given(tree_index(), st.data())
def test_inclusion_wrong_index_or_size_fails(ti: tuple[int, int], data: st.DataObject) -> None:
    size, index = ti
    hashes = [merkle.leaf_hash(d) for d in leaves_of(size)]
    root = merkle.root(hashes)
    proof = merkle.inclusion_proof(index, size, hashes)
    other = data.draw(st.integers(0, 70).filter(lambda i: i != index))
    with pytest.raises(ProofError):
        merkle.verify_inclusion(other, size, hashes[index], proof, root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(index, size, hashes[index], [*proof, root], root)
    if proof:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, size, hashes[index], proof[:-1], root)


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(2, 64))
    return draw(st.integers(1, new - 1)), new


@given(two_sizes(), st.integers(0, 255), st.data())
def test_consistency_flipped_bit_fails(
    sizes: tuple[int, int], bit: int, data: st.DataObject
) -> None:
    old, new = sizes
    hashes = [merkle.leaf_hash(d) for d in leaves_of(new)]
    old_root, new_root = merkle.root(hashes[:old]), merkle.root(hashes)
    proof = merkle.consistency_proof(old, new, hashes)
    merkle.verify_consistency(old, new, old_root, new_root, proof)
    target = data.draw(st.integers(-2, len(proof) - 1))
    if target == -2:
        old_root = _flip(old_root, bit)
    elif target == -1:
        new_root = _flip(new_root, bit)
    else:
        proof[target] = _flip(proof[target], bit)
    with pytest.raises(ProofError):
        merkle.verify_consistency(old, new, old_root, new_root, proof)


@given(two_sizes())
def test_consistency_wrong_sizes_fail(sizes: tuple[int, int]) -> None:
    old, new = sizes
    hashes = [merkle.leaf_hash(d) for d in leaves_of(new + 1)]
    old_root, new_root = merkle.root(hashes[:old]), merkle.root(hashes[:new])
    proof = merkle.consistency_proof(old, new, hashes)
    with pytest.raises(ProofError):
        merkle.verify_consistency(new, old, new_root, old_root, proof)
    with pytest.raises(ProofError):
        merkle.verify_consistency(old, new, old_root, new_root, [*proof, new_root])
    with pytest.raises(ProofError):
        merkle.verify_consistency(old, new, old_root, new_root, proof[:-1])


def test_consistency_edge_cases() -> None:
    hashes = [merkle.leaf_hash(d) for d in leaves_of(5)]
    r5 = merkle.root(hashes)
    merkle.verify_consistency(5, 5, r5, r5, [])
    merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, r5, [])
    with pytest.raises(ProofError):
        merkle.verify_consistency(5, 5, r5, merkle.root(hashes[:4]), [])
    with pytest.raises(ProofError):
        merkle.verify_consistency(0, 5, r5, r5, [])
    with pytest.raises(ProofError):
        merkle.verify_consistency(3, 5, merkle.root(hashes[:3]), r5, [])


def test_proof_error_says_expected_and_calculated() -> None:
    hashes = [merkle.leaf_hash(d) for d in leaves_of(8)]
    proof = merkle.inclusion_proof(3, 8, hashes)
    wrong = b"\x00" * 32
    with pytest.raises(ProofError, match=r"expected root 0{64}, calculated [0-9a-f]{64}"):
        merkle.verify_inclusion(3, 8, hashes[3], proof, wrong)
    with pytest.raises(ProofError, match="5 bytes, expected 32"):
        merkle.verify_inclusion(3, 8, hashes[3], [b"short"], merkle.root(hashes))
