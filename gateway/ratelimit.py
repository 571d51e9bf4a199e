"""Token buckets: how many requests a caller may make, with the clock passed in.

A bucket holds up to ``burst`` tokens and gains ``per_second`` of them every second; a
request costs one token and is refused while the bucket is short, with the time until
it would not be (the ``Retry-After`` of RFC 9110 section 10.2.3). This is the classic
token bucket (the same algorithm as the GCRA of ITU-T I.371 and RFC 2697's committed
burst), chosen over fixed windows because it never lets through two bursts across a
window edge.

Nothing here does I/O or reads a clock: every call takes ``now`` in seconds from any
monotonic source, so tests drive time by hand and the HTTP layer uses ``time.monotonic``.
A ``BucketTable`` keeps one bucket per key (an address, an organisation) in bounded
memory: a bucket idle long enough to be full again carries no information and is
dropped, and past ``max_keys`` the least recently used bucket is dropped first.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

# How many of the least recently used buckets each call looks at for idle ones: enough
# to keep up with arrivals, few enough that one call stays O(1).
_PRUNE_PER_CALL = 2


@dataclass(frozen=True, slots=True)
class Rate:
    """``per_second`` tokens a second, at most ``burst`` saved up; 0 per second is no limit."""

    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if self.per_second < 0 or (self.per_second > 0 and self.burst < 1):
            raise ValueError("a rate needs per_second >= 0 and, when limited, burst >= 1")

    @property
    def unlimited(self) -> bool:
        return self.per_second == 0

    @property
    def refill_s(self) -> float:
        """Seconds for an empty bucket to fill: after that, a bucket is as good as new."""
        return self.burst / self.per_second


@dataclass(slots=True)
class Bucket:
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: Rate, now: float) -> Bucket:
        return cls(rate.burst, now)

    def level(self, rate: Rate, now: float) -> float:
        """Tokens at ``now``; a clock that went backwards adds nothing."""
        return min(rate.burst, self.tokens + max(0.0, now - self.updated) * rate.per_second)

    def wait(self, rate: Rate, now: float, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are there (0 when they are now); nothing changes."""
        if cost > rate.burst:
            return math.inf
        return max(0.0, cost - self.level(rate, now)) / rate.per_second

    def take(self, rate: Rate, now: float, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens and answer 0, or spend none and answer the wait."""
        waiting = self.wait(rate, now, cost)
        if waiting == 0:
            self.tokens = self.level(rate, now) - cost
            self.updated = max(now, self.updated)
        return waiting


def retry_after_s(wait_s: float) -> int:
    """Whole seconds for ``Retry-After``, rounded up so a client that obeys is let in."""
    return max(1, math.ceil(wait_s))


class BucketTable:
    """One bucket per key, in memory bounded by ``max_keys``."""

    def __init__(self, rate: Rate, max_keys: int) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.rate = rate
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def wait(self, key: str, now: float, cost: float = 1.0) -> float:
        """Seconds until ``key`` may spend ``cost``; nothing is spent or remembered."""
        if self.rate.unlimited:
            return 0.0
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait(self.rate, now, cost)

    def take(self, key: str, now: float, cost: float = 1.0) -> float:
        """Spend ``cost`` from ``key``'s bucket: 0 when allowed, else the wait in seconds."""
        if self.rate.unlimited:
            return 0.0
        self._prune(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = Bucket.full(self.rate, now)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(self.rate, now, cost)

    def _prune(self, now: float) -> None:
        """Drop least recently used buckets that have had time to fill up again."""
        for _ in range(_PRUNE_PER_CALL):
            if not self._buckets:
                return
            key, bucket = next(iter(self._buckets.items()))
            if now - bucket.updated < self.rate.refill_s:
                return
            del self._buckets[key]
