"""RFC 9162 §2.1.3 inclusion and §2.1.4 consistency proofs of the audit log, served from
its stored hash tiles (C2SP tlog-tiles): ``gateway.tlog.tilehash`` names the O(log n)
rows a proof needs, one transaction reads them, and the proof is built from them, hash for
hash the proof ``gateway.tlog.merkle`` computes from every leaf hash. A proof is asked
against a signed checkpoint's size, whose tiles the checkpointer stored with it.
"""

from __future__ import annotations

from gateway.storage.base import AuditRepository
from gateway.tlog.tilehash import Subtree, consistency_plan, inclusion_plan, reads_for


async def inclusion(audit: AuditRepository, index: int, size: int) -> tuple[bytes, list[bytes]]:
    """(leaf hash of entry ``index``, PATH(index, D[0:size]))."""
    plan = inclusion_plan(index, size)
    leaf = reads_for([Subtree(0, index)], size)
    stored = await audit.stored_hashes(plan.reads() | leaf)
    return stored.hash_at(0, index, size), plan.proof(stored)


async def consistency(audit: AuditRepository, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]); empty when the sizes are equal."""
    plan = consistency_plan(old_size, new_size)
    return plan.proof(await audit.stored_hashes(plan.reads()))
