"""Many concurrent callers' writes, done as one transaction at a time.

A delivery is a small audited transaction. On PostgreSQL each audited transaction holds
the audit log's head lock from its first write to its COMMIT (``gateway.storage.audit_log``),
so deliveries done one transaction each queue behind one another for the lock; on SQLite
each is a savepoint and a round of SQLAlchemy's bookkeeping inside a group commit. Here
calls that arrive while a batch is being written wait and go together in the next one,
as a group commit gathers transactions: an idle gateway writes each at once, a busy one
writes as many per transaction as arrived meanwhile.

If a batch fails as a whole, each of its items is written again in its own transaction,
so one item that cannot be written (a share that is not permitted, say) fails alone and
the rest go through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    """Runs ``write_all`` on the items of every call that arrived while the previous batch
    ran, at most ``max_batch`` at a time; each caller gets its own item's result or error."""

    def __init__(
        self,
        write_all: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        max_batch: int = 128,
    ) -> None:
        self._write_all = write_all
        self._max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None or self._writer.done():
            writing: list[tuple[Item, asyncio.Future[Result]]] = []
            self._writer = asyncio.create_task(self._write_waiting(writing))
            self._writer.add_done_callback(lambda writer: self._release(writer, writing))
        return await future

    async def _write_waiting(self, writing: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        while self._waiting:
            writing[:] = self._waiting[:self._max_batch]
            del self._waiting[:self._max_batch]
            await self._write(writing)
        writing.clear()

    def _release(
        self, writer: asyncio.Task[None], writing: list[tuple[Item, asyncio.Future[Result]]]
    ) -> None:
        """When a writer ends. If it was stopped (the app shutting down), perhaps before it
        even began, nobody may wait for ever: the batch it held, and those waiting unless a
        new writer has taken them on, are cancelled; the transport brings them again."""
        abandoned = [future for _, future in writing]
        if self._writer is writer:
            self._writer = None
            abandoned += [future for _, future in self._waiting]
            self._waiting.clear()
        for future in abandoned:
            future.cancel()

    async def _write(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._write_all([item for item, _ in batch])
        except Exception as error:
            if len(batch) > 1:
                # Alone, so that only the item at fault fails.
                await asyncio.gather(*(self._write([one]) for one in batch))
            elif not batch[0][1].done():
                batch[0][1].set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
