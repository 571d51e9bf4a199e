"""The coalescer that writes concurrent deliveries together: calls arriving while a batch
is written go in the next one; a failing batch is retried item by item, so only the item
at fault fails; callers left waiting when it stops are released."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.services.batching import Coalescer


class Writes:
    """``write_all`` that records its batches, refuses the item ``poison`` and can be held."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.open = asyncio.Event()
        self.open.set()

    async def __call__(self, items: Sequence[int]) -> list[int]:
        await self.open.wait()
        if 13 in items:
            raise ValueError("cannot write 13")
        self.batches.append(list(items))
        return [item * 10 for item in items]


async def test_calls_arriving_during_a_write_go_together_in_the_next_one() -> None:
    writes = Writes()
    writes.open.clear()
    coalesce = Coalescer(writes, max_batch=4)
    first = asyncio.create_task(coalesce(0))
    await asyncio.sleep(0)  # the first batch, [0], is being written
    rest = [asyncio.create_task(coalesce(n)) for n in range(1, 7)]
    writes.open.set()
    assert await first == 0
    assert await asyncio.gather(*rest) == [10, 20, 30, 40, 50, 60]
    assert writes.batches == [[0], [1, 2, 3, 4], [5, 6]]


async def test_an_item_that_cannot_be_written_fails_alone() -> None:
    writes = Writes()
    writes.open.clear()
    coalesce = Coalescer(writes)
    calls = [asyncio.create_task(coalesce(n)) for n in (11, 12, 13, 14)]
    writes.open.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[:2] == [110, 120] and results[3] == 140
    assert isinstance(results[2], ValueError)
    assert sorted(map(tuple, writes.batches)) == [(11,), (12,), (14,)]


async def test_a_stopped_writer_releases_everyone_waiting() -> None:
    writes = Writes()
    writes.open.clear()
    coalesce = Coalescer(writes)
    calls = [asyncio.create_task(coalesce(n)) for n in range(3)]
    await asyncio.sleep(0)
    writer = coalesce._writer
    assert writer is not None
    writer.cancel()
    for call in calls:
        with pytest.raises(asyncio.CancelledError):
            await call
    # And the next call starts a new writer.
    writes.open.set()
    assert await coalesce(5) == 50
