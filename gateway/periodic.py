"""Background jobs that run every so often for the life of the app."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


# How long ``cancel`` waits for a cancelled task before cancelling it again.
RECANCEL_S = 1.0


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait until it has stopped.

    Cancelled again each ``RECANCEL_S`` until it ends: on Python 3.11 a cancellation that
    meets a completing ``asyncio.wait_for`` (ours or a library's) is swallowed
    (CPython gh-86296, fixed in 3.12), and a looping task would then run on while its
    app's shutdown waited for it forever.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_S)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


class Periodic:
    """Runs ``job`` every ``interval_s`` until stopped; a failed run is logged and the
    next one goes ahead, so one bad moment never stops expiry, checkpoints or refreshes."""

    def __init__(self, name: str, job: Callable[[], Awaitable[Any]], interval_s: float) -> None:
        self._name = name
        self._job = job
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        """The job's name: its task's, its log lines', and its ``dipgw_leader`` role."""
        return self._name

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self._job()
            except Exception:
                log.exception("periodic_job_failed", job=self._name)


class DrainLoop(ABC):
    """Works through a backlog in batches: the next batch at once while batches find work,
    else after ``wake()`` (new work was committed) or ``idle_wait_s`` (work fell due)."""

    def __init__(self, name: str, idle_wait_s: float) -> None:
        self._name = name
        self._idle_wait_s = idle_wait_s
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def drain_once(self) -> int:
        """Handle one batch; returns how much it handled (0: nothing to do now)."""

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                handled = await self.drain_once()
            except Exception:
                log.exception("drain_failed", loop=self._name)
                handled = 0
            if handled == 0:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._idle_wait_s):
                        await self._wakeup.wait()
