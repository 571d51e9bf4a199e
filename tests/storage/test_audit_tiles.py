"""The audit log's hash tiles on SQLite and PostgreSQL: stored once and never changed,
written by the checkpointer with the checkpoint that fills them, built once for the
checkpoints of a log from before revision 0004, checked against the signed checkpoint at
start; and proofs read from them equal the proofs computed from every leaf hash."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Connection, delete, func, insert, select, update

from gateway.pipeline.audit import Pseudonymiser
from gateway.services import audit_proofs, checkpoints
from gateway.services.checkpoints import AuditKeys, Checkpointer, CheckpointMismatch
from gateway.services.leadership import SoleLeader
from gateway.storage.audit_log import AuditLogStore
from gateway.storage.base import TileConflict
from gateway.storage.engine import Database
from gateway.storage.schema import audit_entries, audit_head, audit_tiles
from gateway.tlog import merkle
from gateway.tlog.tilehash import HashReads, Tile, TileFrontier, TileKey

ORIGIN = "test.dipgw/audit"


@pytest.fixture
def audit(database: Database) -> AuditLogStore:
    return AuditLogStore(database, Pseudonymiser(b"k" * 32))


@pytest.fixture
def keys(tmp_path: Path) -> AuditKeys:
    return AuditKeys(tmp_path / "keys", ORIGIN, create=True)


async def sequence(database: Database, count: int) -> list[bytes]:
    """Append ``count`` entries straight into the log (as the appenders leave them) and
    return every leaf hash of the log."""

    def write(conn: Connection) -> None:
        start = int(conn.execute(select(audit_head.c.size)).scalar_one())
        entries = [b'{"n":%d}' % i for i in range(start, start + count)]
        conn.execute(insert(audit_entries), [
            {"idx": start + i, "entry": entry, "leaf_hash": merkle.leaf_hash(entry)}
            for i, entry in enumerate(entries)])
        conn.execute(update(audit_head).values(size=start + count))

    await database.transaction(write)
    return await AuditLogStore(database, Pseudonymiser(b"k" * 32)).leaf_hashes(0, 1 << 40)


async def signer(audit: AuditLogStore, keys: AuditKeys) -> Checkpointer:
    leader = SoleLeader(lambda leading: None)
    await leader.start()
    return Checkpointer(audit, keys, leader)


async def tile_count(database: Database) -> int:
    return await database.transaction(
        lambda conn: int(conn.execute(select(func.count()).select_from(audit_tiles)).scalar_one()))


def tile(level: int, n: int, fill: bytes = b"\x01") -> Tile:
    hashes = [fill * 32] * 256
    return Tile(level, n, b"".join(hashes), merkle.root(hashes))


async def test_a_tile_is_stored_once_and_never_changed(audit: AuditLogStore) -> None:
    assert await audit.tiled_size() == 0
    await audit.add_tiles([tile(0, 0), tile(0, 1), tile(1, 0)])
    await audit.add_tiles([tile(0, 1), tile(0, 2)])  # the same bytes again: nothing to do
    assert await audit.tiled_size() == 3 * 256
    with pytest.raises(TileConflict, match="audit tile 0/1 is stored with other hashes"):
        await audit.add_tiles([tile(0, 3), tile(0, 1, b"\x02")])
    assert await audit.tiled_size() == 3 * 256  # the whole write rolled back
    stored = await audit.stored_hashes(HashReads(
        tiles=frozenset({TileKey(0, 1), TileKey(5, 5)}), roots=frozenset({TileKey(1, 0)}),
        leaves=frozenset({0})))
    assert stored.tiles == {TileKey(0, 1): tile(0, 1).hashes}
    assert stored.roots == {TileKey(1, 0): tile(1, 0).root}
    assert stored.leaves == {}


async def test_checkpoints_store_the_tiles_they_fill_and_proofs_read_them(
    database: Database, audit: AuditLogStore, keys: AuditKeys,
) -> None:
    checkpointer = await signer(audit, keys)
    sizes = []
    for count in (100, 200, 300, 1):  # 100, 300 (one tile), 600 (two), 601
        await sequence(database, count)
        found = await checkpointer.integrate()
        assert found is not None
        sizes.append(found[0])
    leaves = await audit.leaf_hashes(0, 601)
    assert sizes == [100, 300, 600, 601]
    assert await audit.tiled_size() == 512 and await tile_count(database) == 2
    frontier = TileFrontier()
    assert [t.key for t in frontier.extend(leaves)] == [TileKey(0, 0), TileKey(0, 1)]
    for size in sizes:
        for index in (0, 255, 256, size - 1):
            if index < size:
                leaf, proof = await audit_proofs.inclusion(audit, index, size)
                assert leaf == leaves[index]
                assert proof == merkle.inclusion_proof(index, size, leaves)
        for old in sizes:
            if old <= size:
                assert await audit_proofs.consistency(audit, old, size) == (
                    merkle.consistency_proof(old, size, leaves))


async def test_tiles_of_earlier_checkpoints_are_built_once_at_start(
    database: Database, audit: AuditLogStore, keys: AuditKeys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A log from before revision 0004: checkpoints, no tiles. The leader builds them from
    the leaf hashes, a step at a time, and signs on from the tree they hold."""
    checkpointer = await signer(audit, keys)
    await sequence(database, 1000)
    await checkpointer.integrate()
    await database.transaction(lambda conn: conn.execute(delete(audit_tiles)))
    await sequence(database, 30)
    monkeypatch.setattr(checkpoints, "BACKFILL_STEP", 300)
    read: list[tuple[int, int]] = []
    leaf_hashes = AuditLogStore.leaf_hashes

    async def spy(self: AuditLogStore, start: int, end: int) -> list[bytes]:
        read.append((start, end))
        return await leaf_hashes(self, start, end)

    monkeypatch.setattr(AuditLogStore, "leaf_hashes", spy)
    restarted = await signer(audit, keys)
    await restarted.start()
    await restarted.stop()
    # 0..1000 in steps, then only what was sequenced since the checkpoint.
    assert read == [(0, 300), (300, 600), (600, 900), (900, 1000), (1000, 1030)]
    assert await audit.tiled_size() == 1024
    newest = await audit.checkpoint()
    assert newest is not None and newest[0] == 1030
    leaves = await leaf_hashes(audit, 0, 1030)
    assert await audit_proofs.consistency(audit, 1000, 1030) == merkle.consistency_proof(
        1000, 1030, leaves)


async def test_an_altered_tile_stops_the_checkpointer_at_start(
    database: Database, audit: AuditLogStore, keys: AuditKeys,
) -> None:
    checkpointer = await signer(audit, keys)
    await sequence(database, 700)
    await checkpointer.integrate()
    await database.transaction(lambda conn: conn.execute(
        update(audit_tiles).where(audit_tiles.c.level == 0, audit_tiles.c.idx == 1)
        .values(root=b"\x00" * 32)))
    with pytest.raises(CheckpointMismatch, match="do not reproduce checkpoint 700"):
        await (await signer(audit, keys)).start()


async def test_a_missing_leaf_hash_stops_the_checkpointer_at_start(
    database: Database, audit: AuditLogStore, keys: AuditKeys,
) -> None:
    checkpointer = await signer(audit, keys)
    await sequence(database, 600)
    await checkpointer.integrate()
    await database.transaction(lambda conn: conn.execute(
        delete(audit_entries).where(audit_entries.c.idx == 599)))
    with pytest.raises(CheckpointMismatch, match="checkpoint 600 are incomplete"):
        await (await signer(audit, keys)).start()
