"""Wake-ups from other gateway processes on the same PostgreSQL database (issue 13).

Each process keeps state of its own: the live inbox streams it serves, its directory
snapshot, its outbox relay's idle wait. Its own writes wake them directly, as on SQLite.
A write made through another process reaches them through PostgreSQL's LISTEN/NOTIFY:
triggers in the writing transaction notify (revision 0003 names the channels and says
why there), and every process listens here on one connection of its own and calls the
local wake-up. A process is told of its own writes too; the second wake-up is a re-read
that finds nothing new.

Notifications are hints, never the record: a stream re-reads the inbox, the directory is
re-read whole, the relay claims what is due. A notification sent while this connection
is down is lost (PostgreSQL queues them only for listening sessions), so every
(re)connection wakes everything once, after LISTEN has taken effect; the directory's
periodic refresh and the streams' keep-alive reads remain as the floor.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import psycopg
import structlog
from psycopg import sql

from gateway.periodic import cancel
from gateway.storage.engine import database_url

log = structlog.get_logger(__name__)

INBOX = "dipgw_inbox"
DIRECTORY = "dipgw_directory"
OUTBOX = "dipgw_outbox"
CHANNELS = (INBOX, DIRECTORY, OUTBOX)
# How the listening session shows in pg_stat_activity, for operators (and tests).
APPLICATION_NAME = "dipgw-wake-ups"


def libpq_url(url: str) -> str:
    """The libpq connection URL psycopg takes for a ``DIPGW_DATABASE_URL``."""
    return database_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class WakeUpListener:
    """LISTENs on the wake-up channels and calls the local wake-up for each notification.

    ``inbox`` is told the recipient's organisation code (the payload), ``directory``
    re-reads the directory (one run at a time: notifications arriving meanwhile fold into
    one more run), ``outbox`` wakes the relay; ``everything`` wakes every live stream.
    A lost connection is made again after an exponential back-off with full jitter;
    ``heartbeat_s`` without a notification sends ``SELECT 1``, so a connection that died
    silently is noticed within ``heartbeat_s + timeout_s`` rather than never.
    """

    def __init__(
        self,
        url: str,
        *,
        inbox: Callable[[str], None],
        directory: Callable[[], Awaitable[None]],
        outbox: Callable[[], None],
        everything: Callable[[], None],
        heartbeat_s: float = 30.0,
        timeout_s: float = 10.0,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
    ) -> None:
        self._conninfo = libpq_url(url)
        self._inbox = inbox
        self._directory = directory
        self._outbox = outbox
        self._everything = everything
        self._heartbeat_s = heartbeat_s
        self._timeout_s = timeout_s
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._task: asyncio.Task[None] | None = None
        self._refresh: asyncio.Task[None] | None = None
        self._directory_stale = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="wake-ups")

    async def stop(self) -> None:
        await cancel(self._task)
        await cancel(self._refresh)
        self._task = self._refresh = None

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo,
                    autocommit=True,
                    connect_timeout=max(1, round(self._timeout_s)),
                    application_name=APPLICATION_NAME,
                ) as conn:
                    for channel in CHANNELS:
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    failures = 0
                    log.info("wake_ups_listening", channels=list(CHANNELS))
                    self._wake_everything()
                    await self._listen(conn)
            except (psycopg.Error, TimeoutError) as exc:
                failures += 1
                delay = min(self._backoff_cap_s, self._backoff_base_s * 2 ** (failures - 1))
                log.warning(
                    "wake_ups_connection_lost",
                    error=f"{type(exc).__name__}: {str(exc).strip()[:200]}",
                    retry_in_s=round(delay, 2),
                )
                # Full jitter: processes that lost the server together do not return in step.
                await asyncio.sleep(random.uniform(0, delay))  # noqa: S311 (timing, not a secret)

    async def _listen(self, conn: psycopg.AsyncConnection[object]) -> None:
        while True:
            async for notification in conn.notifies(timeout=self._heartbeat_s):
                self._dispatch(notification.channel, notification.payload)
            async with asyncio.timeout(self._timeout_s):
                await conn.execute("SELECT 1")

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == INBOX:
            self._inbox(payload)
        elif channel == DIRECTORY:
            self._refresh_directory()
        elif channel == OUTBOX:
            self._outbox()

    def _wake_everything(self) -> None:
        """What a notification lost while not listening would have woken."""
        self._everything()
        self._refresh_directory()
        self._outbox()

    def _refresh_directory(self) -> None:
        self._directory_stale = True
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.create_task(self._refresh_while_stale(),
                                                name="wake-ups-directory")

    async def _refresh_while_stale(self) -> None:
        while self._directory_stale:
            self._directory_stale = False
            try:
                await self._directory()
            except Exception:
                # The periodic refresh, or the next notification, tries again.
                log.exception("directory_refresh_failed", job="wake-ups")
