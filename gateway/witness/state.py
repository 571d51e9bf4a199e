"""The witness's only state: the latest checkpoint it cosigned, one row per log origin.

C2SP tlog-witness §add-checkpoint requires checking the old size and persisting the new
checkpoint atomically, or two concurrent requests could both advance (and one roll back)
the state. Here the check is a compare-and-swap: the row is replaced only if it still holds
the checkpoint the decision was made from, inside one SQLite ``BEGIN IMMEDIATE``
transaction, so of two requests made from the same state exactly one wins and the other
decides again against the new row (and gets 409). Sizes are stored as decimal text since
a tree size may reach 2^64 - 1, past SQLite's signed 64-bit integers.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

from gateway.tlog.witness import LatestCheckpoint

_SCHEMA = """
CREATE TABLE IF NOT EXISTS latest_checkpoint (
    origin TEXT PRIMARY KEY,
    size TEXT NOT NULL,
    root_hash BLOB NOT NULL,
    signed_checkpoint TEXT NOT NULL
)
"""


class WitnessState:
    """The SQLite file holding each witnessed log's latest cosigned checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE).
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def _latest(self, origin: str) -> LatestCheckpoint | None:
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT size, root_hash, signed_checkpoint FROM latest_checkpoint "
                "WHERE origin = ?", (origin,)).fetchone()
        if row is None:
            return None
        return LatestCheckpoint(origin, int(row[0]), bytes(row[1]), row[2])

    def _swap(self, expected: LatestCheckpoint | None, new: LatestCheckpoint) -> bool:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT size, root_hash FROM latest_checkpoint WHERE origin = ?",
                (new.origin,)).fetchone()
            current = None if row is None else (int(row[0]), bytes(row[1]))
            wanted = None if expected is None else (expected.size, expected.root_hash)
            if current != wanted:
                db.execute("ROLLBACK")
                return False
            db.execute(
                "INSERT INTO latest_checkpoint (origin, size, root_hash, signed_checkpoint) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (origin) DO UPDATE SET size = excluded.size, "
                "root_hash = excluded.root_hash, signed_checkpoint = excluded.signed_checkpoint",
                (new.origin, str(new.size), new.root_hash, new.signed_checkpoint))
            db.execute("COMMIT")
            return True
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    async def latest(self, origin: str) -> LatestCheckpoint | None:
        """The latest checkpoint cosigned for ``origin``; None if never."""
        return await asyncio.to_thread(self._latest, origin)

    async def compare_and_swap(
        self, expected: LatestCheckpoint | None, new: LatestCheckpoint
    ) -> bool:
        """Store ``new`` if the row still holds ``expected`` (same size and root); else
        change nothing and answer False."""
        return await asyncio.to_thread(self._swap, expected, new)
