"""The audit log on SQLite and PostgreSQL: indices contiguous from 0 however appenders
race, an entry only with its transaction, entries and leaf hashes as SqliteAuditLog stored
them, and checkpoints that only grow."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection

from gateway.pipeline.audit import AuditAction, AuditEvent, Pseudonymiser
from gateway.pipeline.consent import SubjectKeys
from gateway.storage.audit_log import AuditLogStore
from gateway.storage.engine import Database
from gateway.tlog.merkle import leaf_hash

AT = datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=UTC)
PSEUDONYMS = Pseudonymiser(b"k" * 32)


def event(n: int = 0) -> AuditEvent:
    return AuditEvent(
        AuditAction.CONSULTED, AT + timedelta(seconds=n), f"cjit-nfk.worker-{n}",
        message_id=f"m{n}", recipients=("CJIT-NFK",), details={"purpose": "case review"},
        subject=SubjectKeys(pnc="2026/0000001A", name_dob=None),
    )


@pytest.fixture
def audit(database: Database) -> AuditLogStore:
    return AuditLogStore(database, PSEUDONYMS)


async def test_appends_are_numbered_from_zero(database: Database, audit: AuditLogStore) -> None:
    assert await audit.size() == 0
    assert [await audit.record(event(n)) for n in range(3)] == [0, 1, 2]

    def two(conn: Connection) -> tuple[int, int]:
        return audit.append(conn, event(3)), audit.append(conn, event(4))

    assert await database.transaction(two) == (3, 4)
    assert await audit.size() == 5


async def test_entries_and_leaf_hashes_round_trip(audit: AuditLogStore) -> None:
    for n in range(4):
        await audit.record(event(n))
    entries = await audit.entries(1, 3)
    assert [json.loads(entry)["index"] for entry in entries] == [1, 2]
    first = json.loads(entries[0])
    assert first["actor"] == "cjit-nfk.worker-1"
    assert first["subject"] == PSEUDONYMS.of(SubjectKeys(pnc="2026/0000001A", name_dob=None))
    assert first["at"].startswith("2026-12-02T10:00:01")
    # RFC 8785 canonical JSON: sorted keys, no spaces, as SqliteAuditLog wrote it.
    assert entries[0] == json.dumps(first, sort_keys=True, separators=(",", ":")).encode()
    assert await audit.leaf_hashes(1, 3) == [leaf_hash(entry) for entry in entries]
    assert await audit.entries(4, 10) == []
    assert len(await audit.leaf_hashes(0, 10)) == 4


async def test_concurrent_appenders_get_distinct_gapless_indices(
    database: Database, audit: AuditLogStore
) -> None:
    def append(n: int) -> Callable[[Connection], int]:
        return lambda conn: audit.append(conn, event(n))

    # On PostgreSQL an appender that waited on the head row is aborted when the holder
    # commits and run again; each must get through inside the engine's retry budget, or
    # gather raises.
    indices = await asyncio.gather(*(database.transaction(append(n)) for n in range(50)))
    assert sorted(indices) == list(range(50))
    assert await audit.size() == 50
    stored = [json.loads(entry)["index"] for entry in await audit.entries(0, 50)]
    assert stored == list(range(50))


async def test_appenders_that_hold_the_head_longer_all_get_through(
    database: Database, audit: AuditLogStore
) -> None:
    """A message's acceptance appends and then writes several rows, holding the head row
    for longer than a bare append: with as many of them at once as the pool runs, a
    transaction on PostgreSQL can lose the race to the others many times over (13 attempts
    were seen with six senders), and must still commit rather than fail the request."""

    def append_then_work(n: int) -> Callable[[Connection], int]:
        def run(conn: Connection) -> int:
            index = audit.append(conn, event(n))
            time.sleep(0.005)  # the rest of the transaction's writes
            return index

        return run

    indices = await asyncio.gather(
        *(database.transaction(append_then_work(n)) for n in range(60)))
    assert sorted(indices) == list(range(60))


async def test_a_failed_transaction_appends_nothing(
    database: Database, audit: AuditLogStore
) -> None:
    await audit.record(event(0))

    def fails(conn: Connection) -> None:
        audit.append(conn, event(1))
        raise LookupError("the change itself failed")

    with pytest.raises(LookupError):
        await database.transaction(fails)
    assert await audit.size() == 1
    assert await audit.record(event(2)) == 1  # the index was not consumed
    assert [json.loads(e)["actor"] for e in await audit.entries(0, 2)] == [
        "cjit-nfk.worker-0", "cjit-nfk.worker-2"]


async def test_checkpoints_only_grow(audit: AuditLogStore) -> None:
    assert await audit.checkpoint() is None
    assert await audit.checkpoints() == []
    assert await audit.newest_checkpoint_issued() is None
    await audit.add_checkpoint(2, "note two", AT)
    await audit.add_checkpoint(5, "note five", AT + timedelta(minutes=1))
    for size in (5, 4, 0):
        with pytest.raises(ValueError, match=f"checkpoint size {size} does not grow the log "
                                             "past 5"):
            await audit.add_checkpoint(size, "stale", AT)
    assert await audit.checkpoints() == [(2, "note two"), (5, "note five")]
    assert await audit.checkpoint() == (5, "note five")
    assert await audit.checkpoint(2) == (2, "note two")
    assert await audit.checkpoint(3) is None
    assert await audit.newest_checkpoint_issued() == (5, AT + timedelta(minutes=1))


async def test_cosignatures_are_kept_once_per_witness_and_size(audit: AuditLogStore) -> None:
    at = datetime(2026, 12, 4, tzinfo=UTC)
    assert await audit.cosigned_size("w1") == 0
    await audit.add_cosignature("w1", 3, "— w1 AAAA", at)
    await audit.add_cosignature("w1", 3, "— w1 BBBB", at)
    await audit.add_cosignature("w2", 3, "— w2 CCCC", at)
    await audit.add_cosignature("w1", 7, "— w1 DDDD", at)
    assert await audit.cosigned_size("w1") == 7
    assert await audit.cosigned_size("w2") == 3
    assert await audit.cosignatures(3) == {3: ["— w1 AAAA", "— w2 CCCC"]}
    assert await audit.cosignatures() == {3: ["— w1 AAAA", "— w2 CCCC"], 7: ["— w1 DDDD"]}
    assert await audit.cosignatures(5) == {}
