"""Background jobs stop when their app stops (gateway.periodic).

The attack on shutdown found in the PostgreSQL run: on Python 3.11 a cancellation that
meets a completing ``asyncio.wait_for`` is swallowed (CPython gh-86296), so a periodic job
went on looping after ``stop()`` had cancelled it and the app's cleanup waited for it for
ever. ``cancel`` now cancels again until the task has ended.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from gateway import periodic
from gateway.periodic import DrainLoop, Periodic


async def test_a_job_that_swallows_its_cancellation_still_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(periodic, "RECANCEL_S", 0.05)
    inside = asyncio.Event()
    runs = 0

    async def swallowing_job() -> None:
        nonlocal runs
        runs += 1
        inside.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            if runs > 1:
                raise
            # Once, as 3.11's wait_for does when its inner await has just completed.

    job = Periodic("swallower", swallowing_job, interval_s=0.001)
    job.start()
    await inside.wait()
    stopping = asyncio.create_task(job.stop())
    await asyncio.wait({stopping}, timeout=5)
    assert stopping.done(), "stop() still waiting for a job that swallowed its cancel"
    stopping.result()
    assert runs == 2


async def test_the_swallowing_is_real_on_this_python() -> None:
    """The pattern the fix guards against, shown deterministically: a task cancelled while
    the future its ``wait_for`` awaits has already completed carries on (3.11), or ends
    (3.12 and later, where ``wait_for`` is built on ``asyncio.timeout``)."""
    done = asyncio.get_running_loop().create_future()
    done.set_result(None)
    entered = asyncio.Event()
    carried_on = False

    async def waits() -> None:
        nonlocal carried_on
        entered.set()
        await asyncio.wait_for(done, 1)
        carried_on = True

    task = asyncio.create_task(waits())
    await entered.wait()
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    assert task.done()
    assert carried_on is (sys.version_info < (3, 12))


async def test_a_drain_loop_stops_while_it_waits_for_work() -> None:
    class Idle(DrainLoop):
        async def drain_once(self) -> int:
            return 0

    loop = Idle("idle", idle_wait_s=30)
    loop.start()
    await asyncio.sleep(0.01)
    stopping = asyncio.create_task(loop.stop())
    await asyncio.wait({stopping}, timeout=5)
    assert stopping.done()
