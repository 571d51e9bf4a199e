"""The audit log (DPA 2018 s.62) on SQLite and PostgreSQL: entries sequenced inside the
caller's transaction, and the checkpoints signed over them. SQLAlchemy Core, one set of
queries for both.

Sequencing (an index and an RFC 6962 leaf hash, committed with the event itself) is kept
apart from integration (growing the tree and signing checkpoints,
``gateway.services.checkpoints``), as ``SqliteAuditLog`` did.

An entry's index comes from the one row of ``audit_head``
(``UPDATE audit_head SET size = size + 1 RETURNING size - 1``), not from
``MAX(idx) + 1``: the row stays locked until the appending transaction ends, so appenders
take indices one after another, and a transaction that rolls back gives its index back
with the rest, keeping positions contiguous from 0 (``gateway.tlog`` needs no gaps). On
PostgreSQL, whose transactions here are SERIALIZABLE, an appender that waited on the row
is aborted with SQLSTATE 40001 once the holder commits (PostgreSQL manual, "Transaction
Isolation", Repeatable Read: "could not serialize access due to concurrent update"), and
``PostgresDatabase`` runs it again; the conflict shows at this one statement rather than
at commit, and no two appenders ever write the same index.

The hash tiles (``audit_tiles``, C2SP tlog-tiles) are rows like any other here: the
checkpointer computes them and ``gateway.tlog.tilehash`` says which a proof reads; this
module only writes them, refusing to change one, and reads the rows it is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, literal_column, select, tuple_, update

from gateway.domain.model import TokenUse
from gateway.pipeline.audit import AuditEvent, Pseudonymiser, SequencedEntry, entry_document
from gateway.storage.base import AuditRepository, TileConflict
from gateway.storage.engine import Database, note_audit_append
from gateway.storage.rows import HotStatement, insert_ignoring_duplicates
from gateway.storage.schema import (
    audit_checkpoints,
    audit_cosignatures,
    audit_entries,
    audit_head,
    audit_tiles,
)
from gateway.storage.tokens import spend
from gateway.tlog.canonical import canonicalize
from gateway.tlog.merkle import leaf_hash
from gateway.tlog.tilehash import HashReads, StoredHashes, Tile, TileKey

# RETURNING sees the row as updated, on SQLite (3.35+) and PostgreSQL alike. Both are on
# every audited change's path, so compiled once per dialect (gateway.storage.rows). A
# serialization failure on PostgreSQL arrives from the cursor as psycopg's own error,
# which PostgresDatabase retries as it does SQLAlchemy's.
_TAKE_INDEX = HotStatement(
    update(audit_head)
    .values(size=audit_head.c.size + literal_column("1"))
    .returning(audit_head.c.size - literal_column("1"))
)
_INSERT_ENTRY = HotStatement(insert(audit_entries))


class AuditLogStore(AuditRepository):
    """``AuditRepository`` on a ``gateway.storage.engine.Database``."""

    def __init__(self, db: Database, pseudonyms: Pseudonymiser) -> None:
        self._db = db
        self._pseudonyms = pseudonyms

    def append(self, transaction: Any, event: AuditEvent) -> int:
        """Sequence ``event`` inside ``transaction`` (the caller's ``Connection``, the
        ``AuditLog`` seam) and return its index; it is logged if and only if the caller's
        transaction commits."""
        return self.append_entry(transaction, event).index

    def append_entry(self, transaction: Any, event: AuditEvent) -> SequencedEntry:
        conn: Connection = transaction
        note_audit_append(conn)
        row = _TAKE_INDEX.execute(conn, {}).fetchone()
        if row is None:
            raise RuntimeError(
                "audit_head has no row: the schema is not at revision 0002 or later, "
                "or the row was deleted; the audit log cannot be appended to"
            )
        index = int(row[0])
        data = canonicalize(entry_document(event, index, self._pseudonyms))
        hashed = leaf_hash(data)
        _INSERT_ENTRY.execute(conn, {"idx": index, "entry": data, "leaf_hash": hashed})
        return SequencedEntry(index, hashed)

    async def record(self, event: AuditEvent, token_use: TokenUse | None = None) -> int:
        def write(conn: Connection) -> int:
            spend(conn, token_use, event.at)
            return self.append(conn, event)

        # Ahead of intake: mostly consultations, logged before a read is answered.
        index = await self._db.transaction(write, onward=True)
        if token_use is not None:
            token_use.recorded = True
        return index

    async def size(self) -> int:
        return await self._db.transaction(
            lambda conn: int(conn.execute(select(audit_head.c.size)).scalar_one())
        )

    async def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        return await self._range(audit_entries.c.leaf_hash, start, end)

    async def entries(self, start: int, end: int) -> list[bytes]:
        return await self._range(audit_entries.c.entry, start, end)

    async def _range(self, column: Any, start: int, end: int) -> list[bytes]:
        query = (
            select(column)
            .where(audit_entries.c.idx >= start, audit_entries.c.idx < end)
            .order_by(audit_entries.c.idx)
        )

        def read(conn: Connection) -> list[bytes]:
            return [bytes(value) for value in conn.execute(query).scalars()]

        return await self._db.transaction(read)

    async def checkpoints(self) -> list[tuple[int, str]]:
        query = select(audit_checkpoints.c.size, audit_checkpoints.c.note).order_by(
            audit_checkpoints.c.size
        )

        def read(conn: Connection) -> list[tuple[int, str]]:
            return [(int(size), str(note)) for size, note in conn.execute(query)]

        return await self._db.transaction(read)

    async def checkpoint(self, size: int | None = None) -> tuple[int, str] | None:
        query = select(audit_checkpoints.c.size, audit_checkpoints.c.note)
        if size is None:
            query = query.order_by(audit_checkpoints.c.size.desc()).limit(1)
        else:
            query = query.where(audit_checkpoints.c.size == size)

        def read(conn: Connection) -> tuple[int, str] | None:
            row = conn.execute(query).first()
            return (int(row.size), str(row.note)) if row else None

        return await self._db.transaction(read)

    async def add_checkpoint(
        self, size: int, note: str, at: datetime, tiles: Sequence[Tile] = ()
    ) -> None:
        def write(conn: Connection) -> None:
            latest = conn.execute(select(func.max(audit_checkpoints.c.size))).scalar_one()
            if latest is not None and size <= latest:
                raise ValueError(f"checkpoint size {size} does not grow the log past {latest}")
            _write_tiles(conn, tiles)
            conn.execute(
                insert(audit_checkpoints).values(size=size, note=note, issued_at=at)
            )

        await self._db.transaction(write)

    async def add_tiles(self, tiles: Sequence[Tile]) -> None:
        await self._db.transaction(lambda conn: _write_tiles(conn, tiles))

    async def tiled_size(self) -> int:
        query = select(func.max(audit_tiles.c.idx)).where(audit_tiles.c.level == 0)

        def read(conn: Connection) -> int:
            last = conn.execute(query).scalar_one()
            return 0 if last is None else (int(last) + 1) * 256

        return await self._db.transaction(read)

    async def stored_hashes(self, reads: HashReads) -> StoredHashes:
        def keyed(column: Any, keys: frozenset[TileKey]) -> Any:
            return select(audit_tiles.c.level, audit_tiles.c.idx, column).where(
                tuple_(audit_tiles.c.level, audit_tiles.c.idx).in_(sorted(keys)))

        def read(conn: Connection) -> StoredHashes:
            tiles = {
                TileKey(int(level), int(idx)): bytes(value)
                for level, idx, value in conn.execute(keyed(audit_tiles.c.hashes, reads.tiles))
            } if reads.tiles else {}
            roots = {
                TileKey(int(level), int(idx)): bytes(value)
                for level, idx, value in conn.execute(keyed(audit_tiles.c.root, reads.roots))
            } if reads.roots else {}
            leaves = {
                int(idx): bytes(value) for idx, value in conn.execute(
                    select(audit_entries.c.idx, audit_entries.c.leaf_hash)
                    .where(audit_entries.c.idx.in_(sorted(reads.leaves))))
            } if reads.leaves else {}
            return StoredHashes(tiles, roots, leaves)

        return await self._db.transaction(read)

    async def newest_checkpoint_issued(self) -> tuple[int, datetime] | None:
        query = (
            select(audit_checkpoints.c.size, audit_checkpoints.c.issued_at)
            .order_by(audit_checkpoints.c.size.desc())
            .limit(1)
        )

        def read(conn: Connection) -> tuple[int, datetime] | None:
            row = conn.execute(query).first()
            return (int(row.size), row.issued_at) if row else None

        return await self._db.transaction(read)

    async def add_cosignature(self, witness: str, size: int, line: str, at: datetime) -> None:
        row = {"witness": witness, "checkpoint_size": size, "line": line, "cosigned_at": at}
        await self._db.transaction(
            lambda conn: insert_ignoring_duplicates(conn, audit_cosignatures, [row]))

    async def cosignatures(self, size: int | None = None) -> dict[int, list[str]]:
        query = select(audit_cosignatures.c.checkpoint_size, audit_cosignatures.c.line).order_by(
            audit_cosignatures.c.checkpoint_size, audit_cosignatures.c.witness)
        if size is not None:
            query = query.where(audit_cosignatures.c.checkpoint_size == size)

        def read(conn: Connection) -> dict[int, list[str]]:
            found: dict[int, list[str]] = {}
            for size, line in conn.execute(query):
                found.setdefault(int(size), []).append(str(line))
            return found

        return await self._db.transaction(read)

    async def cosigned_size(self, witness: str) -> int:
        query = select(func.max(audit_cosignatures.c.checkpoint_size)).where(
            audit_cosignatures.c.witness == witness)

        def read(conn: Connection) -> int:
            newest = conn.execute(query).scalar_one()
            return 0 if newest is None else int(newest)

        return await self._db.transaction(read)


def _write_tiles(conn: Connection, tiles: Sequence[Tile]) -> None:
    """Insert ``tiles``; those already stored must hold the same bytes (a tile, once full,
    never changes: C2SP tlog-tiles), else ``TileConflict`` and the transaction rolls back."""
    if not tiles:
        return
    rows = [{"level": t.level, "idx": t.index, "hashes": t.hashes, "root": t.root}
            for t in tiles]
    if insert_ignoring_duplicates(conn, audit_tiles, rows) == len(rows):
        return
    wanted = {t.key: (t.hashes, t.root) for t in tiles}
    stored = conn.execute(
        select(audit_tiles.c.level, audit_tiles.c.idx, audit_tiles.c.hashes, audit_tiles.c.root)
        .where(tuple_(audit_tiles.c.level, audit_tiles.c.idx).in_(sorted(wanted)))
    )
    for level, idx, hashes, root in stored:
        key = TileKey(int(level), int(idx))
        if (bytes(hashes), bytes(root)) != wanted[key]:
            raise TileConflict(
                f"audit tile {key.level}/{key.n} is stored with other hashes than the "
                "checkpointer computed from the log: the stored tree and the log disagree"
            )
