"""RFC 6962 §2.1 / RFC 9162 §2.1 Merkle Tree Hash, compact ranges and proofs (SHA-256).

Leaves are hashed as ``SHA-256(0x00 || data)`` and interior nodes as
``SHA-256(0x01 || left || right)``; the root of ``n > 1`` leaves splits at the
largest power of two smaller than ``n`` and the empty tree hashes to ``SHA-256("")``.
Proof generation takes the ordered list of leaf hashes; verification follows the
RFC 9162 §2.1.3.2 and §2.1.4.2 algorithms step by step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import sha256

from gateway.tlog.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "ProofError",
    "consistency_proof",
    "consistency_ranges",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 §2.1 leaf hash ``SHA-256(0x00 || data)``."""
    return sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 §2.1 interior node hash ``SHA-256(0x01 || left || right)``."""
    return sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two ``k`` with ``k < n`` (``n >= 2``), RFC 6962 §2.1."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH of ``leaf_hashes`` (already leaf-hashed); empty tree → SHA-256("").

    Computed level by level — pair adjacent hashes and carry an odd last hash up —
    which yields exactly the largest-power-of-two split of the RFC definition.
    """
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        paired = [
            sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class CompactRange:
    """An append-only Merkle "frontier": the roots of the perfect subtrees of ``[0, size)``.

    Memory is O(log n); :meth:`root` equals :func:`root` of every leaf appended so far.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []

    @property
    def size(self) -> int:
        """Number of leaves appended."""
        return self._size

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash (already ``leaf_hash``-ed)."""
        stack = self._stack
        h = leaf
        n = self._size
        while n & 1:
            h = sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append leaf hashes in order."""
        for leaf in leaves:
            self.append(leaf)

    def append_subtree(self, subtree_root: bytes, height: int) -> None:
        """Append the root of a perfect subtree of ``2**height`` leaves.

        Only valid when the current size is a multiple of ``2**height`` (the subtree
        is then a node of the final tree, RFC 6962 §2.1).
        """
        if height < 0 or self._size & ((1 << height) - 1):
            raise ValueError(f"cannot append a height-{height} subtree at size {self._size}")
        stack = self._stack
        h = subtree_root
        n = self._size >> height
        while n & 1:
            h = sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self._size += 1 << height

    def root(self) -> bytes:
        """MTH of the leaves appended so far (RFC 6962 §2.1)."""
        if not self._stack:
            return EMPTY_ROOT
        h = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            h = sha256(b"\x01" + left + h).digest()
        return h


def _check_hashes(what: str, hashes: Sequence[bytes]) -> None:
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise ProofError(f"{what}[{i}] is {len(h)} bytes, expected {HASH_SIZE}")


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges ``[lo, hi)`` whose MTHs make RFC 9162 §2.1.3.1 PATH(index,
    D[0:size]), ordered from the leaf up.

    Each range is a node of the tree: ``lo`` is a multiple of a power of two at least
    ``hi - lo``. Proofs from leaf hashes (:func:`inclusion_proof`) and from stored tiles
    (``gateway.tlog.tilehash``) both hash these ranges, so the two cannot differ in shape.
    """
    if not 0 <= index < size:
        raise ValueError(f"no inclusion proof for index {index} in tree size {size}")
    ranges: list[tuple[int, int]] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if m < k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m = lo + k, m - k
    ranges.reverse()
    return ranges


def inclusion_proof(index: int, size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]), ordered from the leaf up."""
    if not 0 <= index < size <= len(leaf_hashes):
        raise ValueError(f"no inclusion proof for index {index} in tree size {size}")
    return [root(leaf_hashes[lo:hi]) for lo, hi in inclusion_ranges(index, size)]


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes
) -> None:
    """RFC 9162 §2.1.3.2: check ``proof`` proves ``leaf`` at ``index`` in ``root_hash``.

    Raises :class:`ProofError` saying the expected and calculated values.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    _check_hashes("inclusion proof", proof)
    if len(leaf) != HASH_SIZE or len(root_hash) != HASH_SIZE:
        raise ProofError("leaf hash and root hash must be 32 bytes")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError(
                f"inclusion proof too long: expected at most the path length, got {len(proof)}"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof too short: {len(proof)} hashes for size {size}")
    if r != root_hash:
        raise ProofError(
            f"inclusion proof failed: expected root {root_hash.hex()}, calculated {r.hex()}"
        )


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges ``[lo, hi)`` whose MTHs make RFC 9162 §2.1.4.1 PROOF(old_size,
    D[0:new_size]); none when the sizes are equal or 0. Each is a node of the tree, as in
    :func:`inclusion_ranges`."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    ranges: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, new_size, old_size, True
    while m != hi - lo:
        k = _largest_power_of_two_below(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def consistency_proof(old_size: int, new_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(old_size, D[0:new_size]); empty when the sizes are equal or 0."""
    if not 0 <= old_size <= new_size <= len(leaf_hashes):
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    return [root(leaf_hashes[lo:hi]) for lo, hi in consistency_ranges(old_size, new_size)]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: check ``proof`` shows tree ``old_size`` is a prefix of ``new_size``.

    Edge cases outside the RFC's ``0 < old < new``: equal sizes need an empty proof and
    equal roots; ``old_size == 0`` needs an empty proof and the empty-tree root.
    Raises :class:`ProofError` saying the expected and calculated values.
    """
    if not 0 <= old_size <= new_size:
        raise ProofError(f"old size {old_size} exceeds new size {new_size}")
    _check_hashes("consistency proof", proof)
    if len(old_root) != HASH_SIZE or len(new_root) != HASH_SIZE:
        raise ProofError("root hashes must be 32 bytes")
    if old_size == new_size or old_size == 0:
        if proof:
            raise ProofError(f"expected an empty proof for sizes {old_size}→{new_size}")
        expected_old = new_root if old_size == new_size else EMPTY_ROOT
        if old_root != expected_old:
            raise ProofError(
                f"consistency failed: expected old root {expected_old.hex()}, "
                f"calculated {old_root.hex()}"
            )
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof too long ({len(proof)} hashes)")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof too short ({len(proof)} hashes)")
    if fr != old_root:
        raise ProofError(
            f"consistency failed: expected old root {old_root.hex()}, calculated {fr.hex()}"
        )
    if sr != new_root:
        raise ProofError(
            f"consistency failed: expected new root {new_root.hex()}, calculated {sr.hex()}"
        )
