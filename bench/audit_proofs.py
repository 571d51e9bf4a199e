"""Audit proofs served from stored hash tiles, beside the old way in the same run.

    .venv/bin/python bench/audit_proofs.py --entries 200000 --runs 7

A SQLite log of --entries synthetic audit entries (inserted straight through the store's
tables, as appenders leave them) is given two signed checkpoints by the checkpointer,
which stores the C2SP hash tiles they fill. Then, each --runs times, wall time of:

(a) one RFC 9162 inclusion proof (--index, in the newest checkpoint) and
(b) one consistency proof (between the two checkpoints), each as the routes now serve it
    (``gateway.services.audit_proofs``: the O(log n) tile rows ``gateway.tlog.tilehash``
    names, read in one transaction), beside the baseline the routes used before: read
    every leaf hash of the tree (``AuditLogStore.leaf_hashes(0, size)``) and call
    ``merkle.inclusion_proof`` / ``merkle.consistency_proof``;
(c) the checkpointer's rebuild at start (``Checkpointer.start``: its frontier restored
    from the tiles' right edge and checked against the signed checkpoint), beside reading
    every leaf hash into a ``CompactRange`` as it did before.

Both ways answer the same proofs (checked here); figures are min and median in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Connection, insert, select, update  # noqa: E402

from gateway.pipeline.audit import Pseudonymiser  # noqa: E402
from gateway.services import audit_proofs  # noqa: E402
from gateway.services.checkpoints import AuditKeys, Checkpointer  # noqa: E402
from gateway.services.leadership import SoleLeader  # noqa: E402
from gateway.storage.audit_log import AuditLogStore  # noqa: E402
from gateway.storage.engine import Database, open_database  # noqa: E402
from gateway.storage.schema import audit_entries, audit_head  # noqa: E402
from gateway.tlog import merkle  # noqa: E402
from gateway.tlog.canonical import canonicalize  # noqa: E402
from gateway.tlog.tilehash import Subtree, inclusion_plan, reads_for  # noqa: E402

BATCH = 10_000


async def sequence(db: Database, start: int, end: int) -> None:
    """Entries ``start`` to ``end``, about the size of real ones, in batches."""
    for first in range(start, end, BATCH):
        last = min(first + BATCH, end)
        entries = [
            canonicalize({
                "index": i, "action": "message.delivered", "at": "2026-11-23T12:00:00.000000Z",
                "actor": "gateway", "message_id": f"00000000-0000-4000-8000-{i:012d}",
                "recipients": ["CJIT-NFK"], "subject": f"psn:{i:032x}",
            })
            for i in range(first, last)
        ]

        def write(conn: Connection, first: int = first, last: int = last,
                  entries: list[bytes] = entries) -> None:
            conn.execute(insert(audit_entries), [
                {"idx": first + k, "entry": e, "leaf_hash": merkle.leaf_hash(e)}
                for k, e in enumerate(entries)])
            conn.execute(update(audit_head).values(size=last))

        await db.transaction(write)
    size = await db.transaction(lambda c: int(c.execute(select(audit_head.c.size)).scalar_one()))
    assert size == end


async def timed(runs: int, fn: Callable[[], Awaitable[Any]]) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = await fn()
        times.append((time.perf_counter() - start) * 1000)
    return times, result


def line(label: str, tiles: list[float], baseline: list[float]) -> str:
    tm, bm = statistics.median(tiles), statistics.median(baseline)
    return (f"{label}: from tiles {min(tiles):.2f} / {tm:.2f} ms (min / median), "
            f"baseline all leaf hashes {min(baseline):.1f} / {bm:.1f} ms: {bm / tm:,.0f}x")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--index", type=int, help="entry to prove (default 2/7 of the log)")
    args = parser.parse_args()
    n, old = args.entries, args.entries * 3 // 5 + 7
    with tempfile.TemporaryDirectory() as scratch:
        db = open_database(None, Path(scratch) / "dipgw.sqlite3")
        await db.open()
        try:
            audit = AuditLogStore(db, Pseudonymiser(b"k" * 32))
            keys = AuditKeys(Path(scratch) / "keys", "bench.dipgw/audit", create=True)
            leader = SoleLeader(lambda leading: None)
            await leader.start()
            start = time.perf_counter()
            await sequence(db, 0, old)
            await Checkpointer(audit, keys, leader).integrate()
            await sequence(db, old, n)
            await Checkpointer(audit, keys, leader).integrate()
            print(f"log of {n:,} entries, checkpoints {old:,} and {n:,}, tiles stored, "
                  f"in {time.perf_counter() - start:.1f} s")

            index = args.index if args.index is not None else n * 2 // 7
            reads = inclusion_plan(index, n).reads() | reads_for([Subtree(0, index)], n)
            print(f"inclusion proof of entry {index:,} reads {len(reads.tiles)} tiles, "
                  f"{len(reads.roots)} tile roots, {len(reads.leaves)} leaf hashes")

            async def inclusion_baseline() -> tuple[bytes, list[bytes]]:
                hashes = await audit.leaf_hashes(0, n)
                return hashes[index], merkle.inclusion_proof(index, n, hashes)

            tiles, served = await timed(args.runs, lambda: audit_proofs.inclusion(audit, index, n))
            baseline, expected = await timed(args.runs, inclusion_baseline)
            assert served == expected
            print(line("(a) inclusion proof  ", tiles, baseline))

            async def consistency_baseline() -> list[bytes]:
                return merkle.consistency_proof(old, n, await audit.leaf_hashes(0, n))

            tiles, served = await timed(args.runs, lambda: audit_proofs.consistency(audit, old, n))
            baseline, expected = await timed(args.runs, consistency_baseline)
            assert served == expected
            print(line("(b) consistency proof", tiles, baseline))

            async def rebuild() -> None:
                checkpointer = Checkpointer(audit, keys, leader)
                await checkpointer.start()
                await checkpointer.stop()

            async def rebuild_baseline() -> bytes:
                compact = merkle.CompactRange()
                compact.extend(await audit.leaf_hashes(0, n))
                return compact.root()

            tiles, _ = await timed(args.runs, rebuild)
            baseline, _ = await timed(args.runs, rebuild_baseline)
            print(line("(c) checkpointer start", tiles, baseline))
        finally:
            await db.close()


if __name__ == "__main__":
    asyncio.run(main())
