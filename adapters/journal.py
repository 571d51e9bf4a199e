"""The resume journal: a small SQLite file recording each row's final outcome durably.

Opening a journal either starts an import (recording the input file's SHA-256, the
sender and the ``sent_at`` every envelope of the import carries) or resumes one, and
refuses a journal made for a different file or sender, whose row numbers would mean other
rows. Outcomes are written after the gateway answered, in one transaction per batch with
``synchronous=FULL``, so a row is either recorded (and skipped on resume) or not (and
sent again, which the gateway recognises by its ``message_id``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from adapters.errors import InputError, JournalMismatch
from adapters.records import Outcome, Result

_SCHEMA = """
CREATE TABLE IF NOT EXISTS import (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    adapter TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    file_name TEXT NOT NULL,
    org TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outcomes (
    row INTEGER PRIMARY KEY,
    reference TEXT NOT NULL,
    result TEXT NOT NULL,
    message_id TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""


class Journal:
    def __init__(self, conn: sqlite3.Connection, sent_at: str, resumed: bool) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.sent_at = sent_at
        self.resumed = resumed

    @classmethod
    def open(
        cls, path: Path, *, adapter: str, file_sha256: str, file_name: str, org: str,
        now: str,
    ) -> Journal:
        """Resume the import recorded at ``path``, or start one sent at ``now``."""
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            found = conn.execute(
                "SELECT adapter, file_sha256, file_name, org, sent_at FROM import"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"cannot use {path} as the resume journal: {exc}") from None
        if found is None:
            conn.execute(
                "INSERT INTO import (id, adapter, file_sha256, file_name, org, sent_at) "
                "VALUES (1, ?, ?, ?, ?, ?)",
                (adapter, file_sha256, file_name, org, now),
            )
            return cls(conn, now, resumed=False)
        if tuple(found[:2]) != (adapter, file_sha256) or found[3] != org:
            conn.close()
            raise JournalMismatch(
                f"{path} is the journal of another import ({found[0]} of {found[2]} as "
                f"{found[3]}, SHA-256 {found[1][:12]}…), not of this file as {org}. "
                "Resuming it would match rows to the wrong records: pass a different "
                "--report, or delete the journal only if that import is finished with."
            )
        return cls(conn, str(found[4]), resumed=True)

    def outcomes(self) -> dict[int, Outcome]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT row, reference, result, message_id, reason FROM outcomes ORDER BY row"
            ).fetchall()
        return {
            row: Outcome(row, reference, Result(result), message_id, reason)
            for row, reference, result, message_id, reason in rows
        }

    def record(self, outcomes: Iterable[Outcome]) -> None:
        """Record final outcomes in one durable transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO outcomes (row, reference, result, message_id, "
                    "reason) VALUES (?, ?, ?, ?, ?)",
                    [(o.row, o.reference, o.result.value, o.message_id, o.reason)
                     for o in outcomes],
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
