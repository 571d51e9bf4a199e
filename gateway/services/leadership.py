"""One leader among the gateway processes on one database, for the singleton jobs.

Signing audit checkpoints, expiring unacknowledged messages, escalating alerts and polling
MESH for acknowledgements must each be done by one process at a time (GitHub issue 13):
two signers could race a key rotation, and two expiry runs would report one expiry twice
to a sender. Every other job (serving requests, relaying, dispatching, the directory
refresh) runs in every process.

On PostgreSQL the leader is the process whose session holds a session-level advisory lock
(``pg_try_advisory_lock``; PostgreSQL manual, "Advisory Locks", and "Advisory Lock
Functions"). One lock covers all the singleton jobs rather than one lock per job: the jobs
are light (a few statements every 10 to 60 seconds), and one leader is simpler to reason
about and to find (``dipgw_leader`` is 1 for every role in one process, 0 in the others).
The lock lives on a connection of its own, outside the transaction pool: the pool hands
its connections to whichever transaction comes next, whereas the lock belongs to one
session for as long as it lives. PostgreSQL releases a session's advisory locks when the
session ends, so when the leader dies (SIGKILL: the kernel closes its socket; a lost
network: the server's TCP keep-alives, set on this session below, end it) a standby's
next attempt, every ``DIPGW_LEADER_RETRY_SECONDS``, takes the lock. The session must reach
PostgreSQL directly or through a session-pooling proxy: a transaction-pooling PgBouncer
would hand the session, and the lock with it, to another client.

The leader checks its session with ``SELECT 1`` every interval and again before each run
of a job; if the session is lost or does not answer within the interval, the process stops
leading at once. This fails closed: no checkpoint for a few seconds is better than two
signers. (A session that the server ended while the leader was between checks is noticed
at the next check, before the next job runs.)

On SQLite the one gateway process is always the leader: it owns the database file (its
writes are serialised by one connection on one thread, ``gateway.storage.engine``), so
there is nobody to elect.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import structlog
from sqlalchemy.engine import URL

from gateway.periodic import cancel
from gateway.storage.engine import database_url

log = structlog.get_logger(__name__)

# The advisory lock's key: fixed, so every gateway process on one database contends for
# the same lock; advisory locks are per database, so installations on other databases of
# the same server never meet. The first eight bytes of SHA-256("dipgw.singleton-jobs"),
# read as a big-endian signed 64-bit integer (pg_try_advisory_lock takes a bigint).
LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"dipgw.singleton-jobs").digest()[:8], "big", signed=True)
DEFAULT_RETRY_S = 5.0

# Told True when this process gains leadership and False when it loses it (gateway.app
# sets the ``dipgw_leader`` gauge for this process's roles).
LeadershipObserver = Callable[[bool], None]


class Leadership(ABC):
    """Whether this process runs the singleton jobs, and a guard that runs a job only
    while it does."""

    def __init__(self, on_change: LeadershipObserver) -> None:
        self._on_change = on_change
        self._term: int | None = None
        self._terms = 0

    @property
    def term(self) -> int | None:
        """The number of this process's current term as leader (1, 2, ... for each time
        it gained leadership), or None while it does not lead. A job that keeps state
        between runs (the checkpointer's Merkle range) starts afresh in a new term: another
        leader may have acted in between."""
        return self._term

    @abstractmethod
    async def start(self) -> None:
        """Try to lead at once, and keep trying (or keep checking) from then on."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop leading and stop trying; another process may take over."""

    @abstractmethod
    async def confirm(self) -> int | None:
        """The current term after checking that this process still leads, else None."""

    def guard(self, job: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
        """``job`` as a periodic job that runs only while this process leads (checked just
        before each run) and is skipped otherwise."""

        async def run_if_leading() -> None:
            if await self.confirm() is not None:
                await job()

        return run_if_leading

    def _gain(self) -> None:
        self._terms += 1
        self._term = self._terms
        log.info("leadership_gained", term=self._term)
        self._on_change(True)

    def _lose(self, reason: str) -> None:
        if self._term is None:
            return
        log.warning("leadership_lost", term=self._term, reason=reason)
        self._term = None
        self._on_change(False)


class SoleLeader(Leadership):
    """SQLite: the only process on the database file leads from start to stop."""

    async def start(self) -> None:
        self._gain()

    async def stop(self) -> None:
        self._lose("stopped")

    async def confirm(self) -> int | None:
        return self._term


class AdvisoryLockLeader(Leadership):
    """PostgreSQL: leads while its own session holds the advisory lock ``LOCK_KEY``."""

    def __init__(
        self,
        url: str | URL,
        on_change: LeadershipObserver,
        *,
        retry_s: float = DEFAULT_RETRY_S,
        lock_key: int = LOCK_KEY,
    ) -> None:
        super().__init__(on_change)
        parsed = database_url(url) if isinstance(url, str) else url
        # libpq's own URL for psycopg (the SQLAlchemy driver suffix removed).
        self._conninfo = parsed.set(drivername="postgresql").render_as_string(
            hide_password=False)
        self._where = parsed.render_as_string(hide_password=True)
        self._retry_s = retry_s
        self._lock_key = lock_key
        self._conn: psycopg.AsyncConnection[Any] | None = None
        # One use of the session at a time: the retry loop and the jobs' checks.
        self._session = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._attempt()
        self._task = asyncio.create_task(self._run(), name="leadership")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        async with self._session:
            # Ending the session releases the lock: a standby takes over at its next try.
            await self._disconnect("stopped")

    async def confirm(self) -> int | None:
        async with self._session:
            if self._term is not None:
                await self._check()
            return self._term

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._retry_s)
            await self._attempt()

    async def _attempt(self) -> None:
        """As leader, check the session; as standby, try to take the lock."""
        async with self._session:
            if self._term is not None:
                await self._check()
                return
            try:
                if self._conn is None:
                    self._conn = await self._connect()
                async with asyncio.timeout(self._retry_s):
                    cursor = await self._conn.execute(
                        "SELECT pg_try_advisory_lock(%s)", (self._lock_key,))
                row = await cursor.fetchone()
            except (psycopg.Error, OSError, TimeoutError) as exc:
                log.warning("leadership_unavailable", database=self._where,
                            error=type(exc).__name__, detail=str(exc).strip())
                await self._disconnect("unreachable")
                return
            if row is not None and row[0] is True:
                self._gain()

    async def _check(self) -> None:
        """Fail closed: leadership ends unless the lock's session answers in time."""
        conn = self._conn
        if conn is None:
            self._lose("no session")
            return
        try:
            async with asyncio.timeout(self._retry_s):
                await conn.execute("SELECT 1")
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning("leadership_session_lost", database=self._where,
                        error=type(exc).__name__, detail=str(exc).strip())
            await self._disconnect("session lost")

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        # Client keep-alives notice a dead server; the server's, set for this session,
        # end the session (and free the lock) when this process's host vanishes without
        # closing its socket. Both probe after one interval of silence, three times.
        seconds = max(1, round(self._retry_s))
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=seconds * 2,
            keepalives=1, keepalives_idle=seconds, keepalives_interval=seconds,
            keepalives_count=3,
        )
        for setting in ("tcp_keepalives_idle", "tcp_keepalives_interval"):
            await conn.execute(f"SET {setting} = {seconds}")
        await conn.execute("SET tcp_keepalives_count = 3")
        return conn

    async def _disconnect(self, reason: str) -> None:
        self._lose(reason)
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()


def leadership_for(
    url: str | None, on_change: LeadershipObserver, *, retry_s: float = DEFAULT_RETRY_S
) -> Leadership:
    """The election the database at ``DIPGW_DATABASE_URL`` needs (SQLite when unset)."""
    if url is None or database_url(url).drivername == "sqlite":
        return SoleLeader(on_change)
    return AdvisoryLockLeader(url, on_change, retry_s=retry_s)
