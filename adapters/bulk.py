"""The send loop every adapter shares: batches, bounded concurrency, a durable journal.

Rows the journal already holds are skipped; rows found invalid while mapping are recorded
at once; the rest go to ``POST /v1/messages/batch`` a few batches at a time. Each batch's
outcomes are journalled as soon as the gateway answers, so an interruption at any moment
loses at most the answers of batches in flight, and those rows are sent again with the
same ``message_id`` and content, which the gateway replays instead of storing twice.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from adapters.columns import column_for
from adapters.errors import AdapterError, GatewayUnreachable, ImportStopped
from adapters.journal import Journal
from adapters.progress import Progress
from adapters.records import Mapped, Outcome, Result
from gateway.client import BatchResult, GatewayProblem


class BatchSender(Protocol):
    async def send_batch(self, envelopes: Sequence[Mapping[str, Any]]) -> list[BatchResult]:
        ...


@dataclass(frozen=True, slots=True)
class Limits:
    batch_size: int = 250
    # Under the gateway's default 1 MiB body limit, with room for the batch's own JSON.
    batch_bytes: int = 900 * 1024
    concurrency: int = 4


@dataclass(frozen=True, slots=True)
class Summary:
    counts: Mapping[Result, int]
    unsent: int
    """Rows the gateway failed on this run (5xx); the next run sends them again."""

    @property
    def complete(self) -> bool:
        return self.unsent == 0


async def send_all(
    mapped: Sequence[Mapped],
    sender: BatchSender,
    journal: Journal,
    progress: Progress,
    pointers: Mapping[str, str],
    limits: Limits = Limits(),
) -> Summary:
    recorded = journal.outcomes()
    pending = [m for m in mapped if m.row not in recorded]
    invalid = [local_outcome(m) for m in pending if m.envelope is None]
    if invalid:
        await asyncio.to_thread(journal.record, invalid)
        progress.advance(len(invalid))
    queue = deque(batches([m for m in pending if m.envelope is not None], limits))
    unsent = 0
    failure: list[AdapterError] = []

    async def worker() -> None:
        nonlocal unsent
        while queue and not failure:
            batch = queue.popleft()
            try:
                results = await sender.send_batch([m.envelope for m in batch if m.envelope])
            except GatewayProblem as problem:
                failure.append(ImportStopped(
                    f"the gateway refused the batch: {problem.status} "
                    f"{problem.problem.get('title', '')}: {problem.problem.get('detail', '')}"
                ))
                return
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                failure.append(GatewayUnreachable(
                    f"lost the gateway ({exc or type(exc).__name__})"
                ))
                return
            outcomes = [
                outcome for item, result in zip(batch, results, strict=True)
                if (outcome := gateway_outcome(item, result, pointers)) is not None
            ]
            await asyncio.to_thread(journal.record, outcomes)
            unsent += len(batch) - len(outcomes)
            progress.advance(len(outcomes))

    await asyncio.gather(*(worker() for _ in range(max(1, limits.concurrency))))
    if failure:
        raise failure[0]
    counts = {result: 0 for result in Result}
    for outcome in journal.outcomes().values():
        counts[outcome.result] += 1
    return Summary(counts, unsent)


def batches(items: Sequence[Mapped], limits: Limits) -> Iterator[list[Mapped]]:
    """Consecutive rows, at most ``batch_size`` of them and about ``batch_bytes`` of JSON."""
    batch: list[Mapped] = []
    size = 0
    for item in items:
        item_size = len(json.dumps(item.envelope, ensure_ascii=False).encode()) + 1
        if batch and (len(batch) >= limits.batch_size or size + item_size > limits.batch_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        yield batch


def local_outcome(item: Mapped) -> Outcome:
    return Outcome(item.row, item.reference, Result.INVALID,
                   reason="; ".join(str(p) for p in item.problems))


def gateway_outcome(
    item: Mapped, result: BatchResult, pointers: Mapping[str, str]
) -> Outcome | None:
    """The row's final outcome from the gateway's answer; None when it should be resent."""
    body = result.body
    message_id = str(item.envelope["message_id"]) if item.envelope else ""
    if result.status == 202:
        return Outcome(item.row, item.reference,
                       Result.REPLAYED if result.replayed else Result.SENT, message_id)
    if result.status == 422:
        reason = "; ".join(
            f"{column_for(pointers, str(e.get('pointer', '')))}: {e.get('message', '')}"
            for e in body.get("errors", [])
        ) or str(body.get("detail", ""))
        # Nothing was stored, so no message id is reported.
        return Outcome(item.row, item.reference, Result.INVALID, reason=reason)
    if result.status in (403, 409):
        return Outcome(item.row, item.reference, Result.REFUSED, message_id, refusal(body))
    return None


def refusal(problem: Mapping[str, Any]) -> str:
    """The policy's reason for each recipient, or the problem's detail."""
    reasons = [
        f"{r.get('code')}: {r['decision'].get('reason', '')} ({r['decision'].get('rule', '')})"
        for r in problem.get("recipients", [])
        if isinstance(r, Mapping) and isinstance(r.get("decision"), Mapping)
        and r["decision"].get("decision") == "deny"
    ]
    return "; ".join(reasons) or str(problem.get("detail", ""))
