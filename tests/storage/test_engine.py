"""The two transaction runners behind one interface: SQLite's group commit (one failing
function rolls back only itself; a result is returned only once committed) and
PostgreSQL's transaction per function with bounded retries of serialization failures and
of pooled connections the server dropped."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Connection, event, func, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from gateway.pipeline.audit import AuditAction, AuditEvent, Pseudonymiser
from gateway.storage import schema
from gateway.storage.audit_log import AuditLogStore
from gateway.storage.engine import (
    Database,
    DatabaseUnavailable,
    PostgresDatabase,
    SqliteDatabase,
    database_url,
    open_database,
)
from gateway.storage.rows import HotStatement

AT = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
RAISE_40001 = "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$"


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    db = SqliteDatabase(tmp_path / "data" / "dipgw.sqlite3")
    await db.open()
    yield db
    await db.close()


@pytest.fixture
async def postgres_db(postgres_url: str) -> AsyncIterator[PostgresDatabase]:
    db = PostgresDatabase(postgres_url, pool_size=8)
    await db.open()
    yield db
    await db.close()


def next_audit_index(conn: Connection) -> int:
    """The audit log's read-then-write (SqliteAuditLog.append): the next index, taken."""
    index = conn.execute(
        select(func.coalesce(func.max(schema.audit_entries.c.idx) + 1, 0))
    ).scalar_one()
    conn.execute(insert(schema.audit_entries).values(idx=index, entry=b"e", leaf_hash=b"h"))
    return int(index)


def failing(conn: Connection) -> int:
    next_audit_index(conn)
    raise ValueError("refused after writing")


async def concurrent_appends(db: Database, count: int, fail_at: int) -> list[object]:
    return await asyncio.gather(
        *(db.transaction(failing if i == fail_at else next_audit_index) for i in range(count)),
        return_exceptions=True,
    )


async def stored_indices(db: Database) -> list[int]:
    return await db.transaction(
        lambda conn: list(
            conn.execute(select(schema.audit_entries.c.idx).order_by("idx")).scalars()
        )
    )


async def test_sqlite_commits_concurrent_functions_in_groups(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "dipgw.sqlite3")
    await db.open()
    commits: list[int] = []
    assert db._engine is not None  # the runner's own engine, to count its COMMITs
    event.listen(db._engine, "commit", lambda _conn: commits.append(1))
    try:
        results = await concurrent_appends(db, 200, fail_at=57)
        indices = await stored_indices(db)
    finally:
        await db.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert [str(e) for e in errors] == ["refused after writing"]
    # The failing function's row went with its savepoint; every other one is kept, with
    # contiguous indices, since each function saw the ones before it in its batch.
    assert indices == list(range(199))
    assert sorted(r for r in results if isinstance(r, int)) == indices
    assert len(commits) < 200 / 4, "concurrent functions should share COMMITs"


async def test_sqlite_runs_onward_work_ahead_of_new_intake(tmp_path: Path) -> None:
    """What moves accepted messages on (a delivery, the relay) is not queued behind every
    submission waiting for the writer: otherwise delivery falls behind intake."""
    db = SqliteDatabase(tmp_path / "dipgw.sqlite3")
    await db.open()
    ran: list[str] = []
    busy, release = threading.Event(), threading.Event()

    def step(name: str) -> Callable[[Connection], None]:
        def fn(_conn: Connection) -> None:
            ran.append(name)
            if name == "first":
                busy.set()
                release.wait(5)
        return fn

    try:
        first = asyncio.create_task(db.transaction(step("first")))
        await asyncio.get_running_loop().run_in_executor(None, busy.wait, 5)
        waiting = [asyncio.create_task(db.transaction(step(name), onward=name == "onward"))
                   for name in ("intake 1", "intake 2", "onward", "intake 3")]
        await asyncio.sleep(0.05)  # all four queued behind the first
        release.set()
        await asyncio.gather(first, *waiting)
    finally:
        await db.close()
    assert ran == ["first", "onward", "intake 1", "intake 2", "intake 3"]


async def test_sqlite_returns_only_once_durable(sqlite_db: SqliteDatabase, tmp_path: Path) -> None:
    for expected in range(5):
        index = await sqlite_db.transaction(next_audit_index)
        assert index == expected
        # Another connection (another process, after a crash) sees it at once.
        with sqlite3.connect(tmp_path / "data" / "dipgw.sqlite3") as other:
            assert other.execute("SELECT MAX(idx) FROM audit_entries").fetchone() == (index,)


async def test_sqlite_is_configured_as_the_gateway_runs_it(
    sqlite_db: SqliteDatabase, tmp_path: Path
) -> None:
    pragmas = await sqlite_db.transaction(
        lambda conn: [
            conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        ]
    )
    assert pragmas == ["wal", 2, 1, 5000]
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "dipgw.sqlite3").stat().st_mode) == 0o600
    with pytest.raises(IntegrityError, match="FOREIGN KEY"):
        await sqlite_db.transaction(
            lambda conn: conn.execute(
                insert(schema.deliveries).values(
                    message_id="none", recipient="X", position=0, permitted=True,
                    decision_json="{}",
                )
            )
        )


@pytest.mark.services
async def test_postgresql_serialises_concurrent_functions(
    postgres_db: PostgresDatabase,
) -> None:
    results = await concurrent_appends(postgres_db, 40, fail_at=7)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert [str(e) for e in errors] == ["refused after writing"]
    # SERIALIZABLE with retries: the same contiguous indices SQLite's one writer gives.
    assert await stored_indices(postgres_db) == list(range(39))


@pytest.mark.services
async def test_postgresql_runs_a_function_again_after_a_serialization_failure(
    postgres_db: PostgresDatabase,
) -> None:
    calls = 0

    def conflicting_once(conn: Connection) -> int:
        nonlocal calls
        calls += 1
        index = next_audit_index(conn)
        if calls == 1:
            conn.exec_driver_sql(RAISE_40001)
        return index

    assert await postgres_db.transaction(conflicting_once) == 0
    assert calls == 2
    assert await stored_indices(postgres_db) == [0]  # the first attempt's row rolled back


@pytest.mark.services
async def test_postgresql_replaces_pooled_connections_the_server_dropped(
    postgres_db: PostgresDatabase, postgres_url: str,
) -> None:
    """No round trip checks a connection at checkout: a transaction that finds its pooled
    connection dead (the server restarted or failed over) runs again on a new one, for
    plain Core and for a HotStatement (whose error comes from psycopg unwrapped)."""
    def backend_after_a_pause(conn: Connection) -> int:
        conn.execute(text("SELECT pg_sleep(0.2)"))
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

    pooled = set(await asyncio.gather(
        *(postgres_db.transaction(backend_after_a_pause) for _ in range(6))))
    assert len(pooled) > 1
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        for pid in pooled:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    hot = HotStatement(insert(schema.token_uses))

    def claim(jti: str) -> Callable[[Connection], int]:
        def write(conn: Connection) -> int:
            hot.execute(conn, {"issuer": "POL-SFK", "jti": jti, "expires_at": AT})
            return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        return write

    used = {await postgres_db.transaction(claim(f"after-{i}")) for i in range(6)}
    used |= {await postgres_db.transaction(backend_after_a_pause) for _ in range(6)}
    assert not used & pooled
    stored = await postgres_db.transaction(
        lambda conn: conn.execute(select(func.count()).select_from(schema.token_uses))
        .scalar_one())
    assert stored == 6


async def test_postgresql_gives_up_after_a_bounded_number_of_attempts(
    postgres_url: str,
) -> None:
    db = PostgresDatabase(postgres_url, pool_size=2, max_attempts=3)
    await db.open()
    calls = 0

    def always_conflicting(conn: Connection) -> None:
        nonlocal calls
        calls += 1
        conn.exec_driver_sql(RAISE_40001)

    def not_retryable(conn: Connection) -> None:
        nonlocal calls
        calls += 1
        conn.exec_driver_sql("SELECT 1 / 0")

    try:
        with pytest.raises(DBAPIError) as raised:
            await db.transaction(always_conflicting)
        assert getattr(raised.value.orig, "sqlstate", None) == "40001"
        assert calls == 3
        calls = 0
        with pytest.raises(DBAPIError, match="division by zero"):
            await db.transaction(not_retryable)
        assert calls == 1
    finally:
        await db.close()


@pytest.mark.services
async def test_postgresql_writers_of_the_audit_head_lose_at_most_once(
    postgres_url: str,
) -> None:
    """Every audited write updates the one audit_head row. Sixty of them at once, each
    holding the head a while (a message's acceptance writes several rows after its
    append), all commit with two attempts each at most, and only the first wave can lose
    at all: a retry, and any run of a function already seen appending, takes the head
    before its snapshot (``LOCK TABLE``), so it cannot lose on that row. Before, one
    transaction lost up to 13 rounds with six senders, and 32 senders ran out of 10."""
    db = PostgresDatabase(postgres_url, pool_size=10, max_attempts=2)
    await db.open()
    audit = AuditLogStore(db, Pseudonymiser(b"k" * 32))
    attempts: dict[int, int] = {}

    def append_then_work(n: int) -> Callable[[Connection], int]:
        def run(conn: Connection) -> int:
            attempts[n] = attempts.get(n, 0) + 1
            index = audit.append(conn, AuditEvent(AuditAction.CONSULTED, AT, f"worker-{n}"))
            time.sleep(0.005)  # the rest of the transaction's writes
            return index

        return run

    try:
        indices = await asyncio.gather(
            *(db.transaction(append_then_work(n)) for n in range(60)))
        assert sorted(indices) == list(range(60))
        assert max(attempts.values()) <= 2
        assert sum(attempts.values()) <= 60 + 10  # at most the pool's first wave lost
    finally:
        await db.close()


@pytest.mark.services
async def test_postgresql_learns_which_functions_append_to_the_audit_log(
    postgres_db: PostgresDatabase,
) -> None:
    """A function body seen appending to the audit log runs behind the audit head's lock
    from then on; one that never appended never takes it."""
    audit = AuditLogStore(postgres_db, Pseudonymiser(b"k" * 32))

    def holds_the_head(conn: Connection) -> bool:
        return conn.exec_driver_sql(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() "
            "AND relation = 'audit_head'::regclass AND mode = 'ExclusiveLock')"
        ).scalar_one() is True

    def audited(conn: Connection) -> bool:
        held = holds_the_head(conn)
        audit.append(conn, AuditEvent(AuditAction.CONSULTED, AT, "worker"))
        return held

    def unaudited(conn: Connection) -> bool:
        return holds_the_head(conn)

    assert [await postgres_db.transaction(audited) for _ in range(3)] == [False, True, True]
    assert [await postgres_db.transaction(unaudited) for _ in range(2)] == [False, False]


async def test_an_unreachable_postgresql_is_named_in_the_error() -> None:
    db = PostgresDatabase("postgresql://dipgw:secret@127.0.0.1:9/dipgw", connect_timeout_s=2)
    with pytest.raises(DatabaseUnavailable, match=r"127\.0\.0\.1:9/dipgw is not reachable") as e:
        await db.open()
    assert "secret" not in str(e.value)
    await db.close()


def test_database_urls(tmp_path: Path) -> None:
    assert database_url("postgresql://u@h:5433/d").drivername == "postgresql+psycopg"
    assert database_url("sqlite:////var/lib/dipgw/db").database == "/var/lib/dipgw/db"
    with pytest.raises(ValueError, match="mysql"):
        database_url("mysql://u@h/d")
    with pytest.raises(ValueError, match="must name a file"):
        database_url("sqlite://")
    assert open_database(None, tmp_path / "x.sqlite3").dialect == "sqlite"
    assert open_database("postgresql://u@h/d", tmp_path / "x.sqlite3").dialect == "postgresql"


async def test_postgresql_retries_a_failure_raised_on_the_db_api_cursor(
    postgres_db: PostgresDatabase,
) -> None:
    """A HotStatement runs on the cursor, so its serialization failure is psycopg's own
    error, not SQLAlchemy's: it is retried all the same."""
    calls = 0

    def conflicting_once_on_the_cursor(conn: Connection) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            conn.connection.cursor().execute(RAISE_40001)
        return calls

    assert await postgres_db.transaction(conflicting_once_on_the_cursor) == 2


async def test_sqlite_reads_do_not_wait_for_the_writer(tmp_path: Path) -> None:
    """``read`` runs on a connection of its own: a read finishes while the writer is in
    the middle of a transaction, and sees what was committed before it, not what that
    transaction has written so far (WAL: readers see the last commit)."""
    db = SqliteDatabase(tmp_path / "dipgw.sqlite3")
    await db.open()
    busy, release = threading.Event(), threading.Event()

    def head(conn: Connection) -> int | None:
        return conn.execute(select(schema.audit_head.c.size)).scalar()

    def write(size: int, *, hold: bool) -> Callable[[Connection], None]:
        def fn(conn: Connection) -> None:
            conn.execute(schema.audit_head.delete())
            conn.execute(insert(schema.audit_head).values(id=1, size=size))
            if hold:
                busy.set()
                release.wait(5)
        return fn

    try:
        await db.transaction(write(1, hold=False))
        held = asyncio.create_task(db.transaction(write(2, hold=True)))
        await asyncio.get_running_loop().run_in_executor(None, busy.wait, 5)
        seen_meanwhile = await asyncio.wait_for(db.read(head), 5)
        release.set()
        await held
        seen_after = await db.read(head)
    finally:
        release.set()
        await db.close()
    assert (seen_meanwhile, seen_after) == (1, 2)


async def test_a_write_through_read_fails_and_changes_nothing(database: Database) -> None:
    """``read`` is for reads: on SQLite its connection is ``query_only``; on PostgreSQL it
    is an ordinary transaction, so this documents only SQLite's refusal."""
    if database.dialect != "sqlite":
        pytest.skip("PostgreSQL's read is a transaction like any other")
    with pytest.raises(DBAPIError, match=r"readonly|read-only|query_only"):
        await database.read(lambda conn: conn.execute(schema.audit_head.update().values(size=7)))
    assert await database.read(
        lambda conn: conn.execute(select(schema.audit_head.c.size)).scalar()) == 0
