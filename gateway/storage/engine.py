"""Running transactions on SQLite or PostgreSQL behind one interface.

A repository writes each operation as one synchronous function of a SQLAlchemy
``Connection`` and hands it to ``Database.transaction``; the function's effects are
committed (durably) before the awaited call returns, and an exception rolls back that
function's effects only. How the function is run differs:

* ``SqliteDatabase``: one thread owns one connection and commits queued functions in
  groups: a batch runs inside one ``BEGIN IMMEDIATE ... COMMIT``, each function in its own
  savepoint, so concurrent requests share one fsync (``synchronous=FULL``) and one failing
  function rolls back only itself (the embedded store's design before SQLAlchemy, kept).
* ``PostgresDatabase``: each function runs in a transaction of its own on a pooled
  connection (psycopg 3), from a thread pool. Transactions are SERIALIZABLE, so a function
  sees the same one-writer-at-a-time world as on SQLite (a read-then-write such as the
  audit log's next index stays correct under concurrency); the price is that PostgreSQL may
  abort one of two conflicting transactions (SQLSTATE 40001, or 40P01 for a deadlock),
  and the function is then run again on a fresh transaction, a bounded number of times.
  A function must therefore only act through its connection: no side effects elsewhere.

  Every audited write updates the one ``audit_head`` row, so under SERIALIZABLE any two
  audited writes that overlap conflict and only one commits each round; the others are
  rolled back, work done for nothing. An audited function therefore runs behind
  ``LOCK TABLE audit_head IN EXCLUSIVE MODE`` as its first statement: ``LOCK TABLE``
  takes no snapshot (PostgreSQL manual, ``LOCK``), so its snapshot begins after every
  earlier writer of the head has committed and it cannot lose on that row. Audited
  writes queue instead of colliding; the others (token claims, outbox marks, reads) stay
  concurrent. The runner learns which functions are audited: ``AuditLogStore.append``
  says so on the connection (:func:`note_audit_append`), and a function body (its code
  object) seen appending once takes the lock from then on, as does any retry. Nothing
  depends on this for correctness, only for not wasting work.
"""

from __future__ import annotations

import asyncio
import os
import random
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any, Generic, Protocol, TypeVar

import psycopg
from sqlalchemy import Connection, Engine, NullPool, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

from gateway.storage import migrations

T = TypeVar("T")

# Told (seconds the COMMIT took, operations it made durable) after each commit, on the
# database's own thread: the gateway.metrics commit histograms.
CommitObserver = Callable[[float, int], None]


def _ignore_commit(_seconds: float, _operations: int) -> None:
    """The observer when nobody asks: commits are not timed for anyone."""

# SQLSTATEs after which PostgreSQL asks the client to run the transaction again
# (PostgreSQL manual, "Serialization Failure Handling"): serialization_failure and
# deadlock_detected.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
_BASE_BACKOFF_S = 0.002
_MAX_BACKOFF_S = 0.25
# An audited function's or a retry's first statement (module docstring). EXCLUSIVE
# conflicts with itself and with the ROW EXCLUSIVE lock an UPDATE takes, never with a
# plain SELECT.
_HOLD_AUDIT_HEAD = text("LOCK TABLE audit_head IN EXCLUSIVE MODE")
_APPENDED_AUDIT = "dipgw.appended_audit"


def note_audit_append(conn: Connection) -> None:
    """Tell the runner that the function on ``conn`` appends to the audit log, so that
    it takes the audit head first from its next run (module docstring)."""
    conn.info[_APPENDED_AUDIT] = True


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached or opened."""


class Database(Protocol):
    """What repositories need from a storage back-end."""

    @property
    def dialect(self) -> str:
        """SQLAlchemy's dialect name: ``"sqlite"`` or ``"postgresql"``."""
        ...

    async def open(self) -> None:
        """Connect, and bring the schema to the newest revision."""
        ...

    async def close(self) -> None: ...

    def observe_commits(self, observer: CommitObserver) -> None:
        """Have ``observer`` told of each commit from now on (``gateway.metrics``)."""
        ...

    async def transaction(self, fn: Callable[[Connection], T], *, onward: bool = False) -> T:
        """Run ``fn`` atomically; return its result once its effects are committed.

        ``onward``: ``fn`` moves accepted messages on (the relay's claims and marks, a
        delivery, reading an inbox), and where transactions queue for one writer
        (SQLite) it goes ahead of those waiting that are not, new intake among them. A
        delivery then waits for one commit, not for every submission queued before it,
        and delivery keeps up with intake while intake's own wait grows instead."""
        ...

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn``, which only reads, on one snapshot of what is committed: everything
        whose ``transaction`` returned before this was called, so a read after a write
        sees it. On SQLite ``fn`` runs on a reader connection of its own (WAL lets readers
        run beside the writer), so a read never waits behind the writer's queue or its
        fsync; an ``fn`` that writes fails there (``PRAGMA query_only``)."""
        ...


def database_url(url: str) -> URL:
    """The SQLAlchemy URL for a ``DIPGW_DATABASE_URL``.

    ``postgresql://`` (libpq's own scheme, as ``gateway.config`` accepts it) selects the
    psycopg 3 driver, which SQLAlchemy would otherwise not assume; ``sqlite:///path`` is
    taken as it is.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ValueError("a SQLite DIPGW_DATABASE_URL must name a file: sqlite:///path")
        return parsed
    raise ValueError(
        f"DIPGW_DATABASE_URL must be postgresql://... or sqlite:///path, "
        f"not {parsed.drivername}://"
    )


def open_database(url: str | None, sqlite_path: Path) -> Database:
    """The back-end ``DIPGW_DATABASE_URL`` names, or SQLite at ``sqlite_path`` if unset."""
    if url is None:
        return SqliteDatabase(sqlite_path)
    parsed = database_url(url)
    if parsed.drivername == "sqlite":
        return SqliteDatabase(Path(str(parsed.database)))
    return PostgresDatabase(parsed)


def sqlite_engine(path: Path, *, reader: bool = False) -> Engine:
    """An engine on the SQLite file at ``path``, configured as the gateway runs it.

    Transaction control follows SQLAlchemy's recipe for pysqlite ("Serializable isolation
    / Savepoints / Transactional DDL"): the DB-API connection's ``isolation_level`` is
    None, so the sqlite3 module never begins transactions itself, and each SQLAlchemy
    ``begin()`` emits ``BEGIN IMMEDIATE``, taking the write lock up front so that a
    transaction never fails halfway on SQLITE_BUSY when it first writes. WAL lets readers
    in other processes (``dipgw`` commands) run beside the gateway; ``synchronous=FULL``
    makes a commit survive power loss, not only a crash; foreign keys are enforced.

    A ``reader`` engine is for ``SqliteDatabase.read``'s connection, opened once the
    writer has made the file WAL: its ``begin()`` emits a deferred ``BEGIN``, which takes
    no lock and whose snapshot starts at the first read, and ``query_only`` refuses any
    write on it.
    """
    engine = create_engine(URL.create("sqlite", database=str(path)), poolclass=NullPool)
    pragmas = ("query_only=ON", "busy_timeout=5000") if reader else (
        "journal_mode=WAL",
        "synchronous=FULL",
        "foreign_keys=ON",
        "busy_timeout=5000",
    )
    begin = "BEGIN" if reader else "BEGIN IMMEDIATE"

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        for pragma in pragmas:
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # Only when no transaction is open: migrations.upgrade emits its own BEGIN
        # IMMEDIATE before Alembic calls begin() on a connection in AUTOCOMMIT mode.
        # On the DB-API connection: it runs once per group-commit batch, and through
        # exec_driver_sql it took about 3% of the write thread's samples in bench/.
        dbapi_connection = connection.connection.dbapi_connection
        if not dbapi_connection.in_transaction:  # type: ignore[union-attr]
            dbapi_connection.execute(begin)  # type: ignore[union-attr]

    return engine


def owner_only(path: Path) -> None:
    """Make the data directory 0700 and the database files 0600, before SQLite opens them.

    The database holds special category health data (UK GDPR Art. 9), so no other local
    account may read it. The directory is the gateway's own, so one left more open is
    tightened rather than trusted. The file is created 0600 with ``os.open`` (never
    ``os.umask``, which is process-wide); SQLite creates ``-wal`` and ``-shm`` with the
    main file's mode, and any left by an earlier run are tightened here too.
    """
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(directory.stat().st_mode) != 0o700:
        directory.chmod(0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))):
        if file.exists() and stat.S_IMODE(file.stat().st_mode) & 0o077:
            file.chmod(0o600)


class SqliteDatabase:
    """One connection on one thread, with group commit (see the module's docstring).

    Every caller's future resolves only after the shared COMMIT, so "committed" still
    means durable while concurrent requests share one fsync.
    """

    dialect = "sqlite"

    def __init__(self, path: Path, max_batch: int = 256) -> None:
        self._path = path
        self._max_batch = max_batch
        self._on_commit: CommitObserver = _ignore_commit
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        # ``read``: one more thread with a connection of its own. One is enough to take
        # reads out of the writer's queue; more would only contend for the GIL.
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-read")
        self._read_engine: Engine | None = None
        self._read_conn: Connection | None = None
        self._lock = threading.Lock()
        self._queue: deque[_Operation[Any]] = deque()
        self._onward: deque[_Operation[Any]] = deque()  # served first (``transaction``)
        self._draining = False

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._open_sync)
        try:
            await loop.run_in_executor(self._reader, self._open_reader)
        except BaseException:
            await self.close()
            raise

    def _open_reader(self) -> None:
        engine = sqlite_engine(self._path, reader=True)
        try:
            self._read_conn = engine.connect()
        except BaseException:
            engine.dispose()
            raise
        self._read_engine = engine

    def _open_sync(self) -> None:
        # The database holds special category health data: directory 0700, files 0600,
        # before SQLite creates them (the reasons are in _owner_only's docstring).
        owner_only(self._path)
        engine = sqlite_engine(self._path)
        try:
            migrations.upgrade(engine)
            self._conn = engine.connect()
        except BaseException:
            engine.dispose()
            raise
        self._engine = engine

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._reader, self._close_reader)
        self._reader.shutdown(wait=True)
        await loop.run_in_executor(self._executor, self._close_sync)
        self._executor.shutdown(wait=True)

    def _close_reader(self) -> None:
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None
        if self._read_engine is not None:
            self._read_engine.dispose()
            self._read_engine = None

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def observe_commits(self, observer: CommitObserver) -> None:
        self._on_commit = observer

    async def transaction(self, fn: Callable[[Connection], T], *, onward: bool = False) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            (self._onward if onward else self._queue).append(_Operation(fn, future, loop))
            start = not self._draining
            self._draining = True
        if start:
            loop.run_in_executor(self._executor, self._drain)
        return await future

    async def read(self, fn: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._reader, self._read_sync, fn)

    def _read_sync(self, fn: Callable[[Connection], T]) -> T:
        conn = self._read_conn
        if conn is None:
            raise RuntimeError("database is not open")
        with conn.begin():
            return fn(conn)

    def _drain(self) -> None:
        while True:
            with self._lock:
                batch = [self._onward.popleft()
                         for _ in range(min(self._max_batch, len(self._onward)))]
                batch += [self._queue.popleft()
                          for _ in range(min(self._max_batch - len(batch), len(self._queue)))]
                if not batch:
                    self._draining = False
                    return
            self._commit(batch)

    def _commit(self, batch: list[_Operation[Any]]) -> None:
        conn = self._conn
        if conn is None:
            for op in batch:
                op.settle(None, RuntimeError("database is not open"))
            return
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            transaction = conn.begin()
            try:
                # Savepoints on the DB-API cursor: SQLAlchemy's begin_nested() cost about
                # 65 us each against 1 us (bench/storage_core.py's machine), a quarter of
                # a message's storage CPU. The outer transaction stays SQLAlchemy's.
                cursor = conn.connection.cursor()
                for op in batch:
                    cursor.execute("SAVEPOINT operation")
                    try:
                        result = op.fn(conn)
                    except Exception as exc:
                        cursor.execute("ROLLBACK TO operation")
                        cursor.execute("RELEASE operation")
                        outcomes.append((None, exc))
                    else:
                        cursor.execute("RELEASE operation")
                        outcomes.append((result, None))
            except BaseException:
                transaction.rollback()
                raise
            started = time.perf_counter()
            transaction.commit()
            self._on_commit(time.perf_counter() - started, len(batch))
        except BaseException as exc:
            # The COMMIT itself (or the database) failed: nothing in the batch is durable.
            outcomes = [(None, exc)] * len(batch)
        for op, (result, error) in zip(batch, outcomes, strict=True):
            op.settle(result, error)


class PostgresDatabase:
    """A transaction per function on a pooled psycopg 3 connection (module docstring)."""

    dialect = "postgresql"

    def __init__(
        self,
        url: str | URL,
        pool_size: int = 10,
        # A retry holds the audit head from its start (module docstring), so collisions
        # on it cost one attempt; the rest are for other conflicts SERIALIZABLE finds.
        # Before retries took that lock, 13 attempts were seen with six senders and 10 ran
        # out in under a second; at the back-off's cap twenty attempts take about 4 s.
        max_attempts: int = 20,
        connect_timeout_s: int = 10,
    ) -> None:
        self._url = database_url(url) if isinstance(url, str) else url
        self._pool_size = pool_size
        self._max_attempts = max_attempts
        self._connect_timeout_s = connect_timeout_s
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="pg")
        self._engine: Engine | None = None
        self._on_commit: CommitObserver = _ignore_commit
        # Code objects of the functions seen appending to the audit log (module docstring).
        self._audited_bodies: set[CodeType] = set()

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open_sync)

    def _open_sync(self) -> None:
        engine = create_engine(
            self._url,
            pool_size=self._pool_size,
            max_overflow=0,
            isolation_level="SERIALIZABLE",
            connect_args={"connect_timeout": self._connect_timeout_s},
        )
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except OperationalError as exc:
            engine.dispose()
            where = self._url.render_as_string(hide_password=True)
            raise DatabaseUnavailable(
                f"PostgreSQL at {where} is not reachable: {str(exc.orig).strip()}"
            ) from exc
        try:
            migrations.upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
        self._engine = engine

    async def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        self._executor.shutdown(wait=True)

    def observe_commits(self, observer: CommitObserver) -> None:
        self._on_commit = observer

    async def transaction(self, fn: Callable[[Connection], T], *, onward: bool = False) -> T:
        # Each transaction has a pooled connection of its own: none waits in a queue.
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, fn)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        # Each transaction has a connection of its own already: a read is one of them.
        return await self.transaction(fn)

    def _run(self, fn: Callable[[Connection], T]) -> T:
        engine = self._engine
        if engine is None:
            raise RuntimeError("database is not open")
        body = getattr(fn, "__code__", None)
        attempt = 1
        while True:
            committing = dropped = False
            try:
                with engine.connect() as connection:
                    try:
                        transaction = connection.begin()
                        connection.info.pop(_APPENDED_AUDIT, None)
                        try:
                            if attempt > 1 or body in self._audited_bodies:
                                connection.execute(_HOLD_AUDIT_HEAD)
                            result = fn(connection)
                        except BaseException:
                            transaction.rollback()
                            raise
                        if connection.info.pop(_APPENDED_AUDIT, False) and body is not None:
                            self._audited_bodies.add(body)
                        started = time.perf_counter()
                        committing = True
                        transaction.commit()
                        self._on_commit(time.perf_counter() - started, 1)
                        return result
                    except psycopg.OperationalError:
                        # A HotStatement's error comes from psycopg itself, so SQLAlchemy
                        # has not seen that the connection died: drop it from the pool.
                        raw = connection.connection.dbapi_connection
                        if isinstance(raw, psycopg.Connection) and raw.broken:
                            connection.invalidate()
                            dropped = True
                        raise
            except (DBAPIError, psycopg.Error) as exc:
                if (not _worth_retrying(exc, committing=committing, dropped=dropped)
                        or attempt >= self._max_attempts):
                    raise
            # Exponential back-off with full jitter, capped, so that transactions which
            # collided spread out instead of colliding again in step.
            delay = min(_MAX_BACKOFF_S, _BASE_BACKOFF_S * 2**attempt)
            time.sleep(random.uniform(0, delay))  # noqa: S311 (timing jitter, not a secret)
            attempt += 1


def _worth_retrying(
    error: DBAPIError | psycopg.Error, *, committing: bool, dropped: bool
) -> bool:
    """Whether a failed transaction is run again on a fresh one.

    PostgreSQL asks for it after a serialization failure or deadlock. A pooled connection
    the server dropped (a restart, a failover, an idle timeout) is found by using it: a
    transaction that lost its connection before its COMMIT was sent committed nothing and
    is run again on a new connection, so no round trip is spent checking each connection
    out (``pool_pre_ping``, which cost one of the two or three round trips of most
    transactions). One that lost it during the COMMIT may have committed: that error
    goes to the caller, as any error would. ``dropped``: psycopg reported the
    connection broken under a HotStatement, and it was taken out of the pool.
    """
    # A HotStatement runs on the DB-API cursor, so its failures arrive as psycopg's own
    # errors rather than wrapped by SQLAlchemy.
    cause = getattr(error, "orig", error)
    if getattr(cause, "sqlstate", None) in RETRYABLE_SQLSTATES:
        return True
    if committing:
        return False
    if isinstance(error, DBAPIError):
        return error.connection_invalidated
    return dropped


@dataclass(frozen=True, slots=True)
class _Operation(Generic[T]):
    fn: Callable[[Connection], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop

    def settle(self, result: T | None, error: BaseException | None) -> None:
        self.loop.call_soon_threadsafe(_resolve, self.future, result, error)


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
